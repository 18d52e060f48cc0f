"""The data side of :func:`mi_estimators.estimate`: the split, the read-out of the chosen candidate
(on the test split, or cross-fitted over folds of all rows) and the intervals.

**The read-out.** The chosen candidate's bound on the full score matrix of the test split
(n_test(n_test − 1) negatives, :func:`mi_estimators.fit.held_out`), with a delete-a-group jackknife
standard error; on a large test split, in blocks (:func:`read_out`: an InfoNCE read-out in the
largest blocks that leave ``jackknife_groups`` of them, scored a chunk of rows at a time). A
``refittable`` winner is cross-fitted instead (``folds=5`` up to 20,000 rows, :func:`crossfit`):
refitted on K − 1 folds of all n rows and read out on the K-th, in turn; the read-out then uses
every row, each fit sees 80% of the rows instead of 70%, and the standard error is about half the
single split's. (The monitor rows that made the candidate's choices are among them, a tenth of
the read-out: a selection among a few dozen models biases it by a negligible amount.)

**The intervals** (:func:`intervals`). ``ci_heldout = mi ± t₀.₉₇₅ · stderr`` is the held-out
sampling error of the chosen critic alone. But the critic is fitted on finite data, so its held-out
value is low by its deficiency (about p/(2n) nats for p parameters fitted by maximum likelihood),
while its value on its own training rows is high by the same optimism to first order (Akaike's
argument). ``ci`` is therefore ``[mi − t·stderr, max(mi, train_value) + t·stderr]``: it brackets
I(X; Y) when the candidate family contains the truth.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from mi_estimators.arrays import inverse_knots, marginal_mode, marginal_transform
from mi_estimators.bounds.infonce import InfoNCE
from mi_estimators.critics import SeparableCritic, inner_critic, inner_inputs
from mi_estimators.fit import held_out

if TYPE_CHECKING:
    from mi_estimators.estimation.candidates.base import Candidate, Context
    from mi_estimators.estimation.options import EstimateOptions

__all__ = ["LOWER_BOUND_BLOCKS", "MAX_READOUT_BLOCK", "ROW_CHUNK", "Splits", "block_value", "certified", "crossfit",
           "intervals", "read_out", "read_out_chosen", "rowwise", "split"]


class Splits(NamedTuple):
    """Transformed ``(x, y)`` tensors of the three splits."""

    train: tuple[Tensor, Tensor]
    monitor: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    #: with the rank transform, per side the knots (scores, z-scores), each ``(d, K)``, of the map from
    #: a column's normal scores back to its z-scores on the training rows (:func:`split`); else None
    inverse: tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None


def split(x: np.ndarray, y: np.ndarray, opts: EstimateOptions, rng: np.random.Generator,
          device: torch.device) -> Splits:
    """Random train/monitor/test rows (``1 − val_fraction − test_fraction``, ``val_fraction``,
    ``test_fraction``); each column transformed by a map fitted on the train rows
    (:func:`mi_estimators.arrays.marginal_transform`). With the rank transform, ``inverse`` holds
    the knots of each column's map back from normal scores to z-scores
    (:func:`mi_estimators.arrays.inverse_knots`), from which the trained critic recovers what the
    ranks flatten (:mod:`mi_estimators.estimation.candidates.features`)."""
    n = x.shape[0]
    perm = rng.permutation(n)
    n_test = max(2, int(round(opts.test_fraction * n)))
    n_val = max(2, int(round(opts.val_fraction * n)))
    rows = (perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test])
    xz, yz = (marginal_transform(a, rows[0], opts.standardize) for a in (x, y))
    inverse = None
    if marginal_mode(opts.standardize) == "rank":
        inverse = tuple(tuple(torch.as_tensor(k, dtype=torch.float32, device=device)
                              for k in inverse_knots(t, marginal_transform(a, rows[0], "zscore"), rows[0]))
                        for a, t in ((x, xz), (y, yz)))
    return Splits(*((torch.as_tensor(xz[r], dtype=torch.float32, device=device),
                     torch.as_tensor(yz[r], dtype=torch.float32, device=device)) for r in rows), inverse=inverse)


#: the most rows of one block of a test read-out scored a chunk of rows at a time (:func:`block_value`),
#: and the rows of such a chunk
MAX_READOUT_BLOCK, ROW_CHUNK = 16384, 512
#: the losing candidates' held-out lower bounds (:func:`certified`) read at most this many blocks of test rows
LOWER_BOUND_BLOCKS = 4


def read_out_chosen(chosen: Candidate, x: np.ndarray, y: np.ndarray, ctx: Context) -> tuple[int, float, float, float]:
    """``(folds, mi, stderr, training value)`` of the chosen candidate: cross-fitted over
    ``ctx.opts.folds`` folds of all rows (:func:`crossfit`) when it is refittable, else read out on
    the test split (:func:`read_out`, folds 1)."""
    folds = ctx.opts.folds if chosen.refittable else 1
    if folds > 1:
        return (folds, *crossfit(chosen, x, y, ctx.opts, ctx.rng, ctx.device))
    return (1, *read_out(chosen, ctx.data, ctx.opts), chosen.train_value)


def _embeddings(critic: Any, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(g(x), h(y))`` of a separable critic, bare or inside a fixed input map (an ``inputs``
    method around ``critic``), whose scores are ``g(x) @ h(y).T``; None for any other critic."""
    inner = inner_critic(critic)
    if not isinstance(inner, SeparableCritic) or inner.n_models is not None:
        return None
    return inner.embed(*inner_inputs(critic, x, y))


def certified(candidates: Sequence[Candidate], best: Candidate, data: Splits, opts: EstimateOptions) -> list[float]:
    """The held-out lower bounds of the candidates not chosen: each one's bound on up to
    ``LOWER_BOUND_BLOCKS`` blocks of the test split, rows it was neither fitted nor chosen on
    (what :func:`intervals` takes as ``certified``)."""
    test = [a[:LOWER_BOUND_BLOCKS * opts.eval_batch] for a in data.test]
    return [held_out(c.critic, c.bound, *test, opts.eval_batch, groups=0)[0] for c in candidates if c is not best]


def read_out(candidate: Candidate, data: Splits, opts: EstimateOptions) -> tuple[float, float]:
    """``(mi, stderr)``: the candidate's bound on the test split, in m blocks of about ``eval_batch``
    rows (:func:`mi_estimators.fit.held_out`), with a standard error whose cost is linear in the rows.

    With G = ``jackknife_groups``: one block (m = 1), the delete-a-group jackknife over G groups; a few
    (1 < m < G), the jackknife over ⌈G/m⌉ groups of each block, so that about G groups are deleted in all
    (``held_out`` adds the blocks' variances) and the bound is evaluated m(⌈G/m⌉ + 1) times instead of
    m(G + 1); many (m >= G, large n), the blocks' values ``θ_b`` are themselves i.i.d. (disjoint rows,
    a fixed critic), so ``stderr = sd(θ_b) / √m`` with m − 1 >= G − 1 degrees of freedom: one evaluation
    per block. There, an InfoNCE read-out (:func:`rowwise`) takes the largest blocks that still leave
    G of them, up to ``MAX_READOUT_BLOCK`` rows, scored a chunk of rows at a time (:func:`block_value`):
    InfoNCE on B rows is capped at log B and biased low by about what the critic's scores spread over
    B candidates lose, so larger blocks read more of a good critic (``BENCHMARKS.md``: on a 5-nat task
    the exact log density ratio reads 4.88 on 4,096-row blocks and 4.97 on 16,384)."""
    x, y = data.test
    blocks, groups = x.shape[0] // opts.eval_batch, opts.jackknife_groups
    if groups < 2 or blocks < groups:
        per_block = groups if blocks <= 1 or groups < 2 else max(2, math.ceil(groups / blocks))
        return held_out(candidate.critic, candidate.bound, x, y, opts.eval_batch, groups=per_block)
    if rowwise(candidate.bound):  # larger blocks, as many as the groups (module docstring)
        blocks = max(groups, math.ceil(x.shape[0] / MAX_READOUT_BLOCK))
    edges = np.linspace(0, x.shape[0], blocks + 1).astype(int)  # the blocks held_out would cut
    values = np.array([block_value(candidate.critic, candidate.bound, x[a:b], y[a:b])
                       for a, b in zip(edges[:-1], edges[1:])])
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(blocks))


def rowwise(bound: Any) -> bool:
    """Whether :func:`block_value` scores ``bound`` a chunk of rows at a time: plain InfoNCE, whose
    value is a mean over the rows of a function of each row alone."""
    return type(bound) is InfoNCE and bound.clip is None


@torch.no_grad()
def block_value(critic: Any, bound: Any, x: Tensor, y: Tensor) -> float:
    """``bound`` on the full ``(m, m)`` score matrix of the rows ``(x, y)``. For InfoNCE
    (:func:`rowwise`), ``mean_i [s_ii − logsumexp_j s_ij] + log m`` from ``ROW_CHUNK`` rows of
    scores at a time: the matrix is never held, so a block may hold far more rows than
    :func:`mi_estimators.fit.held_out`'s."""
    m = x.shape[0]
    if not rowwise(bound):
        return held_out(critic, bound, x, y, m, groups=0)[0]
    embedded = _embeddings(critic, x, y)
    total = 0.0
    for a in range(0, m, ROW_CHUNK):
        s = (critic(x[a:a + ROW_CHUNK], y) if embedded is None
             else embedded[0][a:a + ROW_CHUNK] @ embedded[1].T)  # (rows, m)
        rows = torch.arange(s.shape[0], device=s.device)
        total += float((s[rows, rows + a] - torch.logsumexp(s, 1)).double().sum())  # float64 sum of the rows
    return total / m + math.log(m)


def crossfit(candidate: Candidate, x: np.ndarray, y: np.ndarray, opts: EstimateOptions, rng: np.random.Generator,
             device: torch.device) -> tuple[float, float, float]:
    """``(mi, stderr, training value)`` of a refittable candidate over ``opts.folds`` folds of all
    rows: for each fold, the marginal transform and the model are fitted on the other rows
    (:meth:`Candidate.refit_folds <mi_estimators.estimation.candidates.base.Candidate.refit_folds>`)
    and the bound is read out on the fold; the values are averaged, their jackknife variances added
    (the folds are disjoint) and divided by K²."""
    folds = np.array_split(rng.permutation(len(x)), opts.folds)
    data = []  # per fold: (x, y) transformed by maps fitted on the other rows, and those rows
    for test in folds:
        rows = np.setdiff1d(np.arange(len(x)), test)
        data.append(((marginal_transform(x, rows, opts.standardize), marginal_transform(y, rows, opts.standardize)),
                     rows))
    fits = candidate.refit_folds([(xz[rows], yz[rows]) for (xz, yz), rows in data])
    values, variances, train = [], [], []
    for test, ((xz, yz), _), (critic, train_value) in zip(folds, data, fits):
        held = [torch.as_tensor(a[test], dtype=torch.float32, device=device) for a in (xz, yz)]
        mi, se = held_out(critic, candidate.bound, *held, opts.eval_batch, groups=opts.jackknife_groups)
        values.append(mi)
        variances.append(se ** 2)
        train.append(train_value)
    return float(np.mean(values)), math.sqrt(sum(variances)) / len(folds), float(np.mean(train))


def intervals(mi: float, se: float, train_value: float, opts: EstimateOptions,
              certified: Sequence[float] = ()) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(ci, ci_heldout)`` (module docstring), with the t quantile of ``jackknife_groups − 1``
    degrees of freedom. ``ci``'s upper end is moreover at least every finite value of ``certified``:
    held-out lower bounds the call computed (a fixed critic's bound on rows it was neither fitted nor
    chosen on). An interval below such a value would exclude what the data already certify.

    >>> from mi_estimators.estimation.options import EstimateOptions
    >>> intervals(0.2, 0.0, 0.25, EstimateOptions(), certified=[0.4, float("nan")])
    ((0.2, 0.4), (0.2, 0.2))
    """
    half = float(stats.t.ppf(0.975, max(opts.jackknife_groups - 1, 1))) * se
    upper = max([max(mi, train_value) + half, *(v for v in certified if math.isfinite(v))])
    return (mi - half, upper), (mi - half, mi + half)

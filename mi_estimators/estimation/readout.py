"""The data side of :func:`mi_estimators.estimate`: the split, the read-out of the chosen candidate
(on the test split, or cross-fitted over folds of all rows) and the intervals.

**The read-out.** The chosen candidate's bound on the full score matrix of the test split
(n_test(n_test − 1) negatives, :func:`mi_estimators.fit.held_out`), with a delete-a-group jackknife
standard error; on a large test split, in blocks (:func:`read_out`: an InfoNCE read-out of a
separable critic in blocks of up to ``MAX_READOUT_BLOCK`` rows, scored a chunk of rows at a time). A
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
from mi_estimators.jackknife import infonce_by_rows, variance_of

if TYPE_CHECKING:
    from mi_estimators.estimation.candidates.base import Candidate, Context
    from mi_estimators.estimation.options import EstimateOptions

__all__ = ["LOWER_BOUND_BLOCKS", "MAX_READOUT_BLOCK", "ROW_CHUNK", "Splits", "block_value", "certified", "crossfit",
           "intervals", "large_blocks", "read_out", "read_out_chosen", "rowwise", "split"]


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


def _separable(critic: Any) -> SeparableCritic | None:
    """The separable critic of ``critic`` (bare or inside a fixed input map), or None."""
    inner = inner_critic(critic)
    return inner if isinstance(inner, SeparableCritic) and inner.n_models is None else None


def _embeddings(critic: Any, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(g(x), h(y))`` of a separable critic (:func:`_separable`), whose scores are
    ``g(x) @ h(y).T``; None for any other critic."""
    inner = _separable(critic)
    return None if inner is None else inner.embed(*inner_inputs(critic, x, y))


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
    per block.

    An InfoNCE read-out of a separable critic (:func:`large_blocks`) takes blocks of up to
    ``MAX_READOUT_BLOCK`` rows instead, with the same three cases, scored a chunk of rows at a time
    (:func:`block_value`): InfoNCE on B rows is capped at log B and biased low by what a good critic
    loses among B candidates, so larger blocks read more of it (``BENCHMARKS.md``: on a 5-nat task the
    exact log density ratio reads 4.88 on 4,096-row blocks and 4.97 on 16,384)."""
    x, y = data.test
    n, groups = x.shape[0], opts.jackknife_groups
    large = large_blocks(candidate, n, opts)
    blocks = math.ceil(n / MAX_READOUT_BLOCK) if large else n // opts.eval_batch
    many = groups >= 2 and blocks >= groups
    per_block = 0 if many else groups if blocks <= 1 or groups < 2 else max(2, math.ceil(groups / blocks))
    if not (large or many):
        return held_out(candidate.critic, candidate.bound, x, y, opts.eval_batch, groups=per_block)
    edges = np.linspace(0, n, blocks + 1).astype(int)  # the blocks held_out would cut
    if not large:
        read = [(held_out(candidate.critic, candidate.bound, x[a:b], y[a:b], b - a, groups=0)[0], None)
                for a, b in zip(edges[:-1], edges[1:])]
    else:
        read = [block_value(candidate.critic, candidate.bound, x[a:b], y[a:b], per_block)
                for a, b in zip(edges[:-1], edges[1:])]
    values = np.array([v for v, _ in read])
    if many:
        return float(values.mean()), float(values.std(ddof=1) / math.sqrt(blocks))
    if per_block < 2:
        return float(values.mean()), math.nan
    return float(values.mean()), math.sqrt(sum(variance_of(loo) for _, loo in read)) / blocks  # variances added


def rowwise(bound: Any) -> bool:
    """Whether :func:`block_value` reads ``bound`` a chunk of rows at a time: plain InfoNCE, whose
    value is a mean over the rows of a function of each row alone."""
    return type(bound) is InfoNCE and bound.clip is None


def large_blocks(candidate: Candidate, n_test: int, opts: EstimateOptions) -> bool:
    """Whether :func:`read_out` reads ``n_test`` rows in blocks of up to ``MAX_READOUT_BLOCK`` rows:
    an InfoNCE read-out (:func:`rowwise`) of a separable critic, bare or in a fixed input map (its
    scores cost two embeddings and one product; a concat critic's would cost an MLP pass per pair), on
    more test rows than one ``eval_batch`` block (fewer: one block either way)."""
    return rowwise(candidate.bound) and _separable(candidate.critic) is not None and n_test > opts.eval_batch


@torch.no_grad()
def block_value(critic: Any, bound: Any, x: Tensor, y: Tensor, groups: int = 0) -> tuple[float, np.ndarray | None]:
    """InfoNCE (``bound``, :func:`rowwise`) on the full ``(m, m)`` score matrix of the rows
    ``(x, y)``, and its ``groups`` delete-a-group values (None below 2 groups), from ``ROW_CHUNK`` rows
    of scores at a time (:func:`mi_estimators.jackknife.infonce_by_rows`): the matrix is never held,
    so a block may hold far more rows than :func:`mi_estimators.fit.held_out`'s. A separable critic's
    embeddings are computed once per block."""
    if not rowwise(bound):
        raise ValueError(f"block_value reads plain InfoNCE only, got {type(bound).__name__}")
    embedded = _embeddings(critic, x, y)

    def score_rows(a: int, b: int) -> Tensor:
        return critic(x[a:b], y) if embedded is None else embedded[0][a:b] @ embedded[1].T

    return infonce_by_rows(score_rows, x.shape[0], groups, ROW_CHUNK)


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

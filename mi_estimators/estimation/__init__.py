"""``estimate(x, y)``: I(X; Y) in nats from two arrays, with a standard error and a 95% interval.

The procedure (:func:`estimate` reads top to bottom in these steps; every setting is a field of
:class:`EstimateOptions`):

1. :func:`~mi_estimators.estimation.readout.split` the rows at random into train (70%), monitor
   (10%) and test (20%) sets and map every column with a transform fitted on the training rows
   (default: normal scores of the ranks, :func:`mi_estimators.arrays.marginal_transform`; MI is
   unchanged by increasing maps).
2. Fit each candidate on the training rows and score it on the monitor rows. A candidate is one
   model of the dependence, in its own module under :mod:`mi_estimators.estimation.candidates`,
   following the protocol of :class:`~mi_estimators.estimation.candidates.base.Candidate`:

   * :class:`~mi_estimators.estimation.candidates.copula.CopulaCandidate` (``copula=True``):
     closed-form Student-t and Gaussian copula critics reduced to k canonical pairs, (ν, k) chosen
     on the monitor split, read out by DV. Exact for Gaussian and Student-t copulas, a lower
     bound otherwise.
   * :class:`~mi_estimators.estimation.candidates.trained.TrainedCandidate`: a critic
     (``critic="auto"``: concat for 1+1 columns, with a separable one trained beside it,
     :mod:`~mi_estimators.estimation.candidates.narrow`; separable above) trained with ``bound.loss``
     (InfoNCE by default), early stopping on the monitor split, and stopped sooner once it cannot
     catch the copula candidate's monitor value (``race=True``); on wide data whose copula keeps
     few canonical pairs it takes those pairs' variates and each side's mean square instead of
     all columns (``canonical=True``); otherwise the separable critic takes each column's normal
     score and its z-score recovered from it
     (:mod:`~mi_estimators.estimation.candidates.features`).
   * :func:`~mi_estimators.estimation.candidates.reduced.reduced_candidate` (``reduce=True``): on
     inputs too wide for the copula candidate (images, embeddings), the trained critic on the k
     leading ridge-CCA variates of each side, ridge and k chosen on the monitor split.
   * :class:`~mi_estimators.estimation.candidates.discrete.ClassifierCandidate`, where one side is
     discrete (``discrete="auto"``: class labels, small counts; :mod:`mi_estimators.discrete`): a
     classifier of that side from the other, read out by Barber–Agakov, ``H(Y) − CE``.

3. :func:`~mi_estimators.estimation.candidates.base.choose` the candidate with the larger value on
   the monitor split (never the test split, which would bias the estimate upwards). With
   ``ensemble=K > 1`` a winning trained critic is averaged with K − 1 more from other seeds.
4. Read it out (:mod:`mi_estimators.estimation.readout`): its bound on the full score matrix of
   the test split with a jackknife standard error, or, for a winner that can be refitted (a copula,
   or a trained critic other than concat), cross-fitted over ``folds=5`` folds of all rows. Above
   20,000 rows the test split alone (``folds`` resolves to 1), and the training budget, batch and
   monitor are sized from n (:func:`~mi_estimators.estimation.options.scale_for_rows`).
5. The intervals: ``ci_heldout = mi ± t·stderr``, and ``ci`` widened upwards to the chosen
   critic's value on its own training rows (``settings.train_value``), which brackets I(X; Y) when
   the candidate family contains the truth (:func:`~mi_estimators.estimation.readout.intervals`),
   and at least to every held-out lower bound the call computed (each candidate not chosen, read
   out by its bound on up to ``LOWER_BOUND_BLOCKS`` blocks of the test split,
   ``settings.heldout_lower_bound``): an interval must not
   exclude what the data already certify.

Before step 1, degenerate columns are settled (:func:`mi_estimators.columns.screen`): constant
columns are dropped with a warning (``settings.dropped_columns``); a side left without columns gives
0 and a side that determines a continuous column of the other gives ``inf``, exactly, without
fitting (``settings.degenerate``). Then the discrete sides are found
(:func:`mi_estimators.discrete.discrete_sides`, ``settings.discrete``): two discrete sides give the
jackknife contingency-table estimate on all rows, with no training; with one, ``mi`` and the
intervals are capped at its entropy (``settings.mi_cap``: I(X; Y) <= H(Y) <= log K).

The types are in :mod:`mi_estimators.estimation.options`. Why the defaults are what they are, with
the measurements: ``studies/README.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mi_estimators.arrays import check_pair
from mi_estimators.columns import screen
from mi_estimators.device import resolve_device, with_index
from mi_estimators.estimation.options import EstimateOptions, EstimateResult, EstimateSettings, auto_critic
from mi_estimators.estimation.readout import (LOWER_BOUND_BLOCKS, Splits, certified, crossfit, intervals, read_out,
                                             read_out_chosen, split)
from mi_estimators.estimation.candidates import Candidate, Context, CopulaCandidate, TrainedCandidate, choose
from mi_estimators.estimation.candidates.features import value_features
from mi_estimators.estimation.candidates.narrow import separable_candidate
from mi_estimators.estimation.candidates.reduced import reduced_candidate
from mi_estimators.estimation.candidates.trained import canonical_rank
from mi_estimators.estimation.candidates.discrete import (ClassifierCandidate, cap, contingency_estimate,
                                                          discrete_settings, entropy_stderr)
from mi_estimators.discrete import discrete_sides
from mi_estimators.fit import flush_denormals, seeded, threads

__all__ = ["Candidate", "ClassifierCandidate", "Context", "CopulaCandidate", "EstimateOptions", "EstimateResult",
           "EstimateSettings", "LOWER_BOUND_BLOCKS", "Splits", "TrainedCandidate", "auto_critic", "canonical_rank",
           "certified", "choose", "crossfit", "estimate", "intervals", "read_out", "read_out_chosen", "split"]


def estimate(x: Any, y: Any, bound: Any = "infonce", critic: Any = "auto", **options: Any) -> EstimateResult:
    """Estimate I(X; Y) in nats: closed-form copula critics and a trained critic compete on a
    monitor split, and the winner is read out on held-out data.

    ``x`` ``(n, dx)`` and ``y`` ``(n, dy)``: NumPy arrays, torch tensors or lists; 1-D input is
    one column; row i of x pairs with row i of y. ``bound``: the trained critic's bound, a
    registered name (see ``mi_estimators.available()``) or a bound object; ``critic``: a registered
    critic name (``separable``, ``concat``, ``bilinear``), ``"auto"`` or an ``nn.Module``.
    ``options``: any field of :class:`EstimateOptions` (``steps``, ``lr``, ``seed``, ``threads``,
    ``copula``, ``ensemble``, ...). The procedure is in the module docstring. The caller's torch
    thread count and random state are the same after the call.

    >>> import mi_estimators as mie
    >>> task = mie.get("student-t-3x3-df2", kind="tasks")
    >>> x, y = task.sample(3000, seed=0)
    >>> r = mie.estimate(x, y, steps=200, seed=0)
    >>> r.settings.chosen_critic, abs(r.mi - task.mi) < 0.1, r.ci[0] <= task.mi <= r.ci[1]
    ('copula', True, True)
    """
    given = EstimateOptions.from_kwargs(bound=bound, critic=critic, **options)
    x, y = check_pair(x, y)
    x, y, columns = screen(x, y)                                                      # 0
    opts = given.resolve(x.shape[1], y.shape[1], x.shape[0])
    device = with_index(resolve_device(opts.device))
    if columns.mi is not None:  # a side without columns (0) or a determined continuous column (inf)
        return EstimateResult.exact(columns, opts, str(device), x.shape[0])
    sides = discrete_sides(x, y, opts.discrete)                                       # 0b
    if len(sides) == 2:
        return contingency_estimate(sides, opts, columns, str(device))
    with threads(opts.threads), flush_denormals(), seeded(opts.seed, device):
        rng = np.random.default_rng(opts.seed)
        ctx = Context(split(x, y, opts, rng, device), opts, rng, device)             # 1
        copula = CopulaCandidate.fit(ctx)                                             # 2
        rank = canonical_rank(copula, ctx.data, opts)
        trained = TrainedCandidate.fit(ctx, rank, value_features(ctx, rank),
                                       rival=None if copula is None else copula.monitor)
        separable = separable_candidate(ctx, given, x.shape[0], [copula, trained])
        reduced = reduced_candidate(ctx, copula is not None)
        classifier = ClassifierCandidate.fit(ctx, next(iter(sides.values()), None))
        candidates = [c for c in (trained, separable, copula, reduced, classifier) if c is not None]
        best = choose(candidates)                                                     # 3
        reported = separable if best is separable else trained  # the trained critic the result reports
        run = reported.ctx  # the options it was trained with (the main ones, unless the separable one won)
        chosen = best.ensemble(run)
        folds, mi, se, train_value = read_out_chosen(chosen, x, y, run)                # 4
        se = entropy_stderr(chosen, se)
        lower = certified(candidates, best, ctx.data, opts)                          # 5
        ci, ci_heldout = intervals(mi, se, train_value, opts, certified=lower)
        top, mi, ci, ci_heldout = cap(sides, mi, ci, ci_heldout)
    data = ctx.data
    settings = EstimateSettings(
        options=run.opts, device=str(device), n=x.shape[0], n_train=data.train[0].shape[0],
        n_val=data.monitor[0].shape[0], n_test=data.test[0].shape[0], chosen_critic=chosen.name,
        read_out=chosen.read_out_name, monitor={c.name: c.monitor for c in candidates}, train_value=train_value,
        copula=None if copula is None else dict(copula.info), read_out_folds=folds,
        chosen_description=chosen.describe(), dropped_columns=columns.dropped,
        heldout_lower_bound=max(lower, default=None), **discrete_settings(sides, top))
    return EstimateResult(mi=mi, stderr=se, ci=ci, ci_heldout=ci_heldout, history=reported.fit_result.history,
                          best_step=reported.fit_result.best_step, stopped_early=reported.fit_result.stopped_early,
                          settings=settings, critic=chosen.critic)

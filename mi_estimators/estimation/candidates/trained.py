"""The trained candidate: a neural critic trained with a bound, early stopping on the monitor split.

The critic of ``opts.critic`` (``"auto"``: concat for 1+1 columns, with the separable critic of
:mod:`~mi_estimators.estimation.candidates.narrow` beside it; separable above; sizes from
:data:`~mi_estimators.estimation.options.DEFAULT_CRITIC_OPTIONS`) is trained on minibatches of the
training split with ``bound.loss`` (InfoNCE by default), keeping the weights with the best bound on
the monitor split (:func:`mi_estimators.fit.fit_critic`). It is read out with the same bound.

**The canonical reduction** (``canonical=True``, :func:`canonical_rank`, :func:`canonical_critic`).
On wide data whose copula candidate keeps few canonical pairs (both sides at least
``CANONICAL_MIN_DIM`` columns, 1 <= k <= ``CANONICAL_MAX_FRACTION`` of the narrower side), the
critic takes each side's k leading canonical variates of the training rows plus its mean square
instead of all columns (:class:`~mi_estimators.critics.ProjectedCritic`): 2k + 2 inputs instead of
d_x + d_y, far fewer weights to fit from a few thousand rows, where the linear analysis says the
dependence lives in a few directions. Its name is then ``"trained-canonical-k"``.

**Refitting** (cross-fitting a winner): a fresh critic (on the canonical variates of the new rows,
with the same k) trained without a monitor for the step count early stopping kept, scaled by the
rows it gets (the same number of epochs); the K folds' critics train as one stacked model
(:mod:`~mi_estimators.estimation.refit`). The concat critic is not refitted (``NOT_CROSSFIT``: it
scores B² pairs per step, so refitting it on every fold would cost several times the budget).

**Ensembles** (``ensemble=K > 1``, :meth:`TrainedCandidate.ensemble`): a winning trained critic is
averaged with K − 1 more trained from other seeds (:class:`~mi_estimators.critics.EnsembleCritic`);
an ensemble is read out on the test split, not cross-fitted.

**The race** (``race=True``, :func:`race`). The copula candidate is fitted first, so its monitor
value is known before training starts; the trained critic only matters if it ends above it. Past
``RACE_AFTER`` steps, training stops once the progress of the last ``RACE_WINDOW`` evaluations,
repeated once more, stays below the copula's monitor value (:class:`~mi_estimators.fit.Race`):
training on would not change the choice. A fit ahead of the
copula is never stopped by it; ``info["lost_race"]`` says whether it fired.

Its training value is the bound on all pairs of up to ``TRAIN_VALUE_ROWS`` training rows.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from mi_estimators import registry
from mi_estimators.copula import Canonical, fit_dispersion
from mi_estimators.critics import EnsembleCritic, ProjectedCritic
from mi_estimators.estimation.candidates.base import Candidate, Context
from mi_estimators.estimation.options import DEFAULT_CRITIC_OPTIONS, EstimateOptions
from mi_estimators.estimation.readout import Splits
from mi_estimators.estimation.refit import fit_stacked
from mi_estimators.fit import FitConfig, FitResult, Race, fit_critic, held_out, seeded

__all__ = ["CANONICAL_MAX_FRACTION", "CANONICAL_MIN_DIM", "NOT_CROSSFIT", "RACE_AFTER", "RACE_WINDOW",
           "TRAIN_VALUE_ROWS", "Reduction", "TrainedCandidate", "canonical_critic", "canonical_rank", "fit_config",
           "make_bound", "make_critic", "race"]

#: trained critics whose winner is read out on the test split rather than cross-fitted (module docstring)
NOT_CROSSFIT = frozenset({"concat"})
#: ``canonical=True`` reduces the trained critic's inputs to the copula's k canonical pairs when both
#: sides have this many columns and k is at most this fraction of the narrower side
CANONICAL_MIN_DIM = 10
CANONICAL_MAX_FRACTION = 0.25
#: the trained critic's training value is its bound on all pairs of this many training rows
TRAIN_VALUE_ROWS = 1000
#: the race against the copula candidate (``race=True``) stops no fit before this many steps, and
#: extrapolates the progress over this many evaluations (:class:`~mi_estimators.fit.Race`). Learning
#: curves at high MI climb in steps: on the 5-nat spiral one sat at 2.86-2.91 from step 200 to 500 below
#: the copula's 3.44, then rose to 4.41; the progress of the last 2 evaluations (0.05) stopped it at
#: step 500 and the call read the copula's 3.36, that of the last 4 (0.66) lets it run
RACE_AFTER = 500
RACE_WINDOW = 4


def label(obj: Any) -> str:
    """A name for an option given as a name or an object: the name, or the object's class name."""
    return obj if isinstance(obj, str) else type(obj).__name__


def make_bound(opts: EstimateOptions, device: torch.device) -> Any:
    """The bound of ``opts.bound``: the registered one (with ``bound_options``), or a copy of the
    caller's bound object (a stateful bound such as MINE's stays untouched)."""
    if isinstance(opts.bound, str):
        bound = registry.get(opts.bound, **opts.bound_options)
    elif callable(opts.bound) and hasattr(opts.bound, "loss"):
        if opts.bound_options:
            raise ValueError("bound_options only apply when the bound is given by name")
        bound = copy.deepcopy(opts.bound)
    else:
        raise ValueError(f"bound must be a registered name ({', '.join(registry.available())}) or an object "
                         f"callable on scores with a .loss(scores) method, got {type(opts.bound).__name__}")
    return bound.to(device) if isinstance(bound, nn.Module) else bound


def make_critic(opts: EstimateOptions, x_dim: int, y_dim: int) -> nn.Module:
    """The critic of ``opts.critic`` for ``x_dim`` and ``y_dim`` columns (a module is used as given)."""
    if isinstance(opts.critic, str):
        options = dict(DEFAULT_CRITIC_OPTIONS.get(opts.critic, {}), **opts.critic_options)
        return registry.get(opts.critic, kind="critics", x_dim=x_dim, y_dim=y_dim, **options)
    if isinstance(opts.critic, nn.Module):
        if opts.critic_options:
            raise ValueError("critic_options only apply when the critic is given by name")
        return opts.critic
    raise ValueError(f"critic must be a registered name ({', '.join(registry.available('critics'))}) "
                     f"or an nn.Module, got {type(opts.critic).__name__}")


def canonical_critic(opts: EstimateOptions, x: Tensor, y: Tensor, rank: int | None) -> nn.Module:
    """The critic of ``opts`` for the columns of ``(x, y)`` (``rank`` None), or that critic on the
    ``rank`` leading canonical variates of the rows ``(x, y)`` plus each side's mean square."""
    if rank is None:
        return make_critic(opts, x.shape[1], y.shape[1])
    r = fit_dispersion(torch.cat([x, y], 1).detach().cpu().double().numpy(), math.inf)
    canon = Canonical.of(r, x.shape[1])
    inner = make_critic(dataclasses.replace(opts, critic_options=dict(opts.critic_options, norm_feature=False)),
                        rank + 1, rank + 1)
    return ProjectedCritic(inner, *(torch.as_tensor(a[:rank], dtype=x.dtype, device=x.device)
                                    for a in (canon.ax, canon.by)))


class Reduction(Protocol):
    """A fixed map of the inputs fitted to rows (e.g. :mod:`~mi_estimators.estimation.candidates.reduced`):
    ``critic(opts, x, y)`` fits it to the rows ``(x, y)`` and returns the critic of ``opts`` on its
    outputs; ``name`` names the candidate and ``info`` is added to the candidate's."""

    name: str
    info: dict

    def critic(self, opts: EstimateOptions, x: Tensor, y: Tensor) -> nn.Module: ...


def _build(opts: EstimateOptions, x: Tensor, y: Tensor, rank: int | None, reduction: Reduction | None) -> nn.Module:
    return canonical_critic(opts, x, y, rank) if reduction is None else reduction.critic(opts, x, y)


def canonical_rank(copula: Candidate | None, data: Splits, opts: EstimateOptions) -> int | None:
    """The rank k whose canonical variates the trained critic takes (module docstring): the copula
    candidate's k on wide data where ``1 <= k <= CANONICAL_MAX_FRACTION · min(d_x, d_y)``; else
    None (all columns)."""
    narrow = min(a.shape[1] for a in data.train)
    if not (opts.canonical and copula is not None and narrow >= CANONICAL_MIN_DIM):
        return None
    k = int(copula.info["rank"])
    return k if 1 <= k <= CANONICAL_MAX_FRACTION * narrow else None


def fit_config(opts: EstimateOptions) -> FitConfig:
    """The training settings of ``opts`` (resolved: ``batch_size``, ``lr`` and ``eval_batch`` set)."""
    return FitConfig(steps=opts.steps, batch=opts.batch_size, lr=opts.lr, weight_decay=opts.weight_decay,
                     eval_every=opts.eval_every, patience=opts.patience, block=opts.eval_batch, ema=opts.ema)


def train_value(critic: nn.Module, bound: Any, train: tuple[Tensor, Tensor], opts: EstimateOptions) -> float:
    """The bound on all pairs of (up to) the first ``TRAIN_VALUE_ROWS`` training rows."""
    x, y = (a[:TRAIN_VALUE_ROWS] for a in train)
    return held_out(critic, bound, x, y, opts.eval_batch, groups=0)[0]


def race(opts: EstimateOptions, rival: float | None) -> Race | None:
    """The race against a rival's monitor value (module docstring), or None (``race=False``, no rival)."""
    if not opts.race or rival is None:
        return None
    return Race(rival, after=RACE_AFTER, window=RACE_WINDOW)


def _monitored_fit(critic: nn.Module, bound: Any, data: Splits, opts: EstimateOptions,
                   rng: np.random.Generator, rival: float | None = None) -> FitResult:
    from tqdm.auto import tqdm

    enabled = sys.stderr.isatty() if opts.progress is None else opts.progress
    bar = tqdm(total=opts.steps, desc="estimate", disable=not enabled, leave=False, dynamic_ncols=True)
    try:
        return fit_critic(critic, bound, data.train, data.monitor, fit_config(opts), rng=rng, progress=bar,
                          race=race(opts, rival))
    finally:
        bar.close()


class TrainedCandidate(Candidate):
    """A critic trained on the training split (module docstring); ``info`` holds ``best_step``,
    ``stopped_early``, ``steps_run``, ``averaged`` (the moving average was kept), ``rank`` (of the
    canonical reduction, None without) and, for an ensemble, ``ensemble`` (the member count);
    ``fit_result`` is what the monitored fit did (its history, the step it kept)."""

    def __init__(self, ctx: Context, critic: nn.Module, bound: Any, fit: FitResult, rank: int | None,
                 members: int = 1, reduction: Reduction | None = None, name: str | None = None):
        self.ctx, self.fit_result, self.rank, self.members = ctx, fit, rank, members
        self.reduction = reduction
        info = dict(best_step=fit.best_step, stopped_early=fit.stopped_early, steps_run=fit.history["step"][-1],
                    averaged=fit.averaged, rank=rank, lost_race=fit.lost_race)
        if reduction is not None:
            info.update(reduction.info)
        if members > 1:
            info["ensemble"] = members
        if name is None:
            name = (reduction.name if reduction is not None else "trained" if rank is None
                    else f"trained-canonical-{rank}")
        super().__init__(name, critic, bound, fit.best_monitor,
                         lambda: train_value(critic, bound, ctx.data.train, ctx.opts), info)

    @classmethod
    def fit(cls, ctx: Context, rank: int | None = None, reduction: Reduction | None = None,
            rival: float | None = None, name: str | None = None) -> "TrainedCandidate":
        """The critic of ``ctx.opts`` (on the ``rank`` leading canonical variates of the training
        rows, with ``rank``; on the inputs a ``reduction`` builds, with one) trained with
        ``ctx.opts.bound``, early stopping on the monitor split, and stopped once it cannot catch
        the monitor value ``rival`` of a candidate already fitted (module docstring); ``name``
        overrides the one its reduction or rank give (``"trained"``, ``"trained-canonical-k"``)."""
        bound = make_bound(ctx.opts, ctx.device)
        critic = _build(ctx.opts, *ctx.data.train, rank, reduction).to(ctx.device)
        rng = np.random.default_rng(ctx.rng.integers(2**63))  # the steps run do not change ctx.rng's later draws
        return cls(ctx, critic, bound, _monitored_fit(critic, bound, ctx.data, ctx.opts, rng, rival), rank,
                   reduction=reduction, name=name)

    @property
    def refittable(self) -> bool:  # type: ignore[override]
        opts = self.ctx.opts
        return isinstance(opts.critic, str) and opts.critic not in NOT_CROSSFIT and self.members == 1

    @property
    def read_out_name(self) -> str:
        return label(self.ctx.opts.bound)

    def describe(self) -> str:
        """``"<name> <critic> critic, <bound> read-out"``, e.g. ``"trained separable critic, infonce read-out"``."""
        return f"{self.name} {label(self.ctx.opts.critic)} critic, {self.read_out_name} read-out"

    def refit(self, x: np.ndarray, y: np.ndarray) -> tuple[nn.Module, float]:
        """A fresh critic trained on the rows ``(x, y)`` without a monitor, for the step count early
        stopping kept scaled by the rows (at most ``opts.steps``), keeping the moving average of
        its weights when the monitored fit kept it."""
        if not self.refittable:
            return super().refit(x, y)
        ctx = self.ctx
        xt, yt = (torch.as_tensor(a, dtype=torch.float32, device=ctx.device) for a in (x, y))
        critic = _build(ctx.opts, xt, yt, self.rank, self.reduction).to(ctx.device)
        config = dataclasses.replace(self._refit_config(), steps=self._refit_steps(len(x)))
        fit_critic(critic, self.bound, (xt, yt), None, config, rng=ctx.rng)
        return critic, train_value(critic, self.bound, (xt, yt), ctx.opts)

    def refit_folds(self, folds: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[nn.Module, float]]:
        """:meth:`refit` on each fold's rows, the K critics trained as one stacked model where they
        can be (:func:`~mi_estimators.estimation.refit.fit_stacked`: the same batches, initial
        weights and step counts as K refits in turn): the separable critic, bare or inside its input
        map (the value features, a canonical or ridge projection); any other in turn."""
        ctx = self.ctx
        if not self.refittable or ctx.opts.critic != "separable" or len(folds) < 2:
            return super().refit_folds(folds)
        rows = [tuple(torch.as_tensor(a, dtype=torch.float32, device=ctx.device) for a in fold) for fold in folds]
        critics = [_build(ctx.opts, xt, yt, self.rank, self.reduction).to(ctx.device) for xt, yt in rows]
        config = self._refit_config()
        steps = [self._refit_steps(len(x)) for x, _ in folds]
        critics = fit_stacked(critics, self.bound, rows, steps, config, ctx.rng)
        return [(c, train_value(c, self.bound, r, ctx.opts)) for c, r in zip(critics, rows)]

    def _refit_config(self) -> FitConfig:
        config = fit_config(self.ctx.opts)
        return dataclasses.replace(config, ema=config.ema if self.fit_result.averaged else None)

    def _refit_steps(self, rows: int) -> int:
        """The step count early stopping kept, scaled by ``rows`` against the training split's rows."""
        return max(1, min(self.ctx.opts.steps, round(self.fit_result.best_step * rows / len(self.ctx.data.train[0]))))

    def ensemble(self, ctx: Context) -> "TrainedCandidate":
        """Itself averaged with ``opts.ensemble − 1`` critics trained from other seeds (torch seed
        ``seed + 1000 k`` for the initial weights, NumPy seed ``[seed, k]`` for the batches), with the
        options of ``ctx`` (those it was fitted with: ``estimate()`` passes the winner's own)."""
        opts = ctx.opts
        if opts.ensemble == 1:
            return self
        members = [self.critic]
        for k in range(1, opts.ensemble):
            with seeded(None if opts.seed is None else opts.seed + 1000 * k, ctx.device):
                critic = _build(opts, *ctx.data.train, self.rank, self.reduction).to(ctx.device)
            _monitored_fit(critic, self.bound, ctx.data, opts, np.random.default_rng([opts.seed or 0, k]))
            members.append(critic)
        return TrainedCandidate(ctx, EnsembleCritic(members).eval(), self.bound, self.fit_result, self.rank,
                                opts.ensemble, self.reduction, self.name)

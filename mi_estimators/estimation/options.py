"""What :func:`mi_estimators.estimate` takes and gives back: :class:`EstimateOptions` (every option,
with the per-critic sizes its ``None`` fields resolve to), :class:`EstimateSettings` (what the run
decided) and :class:`EstimateResult` (the estimate, its intervals and the chosen critic).

No procedure lives here: the steps are in :mod:`mi_estimators.estimation` and its candidates.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping

import torch
from torch import nn

from mi_estimators import options as check
from mi_estimators.arrays import marginal_mode
from mi_estimators.discrete import DISCRETE_CHOICES

if TYPE_CHECKING:
    from mi_estimators.columns import ColumnReport

__all__ = ["AUTO_BATCH", "AUTO_CONCAT_MAX_DIM", "AUTO_EVAL_BATCH", "AUTO_LR", "DEFAULT_CRITIC_OPTIONS",
           "EstimateOptions", "EstimateResult", "EstimateSettings", "Scale", "auto_critic", "scale_for_rows"]

#: trained-critic sizes for finite samples (the rationale is in studies/README.md)
DEFAULT_CRITIC_OPTIONS: dict[str, dict[str, Any]] = {
    "separable": {"hidden": 64, "layers": 4, "embed_dim": 32, "activation": "silu", "norm_feature": True},
    "concat": {"hidden": 64, "layers": 2},
}
#: ``critic="auto"``: up to this many columns of x and y together a concat critic, with a separable one
#: trained beside it and the monitor split choosing (:mod:`~mi_estimators.estimation.candidates.narrow`);
#: the separable critic alone above
AUTO_CONCAT_MAX_DIM = 2
#: default training batch, learning rate and held-out block per critic kind (the concat critic
#: scores B² pairs per step)
AUTO_BATCH = {"concat": 64, "separable": 256}
AUTO_LR = {"concat": 3e-3, "separable": 2e-3}
AUTO_EVAL_BATCH = {"concat": 1024, "separable": 4096}
#: up to this many rows the ``None`` sizes below resolve to the same values whatever n (:func:`scale_for_rows`)
SMALL_ROWS = 20_000
#: the step budget up to ``SMALL_ROWS`` rows, and its ceiling; steps between two evaluations on the monitor
AUTO_STEPS, MAX_AUTO_STEPS, AUTO_EVAL_EVERY = 2000, 20_000, 100
#: the monitor split's fraction of the rows, and the most rows it takes when ``val_fraction`` is None
AUTO_VAL_FRACTION, MAX_AUTO_MONITOR_ROWS = 0.1, 10_000
#: cross-fitting folds up to ``SMALL_ROWS`` rows (above: the test split alone)
AUTO_FOLDS = 5
#: the largest factor by which the training batch grows with the rows, per critic kind
MAX_BATCH_GROWTH = {"concat": 2, "separable": 4}


@dataclass(frozen=True)
class Scale:
    """What n rows change in :meth:`EstimateOptions.resolve` (:func:`scale_for_rows`)."""

    #: optimiser steps, and the factor by which the critic kind's ``AUTO_BATCH`` grows
    steps: int
    batch_growth: int
    #: steps between evaluations on the monitor split (100, times the steps' growth)
    eval_every: int
    #: the monitor split's fraction of the rows
    val_fraction: float
    #: folds of a refittable winner's cross-fitted read-out (1: the test split)
    folds: int


def scale_for_rows(n: int | None, kind: str = "separable") -> Scale:
    """The sizes ``estimate()`` gives n rows where the caller left them ``None``.

    Up to ``SMALL_ROWS`` = 20,000 rows (or n None) the small-sample defaults: 2000 steps, the
    critic kind's batch, a monitor of 10% of the rows and a read-out cross-fitted over 5 folds. Above,
    with r = n / 20,000, the cost buys accuracy rather than variance:

    * **steps** ``2000·√r`` (at most 20,000; evaluated on the monitor every ``100·√r``, so early
      stopping's patience is the same share of the budget) and the **batch** ×2 from r >= 4 and ×4 from
      r >= 16 (at most ×2 for the concat critic, which scores B² pairs): the rows seen in training
      grow as ``r^1.5`` while each step's cost is about linear in the batch up to 1024 rows. A fixed
      budget (2000 steps of 256 rows, 0.7 epoch of 700,000 training rows) left the critic undertrained
      beyond 20,000 rows: the estimate stopped improving (``BENCHMARKS.md``);
    * the **monitor** at most 10,000 rows (``val_fraction = 10,000 / n`` beyond 100,000): it serves
      early stopping (which compares values on the same rows) and the choice between candidates, and
      every evaluation reads all of it; the rows go to training instead;
    * **no cross-fitting** (``folds = 1``): the test split alone holds 0.2·n > 4,000 rows, whose
      standard error is already below the critic's own deficiency; K refits would cost K trainings.

    >>> scale_for_rows(5000), scale_for_rows(1_000_000).steps
    (Scale(steps=2000, batch_growth=1, eval_every=100, val_fraction=0.1, folds=5), 14142)
    """
    if n is None or n <= SMALL_ROWS:
        return Scale(AUTO_STEPS, 1, AUTO_EVAL_EVERY, AUTO_VAL_FRACTION, AUTO_FOLDS)
    r = n / SMALL_ROWS
    growth = min(MAX_BATCH_GROWTH.get(kind, 4), 4 if r >= 16 else 2 if r >= 4 else 1)
    steps = min(MAX_AUTO_STEPS, int(round(AUTO_STEPS * math.sqrt(r))))
    return Scale(steps=steps, batch_growth=growth, eval_every=AUTO_EVAL_EVERY * steps // AUTO_STEPS,
                 val_fraction=min(AUTO_VAL_FRACTION, MAX_AUTO_MONITOR_ROWS / n), folds=1)


def auto_critic(x_dim: int, y_dim: int) -> str:
    """The critic ``estimate(critic="auto")`` uses for ``x_dim + y_dim`` columns.

    >>> auto_critic(1, 1), auto_critic(5, 5)
    ('concat', 'separable')
    """
    return "concat" if x_dim + y_dim <= AUTO_CONCAT_MAX_DIM else "separable"


@dataclass(frozen=True)
class EstimateOptions:
    """Every option of :func:`estimate`; ``None`` sizes are filled in by :meth:`resolve`."""

    #: the trained critic's bound (training, monitor and read-out): a registered name or a bound
    #: object; and the options of a named one
    bound: Any = "infonce"
    #: a registered critic name, ``"auto"``, or an ``nn.Module`` mapping ``(x, y)`` to ``(N, N)`` scores
    critic: Any = "auto"
    bound_options: Mapping[str, Any] = field(default_factory=dict)
    critic_options: Mapping[str, Any] = field(default_factory=dict)
    #: optimiser steps of the trained critic (None: 2000, more above 20,000 rows: :func:`scale_for_rows`)
    steps: int | None = None
    #: training rows per step (None: per critic kind, larger above 80,000 rows: :func:`scale_for_rows`)
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    #: decay of the moving average of the trained critic's weights that is monitored and kept
    #: (None: the raw weights)
    ema: float | None = 0.99
    #: steps between evaluations on the monitor split (None: 100, more above 20,000 rows: :func:`scale_for_rows`)
    eval_every: int | None = None
    patience: int = 5
    #: the monitor split's fraction of the rows (None: 0.1, at most 10,000 rows: :func:`scale_for_rows`)
    val_fraction: float | None = None
    test_fraction: float = 0.2
    #: rows per held-out block (each block is scored against all its pairs)
    eval_batch: int | None = None
    jackknife_groups: int = 20
    #: per-column transform fitted on the training split: "rank", "zscore" (True) or "none" (False)
    standardize: bool | str = "rank"
    #: let the closed-form elliptical-copula critics compete (ignored for a critic given as a module)
    copula: bool = True
    #: average a winning trained critic with ``ensemble - 1`` more trained from other seeds
    ensemble: int = 1
    #: cross-fit the read-out of a refittable winner over this many folds (1: no; None: 5 up to 20,000
    #: rows, 1 above: :func:`scale_for_rows`)
    folds: int | None = None
    #: stop training the trained critic once it cannot catch the copula candidate's monitor value
    #: (:mod:`mi_estimators.estimation.candidates.trained`); False trains it to its own early stop
    race: bool = True
    #: on wide data whose copula keeps few canonical pairs, train the critic on those pairs'
    #: variates and each side's mean square instead of all columns
    #: (:mod:`mi_estimators.estimation.candidates.trained`)
    canonical: bool = True
    #: on inputs too wide for the copula candidate, let a trained critic on ridge-CCA variates chosen
    #: on the monitor split compete (:mod:`mi_estimators.estimation.candidates.reduced`)
    reduce: bool = True
    #: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"; ``settings.device`` names the index used
    device: str | torch.device | None = "auto"
    seed: int | None = 0
    #: a tqdm bar (None: when stderr is a terminal)
    progress: bool | None = None
    #: torch CPU threads for the call (the caller's count is restored after); None keeps it
    threads: int | None = 1
    #: which side is discrete (class labels, counts): "auto" (a side whose rows take 2 to 32
    #: distinct values, at least 20 rows per value), "x", "y", "both" or "none"; a discrete side adds
    #: the Barber-Agakov classifier candidate, both sides give the contingency-table estimate
    #: (:mod:`mi_estimators.discrete`)
    discrete: Literal["auto", "x", "y", "both", "none"] = "auto"

    def __post_init__(self) -> None:
        for name in ("bound_options", "critic_options"):  # None means no options
            value = getattr(self, name) or {}
            if not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a dict of keyword options, got {type(value).__name__}")
            object.__setattr__(self, name, dict(value))
        for name in ("patience", "ensemble"):
            check.positive_int(name, getattr(self, name))
        for name in ("steps", "eval_every", "folds", "batch_size", "eval_batch", "threads"):
            check.optional(check.positive_int, name, getattr(self, name))
        check.integer("jackknife_groups", self.jackknife_groups, 0)
        check.optional(check.positive_float, "lr", self.lr)
        check.non_negative_float("weight_decay", self.weight_decay)
        check.optional(check.unit_interval_float, "ema", self.ema, "such as 0.99", open_left=True, open_right=True)
        check.optional(check.unit_interval_float, "val_fraction", self.val_fraction, open_left=True, open_right=True)
        check.unit_interval_float("test_fraction", self.test_fraction, open_left=True, open_right=True)
        val = AUTO_VAL_FRACTION if self.val_fraction is None else self.val_fraction
        if val + self.test_fraction >= 1:
            raise ValueError(f"val_fraction + test_fraction must be < 1 (the rest trains the critic), got "
                             f"{val} + {self.test_fraction}")
        marginal_mode(self.standardize)
        if self.ensemble > 1 and isinstance(self.critic, nn.Module):
            raise ValueError("ensemble > 1 needs a critic given by name: a module cannot be re-initialised for "
                             "the other members")
        if self.seed is not None:
            check.integer("seed", self.seed, 0)
        if self.discrete not in DISCRETE_CHOICES:
            raise ValueError(f"discrete must be one of {', '.join(map(repr, DISCRETE_CHOICES))}, got "
                             f"{self.discrete!r}" + check.did_you_mean(self.discrete, DISCRETE_CHOICES))

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "EstimateOptions":
        """Build from keyword options; an unknown key raises ``ValueError`` naming the closest one."""
        check.check_known(kwargs, [f.name for f in dataclasses.fields(cls)], "estimate() got an unknown option")
        return cls(**kwargs)

    def resolve(self, x_dim: int, y_dim: int, n: int | None = None) -> "EstimateOptions":
        """A copy with ``critic="auto"`` and every ``None`` size filled in for ``x_dim`` and ``y_dim``
        columns and ``n`` rows (:func:`scale_for_rows`; n None: the sizes of 20,000 rows or fewer).
        A value the caller gave is kept as given."""
        critic = auto_critic(x_dim, y_dim) if self.critic == "auto" else self.critic
        kind = "concat" if critic == "concat" else "separable"  # the sizes of any other critic
        scale = scale_for_rows(n, kind)
        steps = self.steps or scale.steps
        return dataclasses.replace(
            self, critic=critic, steps=steps, batch_size=self.batch_size or AUTO_BATCH[kind] * scale.batch_growth,
            lr=self.lr or AUTO_LR[kind], eval_batch=self.eval_batch or AUTO_EVAL_BATCH[kind],
            eval_every=self.eval_every or min(scale.eval_every, max(AUTO_EVAL_EVERY, steps // 20)),
            val_fraction=scale.val_fraction if self.val_fraction is None else self.val_fraction,
            folds=self.folds or scale.folds, standardize=marginal_mode(self.standardize))


@dataclass(frozen=True)
class EstimateSettings:
    """What :func:`estimate` did: the resolved options and what the run decided."""

    options: EstimateOptions
    #: the device the call ran on, with its index ("cpu", "cuda:0")
    device: str
    n: int
    n_train: int
    n_val: int
    n_test: int
    #: the candidate read out: "copula", "trained", "trained-separable" (the separable critic trained
    #: beside the concat one on narrow data) or "trained-canonical-k" (the trained critic on each
    #: side's k leading canonical variates); the candidate's own ``name``
    chosen_critic: str
    #: the bound read out on the test split (``dv`` for the copula candidate)
    read_out: str
    #: each candidate's value on the monitor split
    monitor: Mapping[str, float]
    #: the chosen critic's value on its own training rows (the upper end of ``ci``)
    train_value: float
    #: the fitted copula candidate: ``df`` (ν, ``inf`` for Gaussian), ``rank`` k, ``independent`` (the
    #: fitted fraction of independent pairs, 0 for the plain copula), ``sparse`` (directions from
    #: thresholded cross blocks) and ``model_mi`` (None without the copula candidate)
    copula: Mapping[str, float] | None = None
    #: folds of the read-out: ``options.folds`` for a cross-fitted winner, else 1 (the test split)
    read_out_folds: int = 1
    #: how the chosen candidate describes itself, e.g. "Gaussian-copula rank-2 critic, DV read-out"
    chosen_description: str = ""
    #: constant columns dropped before estimating, by index of the caller's arrays
    #: (:func:`mi_estimators.columns.screen`)
    dropped_columns: Mapping[str, list[int]] = field(default_factory=lambda: {"x": [], "y": []})
    #: why ``mi`` is exact without fitting (a side with no columns left: 0; a determined column: inf)
    degenerate: str | None = None
    #: the largest held-out lower bound computed in the call (each candidate not chosen, read out by
    #: its bound on the test split); ``ci[1]`` is at least this
    heldout_lower_bound: float | None = None
    #: the side treated as discrete: "x", "y", "both" or "none" (option ``discrete``)
    discrete: str = "none"
    #: the Miller-Madow entropy in nats of each discrete side (:func:`mi_estimators.discrete.entropy`)
    entropy: Mapping[str, float] = field(default_factory=dict)
    #: with a discrete side, ``mi`` and both intervals are at most this: ``min(Ĥ + 1.96·se, log K)``
    #: of the discrete side (I(X; Y) <= H), None without one
    mi_cap: float | None = None


@dataclass
class EstimateResult:
    """What :func:`estimate` returns. ``mi``, ``stderr`` and both intervals are in nats."""

    mi: float
    stderr: float
    #: 95% interval, widened upwards to the chosen critic's training value
    #: (:func:`mi_estimators.estimation.readout.intervals`)
    ci: tuple[float, float]
    #: ``mi ± t₀.₉₇₅ · stderr``: the held-out sampling error of the chosen critic alone
    ci_heldout: tuple[float, float]
    #: ``step``/``train`` (training-batch estimate per step), ``eval_step``/``monitor``
    history: dict[str, list[float]]
    #: the step whose weights were kept, and whether training stopped before ``steps``
    best_step: int
    stopped_early: bool
    settings: EstimateSettings
    #: the critic read out on the test split, on the device used, taking transformed inputs
    critic: nn.Module | None = field(default=None, repr=False)

    @classmethod
    def exact(cls, report: ColumnReport, options: EstimateOptions, device: str, n: int) -> "EstimateResult":
        """The result for an exact ``report.mi`` (:func:`mi_estimators.columns.screen`): no sampling
        error (stderr 0, both intervals the point), nothing split off or trained (``chosen_critic``
        and ``read_out`` are ``"none"``), and ``settings.degenerate`` saying why the value is exact."""
        mi = float(report.mi)
        settings = EstimateSettings(options=options, device=device, n=n, n_train=0, n_val=0, n_test=0,
                                    chosen_critic="none", read_out="none", monitor={}, train_value=mi,
                                    read_out_folds=0, dropped_columns=report.dropped, degenerate=report.reason)
        history = {"step": [], "train": [], "eval_step": [], "monitor": [], "averaged": []}
        return cls(mi=mi, stderr=0.0, ci=(mi, mi), ci_heldout=(mi, mi), history=history, best_step=0,
                   stopped_early=False, settings=settings)

    def __str__(self) -> str:
        s = self.settings
        if s.degenerate:
            return f"I(X;Y) = {self.mi:g} nats exactly (n={s.n}): {s.degenerate}"
        rows = (f"cross-fitted over {s.read_out_folds} folds of n={s.n}" if s.read_out_folds > 1
                else f"all n={s.n} rows" if s.chosen_critic == "contingency"
                else f"n_train={s.n_train} n_test={s.n_test}")
        discrete = "" if s.discrete == "none" else (f" [discrete: {s.discrete}; capped at H = {s.mi_cap:.4f}]"
                                                    if s.mi_cap is not None else f" [discrete: {s.discrete}]")
        return (f"I(X;Y) = {self.mi:.4f} nats  (stderr {self.stderr:.4f}; 95% CI [{self.ci[0]:.4f}, "
                f"{self.ci[1]:.4f}])  [chosen: {s.chosen_description}] {rows}{discrete}")

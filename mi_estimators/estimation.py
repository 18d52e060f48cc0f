"""``estimate(x, y)``: I(X; Y) in nats from two arrays, with a standard error and a 95% interval.

The procedure, each step a function below and every setting a field of :class:`EstimateOptions`:

1. :func:`split` the rows at random into train (70%), monitor (10%) and test (20%) sets and map
   every column with a transform fitted on the training rows (default: normal scores of the ranks,
   :func:`mi_estimators.arrays.marginal_transform`; MI is unchanged by increasing maps).
2. :func:`copula_candidate` (``copula=True``): closed-form critics of elliptical copulas fitted to
   the training split — Student-t copulas with ν ∈ {1, 2, 3, 5, 10, 30} and the Gaussian copula
   (ν = ∞), each reduced to its k leading canonical pairs (:mod:`mi_estimators.copula`) — read out
   by DV; (ν, k) is chosen by the DV value on the monitor split. Exact for Gaussian and Student-t
   copulas (at any MI), and a lower bound otherwise.
3. :func:`train_candidate`: a critic (``critic="auto"``: concat for 1+1 columns, separable above)
   trained on minibatches of the training split with ``bound.loss`` (InfoNCE by default), early
   stopping on the bound's value on the monitor split (:func:`mi_estimators.fit.fit_critic`).
   On wide data whose copula candidate keeps few canonical pairs (both sides at least
   ``CANONICAL_MIN_DIM`` columns, 1 <= k <= ``CANONICAL_MAX_FRACTION`` of the narrower side), the
   critic takes each side's k leading canonical variates of the training rows plus its mean square
   instead of all columns (``canonical=True``, :class:`~mi_estimators.critics.ProjectedCritic`):
   2k + 2 inputs instead of d_x + d_y, far fewer weights to fit from a few thousand rows, where the
   linear analysis says the dependence lives in a few directions.
4. :func:`choose`: the candidate with the larger value on the monitor split (never the test split,
   which would bias the estimate upwards). With ``ensemble=K > 1`` a winning trained critic is
   averaged with K − 1 more trained from other seeds.
5. :func:`read_out`: the chosen candidate's bound on the full score matrix of the test split
   (n_test(n_test − 1) negatives), with a delete-a-group jackknife standard error. A winner that
   can be refitted — a copula (in closed form) or a trained critic other than concat (retrained,
   without a monitor, for the number of epochs early stopping kept) — is cross-fitted instead
   (``folds=5``, :func:`crossfit`): refitted on K − 1 folds of all n rows and read out on the K-th,
   in turn; the read-out then uses every row, each critic trains on 80% of the rows instead of 70%,
   and the standard error is about half the single split's. (The monitor rows that chose ν and k,
   or the step count, are among them, a tenth of the read-out: a selection among a few dozen
   models biases it by a negligible amount.)

**The intervals.** ``ci_heldout = mi ± t₀.₉₇₅ · stderr`` is the held-out sampling error of the
chosen critic alone. But the critic is fitted on finite data, so its held-out value is low by its
deficiency (about p/(2n) nats for p parameters fitted by maximum likelihood), while its value on
its own training rows is high by the same optimism to first order (Akaike's argument). ``ci`` is
therefore ``[mi − t·stderr, max(mi, train_value) + t·stderr]``: it brackets I(X; Y) when the
candidate family contains the truth. ``settings.train_value`` is that training value (the fitted
copula's MI; the trained critic's bound on all pairs of up to 1,000 training rows). Its upper end is
moreover at least every held-out lower bound the call computed (when a trained critic wins, the
copula candidate's DV on the same test rows, ``settings.heldout_lower_bound``): an interval must not
exclude what the data already certify.

**Degenerate columns** (:mod:`mi_estimators.columns`): constant columns are dropped with a warning
(``settings.dropped_columns``); a side left without columns gives 0 and a side that determines a
continuous column of the other gives ``inf``, exactly, without fitting (``settings.degenerate``).

Why the defaults are what they are, with the measurements: ``validation/README.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from mi_estimators import columns
from mi_estimators import options as check
from mi_estimators import registry
from mi_estimators.arrays import check_pair, marginal_mode, marginal_transform
from mi_estimators.copula import DF_GRID, Canonical, EllipticalCopulaCritic, fit_dispersion, rank_grid, t_scores
from mi_estimators.critics import EnsembleCritic, ProjectedCritic
from mi_estimators.device import resolve_device
from mi_estimators.fit import FitResult, fit_critic, flush_denormals, held_out, seeded, threads

__all__ = ["Candidate", "EstimateOptions", "EstimateResult", "EstimateSettings", "Splits", "auto_critic",
           "canonical_rank", "choose", "copula_candidate", "estimate", "read_out", "split", "train_candidate"]

#: trained-critic sizes for finite samples (the rationale is in validation/README.md)
DEFAULT_CRITIC_OPTIONS: dict[str, dict[str, Any]] = {
    "separable": {"hidden": 64, "layers": 4, "embed_dim": 32, "activation": "silu", "norm_feature": True},
    "concat": {"hidden": 64, "layers": 2},
}
#: ``critic="auto"``: a concat critic up to this many columns of x and y together, separable above
AUTO_CONCAT_MAX_DIM = 2
#: default training batch, learning rate and held-out block per critic kind (the concat critic
#: scores B² pairs per step)
AUTO_BATCH = {"concat": 64, "separable": 256}
AUTO_LR = {"concat": 3e-3, "separable": 2e-3}
AUTO_EVAL_BATCH = {"concat": 1024, "separable": 4096}
#: trained critics whose winner is read out on the test split rather than cross-fitted: the concat
#: critic scores B² pairs per step, so refitting it on every fold would cost several times the budget
NOT_CROSSFIT = frozenset({"concat"})
#: ``canonical=True`` reduces the trained critic's inputs to the copula's k canonical pairs when both
#: sides have this many columns and k is at most this fraction of the narrower side
CANONICAL_MIN_DIM = 10
CANONICAL_MAX_FRACTION = 0.25
#: the copula candidate needs at least this many training rows per column of x and y together
COPULA_MIN_ROWS_PER_DIM = 10
#: the trained critic's training value is its bound on all pairs of this many training rows
TRAIN_VALUE_ROWS = 1000


def auto_critic(x_dim: int, y_dim: int) -> str:
    """The critic ``estimate(critic="auto")`` uses for ``x_dim + y_dim`` columns.

    >>> auto_critic(1, 1), auto_critic(5, 5)
    ('concat', 'separable')
    """
    return "concat" if x_dim + y_dim <= AUTO_CONCAT_MAX_DIM else "separable"


# --------------------------------------------------------------------------------------------
# options, settings, result
# --------------------------------------------------------------------------------------------
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
    steps: int = 2000
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    #: decay of the moving average of the trained critic's weights that is monitored and kept
    #: (None: the raw weights)
    ema: float | None = 0.99
    eval_every: int = 100
    patience: int = 5
    val_fraction: float = 0.1
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
    #: cross-fit the read-out of a closed-form (copula) winner over this many folds (1: no)
    folds: int = 5
    #: on wide data whose copula keeps few canonical pairs, train the critic on those pairs'
    #: variates and each side's mean square instead of all columns (module docstring, step 3)
    canonical: bool = True
    device: str | torch.device | None = "auto"
    seed: int | None = 0
    #: a tqdm bar (None: when stderr is a terminal)
    progress: bool | None = None
    #: torch CPU threads for the call (the caller's count is restored after); None keeps it
    threads: int | None = 1

    def __post_init__(self) -> None:
        for name in ("bound_options", "critic_options"):  # None means no options
            value = getattr(self, name) or {}
            if not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a dict of keyword options, got {type(value).__name__}")
            object.__setattr__(self, name, dict(value))
        for name in ("steps", "eval_every", "patience", "ensemble", "folds"):
            check.positive_int(name, getattr(self, name))
        for name in ("batch_size", "eval_batch", "threads"):
            check.optional(check.positive_int, name, getattr(self, name))
        check.integer("jackknife_groups", self.jackknife_groups, 0)
        check.optional(check.positive_float, "lr", self.lr)
        check.non_negative_float("weight_decay", self.weight_decay)
        check.optional(check.unit_interval_float, "ema", self.ema, "such as 0.99", open_left=True, open_right=True)
        check.unit_interval_float("val_fraction", self.val_fraction, open_left=True, open_right=True)
        check.unit_interval_float("test_fraction", self.test_fraction, open_left=True, open_right=True)
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"val_fraction + test_fraction must be < 1 (the rest trains the critic), got "
                             f"{self.val_fraction} + {self.test_fraction}")
        marginal_mode(self.standardize)
        if self.ensemble > 1 and isinstance(self.critic, nn.Module):
            raise ValueError("ensemble > 1 needs a critic given by name: a module cannot be re-initialised for "
                             "the other members")
        if self.seed is not None:
            check.integer("seed", self.seed, 0)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "EstimateOptions":
        """Build from keyword options; an unknown key raises ``ValueError`` naming the closest one."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in kwargs:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; the options are {', '.join(known)}"
                raise ValueError(f"estimate() got an unknown option {key!r}{hint}")
        return cls(**kwargs)

    def resolve(self, x_dim: int, y_dim: int) -> "EstimateOptions":
        """A copy with ``critic="auto"``, ``batch_size``, ``lr`` and ``eval_batch`` filled in."""
        critic = auto_critic(x_dim, y_dim) if self.critic == "auto" else self.critic
        kind = "concat" if critic == "concat" else "separable"  # the sizes of any other critic
        return dataclasses.replace(self, critic=critic, batch_size=self.batch_size or AUTO_BATCH[kind],
                                   lr=self.lr or AUTO_LR[kind], eval_batch=self.eval_batch or AUTO_EVAL_BATCH[kind],
                                   standardize=marginal_mode(self.standardize))


@dataclass(frozen=True)
class EstimateSettings:
    """What :func:`estimate` did: the resolved options and what the run decided."""

    options: EstimateOptions
    device: str
    n: int
    n_train: int
    n_val: int
    n_test: int
    #: the candidate read out on the test split: "copula", "trained" or "trained-canonical-k" (the
    #: trained critic on each side's k leading canonical variates)
    chosen_critic: str
    #: the bound read out on the test split (``dv`` for the copula candidate)
    read_out: str
    #: each candidate's value on the monitor split
    monitor: Mapping[str, float]
    #: the chosen critic's value on its own training rows (the upper end of ``ci``)
    train_value: float
    #: the fitted copula candidate: ``df`` (ν, ``inf`` for Gaussian), ``rank`` k and ``model_mi``
    #: (None without the copula candidate)
    copula: Mapping[str, float] | None = None
    #: folds of the read-out: ``options.folds`` for a cross-fitted copula winner, else 1 (the test split)
    read_out_folds: int = 1
    # --- degenerate columns and certified bounds (mi_estimators.columns) ---
    #: constant columns dropped before estimating, by index of the caller's arrays
    dropped_columns: Mapping[str, list[int]] = field(default_factory=lambda: {"x": [], "y": []})
    #: why ``mi`` is exact without fitting (a side with no columns left: 0; a determined column: inf)
    degenerate: str | None = None
    #: the largest held-out lower bound computed in the call (the copula candidate's DV on the test
    #: split); ``ci[1]`` is at least this
    heldout_lower_bound: float | None = None


@dataclass
class EstimateResult:
    """What :func:`estimate` returns. ``mi``, ``stderr`` and both intervals are in nats."""

    mi: float
    stderr: float
    #: 95% interval, widened upwards to the chosen critic's training value (module docstring)
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

    def __str__(self) -> str:
        s = self.settings
        if s.degenerate:  # --- an exact answer from the columns (mi_estimators.columns)
            return f"I(X;Y) = {self.mi:g} nats exactly (n={s.n}): {s.degenerate}"
        chosen = (f"[chosen: {_copula_name(s.copula)} critic, DV read-out] " if s.chosen_critic == "copula"
                  else f"[chosen: {s.chosen_critic} {_name(s.options.critic)} critic, "
                       f"{_name(s.options.bound)} read-out] ")
        rows = (f"cross-fitted over {s.read_out_folds} folds of n={s.n}" if s.read_out_folds > 1
                else f"n_train={s.n_train} n_test={s.n_test}")
        return (f"I(X;Y) = {self.mi:.4f} nats  (stderr {self.stderr:.4f}; 95% CI [{self.ci[0]:.4f}, "
                f"{self.ci[1]:.4f}])  {chosen}{rows}")


def _copula_name(info: Mapping[str, float] | None) -> str:
    if info is None:
        return "copula"
    family = "Gaussian-copula" if math.isinf(info["df"]) else f"Student-t-copula (df {info['df']:g})"
    return f"{family} rank-{info['rank']}"


def _name(obj: Any) -> str:
    return obj if isinstance(obj, str) else type(obj).__name__


# --------------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------------
class Splits(NamedTuple):
    """Transformed ``(x, y)`` tensors of the three splits."""

    train: tuple[Tensor, Tensor]
    monitor: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]


def split(x: np.ndarray, y: np.ndarray, opts: EstimateOptions, rng: np.random.Generator,
          device: torch.device) -> Splits:
    """Random train/monitor/test rows; each column transformed by a map fitted on the train rows."""
    n = x.shape[0]
    perm = rng.permutation(n)
    n_test = max(2, int(round(opts.test_fraction * n)))
    n_val = max(2, int(round(opts.val_fraction * n)))
    rows = (perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test])
    x, y = (marginal_transform(a, rows[0], opts.standardize) for a in (x, y))
    return Splits(*((torch.as_tensor(x[r], dtype=torch.float32, device=device),
                     torch.as_tensor(y[r], dtype=torch.float32, device=device)) for r in rows))


class Candidate(NamedTuple):
    """A critic and the bound that reads it out, with its value on the monitor split and on its own
    training rows; ``info`` says what was fitted (ν and k of a copula, the steps of a trained critic).
    ``refit(x, y)``, where a candidate has one, fits the same model to other transformed rows and
    returns ``(critic, its training value)``: what cross-fitting needs."""

    name: str
    critic: nn.Module
    bound: Any
    monitor: float
    train_value: float
    info: Mapping[str, Any]
    refit: Callable[[np.ndarray, np.ndarray], tuple[nn.Module, float]] | None = None


def _bound(opts: EstimateOptions, device: torch.device) -> Any:
    if isinstance(opts.bound, str):
        bound = registry.get(opts.bound, **opts.bound_options)
    elif callable(opts.bound) and hasattr(opts.bound, "loss"):
        if opts.bound_options:
            raise ValueError("bound_options only apply when the bound is given by name")
        bound = copy.deepcopy(opts.bound)  # the caller's stateful bound (MINE) stays untouched
    else:
        raise ValueError(f"bound must be a registered name ({', '.join(registry.available())}) or an object "
                         f"callable on scores with a .loss(scores) method, got {type(opts.bound).__name__}")
    return bound.to(device) if isinstance(bound, nn.Module) else bound


def _critic(opts: EstimateOptions, x_dim: int, y_dim: int) -> nn.Module:
    if isinstance(opts.critic, str):
        options = dict(DEFAULT_CRITIC_OPTIONS.get(opts.critic, {}), **opts.critic_options)
        return registry.get(opts.critic, kind="critics", x_dim=x_dim, y_dim=y_dim, **options)
    if isinstance(opts.critic, nn.Module):
        if opts.critic_options:
            raise ValueError("critic_options only apply when the critic is given by name")
        return opts.critic
    raise ValueError(f"critic must be a registered name ({', '.join(registry.available('critics'))}) "
                     f"or an nn.Module, got {type(opts.critic).__name__}")


def _fit(critic: nn.Module, bound: Any, data: Splits, opts: EstimateOptions, rng: np.random.Generator):
    bar = _progress(opts.steps, opts.progress)
    try:
        return fit_critic(critic, bound, data.train, data.monitor, steps=opts.steps, batch=opts.batch_size,
                          lr=opts.lr, weight_decay=opts.weight_decay, eval_every=opts.eval_every,
                          patience=opts.patience, block=opts.eval_batch, rng=rng, progress=bar, ema=opts.ema)
    finally:
        bar.close()


def _train_value(critic: nn.Module, bound: Any, data: Splits, opts: EstimateOptions) -> float:
    """The bound on all pairs of (up to) the first ``TRAIN_VALUE_ROWS`` training rows."""
    x, y = (a[:TRAIN_VALUE_ROWS] for a in data.train)
    return float(held_out(critic, [bound], x, y, opts.eval_batch, groups=0)[0][0])


def _canonical_critic(opts: EstimateOptions, x: Tensor, y: Tensor, rank: int | None) -> nn.Module:
    """The critic of ``opts`` for the columns of ``(x, y)`` (``rank`` None), or that critic on the
    ``rank`` leading canonical variates of the rows ``(x, y)`` plus each side's mean square."""
    if rank is None:
        return _critic(opts, x.shape[1], y.shape[1])
    r = fit_dispersion(torch.cat([x, y], 1).detach().cpu().double().numpy(), math.inf)
    canon = Canonical.of(r, x.shape[1])
    inner = _critic(dataclasses.replace(opts, critic_options=dict(opts.critic_options, norm_feature=False)),
                    rank + 1, rank + 1)
    return ProjectedCritic(inner, *(torch.as_tensor(a[:rank], dtype=x.dtype, device=x.device)
                                    for a in (canon.ax, canon.by)))


def train_candidate(data: Splits, opts: EstimateOptions, rng: np.random.Generator, device: torch.device,
                    rank: int | None = None) -> tuple[Candidate, dict]:
    """The critic of ``opts.critic`` (on the ``rank`` leading canonical variates of the training
    rows, with ``rank``) trained with ``opts.bound``, early stopping on the monitor split; and the
    training history."""
    bound = _bound(opts, device)
    critic = _canonical_critic(opts, *data.train, rank).to(device)
    fit = _fit(critic, bound, data, opts, rng)
    info = dict(best_step=fit.best_step, stopped_early=fit.stopped_early, steps_run=fit.history["step"][-1],
                averaged=fit.averaged, rank=rank)
    refit = _trained_refit(bound, opts, fit, len(data.train[0]), rng, device, rank) \
        if isinstance(opts.critic, str) and opts.critic not in NOT_CROSSFIT else None
    name = "trained" if rank is None else f"trained-canonical-{rank}"
    candidate = Candidate(name, critic, bound, fit.best_monitor, _train_value(critic, bound, data, opts), info, refit)
    return candidate, fit.history


def canonical_rank(copulas: list[Candidate], data: Splits, opts: EstimateOptions) -> int | None:
    """The rank k whose canonical variates the trained critic takes (module docstring, step 3):
    the copula candidate's k on wide data where ``1 <= k <= CANONICAL_MAX_FRACTION · min(d_x, d_y)``;
    else None (all columns)."""
    narrow = min(a.shape[1] for a in data.train)
    if not (opts.canonical and copulas and narrow >= CANONICAL_MIN_DIM):
        return None
    k = int(copulas[0].info["rank"])
    return k if 1 <= k <= CANONICAL_MAX_FRACTION * narrow else None


def _trained_refit(bound: Any, opts: EstimateOptions, fit: FitResult, n_train: int, rng: np.random.Generator,
                   device: torch.device,
                   rank: int | None) -> Callable[[np.ndarray, np.ndarray], tuple[nn.Module, float]]:
    """``refit(x, y)`` of a trained candidate: a fresh critic (on the canonical variates of the new
    rows, with ``rank``) trained without a monitor for the step count early stopping kept, scaled
    by the rows it gets (the same number of epochs) and at most ``opts.steps``, keeping the moving
    average of its weights when the monitored fit kept it."""
    def refit(x: np.ndarray, y: np.ndarray) -> tuple[nn.Module, float]:
        xt, yt = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in (x, y))
        critic = _canonical_critic(opts, xt, yt, rank).to(device)
        steps = max(1, min(opts.steps, round(fit.best_step * len(x) / n_train)))
        fit_critic(critic, bound, (xt, yt), None, steps=steps, batch=opts.batch_size, lr=opts.lr,
                   weight_decay=opts.weight_decay, rng=rng, ema=opts.ema if fit.averaged else None)
        return critic, _train_value(critic, bound, Splits((xt, yt), None, None), opts)
    return refit


def ensemble(candidate: Candidate, data: Splits, opts: EstimateOptions, device: torch.device) -> Candidate:
    """A trained candidate averaged with ``opts.ensemble − 1`` more critics trained from other seeds
    (:class:`~mi_estimators.critics.EnsembleCritic`); other candidates as they are."""
    if candidate.name == "copula" or opts.ensemble == 1:
        return candidate
    members = [candidate.critic]
    for k in range(1, opts.ensemble):
        with seeded(None if opts.seed is None else opts.seed + 1000 * k):
            critic = _canonical_critic(opts, *data.train, candidate.info["rank"]).to(device)
        _fit(critic, candidate.bound, data, opts, np.random.default_rng([opts.seed or 0, k]))
        members.append(critic)
    critic = EnsembleCritic(members).eval()
    info = dict(candidate.info, ensemble=opts.ensemble)
    return candidate._replace(critic=critic, train_value=_train_value(critic, candidate.bound, data, opts), info=info,
                              refit=None)  # an ensemble is read out on the test split


def copula_candidate(data: Splits, opts: EstimateOptions) -> list[Candidate]:
    """The elliptical-copula critic (:mod:`mi_estimators.copula`) with the best DV value on the
    monitor split over ν ∈ ``DF_GRID`` and the ranks of :func:`~mi_estimators.copula.rank_grid`;
    none when turned off, for a critic given as a module, or with fewer than 10 training rows
    per column. Read out by DV; its training value is the fitted model's MI."""
    (xtr, ytr), (xva, yva) = ((a.detach().cpu().double().numpy() for a in pair) for pair in data[:2])
    dx, dy = xtr.shape[1], ytr.shape[1]
    if not (opts.copula and isinstance(opts.critic, str) and len(xtr) >= COPULA_MIN_ROWS_PER_DIM * (dx + dy)):
        return []
    dv = registry.get("dv")
    best: tuple[float, EllipticalCopulaCritic] | None = None
    for df in DF_GRID:
        canon = Canonical.of(fit_dispersion(t_scores(np.hstack([xtr, ytr]), df), df), dx)
        xt, yt = torch.as_tensor(t_scores(xva, df)), torch.as_tensor(t_scores(yva, df))
        for k in rank_grid(min(dx, dy)):
            critic = EllipticalCopulaCritic(canon, df, k)
            value = float(held_out(critic.scores_t, [dv], xt, yt, opts.eval_batch, groups=0)[0][0])
            if best is None or value > best[0]:
                best = (value, critic)
    value, critic = best
    model_mi = critic.mutual_information()

    def refit(x: np.ndarray, y: np.ndarray, df: float = critic.df, rank: int = critic.rank):
        fitted = EllipticalCopulaCritic.fit(x, y, df=df, rank=rank)
        return fitted, fitted.mutual_information()

    info = dict(df=critic.df, rank=critic.rank, model_mi=model_mi)
    return [Candidate("copula", critic, dv, value, model_mi, info, refit)]


def choose(candidates: list[Candidate]) -> Candidate:
    """The candidate with the largest monitor value (the first on ties)."""
    return max(candidates, key=lambda c: c.monitor)


def _interval(mi: float, se: float, train_value: float, opts: EstimateOptions) -> tuple[tuple, tuple]:
    """``(ci, ci_heldout)`` (module docstring)."""
    half = float(stats.t.ppf(0.975, max(opts.jackknife_groups - 1, 1))) * se
    return (mi - half, max(mi, train_value) + half), (mi - half, mi + half)


def crossfit(candidate: Candidate, x: np.ndarray, y: np.ndarray, opts: EstimateOptions, rng: np.random.Generator,
             device: torch.device) -> tuple[float, float, float]:
    """``(mi, stderr, training value)`` of a refittable candidate over ``opts.folds`` folds of all
    rows: for each fold, the marginal transform and the model are fitted on the other rows and the
    bound is read out on the fold; the values are averaged, their jackknife variances added
    (the folds are disjoint) and divided by K²."""
    folds = np.array_split(rng.permutation(len(x)), opts.folds)
    values, variances, train = [], [], []
    for test in folds:
        rows = np.setdiff1d(np.arange(len(x)), test)
        xz, yz = (marginal_transform(a, rows, opts.standardize) for a in (x, y))
        critic, train_value = candidate.refit(xz[rows], yz[rows])
        held = [torch.as_tensor(a[test], dtype=torch.float32, device=device) for a in (xz, yz)]
        mi, se = held_out(critic, [candidate.bound], *held, opts.eval_batch, groups=opts.jackknife_groups)
        values.append(float(mi[0]))
        variances.append(float(se[0]) ** 2)
        train.append(train_value)
    return float(np.mean(values)), math.sqrt(sum(variances)) / len(folds), float(np.mean(train))


def read_out(candidate: Candidate, data: Splits, opts: EstimateOptions) -> tuple[float, float, tuple, tuple]:
    """``(mi, stderr, ci, ci_heldout)`` of the candidate on the test split (module docstring)."""
    mi, se = held_out(candidate.critic, [candidate.bound], *data.test, opts.eval_batch, groups=opts.jackknife_groups)
    mi, se = float(mi[0]), float(se[0])
    return (mi, se, *_interval(mi, se, candidate.train_value, opts))


def _progress(total: int, enabled: bool | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="estimate", disable=not (sys.stderr.isatty() if enabled is None else enabled),
                leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------
# estimate()
# --------------------------------------------------------------------------------------------
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
    opts = EstimateOptions.from_kwargs(bound=bound, critic=critic, **options)
    x, y = check_pair(x, y)
    x, y, report = columns.screen(x, y)  # --- degenerate columns: drop constants, settle determined sides ---
    opts = opts.resolve(x.shape[1], y.shape[1])
    device = resolve_device(opts.device)
    if report.mi is not None:  # --- (a side without columns: 0; a determined continuous column: inf)
        return EstimateResult(**columns.exact_result(report), settings=EstimateSettings(
            **columns.exact_settings(report, opts, str(device), x.shape[0])))
    with threads(opts.threads), flush_denormals(), seeded(opts.seed):
        rng = np.random.default_rng(opts.seed)
        data = split(x, y, opts, rng, device)
        copulas = copula_candidate(data, opts)
        trained, history = train_candidate(data, opts, rng, device, canonical_rank(copulas, data, opts))
        candidates = [trained] + copulas
        chosen = ensemble(choose(candidates), data, opts, device)
        folds = opts.folds if chosen.refit is not None else 1
        if folds > 1:
            mi, se, train_value = crossfit(chosen, x, y, opts, rng, device)
            chosen = chosen._replace(train_value=train_value)
            ci, ci_heldout = _interval(mi, se, train_value, opts)
        else:
            mi, se, ci, ci_heldout = read_out(chosen, data, opts)
        # --- certified bounds: ci[1] is at least every valid held-out lower bound computed here ---
        lower = None if chosen.name == "copula" or not copulas else float(held_out(
            copulas[0].critic, [copulas[0].bound], *data.test, opts.eval_batch, groups=0)[0][0])
        ci = columns.certified_interval(ci, [mi] + ([] if lower is None else [lower]))
    settings = EstimateSettings(
        options=opts, device=str(device), n=x.shape[0], n_train=data.train[0].shape[0],
        n_val=data.monitor[0].shape[0], n_test=data.test[0].shape[0], chosen_critic=chosen.name,
        read_out="dv" if chosen.name == "copula" else _name(opts.bound), monitor={c.name: c.monitor for c in candidates},
        train_value=chosen.train_value, copula=next((dict(c.info) for c in candidates if c.name == "copula"), None),
        read_out_folds=folds, dropped_columns=report.dropped, heldout_lower_bound=lower)
    return EstimateResult(mi=mi, stderr=se, ci=ci, ci_heldout=ci_heldout, history=history,
                          best_step=trained.info["best_step"], stopped_early=trained.info["stopped_early"],
                          settings=settings, critic=chosen.critic)

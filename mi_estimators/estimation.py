"""``estimate(x, y)``: I(X; Y) in nats from two arrays, with a standard error and a 95% interval.

The procedure, each step a function below and every setting a field of :class:`EstimateOptions`:

1. :func:`split` the rows at random into train (70%), monitor (10%) and test (20%) sets and map
   every column with a transform fitted on the training rows (default: normal scores of the ranks,
   :func:`mi_estimators.arrays.marginal_transform`; MI is unchanged by increasing maps).
2. :func:`train_candidate`: a critic (``critic="auto"``: concat for 1+1 columns, separable above)
   trained on minibatches of the training split with ``bound.loss``, early stopping on the
   monitor split (:func:`mi_estimators.fit.fit_critic`).
3. :func:`gaussian_candidate` (``gaussian=True``): the closed-form log density ratio of the
   Gaussian fitted to the training split, read out by DV. It is exact when the dependence is
   Gaussian after the rank map, at any MI, and a lower bound on I(X; Y) otherwise.
4. :func:`choose`: the candidate with the larger value on the monitor split (never the test split,
   which would bias the estimate upwards).
5. :func:`read_out`: the chosen candidate's bound on the full score matrix of the test split
   (n_test(n_test − 1) negatives), with a delete-a-group jackknife standard error.

The interval ``mi ± t₀.₉₇₅ · stderr`` covers the held-out sampling noise of the chosen critic; a
critic far from optimal biases every bound (downwards for lower bounds), which it does not show.
Why the defaults are what they are, with the measurements: ``validation/README.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from mi_estimators import options as check
from mi_estimators import registry
from mi_estimators.arrays import check_pair, marginal_mode, marginal_transform
from mi_estimators.critics import BilinearCritic
from mi_estimators.device import resolve_device
from mi_estimators.fit import FitResult, fit_critic, held_out, seeded, threads

__all__ = ["Candidate", "EstimateOptions", "EstimateResult", "EstimateSettings", "Splits", "auto_critic",
           "choose", "estimate", "gaussian_candidate", "read_out", "split", "train_candidate"]

#: critic sizes for finite samples (2×64 hidden units; the rationale is in validation/README.md)
DEFAULT_CRITIC_OPTIONS: dict[str, dict[str, Any]] = {
    "separable": {"hidden": 64, "layers": 2, "embed_dim": 32},
    "concat": {"hidden": 64, "layers": 2},
}
#: ``critic="auto"``: a concat critic up to this many columns of x and y together, separable above
AUTO_CONCAT_MAX_DIM = 2
#: default training batch and held-out block per critic kind (the concat critic scores B² pairs)
AUTO_BATCH = {"concat": 128, "separable": 256}
AUTO_EVAL_BATCH = {"concat": 1024, "separable": 4096}
#: the Gaussian candidate needs at least this many training rows per column of x and y together
GAUSSIAN_MIN_ROWS_PER_DIM = 10


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

    #: a registered bound name or a bound object; and the options of a named one
    bound: Any = "smile"
    #: a registered critic name, ``"auto"``, or an ``nn.Module`` mapping ``(x, y)`` to ``(N, N)`` scores
    critic: Any = "auto"
    bound_options: Mapping[str, Any] = field(default_factory=dict)
    critic_options: Mapping[str, Any] = field(default_factory=dict)
    steps: int = 4000
    batch_size: int | None = None
    lr: float = 5e-4
    weight_decay: float = 0.0
    eval_every: int = 100
    patience: int = 8
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    #: rows per held-out block (each block is scored against all its pairs)
    eval_batch: int | None = None
    jackknife_groups: int = 20
    #: per-column transform fitted on the training split: "rank", "zscore" (True) or "none" (False)
    standardize: bool | str = "rank"
    #: let the closed-form Gaussian-copula critic compete (ignored for a critic given as a module)
    gaussian: bool = True
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
        for name in ("steps", "eval_every", "patience"):
            check.positive_int(name, getattr(self, name))
        for name in ("batch_size", "eval_batch", "threads"):
            check.optional(check.positive_int, name, getattr(self, name))
        check.integer("jackknife_groups", self.jackknife_groups, 0)
        check.positive_float("lr", self.lr)
        check.non_negative_float("weight_decay", self.weight_decay)
        check.unit_interval_float("val_fraction", self.val_fraction, open_left=True, open_right=True)
        check.unit_interval_float("test_fraction", self.test_fraction, open_left=True, open_right=True)
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"val_fraction + test_fraction must be < 1 (the rest trains the critic), got "
                             f"{self.val_fraction} + {self.test_fraction}")
        marginal_mode(self.standardize)
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
        """A copy with ``critic="auto"``, ``batch_size`` and ``eval_batch`` filled in."""
        critic = auto_critic(x_dim, y_dim) if self.critic == "auto" else self.critic
        kind = "concat" if critic == "concat" else "separable"  # the sizes of any other critic
        return dataclasses.replace(self, critic=critic, batch_size=self.batch_size or AUTO_BATCH[kind],
                                   eval_batch=self.eval_batch or AUTO_EVAL_BATCH[kind],
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
    #: the candidate read out on the test split ("trained" or "gaussian")
    chosen_critic: str
    #: the bound read out on the test split (``dv`` when the Gaussian candidate won)
    read_out: str
    #: each candidate's value on the monitor split
    monitor: Mapping[str, float]
    #: the Gaussian-copula MI of the training split (None without the Gaussian candidate)
    gaussian_mi: float | None = None


@dataclass
class EstimateResult:
    """What :func:`estimate` returns. ``mi``, ``stderr`` and ``ci`` are in nats."""

    mi: float
    stderr: float
    ci: tuple[float, float]
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
        gauss = "[chosen: Gaussian-copula critic, DV read-out] " if s.chosen_critic == "gaussian" else ""
        return (f"I(X;Y) = {self.mi:.4f} nats  (stderr {self.stderr:.4f}; 95% CI [{self.ci[0]:.4f}, "
                f"{self.ci[1]:.4f}])  bound={_name(s.options.bound)} critic={_name(s.options.critic)} {gauss}"
                f"n_train={s.n_train} n_test={s.n_test} best_step={self.best_step}")


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
    """A critic and the bound that reads it out, with its value on the monitor split."""

    name: str
    critic: nn.Module
    bound: Any
    monitor: float


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


def train_candidate(data: Splits, opts: EstimateOptions, rng: np.random.Generator,
                    device: torch.device) -> tuple[Candidate, FitResult]:
    """The critic of ``opts.critic`` trained with ``opts.bound`` (early stopping on the monitor split)."""
    bound = _bound(opts, device)
    critic = _critic(opts, data.train[0].shape[1], data.train[1].shape[1]).to(device)
    bar = _progress(opts.steps, opts.progress)
    try:
        fit = fit_critic(critic, bound, data.train, data.monitor, steps=opts.steps, batch=opts.batch_size,
                         lr=opts.lr, weight_decay=opts.weight_decay, eval_every=opts.eval_every,
                         patience=opts.patience, block=opts.eval_batch, rng=rng, progress=bar)
    finally:
        bar.close()
    return Candidate("trained", critic, bound, fit.best_monitor), fit


def gaussian_candidate(data: Splits, opts: EstimateOptions) -> list[Candidate]:
    """The closed-form Gaussian critic of the training split read out by DV (none when turned off,
    for a critic given as a module, or with fewer than 10 training rows per column).

    Its DV value is the Gaussian-copula MI ``I_G = ½ log(det Σxx det Σyy / det Σ)``, which after
    normal scores is a lower bound on I(X; Y) for any joint law (Ince et al. 2017, Hum. Brain Mapp.
    38:1541) and exact when the copula is Gaussian
    (:meth:`~mi_estimators.critics.BilinearCritic.fit_gaussian`).
    """
    xtr, ytr = data.train
    rows_needed = GAUSSIAN_MIN_ROWS_PER_DIM * (xtr.shape[1] + ytr.shape[1])
    if not (opts.gaussian and isinstance(opts.critic, str) and xtr.shape[0] >= rows_needed):
        return []
    critic = BilinearCritic.fit_gaussian(xtr, ytr).eval()
    dv = registry.get("dv")
    monitor = float(held_out(critic, [dv], *data.monitor, opts.eval_batch, groups=0)[0][0])
    return [Candidate("gaussian", critic, dv, monitor)]


def choose(candidates: list[Candidate]) -> Candidate:
    """The candidate with the largest monitor value (the first on ties)."""
    return max(candidates, key=lambda c: c.monitor)


def read_out(candidate: Candidate, data: Splits, opts: EstimateOptions) -> tuple[float, float, tuple[float, float]]:
    """``(mi, stderr, 95% interval)`` of the candidate on the test split."""
    mi, se = held_out(candidate.critic, [candidate.bound], *data.test, opts.eval_batch, groups=opts.jackknife_groups)
    mi, se = float(mi[0]), float(se[0])
    half = float(stats.t.ppf(0.975, max(opts.jackknife_groups - 1, 1))) * se
    return mi, se, (mi - half, mi + half)


def _progress(total: int, enabled: bool | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="estimate", disable=not (sys.stderr.isatty() if enabled is None else enabled),
                leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------
# estimate()
# --------------------------------------------------------------------------------------------
def estimate(x: Any, y: Any, bound: Any = "smile", critic: Any = "auto", **options: Any) -> EstimateResult:
    """Estimate I(X; Y) in nats by training a critic with a bound and testing it on held-out data.

    ``x`` ``(n, dx)`` and ``y`` ``(n, dy)``: NumPy arrays, torch tensors or lists; 1-D input is
    one column; row i of x pairs with row i of y. ``bound``: a registered bound name (see
    ``mi_estimators.available()``) or a bound object; ``critic``: a registered critic name
    (``separable``, ``concat``, ``bilinear``), ``"auto"`` or an ``nn.Module``. ``options``: any
    field of :class:`EstimateOptions` (``steps``, ``lr``, ``seed``, ``threads``, ...). The
    procedure is in the module docstring. The caller's torch thread count and random state are
    the same after the call.

    >>> import mi_estimators as mie
    >>> task = mie.get("gauss-1x1-mi0.5", kind="tasks")
    >>> x, y = task.sample(2000, seed=0)
    >>> r = mie.estimate(x, y, steps=300, critic_options={"hidden": 32}, seed=0)
    >>> abs(r.mi - task.mi) < 0.15 and r.ci[0] < r.mi < r.ci[1]
    True
    """
    opts = EstimateOptions.from_kwargs(bound=bound, critic=critic, **options)
    x, y = check_pair(x, y)
    opts = opts.resolve(x.shape[1], y.shape[1])
    device = resolve_device(opts.device)
    with threads(opts.threads), seeded(opts.seed):
        rng = np.random.default_rng(opts.seed)
        data = split(x, y, opts, rng, device)
        trained, fit = train_candidate(data, opts, rng, device)
        candidates = [trained] + gaussian_candidate(data, opts)
        chosen = choose(candidates)
        mi, se, ci = read_out(chosen, data, opts)
    settings = EstimateSettings(
        options=opts, device=str(device), n=x.shape[0], n_train=data.train[0].shape[0],
        n_val=data.monitor[0].shape[0], n_test=data.test[0].shape[0], chosen_critic=chosen.name,
        read_out="dv" if chosen.name == "gaussian" else _name(opts.bound),
        monitor={c.name: c.monitor for c in candidates},
        gaussian_mi=next((float(c.critic.c.detach()) for c in candidates if c.name == "gaussian"), None))
    return EstimateResult(mi=mi, stderr=se, ci=ci, history=fit.history, best_step=fit.best_step,
                          stopped_early=fit.stopped_early, settings=settings, critic=chosen.critic)

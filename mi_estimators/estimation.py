"""``estimate(x, y)``: I(X; Y) in nats from two arrays, with a standard error and a 95% interval.

How it works (all steps are options of :func:`estimate`):

1. **Split** the n rows at random into train (70%), monitor (10%) and test (20%) sets, and map
   every column to normal scores, Φ⁻¹ of its rank among the training rows (the Gaussian-copula
   transform, :func:`marginal_transform`; ``standardize="zscore"`` for mean/sd scaling instead).
   I(X; Y) is unchanged by increasing maps of a column, and after this one the critic sees the
   same inputs whatever the marginals were (bounded, heavy-tailed, cubed, ...).
2. **Train** a critic on minibatches of the training split with Adam, minimising
   ``bound.loss(scores)``. ``critic="auto"`` (the default) takes ``concat`` (an MLP on [x, y],
   2×64 hidden units, batch 128) when x and y have 2 columns together and ``separable``
   (``g(x)ᵀh(y)``, two MLPs of 2×64 hidden units and a 32-d embedding, after Poole et al. 2019,
   arXiv:1905.06922; batch 256) above (:func:`auto_critic`).
3. **Early stopping**: every ``eval_every`` steps the bound is evaluated on the monitor split;
   training stops after ``patience`` evaluations without improvement and the best weights are
   restored. The monitor split is not the test split, so choosing the best step does not bias
   the reported estimate upwards.
4. **Estimate** on the held-out test split with a much larger negative set than the training
   batch: the bound is applied to the test split's full ``(n_test, n_test)`` score matrix —
   n_test(n_test − 1) negatives (cut into blocks of ``eval_batch`` rows when larger; for a
   separable critic all pairs cost one matrix product). ``stderr`` is the delete-a-group
   jackknife over ``jackknife_groups`` groups of test samples (a group's rows *and* columns
   removed in turn), the interval ``mi ± t₀.₉₇₅ · stderr``. The interval covers the held-out
   sampling noise for the *trained* critic; a critic far from optimal biases every bound
   (downwards for lower bounds), which no interval shows — check ``result.history`` and the
   validation report.
5. **The Gaussian-copula candidate** (``gaussian=True``, the default, for a critic given by name
   and at least 10 training rows per column): the closed-form log density ratio of the Gaussian
   fitted to the training rows' normal scores (:meth:`BilinearCritic.fit_gaussian
   <mi_estimators.critics.BilinearCritic.fit_gaussian>`), read out by DV, competes with the
   trained critic on the monitor split; the better of the two is read out on the test split
   (``settings["chosen_critic"]``). Its DV value is the Gaussian-copula MI
   ``I_G = ½ log(det Σxx det Σyy / det Σ)``, which, after normal scores, is a lower bound on
   I(X; Y) for any joint law (Ince et al. 2017), and it is the exact critic when the copula is
   Gaussian. That is what reaches high MI: on the 20-d Gaussian at 10 nats a trained 2×64 critic
   gives 7.2 nats, the Gaussian candidate 10.07 ± 0.07. It is read out *unclipped*: with the exact
   critic and n_test² negatives the DV value is within 0.25 nats at 10 nats, while SMILE's clip
   at τ = 5 adds about +2 nats (``validation/oracle_10nats.py``). Choosing on the monitor split,
   not the test split, keeps the choice from biasing the reported estimate upwards.

Defaults (chosen from the figures in ``validation/``, see ``validation/README.md``): bound
``smile`` (τ = 5) — on Poole et al.'s staircase it is the only bound whose bias stays within about
a nat up to 10 nats with sd <= 0.8, while the InfoNCE family is capped at log N and NWJ/DV/MINE/TUBA
reach sd of several nats above 6 nats; on heavy-tailed tasks (Student-t, cubic) the unclipped e^T
bounds diverge and SMILE does not (Song & Ermon 2020, arXiv:1910.06222). Critics of 2×64 hidden
units: on 5,000 samples Poole's 2×256 reaches the same held-out peak but overfits within a few
hundred steps. In 1+1 dimensions the concat critic fits dependence a separable one cannot (the
band |y − x| <= ε of additive uniform noise: 1.65 against 1.51 nats for 1.71) and its B² MLP
passes per step are affordable; above, the separable critic scores all B² pairs with one matrix
product. Normal scores of the ranks: 11–12 of 13 tasks within target against 10 with mean/sd
scaling; with the Gaussian candidate as well, 13 of 13 on two sample seeds. ``lr=5e-4``, up to
4,000 steps.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from mi_estimators import registry
from mi_estimators.critics import BilinearCritic
from mi_estimators.device import resolve_device
from mi_estimators.validation.engine import _per_model, make_adam, train_step

__all__ = ["EstimateResult", "MIN_SAMPLES", "add_arguments", "as_array", "auto_critic", "build_bounds", "estimate",
           "evaluate_held_out", "marginal_transform", "score_matrix", "load_array", "main"]

#: critic sizes for finite samples: 2×64 hidden units reach the same held-out peak as Poole et
#: al.'s 2×256 on 5,000 samples but overfit later and train ~4× faster (validation/README.md)
DEFAULT_CRITIC_OPTIONS: dict[str, dict[str, Any]] = {
    "separable": {"hidden": 64, "layers": 2, "embed_dim": 32},
    "concat": {"hidden": 64, "layers": 2},
}

#: ``critic="auto"``: a concat critic (an MLP on [x, y]) up to this many columns of x and y together,
#: a separable one above. The concat critic can represent any function of the pair (e.g. the band
#: |y - x| <= eps of additive uniform noise, which a separable g(x)ᵀh(y) fits poorly: 1.51 against
#: 1.65 nats for 1.71 at n = 5,000) but costs B² MLP passes per step, affordable in low dimension.
AUTO_CONCAT_MAX_DIM = 2
#: default training batch per critic kind (the concat critic scores B² pairs per step)
AUTO_BATCH = {"concat": 128, "separable": 256}
#: default rows per held-out block (a block is scored against all its pairs)
AUTO_EVAL_BATCH = {"concat": 1024, "separable": 4096}


def auto_critic(x_dim: int, y_dim: int) -> str:
    """The critic ``estimate(critic="auto")`` uses for ``x_dim + y_dim`` columns.

    >>> auto_critic(1, 1), auto_critic(5, 5)
    ('concat', 'separable')
    """
    return "concat" if x_dim + y_dim <= AUTO_CONCAT_MAX_DIM else "separable"


#: ``gaussian`` needs at least this many training rows per column of x and y together
GAUSSIAN_MIN_ROWS_PER_DIM = 10

#: fewer rows than this cannot be split into train/monitor/test sets that mean anything
MIN_SAMPLES = 48


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def as_array(a: Any, name: str) -> np.ndarray:
    """``a`` (NumPy array, torch tensor, nested lists) as a finite float64 ``(n, d)`` array.

    1-D input becomes one column. Raises ``ValueError`` saying what to fix for non-numeric data,
    more than 2 dimensions, empty arrays and NaN/Inf entries.
    """
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be numeric (a NumPy array, a torch tensor or a list of numbers); "
            f"could not convert it to float: {exc}. Encode categorical columns as numbers first."
        ) from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, d), got {arr.shape}; flatten the "
                         f"feature axes first, e.g. {name}.reshape(len({name}), -1)")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        raise ValueError(
            f"{name} holds {int(np.isnan(arr).sum())} NaN and {int(np.isinf(arr).sum())} infinite "
            f"entries (first in rows {rows[:5].tolist()}); drop or impute those rows first"
        )
    return arr


def _check_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_array(x, "x"), as_array(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of samples (rows), got {x.shape[0]} "
                         f"and {y.shape[0]}; row i of x must pair with row i of y")
    if x.shape[0] < MIN_SAMPLES:
        raise ValueError(f"need at least {MIN_SAMPLES} paired samples to train and test a critic, "
                         f"got {x.shape[0]}; with so few, use a k-NN estimate "
                         "(mi_estimators.ksg.ksg_mi) or collect more data")
    return x, y


def build_bounds(bound: Any, n: int = 1, **options: Any) -> list[Any]:
    """``n`` independent instances of ``bound`` (a registered name, or an object/factory).

    Each copy gets its own instance, so stateful bounds (MINE's moving average) never share state.
    """
    if isinstance(bound, str):
        return [registry.get(bound, **options) for _ in range(n)]
    if callable(bound) and hasattr(bound, "loss"):
        if options:
            raise ValueError("bound_options only apply when the bound is given by name")
        return [bound] + [copy.deepcopy(bound) for _ in range(n - 1)]
    raise ValueError(f"bound must be a registered name ({', '.join(registry.available())}) or an object "
                     f"callable on scores with a .loss(scores) method, got {type(bound).__name__}")


# --------------------------------------------------------------------------------------------
# the engine shared with the validation suite: one step, block evaluation
# --------------------------------------------------------------------------------------------
def score_matrix(critic: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """All ``(n, n)`` scores of a held-out set (``(K, n, n)`` for stacked critics), computed in
    row chunks so that a concat critic's ``(rows, n, hidden)`` activations stay small."""
    from mi_estimators.critics import ConcatCritic

    n = y.shape[0]
    budget = 2**16 if isinstance(critic, ConcatCritic) else 2**24  # score entries per chunk
    rows = max(1, budget // n)
    return torch.cat([critic(x[i:i + rows], y) for i in range(0, x.shape[0], rows)], dim=-2)


@torch.no_grad()
def evaluate_held_out(critic: nn.Module, bounds: Sequence[Any], x: Tensor, y: Tensor, block: int,
                      groups: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Each bound on the full score matrix of held-out blocks, with a delete-a-group jackknife
    standard error.

    The held-out rows are cut into blocks of about ``block`` rows; each bound is applied to a
    block's full ``(B, B)`` matrix (B(B−1) negatives). The standard error comes from the
    delete-a-group jackknife: the rows and columns of one of ``groups`` groups of samples are
    removed in turn, ``var = (G−1)/G · Σ_g (θ_{−g} − θ̄)²``; blocks are combined as a mean.
    Returns ``(estimates, stderrs)``, each of shape ``(K,)`` (NaN stderr when ``groups < 2``).
    """
    n = x.shape[0]
    n_blocks = max(1, n // block)
    edges = np.linspace(0, n, n_blocks + 1).astype(int)
    values = np.zeros((len(bounds), n_blocks))
    variances = np.zeros((len(bounds), n_blocks))
    for b in range(n_blocks):
        sl = slice(edges[b], edges[b + 1])
        scores = score_matrix(critic, x[sl], y[sl])
        m = scores.shape[-1]
        g = min(groups, m // 2)
        members = np.array_split(np.arange(m), g) if g >= 2 else []
        for k, bound in enumerate(bounds):
            s_k = _per_model(scores, k)
            values[k, b] = float(bound(s_k))
            if g >= 2:
                loo = []
                for drop in members:
                    keep = torch.as_tensor(np.setdiff1d(np.arange(m), drop), device=s_k.device)
                    loo.append(float(bound(s_k.index_select(0, keep).index_select(1, keep))))
                loo = np.array(loo)
                variances[k, b] = (g - 1) / g * ((loo - loo.mean()) ** 2).sum()
            else:
                variances[k, b] = np.nan
    return values.mean(1), np.sqrt(variances.sum(1)) / n_blocks


def _marginal_mode(standardize: bool | str) -> str:
    modes = {True: "zscore", False: "none", "zscore": "zscore", "rank": "rank", "none": "none"}
    if isinstance(standardize, (bool, str)) and standardize in modes:
        return modes[standardize]
    raise ValueError(f"standardize must be 'rank', 'zscore' (or True) or 'none' (or False), got {standardize!r}")


def marginal_transform(a: np.ndarray, train_idx: np.ndarray, mode: str = "rank") -> np.ndarray:
    """Transform every column of ``a`` with a map fitted on the rows ``train_idx`` only.

    * ``"rank"`` (normal scores, the Gaussian-copula transform): ``z = Φ⁻¹(F̂(a))`` with F̂ the
      training rows' empirical CDF at mid-ranks: ties share their mean rank, a held-out value
      between two training values gets the rank halfway between theirs, one beyond them all the
      extreme rank. It depends on the order of the values alone.
      Strictly increasing maps of a column leave I(X; Y) unchanged, and this one turns any
      continuous marginal (heavy-tailed, bounded, skewed) into an approximately standard normal
      one, so the critic no longer has to learn the marginals' shape (e.g. Φ⁻¹ of a normal-CDF
      feature, or the tails of a Cauchy). See Ince et al. 2017, "A statistical framework for
      neuroimaging data analysis based on mutual information estimated via a Gaussian copula"
      (Hum. Brain Mapp. 38:1541).
    * ``"zscore"``: ``(a − mean) / sd`` of the training rows (constant columns are only centred).
    * ``"none"``: ``a`` unchanged.

    >>> a = np.array([[3.0], [1.0], [2.0], [10.0]])
    >>> np.round(marginal_transform(a, np.arange(4)), 3).ravel().tolist()
    [0.319, -1.15, -0.319, 1.15]
    >>> marginal_transform(a ** 3, np.arange(4)).ravel().tolist() == marginal_transform(a, np.arange(4)).ravel().tolist()
    True
    """
    if mode == "none":
        return a
    train = a[train_idx]
    if mode == "zscore":
        sd = train.std(0)
        return (a - train.mean(0)) / np.where(sd > 0, sd, 1.0)
    if mode != "rank":
        raise ValueError(f"unknown marginal transform {mode!r}; use 'rank', 'zscore' or 'none'")
    m = len(train)
    out = np.empty_like(a)
    for j in range(a.shape[1]):
        s = np.sort(train[:, j])
        if s[0] == s[-1]:  # a constant column carries no information
            out[:, j] = 0.0
            continue
        # mid-rank among the training values: (#below + #below-or-equal) / 2m; depends on order only
        u = (np.searchsorted(s, a[:, j], "left") + np.searchsorted(s, a[:, j], "right")) / (2.0 * m)
        out[:, j] = stats.norm.ppf(np.clip(u, 0.5 / m, 1 - 0.5 / m))
    return out


def _interval(mean: float, se: float, dof: int) -> tuple[float, float]:
    half = float(stats.t.ppf(0.975, max(dof, 1))) * se
    return mean - half, mean + half


# --------------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------------
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
    #: every setting used, including the resolved device and split sizes
    settings: dict[str, Any] = field(default_factory=dict)
    #: the critic read out on the test split (the trained one, or the closed-form Gaussian one when
    #: ``settings["chosen_critic"] == "gaussian"``), on the device used, taking standardised inputs
    critic: nn.Module | None = field(default=None, repr=False)

    def __str__(self) -> str:
        s = self.settings
        return (f"I(X;Y) = {self.mi:.4f} nats  (stderr {self.stderr:.4f}; 95% CI [{self.ci[0]:.4f}, "
                f"{self.ci[1]:.4f}])  bound={s.get('bound')} critic={s.get('critic')} "
                f"{'[chosen: Gaussian-copula critic, DV read-out] ' if s.get('chosen_critic') == 'gaussian' else ''}"
                f"n_train={s.get('n_train')} n_test={s.get('n_test')} best_step={self.best_step}")


def _progress(total: int, enabled: bool | None, desc: str):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------
# estimate()
# --------------------------------------------------------------------------------------------
def estimate(
    x: Any,
    y: Any,
    bound: Any = "smile",
    critic: Any = "auto",
    *,
    bound_options: dict[str, Any] | None = None,
    critic_options: dict[str, Any] | None = None,
    steps: int = 4000,
    batch_size: int | None = None,
    lr: float = 5e-4,
    weight_decay: float = 0.0,
    eval_every: int = 100,
    patience: int = 8,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    eval_batch: int | None = None,
    jackknife_groups: int = 20,
    standardize: bool | str = "rank",
    gaussian: bool = True,
    device: str | torch.device | None = "auto",
    seed: int | None = 0,
    progress: bool | None = None,
) -> EstimateResult:
    """Estimate I(X; Y) in nats by training a critic with a bound and testing it on held-out data.

    ``x`` ``(n, dx)`` and ``y`` ``(n, dy)``: NumPy arrays, torch tensors or lists; 1-D input is
    one column; row i of x pairs with row i of y. ``bound``: a registered bound name (see
    ``mi_estimators.available()``) or a bound object; ``critic``: a registered critic name
    (``separable``, ``concat``, ``bilinear``) or an ``nn.Module`` mapping ``(x, y)`` to ``(N, N)``
    scores. ``gaussian``: also consider the closed-form Gaussian-copula critic, read out by DV, and
    keep whichever of the two does better on the monitor split (step 5 of the module docstring;
    ignored for a critic given as a module). See the module docstring for the procedure and the
    choice of defaults.

    >>> import mi_estimators as mie
    >>> task = mie.get("gauss-1x1-mi0.5", kind="tasks")
    >>> x, y = task.sample(2000, seed=0)
    >>> r = mie.estimate(x, y, steps=300, critic_options={"hidden": 32}, seed=0)
    >>> abs(r.mi - task.mi) < 0.15 and r.ci[0] < r.mi < r.ci[1]
    True
    """
    x, y = _check_pair(x, y)
    if critic == "auto":
        critic = auto_critic(x.shape[1], y.shape[1])
    kind = "concat" if critic == "concat" else "separable"  # the defaults of any other critic
    if batch_size is None:
        batch_size = AUTO_BATCH[kind]
    if eval_batch is None:
        eval_batch = AUTO_EVAL_BATCH[kind]
    for name, value in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every),
                        ("patience", patience), ("eval_batch", eval_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive learning rate, got {lr!r}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must lie in (0, 1) and sum to less than 1, got "
                         f"{val_fraction} and {test_fraction}")
    dev = resolve_device(device)
    n = x.shape[0]

    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = max(2, int(round(test_fraction * n)))
    n_val = max(2, int(round(val_fraction * n)))
    test_idx, val_idx, train_idx = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    marginals = _marginal_mode(standardize)
    x, y = marginal_transform(x, train_idx, marginals), marginal_transform(y, train_idx, marginals)

    def to_dev(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=dev)

    xtr, ytr = to_dev(x[train_idx]), to_dev(y[train_idx])
    xva, yva = to_dev(x[val_idx]), to_dev(y[val_idx])
    xte, yte = to_dev(x[test_idx]), to_dev(y[test_idx])

    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if isinstance(critic, str):
            options = dict(DEFAULT_CRITIC_OPTIONS.get(critic, {}), **(critic_options or {}))
            model = registry.get(critic, kind="critics", x_dim=x.shape[1], y_dim=y.shape[1], **options)
        elif isinstance(critic, nn.Module):
            if critic_options:
                raise ValueError("critic_options only apply when the critic is given by name")
            model = critic
        else:
            raise ValueError(f"critic must be a registered name ({', '.join(registry.available('critics'))}) "
                             f"or an nn.Module, got {type(critic).__name__}")
    model = model.to(dev)
    (bound_obj,) = build_bounds(bound, 1, **(bound_options or {}))
    if isinstance(bound_obj, nn.Module):
        bound_obj = bound_obj.to(dev)
    bounds = [bound_obj]
    block = max(16, eval_batch)
    batch = min(batch_size, len(train_idx))

    optimizer = make_adam(model.parameters(), lr, weight_decay)
    history: dict[str, list[float]] = {"step": [], "train": [], "eval_step": [], "monitor": []}
    best, best_step, best_state, since_best = -math.inf, 0, copy.deepcopy(model.state_dict()), 0
    stopped = False
    order = torch.as_tensor(rng.permutation(len(train_idx)), device=dev)
    cursor = 0
    bar = _progress(steps, progress, "estimate")
    model.train()
    for step in range(1, steps + 1):
        if cursor + batch > len(order):  # a new epoch: reshuffle
            order = torch.as_tensor(rng.permutation(len(train_idx)), device=dev)
            cursor = 0
        idx = order[cursor:cursor + batch]
        cursor += batch
        value = train_step(model, bounds, optimizer, xtr[idx], ytr[idx])[0]
        if not math.isfinite(value):
            raise ValueError(f"training diverged at step {step} (the {bound} estimate is {value}); "
                             "lower lr or use a clipped bound (smile)")
        history["step"].append(step)
        history["train"].append(value)
        bar.update(1)
        if step % eval_every == 0 or step == steps:
            model.eval()
            monitor = float(evaluate_held_out(model, bounds, xva, yva, block, groups=0)[0][0])
            model.train()
            history["eval_step"].append(step)
            history["monitor"].append(monitor)
            bar.set_postfix(monitor=f"{monitor:.3f}")
            if monitor > best + 1e-3:
                best, best_step, since_best = monitor, step, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
                if since_best >= patience:
                    stopped = step < steps
                    break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    chosen, gaussian_mi, gaussian_monitor = "trained", None, None
    enough_rows = len(train_idx) >= GAUSSIAN_MIN_ROWS_PER_DIM * (x.shape[1] + y.shape[1])
    if gaussian and isinstance(critic, str) and enough_rows:
        # the closed-form Gaussian critic of the training rows, read out by DV, competes with the
        # trained critic on the monitor split
        gauss = BilinearCritic.fit_gaussian(xtr, ytr).eval()
        gaussian_mi = float(gauss.c.detach())
        dv = [registry.get("dv")]
        gaussian_monitor = float(evaluate_held_out(gauss, dv, xva, yva, block, groups=0)[0][0])
        if gaussian_monitor > best:
            model, bounds, chosen = gauss, dv, "gaussian"
    mi_arr, se_arr = evaluate_held_out(model, bounds, xte, yte, block, groups=jackknife_groups)
    mi, se = float(mi_arr[0]), float(se_arr[0])
    ci = _interval(mi, se, jackknife_groups - 1)
    bound_name = bound if isinstance(bound, str) else type(bound).__name__
    settings = dict(
        bound=bound_name, bound_options=bound_options or {},
        critic=critic if isinstance(critic, str) else type(critic).__name__, critic_options=critic_options or {},
        steps=steps, batch_size=batch, lr=lr, weight_decay=weight_decay, eval_every=eval_every, patience=patience,
        val_fraction=val_fraction, test_fraction=test_fraction, eval_batch=block, jackknife_groups=jackknife_groups,
        standardize=marginals, gaussian=gaussian, gaussian_mi=gaussian_mi, gaussian_monitor=gaussian_monitor,
        best_monitor=best, chosen_critic=chosen, read_out="dv" if chosen == "gaussian" else bound_name,
        device=str(dev), seed=seed,
        n=n, n_train=len(train_idx), n_val=len(val_idx), n_test=n_test,
    )
    return EstimateResult(mi=mi, stderr=se, ci=ci, history=history,
                          best_step=best_step, stopped_early=stopped, settings=settings, critic=model)


# --------------------------------------------------------------------------------------------
# command line: mi-estimators estimate X.npy Y.npy
# --------------------------------------------------------------------------------------------
def _columns(spec: str | None, names: Sequence[str] | None, width: int) -> list[int] | None:
    if spec is None:
        return None
    cols = []
    for part in spec.split(","):
        part = part.strip()
        if names is not None and part in names:
            cols.append(list(names).index(part))
        elif ":" in part:
            lo, hi = part.split(":")
            cols.extend(range(int(lo or 0), int(hi) if hi else width))
        else:
            try:
                cols.append(int(part))
            except ValueError:
                raise ValueError(f"unknown column {part!r}; give indices (0,2 or 1:4)"
                                 + (f" or names from {list(names)}" if names else "")) from None
    bad = [c for c in cols if not -width <= c < width]
    if bad:
        raise ValueError(f"column indices {bad} out of range for {width} columns")
    return cols


def load_array(path: str, columns: str | None = None, key: str | None = None) -> np.ndarray:
    """Load ``.npy``, ``.npz`` (``key`` picks the array, default the first) or ``.csv``
    (a header row of names is detected) and select ``columns`` (``"0,2"``, ``"1:4"`` or names)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"no such file: {path}")
    suffix = p.suffix.lower()
    names = None
    if suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as data:
            keys = list(data.keys())
            if key is not None and key not in keys:
                raise ValueError(f"{path} has no array {key!r}; it holds {keys}")
            arr = data[key or keys[0]]
    elif suffix in (".csv", ".txt", ".tsv"):
        delim = "\t" if suffix == ".tsv" else ","
        with open(p) as fh:
            first = fh.readline()
        fields = [f.strip() for f in first.split(delim)]
        try:
            [float(f) for f in fields]
            header = False
        except ValueError:
            header, names = True, fields
        arr = np.loadtxt(p, delimiter=delim, skiprows=1 if header else 0, ndmin=2)
    else:
        raise ValueError(f"unsupported file type {suffix!r}; use .npy, .npz or .csv")
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr[:, None]
    cols = _columns(columns, names, arr.shape[1] if arr.ndim == 2 else 0)
    return arr[:, cols] if cols is not None else arr


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("x", help="file with X (.npy, .npz or .csv; rows are samples)")
    parser.add_argument("y", nargs="?", help="file with Y (default: the same file as X, with --y-cols)")
    parser.add_argument("--x-cols", help="columns of X: indices '0,2', a range '0:3', or CSV header names")
    parser.add_argument("--y-cols", help="columns of Y (required when Y comes from the same file as X)")
    parser.add_argument("--x-key", help="array name inside an .npz for X (default: the first)")
    parser.add_argument("--y-key", help="array name inside an .npz for Y")
    parser.add_argument("--bound", default="smile", help="a registered bound (default smile)")
    parser.add_argument("--critic", default="auto",
                        help="auto (default: concat for 1+1 columns, else separable), separable, concat or bilinear")
    parser.add_argument("--steps", type=int, default=4000, help="maximum training steps (default 4000)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch (default 256 for a separable critic, 128 for concat)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--standardize", choices=("rank", "zscore", "none"), default="rank",
                        help="per-column transform fitted on the training split: normal scores of the "
                             "ranks (default), mean/sd scaling, or none")
    parser.add_argument("--no-gaussian", dest="gaussian", action="store_false",
                        help="do not consider the closed-form Gaussian-copula critic (report the trained one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def main(args: argparse.Namespace) -> int:
    import json

    if args.y is None and args.y_cols is None:
        raise ValueError("give a Y file, or --y-cols to take Y from the columns of the X file")
    x = load_array(args.x, args.x_cols, args.x_key)
    y = load_array(args.y or args.x, args.y_cols, args.y_key)
    result = estimate(x, y, bound=args.bound, critic=args.critic, steps=args.steps,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                      standardize=args.standardize, gaussian=args.gaussian)
    if args.json:
        print(json.dumps({"mi": result.mi, "stderr": result.stderr, "ci95": list(result.ci),
                          "best_step": result.best_step, "settings": result.settings}, indent=2))
    else:
        print(result)
    return 0

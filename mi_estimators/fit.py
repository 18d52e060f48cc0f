"""The fit layer: the one training step, the optimiser, early stopping and the held-out read-out.

Everything that trains a critic on samples goes through here: :func:`mi_estimators.estimate`
(one critic, one bound, early stopping on a monitor split, read out on a test split) and
``mi-estimators validate`` (K stacked critics, one per bound, trained in one pass on fresh
samples). It sits in the middle of three layers: it composes the numerics below it (bounds,
critics, arrays), which never import it, and it never imports the adapters above it (file
loaders, the command line, report writers), so that a library user can train and read out a
critic without pulling in any I/O. ``tests/test_architecture.py`` checks both directions.

One optimiser step of K stacked critics (:func:`train_step`): the copies share no parameters, so
the gradient of the summed losses is each copy's own gradient, and Adam (elementwise) updates every
copy as if it were trained alone. Each bound's estimate is read from the same pass as its loss
(:func:`mi_estimators.bounds.value_and_loss`).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mi_estimators import options as check
from mi_estimators.bounds.base import finite_checks, value_and_loss
from mi_estimators.critics import ConcatCritic
from mi_estimators.jackknife import jackknife_variance
from mi_estimators.process import flush_denormals, flushing_denormals, seeded, threads

__all__ = ["EarlyStopping", "FitConfig", "FitResult", "MovingAverage", "Race", "fit_critic", "flush_denormals",
           "flushing_denormals", "held_out", "make_adam", "minibatches", "per_model", "score_matrix", "seeded",
           "threads", "train_stacked", "train_step"]


def make_adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where the build supports it (one pass over the stacked
    weights instead of ~10 elementwise kernels: ~5x faster updates on the CPU), else the default.
    With ``weight_decay=0`` AdamW is Adam."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


# --------------------------------------------------------------------------------------------
# one step
# --------------------------------------------------------------------------------------------
def per_model(scores: Tensor, k: int) -> Tensor:
    """Copy ``k``'s scores of a stacked ``(K, N, N)`` score tensor; ``(N, N)`` scores are one copy's."""
    return scores if scores.dim() == 2 else scores[k]


def train_step(critic: nn.Module, bounds: Sequence[Any], optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
               *, alive: list[bool] | None = None,
               on_error: Callable[[int, Exception], None] | None = None) -> np.ndarray:
    """One optimiser step of K stacked critics (or one critic, K = 1), copy k trained with ``bounds[k]``.

    Returns the K training-batch estimates ``bounds[k](scores_k)`` before the step (NaN for copies
    not trained). ``alive[k] = False`` skips copy k. With ``on_error``, a bound whose loss raises
    or is not finite is reported as ``on_error(k, exc)`` and marked dead in ``alive`` instead of
    raising.
    """
    alive = [True] * len(bounds) if alive is None else alive
    out = np.full(len(bounds), np.nan)
    scores = critic(x, y)  # (N, N) or (K, N, N)
    values, losses, trained = [], [], []  # trained[i]: the copy whose loss is losses[i]
    for k, bound in enumerate(bounds):
        if not alive[k]:
            continue
        try:
            value, loss = value_and_loss(bound, per_model(scores, k))
            if on_error is not None and not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {float(loss)}")
        except Exception as exc:  # noqa: BLE001 - a failing bound is dropped, see on_error
            if on_error is None:
                raise
            alive[k] = False
            on_error(k, exc)
            continue
        values.append(value.detach())
        losses.append(loss)
        trained.append(k)
    if not losses:
        return out
    optimizer.zero_grad(set_to_none=True)
    torch.stack(losses).sum().backward()
    optimizer.step()
    out[trained] = torch.stack(values).float().cpu().numpy()
    return out


def train_stacked(critic: nn.Module, bounds: list[Any], sample: Callable[[int], tuple[Tensor, Tensor]],
                  steps: int, lr: float, progress=None, errors: dict[str, str] | None = None,
                  names: list[str] | None = None) -> np.ndarray:
    """Train copy k of a stacked ``critic`` with ``bounds[k]`` on ``sample(step)`` batches.

    A bound that raises (or whose loss is not finite) is dropped with a ``RuntimeWarning``, its
    error recorded in ``errors``; the others train on. Returns the training-batch estimates, shape
    ``(K, steps)`` (what Poole et al. plot).
    """
    names = names or [str(i) for i in range(len(bounds))]
    errors = {} if errors is None else errors
    alive = [True] * len(bounds)
    estimates = np.full((len(bounds), steps), np.nan)
    optimizer = make_adam(critic.parameters(), lr)
    for step in range(steps):
        def dropped(k: int, exc: Exception, step: int = step) -> None:
            errors[names[k]] = f"step {step}: {type(exc).__name__}: {exc}"
            warnings.warn(f"bound {names[k]!r} dropped: {errors[names[k]]}", RuntimeWarning, stacklevel=3)

        x, y = sample(step)
        estimates[:, step] = train_step(critic, bounds, optimizer, x, y, alive=alive, on_error=dropped)
        if not any(alive):
            break
        if progress is not None:
            progress.update(1)
    return estimates


# --------------------------------------------------------------------------------------------
# held-out read-out
# --------------------------------------------------------------------------------------------
def score_matrix(critic: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """All ``(n, n)`` scores of a held-out set (``(K, n, n)`` for stacked critics), computed in
    row chunks so that a concat critic's ``(rows, n, hidden)`` activations stay small (also inside
    a wrapper such as an ensemble). ``critic`` is any callable ``(x, y) -> scores``."""
    concat = isinstance(critic, nn.Module) and any(isinstance(m, ConcatCritic) for m in critic.modules())
    budget = 2**16 if concat else 2**24  # score entries per chunk
    rows = max(1, budget // y.shape[0])
    return torch.cat([critic(x[i:i + rows], y) for i in range(0, x.shape[0], rows)], dim=-2)


@torch.no_grad()
def held_out(critic: nn.Module, bound: Any, x: Tensor, y: Tensor, block: int, groups: int = 20) -> tuple[float, float]:
    """``bound`` on the full score matrix of held-out blocks, with a jackknife standard error.

    The held-out rows are cut into blocks of about ``block`` rows; the bound is applied to a
    block's full ``(B, B)`` matrix (B(B−1) negatives); blocks are combined as a mean, their
    jackknife variances (:func:`mi_estimators.jackknife.jackknife_variance`) as the variance of that mean:
    ``value = (1/m) Σ_b θ_b``, ``stderr = √(Σ_b var_b) / m`` for m blocks.
    ``critic`` is any callable ``(x, y) -> (n, n)`` scores (one critic, not a stack).
    Returns ``(value, stderr)`` (stderr NaN when ``groups < 2``: no jackknife).
    """
    n_blocks = max(1, x.shape[0] // block)
    edges = np.linspace(0, x.shape[0], n_blocks + 1).astype(int)
    values, variances = np.zeros(n_blocks), np.full(n_blocks, np.nan)
    for b in range(n_blocks):
        scores = score_matrix(critic, x[edges[b]:edges[b + 1]], y[edges[b]:edges[b + 1]])
        g = min(groups, scores.shape[-1] // 2)
        values[b] = float(bound(scores))
        if g >= 2:
            variances[b] = jackknife_variance(bound, scores, g)
    return float(values.mean()), float(np.sqrt(variances.sum()) / n_blocks)


# --------------------------------------------------------------------------------------------
# one critic, early stopping
# --------------------------------------------------------------------------------------------
@dataclass
class EarlyStopping:
    """Keep the weights of the best monitor value; stop after ``patience`` evaluations without an
    improvement of more than ``min_delta``."""

    patience: int
    min_delta: float = 1e-3
    best: float = -math.inf
    best_step: int = 0
    best_state: dict | None = None
    waited: int = 0

    def update(self, model: nn.Module, step: int, value: float) -> bool:
        """Record the monitor ``value`` at ``step``; True when training should stop."""
        if value > self.best + self.min_delta:
            self.best, self.best_step, self.waited = value, step, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self, model: nn.Module) -> nn.Module:
        """Load the best weights into ``model`` (if any evaluation happened) and return it."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model


@dataclass
class Race:
    """Stop a fit that cannot catch a rival: a model already fitted whose monitor value is ``rival``
    (in :func:`mi_estimators.estimate`, the closed-form copula critic), so that training on would
    not change which model is chosen (racing: Maron & Moore 1997, "The racing algorithm", AI Review
    11:193; a candidate is dropped once it cannot win).

    At an evaluation at step ``s >= after``, with ``b_e`` the best monitor value up to evaluation e,
    the fit has lost when its progress over the last ``window`` evaluations, repeated once more,
    stays below the rival: ``b_e + max(b_e − b_{e−window}, 0) < rival``. Learning curves flatten
    (the next window gains at most what the last one did), so such a fit would not catch the rival
    in the next ``window`` evaluations either, the horizon early stopping itself allows a fit
    without progress. A fit ahead of the rival is never stopped; ``after`` protects fits that rise
    late after a flat start.

    >>> Race(rival=1.0, after=200, window=2).lost(300, [0.5, 0.6, 0.65])
    True
    >>> Race(rival=1.0, after=200, window=2).lost(300, [0.3, 0.6, 0.65])
    False
    """

    rival: float
    after: int
    window: int

    def lost(self, step: int, bests: Sequence[float]) -> bool:
        """Whether the fit at ``step``, with the best-so-far monitor values ``bests`` (one per
        evaluation, the last at ``step``), cannot catch the rival."""
        if step < self.after or len(bests) <= self.window or not math.isfinite(self.rival):
            return False
        best, before = bests[-1], bests[-1 - self.window]
        gain = max(best - before, 0.0) if math.isfinite(before) else math.inf
        return best + gain < self.rival


@dataclass(frozen=True)
class FitConfig:
    """How :func:`fit_critic` trains: ``steps`` optimiser steps of AdamW (``lr``, ``weight_decay``)
    on minibatches of ``batch`` training rows; every ``eval_every`` steps the bound on the monitor
    split, read out in blocks of ``block`` rows, with early stopping after ``patience``
    evaluations without improvement; ``ema`` the decay of the moving average of the weights
    (None: the raw weights only).

    >>> FitConfig(steps=100, batch=64, lr=1e-3).patience
    8
    """

    steps: int
    batch: int
    lr: float
    weight_decay: float = 0.0
    eval_every: int = 100
    patience: int = 8
    block: int = 4096
    ema: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "eval_every", "patience", "block"):
            check.positive_int(name, getattr(self, name))
        check.positive_float("lr", self.lr)
        check.non_negative_float("weight_decay", self.weight_decay)
        check.optional(check.unit_interval_float, "ema", self.ema, "such as 0.99", open_left=True, open_right=True)


@dataclass
class FitResult:
    """What :func:`fit_critic` did: per-step training estimates, monitor values, the kept step."""

    best_step: int
    best_monitor: float
    stopped_early: bool
    history: dict[str, list[float]] = field(default_factory=dict)
    #: whether the kept weights are the moving average (``ema``) rather than the raw weights
    averaged: bool = False
    #: whether the fit stopped because it could not catch a rival (:class:`Race`)
    lost_race: bool = False


class MovingAverage:
    """The exponential moving average of a critic's floating-point parameters and buffers, in a copy
    (``.module``): the first update copies them, each later one applies torch's EMA update
    (:func:`torch.optim.swa_utils.get_ema_multi_avg_fn`, one fused lerp over every tensor) to the
    lists built here once. :class:`torch.optim.swa_utils.AveragedModel` does the same but rebuilds
    and regroups the lists at every update: 0.3 ms of a 2.4 ms step of estimate()'s critic."""

    def __init__(self, critic: nn.Module, decay: float):
        from torch.optim.swa_utils import get_ema_multi_avg_fn

        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema must be a decay in (0, 1) such as 0.99, got {decay!r}")
        self.module = copy.deepcopy(critic)
        pairs = [(a, b) for a, b in zip([*self.module.parameters(), *self.module.buffers()],
                                         [*critic.parameters(), *critic.buffers()]) if a.is_floating_point()]
        self._average, self._current = [a.detach() for a, _ in pairs], [b.detach() for _, b in pairs]
        self._update, self._count = get_ema_multi_avg_fn(decay), 0

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average with the current weights of the critic it was made from."""
        if self._count == 0:
            for a, b in zip(self._average, self._current):
                a.copy_(b)
        else:
            self._update(self._average, self._current, self._count)
        self._count += 1


def minibatches(n: int, batch: int, rng: np.random.Generator, device) -> Iterator[Tensor]:
    """Endless minibatch indices: a fresh permutation of ``range(n)`` every epoch."""
    while True:
        order = torch.as_tensor(rng.permutation(n), device=device)
        for start in range(0, n - batch + 1, batch):
            yield order[start:start + batch]


def fit_critic(critic: nn.Module, bound: Any, train: tuple[Tensor, Tensor], monitor: tuple[Tensor, Tensor] | None,
               config: FitConfig, *, rng: np.random.Generator | None = None, progress=None,
               race: Race | None = None) -> FitResult:
    """Train ``critic`` with ``bound.loss`` on minibatches of ``train``; every ``config.eval_every``
    steps read the bound out on the whole ``monitor`` split (:func:`held_out`), keep the best
    weights and stop after ``config.patience`` evaluations without improvement. The critic ends in
    eval mode with the best weights. Raises ``ValueError`` when training diverges.

    ``config.ema=β`` also keeps the exponential moving average of the weights,
    ``θ̄ ← β θ̄ + (1 − β) θ`` after every step (Polyak averaging; Polyak & Juditsky 1992, SIAM J.
    Control Optim. 30:838; :class:`MovingAverage`): the average smooths the minibatch noise of the
    last ~1/(1 − β) steps. At each evaluation the better of the average and the raw weights on the
    monitor split counts (the average lags behind in short runs).

    ``monitor=None`` trains exactly ``config.steps`` steps and keeps the last weights (their average
    with ``ema``): how a refit reuses a step count that a monitored fit chose.

    ``race``: also stop once the fit cannot catch a rival's monitor value (:class:`Race`;
    ``FitResult.lost_race``)."""
    rng = np.random.default_rng() if rng is None else rng
    optimizer = make_adam(critic.parameters(), config.lr, config.weight_decay)
    average = None if config.ema is None else MovingAverage(critic, config.ema)
    history: dict[str, list] = {"step": [], "train": [], "eval_step": [], "monitor": [], "averaged": []}
    evaluations = _Evaluations(critic, average, bound, monitor, config, race, history, progress)
    batches = minibatches(train[0].shape[0], min(config.batch, train[0].shape[0]), rng, train[0].device)
    step, pending = 0, []  # pending: training estimates still on the device
    critic.train()
    for step in range(1, config.steps + 1):
        idx = next(batches)
        with finite_checks(False):  # a NaN/Inf score makes the value below non-finite: checked there
            value, loss = value_and_loss(bound, per_model(critic(train[0][idx], train[1][idx]), 0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        pending.append(value.detach())
        if average is not None:
            average.update()
        if progress is not None:
            progress.update(1)
        if step % config.eval_every == 0 or step == config.steps:
            _record_training(pending, step, history)
            if monitor is not None and evaluations.stop(step):
                break
    _record_training(pending, step, history)
    if monitor is None:
        if average is not None:
            critic.load_state_dict(average.module.state_dict())
        critic.eval()
        return FitResult(step, math.nan, False, history, average is not None)
    return evaluations.result()


class _Evaluations:
    """The monitored side of :func:`fit_critic`: at each evaluation the better of the raw and the
    averaged weights on the monitor split, early stopping and the race; :meth:`result` restores
    the best weights."""

    def __init__(self, critic: nn.Module, average: "MovingAverage | None", bound: Any,
                 monitor: tuple[Tensor, Tensor] | None, config: FitConfig, race: "Race | None",
                 history: dict[str, list], progress=None):
        self.critic, self.bound, self.monitor, self.block = critic, bound, monitor, config.block
        self.models = [critic] if average is None else [average.module, critic]  # candidates at each evaluation
        self.stopper, self.race, self.history, self.progress = EarlyStopping(config.patience), race, history, progress
        self.steps, self.bests = config.steps, []
        self.stopped = self.averaged = self.lost = False

    def stop(self, step: int) -> bool:
        """Evaluate at ``step``; True when training should stop (no progress, or the race is lost)."""
        model, monitor_value = _best_on_monitor(self.models, self.bound, self.monitor, self.block)
        self.critic.train()
        self.history["eval_step"].append(step)
        self.history["monitor"].append(monitor_value)
        self.history["averaged"].append(model is not self.critic)
        if self.progress is not None:
            self.progress.set_postfix(monitor=f"{monitor_value:.3f}")
        done = self.stopper.update(model, step, monitor_value)
        self.bests.append(self.stopper.best)
        if self.stopper.best_step == step:
            self.averaged = model is not self.critic
        self.lost = self.race is not None and not done and self.race.lost(step, self.bests)
        self.stopped = (done or self.lost) and step < self.steps
        return done or self.lost

    def result(self) -> FitResult:
        """The critic in eval mode with the best weights, and what the fit did."""
        self.stopper.restore(self.critic).eval()
        return FitResult(self.stopper.best_step, self.stopper.best, self.stopped, self.history, self.averaged,
                         self.lost)


def _record_training(pending: list[Tensor], step: int, history: dict[str, list]) -> None:
    """Move the training estimates of the steps up to ``step`` from the device into ``history``
    (one transfer, not one per step: a per-step ``float()`` waits for the GPU every step) and empty
    ``pending``. Raises ``ValueError`` at the first non-finite one: training diverged."""
    if not pending:
        return
    values = torch.stack(pending).float().cpu().tolist()
    first = step - len(values) + 1
    pending.clear()
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise ValueError(f"training diverged at step {first + i} (the training estimate is {value}); "
                             "lower lr or use a clipped bound (smile)")
    history["step"].extend(range(first, step + 1))
    history["train"].extend(values)


def _best_on_monitor(models: list[nn.Module], bound: Any, monitor: tuple[Tensor, Tensor],
                     block: int) -> tuple[nn.Module, float]:
    """The model with the highest bound on the monitor split (NaN counts as the lowest), and its value."""
    scored = []
    for model in models:
        model.eval()
        scored.append((held_out(model, bound, *monitor, block, groups=0)[0], model))
    value, model = max(scored, key=lambda vm: vm[0] if math.isfinite(vm[0]) else -math.inf)
    return model, value

"""Training many bounds at once: one stacked critic, copy k trained by bound k.

All K critics live in one module built with ``n_models=K`` (weights stacked, one batched matmul
per layer), each bound gets its own instance (MINE's moving average is per bound), and one
backward pass through the summed losses trains every copy exactly as if alone (the copies share
no parameters and Adam is elementwise). A bound that raises is dropped from training (its
estimates become NaN) and its error is recorded; it never stops the other bounds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mi_estimators import registry

__all__ = ["BoundSet", "make_adam", "resolve_bounds", "train_stacked", "train_step"]


def make_adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where the build supports it (one pass over the stacked
    weights instead of ~10 elementwise kernels: ~5x faster updates on the CPU), else the default.
    With ``weight_decay=0`` AdamW is Adam."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@dataclass
class BoundSet:
    """Names, a factory per name, and the errors of bounds that failed."""

    names: list[str]
    factories: list[Callable[[], Any]]
    errors: dict[str, str] = field(default_factory=dict)

    def instances(self) -> list[Any]:
        return [make() for make in self.factories]


def resolve_bounds(patterns: list[str] | None = None, options: dict[str, dict] | None = None) -> BoundSet:
    """Every registered bound (third-party ones included) whose name matches one of ``patterns``
    (fnmatch; all when None). A plugin that fails to load is skipped with a warning by
    :func:`mi_estimators.registry.entries`; a bound that fails on a small score matrix is
    reported in ``errors`` and left out."""
    options = options or {}
    names, factories, errors = [], [], {}
    pats = patterns or ["*"]
    seen = set()
    for pat in pats:
        matched = False
        for entry, obj in registry.entries("bounds", pat):
            matched = True
            if entry.name in seen:
                continue
            seen.add(entry.name)
            kw = options.get(entry.name, {})

            def make(obj=obj, kw=kw):
                return obj(**kw)

            try:  # a smoke test: value and gradient on an (8, 8) matrix
                scores = torch.randn(8, 8, requires_grad=True)
                bound = make()
                float(bound(scores.detach()))
                bound.loss(scores).backward()
            except Exception as exc:  # noqa: BLE001 - a broken third-party bound is reported, not fatal
                errors[entry.name] = f"{type(exc).__name__}: {exc}"
                continue
            names.append(entry.name)
            factories.append(make)
        if not matched:
            raise ValueError(f"no registered bound matches {pat!r}; available: {', '.join(registry.available())}")
    return BoundSet(names, factories, errors)


def train_stacked(critic: nn.Module, bounds: list[Any], sample: Callable[[int], tuple[Tensor, Tensor]],
                  steps: int, lr: float, progress=None, errors: dict[str, str] | None = None,
                  names: list[str] | None = None) -> np.ndarray:
    """Train copy k of a stacked ``critic`` with ``bounds[k]`` on ``sample(step)`` batches.

    Returns the training-batch estimates, shape ``(K, steps)`` (what Poole et al. plot).
    """
    k_models = len(bounds)
    names = names or [str(i) for i in range(k_models)]
    errors = {} if errors is None else errors
    alive = [True] * k_models
    estimates = np.full((k_models, steps), np.nan)
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


def _per_model(scores: Tensor, k: int) -> Tensor:
    return scores if scores.dim() == 2 else scores[k]


def _loss_is_negated_value(bound: Any) -> bool:
    """True when ``bound.loss(s)`` is ``-bound(s)`` by construction (the base class's loss, or a
    class that says so with ``loss_is_negated_value = True`` in its own body): then the estimate of
    a training step is read off the loss instead of evaluating the bound a second time."""
    from mi_estimators.bounds.base import Bound

    cls = type(bound)
    return isinstance(bound, Bound) and (cls.loss is Bound.loss or cls.__dict__.get("loss_is_negated_value", False))


def train_step(critic: nn.Module, bounds: Sequence[Any], optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
               *, alive: list[bool] | None = None,
               on_error: Callable[[int, Exception], None] | None = None) -> np.ndarray:
    """One optimiser step of K stacked critics (or one critic, K = 1), copy k trained with ``bounds[k]``.

    The copies share no parameters, so the gradient of the summed losses is each copy's own
    gradient, and Adam (elementwise) updates every copy as if it were trained alone.
    Returns the K training-batch estimates ``bounds[k](scores_k)`` (NaN for copies not trained).

    ``alive[k] = False`` skips copy k. With ``on_error``, a bound whose loss raises or is not
    finite is reported as ``on_error(k, exc)`` and marked dead in ``alive`` instead of raising,
    and an estimate that raises ``ValueError`` is NaN.
    """
    alive = [True] * len(bounds) if alive is None else alive
    out = np.full(len(bounds), np.nan)
    scores = critic(x, y)  # (N, N) or (K, N, N)
    losses, trained = [], []  # trained[i]: the copy whose loss is losses[i]
    for k, bound in enumerate(bounds):
        if not alive[k]:
            continue
        try:
            loss = bound.loss(_per_model(scores, k))
            if on_error is not None and not torch.isfinite(loss):
                raise FloatingPointError("non-finite loss")
            losses.append(loss)
            trained.append(k)
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            if on_error is None:
                raise
            alive[k] = False
            on_error(k, exc)
    if not losses:
        return out
    optimizer.zero_grad(set_to_none=True)
    total = torch.stack(losses)
    total.sum().backward()
    optimizer.step()
    with torch.no_grad():
        detached = scores.detach()
        negated = total.detach().neg().tolist()
        for k, minus_loss in zip(trained, negated):
            bound = bounds[k]
            if _loss_is_negated_value(bound):  # the estimate is already known: -loss
                out[k] = minus_loss
                continue
            try:
                out[k] = float(bound(_per_model(detached, k)))
            except ValueError:
                if on_error is None:
                    raise
    return out

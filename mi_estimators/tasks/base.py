"""What every closed-form task shares: the :class:`Task` interface and seed handling.

A task is a named, preconfigured sampler of a joint distribution p(x, y) whose mutual information
is known in closed form (after Czyż et al. 2023, "Beyond Normal: On the Evaluation of Mutual
Information Estimators", arXiv:2306.11078):

* ``task.sample(n, seed)`` -> ``(x, y)``, float64 arrays of shape ``(n, x_dim)``, ``(n, y_dim)``;
* ``task.mi``: the true I(X; Y) in nats (each family derives it in its docstring);
* ``task.mi_stderr``: its standard error in nats, 0 for a closed form; the Gaussian mixtures
  (:mod:`mi_estimators.tasks.mixtures`) integrate their exact density ratio by Monte Carlo;
* ``task.log_density_ratio(x, y)``: ``log p(x, y) / (p(x) p(y))`` per row, shape ``(n,)`` — the
  optimal critic (DV's optimum up to a constant; NWJ's optimum is this plus 1). Its mean over
  joint samples is the MI, which the tests use as an independent Monte-Carlo route;
* ``task.id``: a stable name (the registry name for catalogued tasks).

Transformed tasks map each side with a :class:`SideMap` (forward, a left inverse, the output
width); :class:`Transform` is the elementwise kind, with ``log |f'|`` besides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Union, runtime_checkable

import numpy as np

__all__ = ["InvariantTask", "Seed", "SideMap", "Task", "Transform", "as_generator", "check_pair"]

Seed = Union[int, np.random.Generator, None]


def as_generator(seed: Seed) -> np.random.Generator:
    """A NumPy generator from an int seed, an existing generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise ValueError(f"seed must be a non-negative int, a numpy Generator or None, got {seed!r}")


def check_pair(x, y, x_dim: int, y_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``x, y`` as float64 arrays of shape ``(n, x_dim)``, ``(n, y_dim)``; 1-D input is one column."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or x.shape[1] != x_dim or y.ndim != 2 or y.shape[1] != y_dim:
        raise ValueError(f"expected x of shape (n, {x_dim}) and y of shape (n, {y_dim}), "
                         f"got {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    return x, y


class Task:
    """Base class: subclasses set ``x_dim``, ``y_dim`` and implement ``mi``, ``_sample`` and
    (where known) ``log_density_ratio``."""

    x_dim: int
    y_dim: int
    id: str = "task"
    #: the standard error of ``mi``: 0 where it is a closed form, a Monte-Carlo error otherwise
    mi_stderr: float = 0.0

    @property
    def mi(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, seed: Seed = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` joint samples ``(x, y)`` as float64 arrays ``(n, x_dim)``, ``(n, y_dim)``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer number of samples, got {n!r}")
        x, y = self._sample(int(n), as_generator(seed))
        return np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64)

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def log_density_ratio(self, x, y) -> np.ndarray:
        """``log p(x, y) - log p(x) - log p(y)`` per row, shape ``(n,)``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form density ratio")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r}: x_dim={self.x_dim}, y_dim={self.y_dim}, mi={self.mi:.4f} nats>"


@runtime_checkable
class SideMap(Protocol):
    """A map of one side's rows: ``forward`` ``(n, d) -> (n, out_dim(d))``, ``inverse`` a left
    inverse on its image, ``out_dim(d)`` the output width (raising ``ValueError`` for a ``d`` the
    map does not take)."""

    name: str

    def forward(self, v: np.ndarray) -> np.ndarray: ...

    def inverse(self, u: np.ndarray) -> np.ndarray: ...

    def out_dim(self, d: int) -> int: ...


class InvariantTask(Task):
    """A task built from ``self.base`` by maps that leave the MI unchanged (invertible maps of
    each side, independent columns): its MI and that MI's standard error are the base task's."""

    base: Task

    @property
    def mi(self) -> float:
        return self.base.mi

    @property
    def mi_stderr(self) -> float:
        """The base task's (0 for a closed form)."""
        return getattr(self.base, "mi_stderr", 0.0)


@dataclass(frozen=True)
class Transform:
    """An elementwise bijection of ℝ onto its image, its inverse and ``log |f'(x)|``."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    log_abs_derivative: Callable[[np.ndarray], np.ndarray]

    def out_dim(self, d: int) -> int:
        """Elementwise: the width is kept."""
        return d

"""Invertible marginal transforms: same MI, harder estimation.

For invertible differentiable f, g applied to X and Y separately, the Jacobians of
(x, y) -> (f(x), g(y)) factor into the marginals' Jacobians and cancel in the density ratio:

    p'(f(x), g(y)) / (p'_X(f(x)) p'_Y(g(y))) = p(x, y) / (p_X(x) p_Y(y)),

so I(f(X); g(Y)) = I(X; Y) and ``log r'(x', y') = log r(f⁻¹(x'), g⁻¹(y'))``. Transforms act
elementwise (Czyż et al. 2023, arXiv:2306.11078, use the same four).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

from mi_estimators.tasks.base import Task, check_pair

__all__ = ["TRANSFORMS", "Transform", "TransformedTask"]


@dataclass(frozen=True)
class Transform:
    """An elementwise bijection of ℝ onto its image, its inverse and ``log |f'(x)|``."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    log_abs_derivative: Callable[[np.ndarray], np.ndarray]


_TINY = np.finfo(np.float64).tiny

TRANSFORMS: dict[str, Transform] = {t.name: t for t in (
    Transform("cubic", lambda v: v**3, np.cbrt, lambda v: np.log(3.0) + 2.0 * np.log(np.abs(v))),
    Transform("halfcube", lambda v: v * np.sqrt(np.abs(v)), lambda u: np.sign(u) * np.abs(u) ** (2.0 / 3.0),
              lambda v: np.log(1.5) + 0.5 * np.log(np.abs(v))),
    Transform("asinh", np.arcsinh, np.sinh, lambda v: -0.5 * np.log1p(v**2)),
    # Φ saturates at 1 in float64 beyond ~8.3σ; the inverse clips to keep it finite.
    Transform("normal_cdf", special.ndtr, lambda u: special.ndtri(np.clip(u, _TINY, 1 - 1e-16)),
              lambda v: -0.5 * v**2 - 0.5 * np.log(2 * np.pi)),
)}


def _transform(t) -> Transform | None:
    if t is None or isinstance(t, Transform):
        return t
    try:
        return TRANSFORMS[t]
    except KeyError:
        raise ValueError(f"unknown transform {t!r}; choose one of {', '.join(TRANSFORMS)} or None") from None


class TransformedTask(Task):
    """``(f(X), g(Y))`` for a base task's ``(X, Y)``; I(f(X); g(Y)) = I(X; Y) (see the module doc).

    ``x_transform`` / ``y_transform``: a name in :data:`TRANSFORMS` (``cubic`` y ↦ y³,
    ``halfcube`` y ↦ y·sqrt|y|, ``asinh``, ``normal_cdf``), a :class:`Transform`, or None
    (identity). ``y_transform`` defaults to the same as ``x_transform``.

    >>> from mi_estimators.tasks import GaussianTask
    >>> task = TransformedTask(GaussianTask.from_mi(0.5), "cubic")
    >>> round(task.mi, 6), task.id
    (0.5, 'cubic-gauss-1x1-mi0.5')
    """

    def __init__(self, base: Task, x_transform="cubic", y_transform="same", id: str | None = None):
        self.base = base
        self.fx = _transform(x_transform)
        self.fy = self.fx if isinstance(y_transform, str) and y_transform == "same" else _transform(y_transform)
        self.x_dim, self.y_dim = base.x_dim, base.y_dim
        names = {t.name for t in (self.fx, self.fy) if t is not None}
        self.id = id or f"{'+'.join(sorted(names)) or 'identity'}-{base.id}"

    @property
    def mi(self) -> float:
        return self.base.mi

    def _sample(self, n, rng):
        x, y = self.base.sample(n, rng)
        return (x if self.fx is None else self.fx.forward(x)), (y if self.fy is None else self.fy.forward(y))

    def log_density_ratio(self, x, y) -> np.ndarray:
        x, y = check_pair(x, y, self.x_dim, self.y_dim)
        x = x if self.fx is None else self.fx.inverse(x)
        y = y if self.fy is None else self.fy.inverse(y)
        return self.base.log_density_ratio(x, y)

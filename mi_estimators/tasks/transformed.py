"""Invertible transforms of each side: same MI, harder estimation.

For invertible differentiable f, g applied to X and Y separately, the Jacobians of
(x, y) -> (f(x), g(y)) factor into the marginals' Jacobians and cancel in the density ratio:

    p'(f(x), g(y)) / (p'_X(f(x)) p'_Y(g(y))) = p(x, y) / (p_X(x) p_Y(y)),

so I(f(X); g(Y)) = I(X; Y) and ``log r'(x', y') = log r(f⁻¹(x'), g⁻¹(y'))``. The same holds for
an injective measurable map with a measurable left inverse (an embedding such as the swiss roll,
:mod:`mi_estimators.tasks.swissroll`): the ratio is the Radon-Nikodym derivative
dP_XY / d(P_X ⊗ P_Y), which the map carries over point by point, and data processing in both
directions gives I(f(X); Y) <= I(X; Y) = I(f⁻¹(f(X)); Y) <= I(f(X); Y).

The elementwise :data:`TRANSFORMS` are Czyż et al.'s (2023, arXiv:2306.11078) cubic, half-cube,
asinh and normal CDF, plus their wiggly and bimodal maps (:mod:`mi_estimators.tasks.marginals`).
Maps of a whole row (the spiral, :mod:`mi_estimators.tasks.spiral`; the swiss roll) follow the
:class:`SideMap` protocol.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from mi_estimators.tasks.base import InvariantTask, SideMap, Task, Transform, check_pair
from mi_estimators.tasks.marginals import MARGINAL_TRANSFORMS

__all__ = ["SideMap", "TRANSFORMS", "Transform", "TransformedTask"]


_TINY = np.finfo(np.float64).tiny

_BUILTIN = (
    Transform("cubic", lambda v: v**3, np.cbrt, lambda v: np.log(3.0) + 2.0 * np.log(np.abs(v))),
    Transform("halfcube", lambda v: v * np.sqrt(np.abs(v)), lambda u: np.sign(u) * np.abs(u) ** (2.0 / 3.0),
              lambda v: np.log(1.5) + 0.5 * np.log(np.abs(v))),
    Transform("asinh", np.arcsinh, np.sinh, lambda v: -0.5 * np.log1p(v**2)),
    # Φ saturates at 1 in float64 beyond ~8.3σ; the inverse clips to keep it finite.
    Transform("normal_cdf", special.ndtr, lambda u: special.ndtri(np.clip(u, _TINY, 1 - 1e-16)),
              lambda v: -0.5 * v**2 - 0.5 * np.log(2 * np.pi)),
)

#: name -> elementwise transform: cubic, halfcube, asinh, normal_cdf, wiggly_x/_y, bimodal_x/_y
TRANSFORMS: dict[str, Transform] = {t.name: t for t in _BUILTIN + MARGINAL_TRANSFORMS}


def _transform(t) -> SideMap | None:
    if t is None or isinstance(t, SideMap):
        return t
    try:
        return TRANSFORMS[t]
    except (KeyError, TypeError):
        raise ValueError(f"unknown transform {t!r}; choose one of {', '.join(TRANSFORMS)}, a SideMap "
                         f"(forward, inverse, out_dim) or None") from None


class TransformedTask(InvariantTask):
    """``(f(X), g(Y))`` for a base task's ``(X, Y)``; I(f(X); g(Y)) = I(X; Y) (see the module doc).

    ``x_transform`` / ``y_transform``: a name in :data:`TRANSFORMS` (``cubic`` y ↦ y³,
    ``halfcube`` y ↦ y·sqrt|y|, ``asinh``, ``normal_cdf``, ``wiggly_x`` ...), a :class:`Transform`,
    any :class:`SideMap` (:class:`~mi_estimators.tasks.spiral.Spiral`,
    :class:`~mi_estimators.tasks.swissroll.SwissRoll`), or None (identity). ``y_transform``
    defaults to the same as ``x_transform``. Tasks nest: a transform of a transformed task.

    >>> from mi_estimators.tasks import GaussianTask
    >>> task = TransformedTask(GaussianTask.from_mi(0.5), "cubic")
    >>> round(task.mi, 6), task.id
    (0.5, 'cubic-gauss-1x1-mi0.5')
    """

    def __init__(self, base: Task, x_transform="cubic", y_transform="same", id: str | None = None):
        self.base = base
        self.fx = _transform(x_transform)
        self.fy = self.fx if isinstance(y_transform, str) and y_transform == "same" else _transform(y_transform)
        self.x_dim = base.x_dim if self.fx is None else self.fx.out_dim(base.x_dim)
        self.y_dim = base.y_dim if self.fy is None else self.fy.out_dim(base.y_dim)
        names = {t.name for t in (self.fx, self.fy) if t is not None}
        self.id = id or f"{'+'.join(sorted(names)) or 'identity'}-{base.id}"

    def _sample(self, n, rng):
        x, y = self.base.sample(n, rng)
        return (x if self.fx is None else self.fx.forward(x)), (y if self.fy is None else self.fy.forward(y))

    def log_density_ratio(self, x, y) -> np.ndarray:
        x, y = check_pair(x, y, self.x_dim, self.y_dim)
        x = x if self.fx is None else self.fx.inverse(x)
        y = y if self.fy is None else self.fy.inverse(y)
        return self.base.log_density_ratio(x, y)

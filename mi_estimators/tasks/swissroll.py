"""The swiss roll: a 1-D variable embedded as a curve in the plane, after Czyż et al.

    e(u) = (t cos t, t sin t) / 21,    t = 1.5π (1 + 2u),    u ∈ [0, 1],

(``bmi.transforms.swissroll2d``; the 21 keeps the scale near that of u). The curve winds
1.5 turns, t from 1.5π to 4.5π.

* **Injective, with an explicit left inverse.** ‖(t cos t, t sin t)‖ = t, so the radius gives t
  back: u = (21‖p‖ / 1.5π − 1) / 2. (Injective for every u > −½, where t > 0.)
* **MI.** e(X) lies on a curve, so (e(X), Y) has no density on ℝ³, yet I(e(X); Y) = I(X; Y) and
  the density ratio dP / d(P_X ⊗ P_Y) at (e(x), y) is the base task's at (x, y): an injective
  map with a measurable left inverse loses nothing (:mod:`mi_estimators.tasks.transformed`).
  ``log_density_ratio`` therefore reads points on the roll through the radius; a point off the
  roll is read as the point of the roll at the same radius.

Czyż, Grabowski, Vogt, Beerenwinkel, Marx (2023), "Beyond Normal: On the Evaluation of Mutual
Information Estimators", NeurIPS, arXiv:2306.11078 (the "Swiss roll 2 × 1" task).
"""

from __future__ import annotations

import math

import numpy as np

from mi_estimators.tasks.base import Task
from mi_estimators.tasks.transformed import TransformedTask

__all__ = ["SwissRoll", "swiss_roll_task"]

_START, _SPAN, _SCALE = 1.5 * math.pi, 3.0 * math.pi, 21.0


class SwissRoll:
    """u ↦ (t cos t, t sin t) / 21, t = 1.5π(1 + 2u): rows ``(n, 1)`` to ``(n, 2)``; a
    :class:`~mi_estimators.tasks.base.SideMap` (see the module doc).

    >>> roll = SwissRoll()
    >>> p = roll.forward(np.array([[0.0], [0.25], [1.0]]))
    >>> p.shape, roll.inverse(p).ravel().round(12).tolist()
    ((3, 2), [0.0, 0.25, 1.0])
    """

    name = "swissroll"

    def out_dim(self, d: int) -> int:
        if d != 1:
            raise ValueError(f"the swiss roll embeds a 1-d variable (values in [0, 1]), got width {d}")
        return 2

    def forward(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        self.out_dim(v.shape[-1])
        t = _START + _SPAN * v[..., 0]
        return np.stack([t * np.cos(t), t * np.sin(t)], axis=-1) / _SCALE

    def inverse(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        if u.shape[-1] != 2:
            raise ValueError(f"points of the swiss roll have 2 columns, got {u.shape[-1]}")
        t = _SCALE * np.hypot(u[..., 0], u[..., 1])
        return ((t - _START) / _SPAN)[..., None]


def swiss_roll_task(base: Task, id: str | None = None) -> TransformedTask:
    """X of a ``base`` task with ``x_dim == 1`` and values in [0, 1] rolled into the plane; Y kept."""
    if base.x_dim != 1:
        raise ValueError(f"the swiss roll embeds a 1-d X, got x_dim = {base.x_dim}")
    return TransformedTask(base, SwissRoll(), None, id=id or f"swissroll-{base.id}")

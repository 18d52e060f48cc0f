"""The spiral: a volume-preserving diffeomorphism of ℝᵈ that mixes coordinates, after Czyż et al.

    f(x) = R(s‖x‖²) x,    R(θ) = exp(θA),

with A the generator of rotations in the plane of axes (i, j) (A[i, j] = −1, A[j, i] = 1) and
``speed`` s, so R(θ) turns that plane by the angle θ and leaves the other axes alone. Points on a
sphere turn by an angle that grows with its squared radius.

* **Inverse.** R(θ) is orthogonal, so ‖f(x)‖ = ‖x‖ and x = R(−s‖u‖²) u for u = f(x).
* **Jacobian.** Df(x) = R (I + 2s A x xᵀ), and det(I + a bᵀ) = 1 + bᵀa gives
  det Df = 1 + 2s xᵀAx = 1 since xᵀAx = 0 for skew A: the spiral preserves volume.
* **MI.** f is a diffeomorphism, so applied to X (and another to Y) it keeps I(X; Y) and the
  density ratio at the inverse-mapped point (:mod:`mi_estimators.tasks.transformed`). Unlike the
  elementwise transforms it does not act on each coordinate alone: the copula of the result is not
  the base task's.

:func:`spiral_task` is Czyż et al.'s ``transform_spiral_task`` with ``normalize_speed=True``:
X turns in the plane (0, 1) at speed s / dim X and Y in the plane (1, 2) at speed s / dim Y, so
that s‖x‖²/d is about s for standardised inputs whatever the dimension. When the base marginal of
a side is N(0, I) (the bmi 2-pair Gaussians) the spiral leaves that marginal's law unchanged
(conditionally on ‖x‖ the direction is uniform and a fixed rotation keeps it so); the benchmark's
column standardisation of each sample is then the identity up to sampling error.

Czyż, Grabowski, Vogt, Beerenwinkel, Marx (2023), "Beyond Normal: On the Evaluation of Mutual
Information Estimators", NeurIPS, arXiv:2306.11078, Section 4 (``bmi.transforms.Spiral``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mi_estimators.options import finite_float, integer
from mi_estimators.tasks.base import Task
from mi_estimators.tasks.transformed import TransformedTask

__all__ = ["Spiral", "spiral_task"]


@dataclass(frozen=True)
class Spiral:
    """x ↦ R(speed·‖x‖²) x, turning the plane of axes ``plane = (i, j)`` of ℝ^``dim`` (see the
    module doc). Rows of ``(n, dim)`` arrays; a :class:`~mi_estimators.tasks.base.SideMap`.

    >>> s = Spiral(dim=2, speed=np.pi / 2)
    >>> s.forward(np.array([[1.0, 0.0]])).round(12)  # ‖x‖² = 1: a quarter turn
    array([[0., 1.]])
    >>> s.inverse(s.forward(np.array([[0.3, -2.0]]))).round(12)
    array([[ 0.3, -2. ]])
    """

    dim: int
    speed: float = 1.0
    plane: tuple[int, int] = (0, 1)
    name: str = "spiral"

    def __post_init__(self):
        integer("dim", self.dim, minimum=2, hint=" (a rotation needs a plane)")
        finite_float("speed", self.speed)
        i, j = self.plane
        if not 0 <= i < j < self.dim:
            raise ValueError(f"plane must be two axes (i, j) with 0 <= i < j < dim = {self.dim}, got {self.plane}")

    def out_dim(self, d: int) -> int:
        if d != self.dim:
            raise ValueError(f"this spiral turns rows of width {self.dim}, got width {d}; build Spiral(dim={d})")
        return d

    def _turn(self, v: np.ndarray, sign: float) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        self.out_dim(v.shape[-1])
        theta = sign * self.speed * (v**2).sum(-1)  # ‖v‖², the same before and after the turn
        cos, sin = np.cos(theta), np.sin(theta)
        i, j = self.plane
        out = v.copy()
        out[..., i] = cos * v[..., i] - sin * v[..., j]
        out[..., j] = sin * v[..., i] + cos * v[..., j]
        return out

    def forward(self, v: np.ndarray) -> np.ndarray:
        return self._turn(v, 1.0)

    def inverse(self, u: np.ndarray) -> np.ndarray:
        return self._turn(u, -1.0)

    def log_abs_det_jacobian(self, v: np.ndarray) -> np.ndarray:
        """log |det Df(v)| per row: 0, the spiral preserves volume."""
        return np.zeros(np.shape(v)[:-1])


def spiral_task(base: Task, speed: float = 1.0, id: str | None = None) -> TransformedTask:
    """Czyż et al.'s spiral of a task: X turned in the plane (0, 1) at ``speed / x_dim``, Y in the
    plane (1, 2) at ``speed / y_dim``; needs ``x_dim >= 2`` and ``y_dim >= 3``. Same MI as ``base``."""
    if base.x_dim < 2 or base.y_dim < 3:
        raise ValueError(f"the spiral needs x_dim >= 2 and y_dim >= 3 (bmi's planes (0, 1) and (1, 2)), "
                         f"got {base.x_dim} and {base.y_dim}")
    speed = finite_float("speed", speed)
    fx = Spiral(base.x_dim, speed / base.x_dim, (0, 1))
    fy = Spiral(base.y_dim, speed / base.y_dim, (1, 2))
    return TransformedTask(base, fx, fy, id=id or f"spiral-{base.id}")

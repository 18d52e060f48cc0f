"""Additive uniform noise: X ~ U(0, 1), Y = X + U(−ε, ε)."""

from __future__ import annotations

import math

import numpy as np

from mi_estimators.options import positive_int
from mi_estimators.tasks.base import Task, check_pair

__all__ = ["AdditiveUniformTask", "additive_uniform_mi"]


def additive_uniform_mi(eps: float) -> float:
    """I(X; X + N) for X ~ U(0, 1), N ~ U(−ε, ε): ε − ln 2ε for ε <= ½, 1/(4ε) otherwise."""
    return eps - math.log(2 * eps) if eps <= 0.5 else 1.0 / (4 * eps)


class AdditiveUniformTask(Task):
    """``dim`` independent copies of X ~ U(0, 1), Y = X + N, N ~ U(−ε, ε).

    Derivation (one copy): h(Y | X) = h(N) = ln 2ε, and p_Y(y) = |[y−ε, y+ε] ∩ [0, 1]| / 2ε.

    * ε <= ½: p_Y rises linearly from 0 to 1 on [−ε, ε], equals 1 on [ε, 1−ε] and falls on
      [1−ε, 1+ε]. The flat part adds nothing to h(Y); each ramp adds
      −∫₀^{2ε} (t/2ε) ln(t/2ε) dt = −2ε ∫₀¹ u ln u du = ε/2. So h(Y) = ε and I = ε − ln 2ε.
    * ε > ½: p_Y rises to 1/2ε on [−ε, 1−ε], stays there on [1−ε, ε], falls on [ε, 1+ε].
      Flat part: (2ε−1)/(2ε) · ln 2ε; each ramp: −∫₀¹ (t/2ε) ln(t/2ε) dt = 1/(8ε) + ln(2ε)/(4ε).
      So h(Y) = ln 2ε + 1/(4ε) and I = 1/(4ε).

    Both give ½ at ε = ½. Copies are independent, so I adds up over ``dim``. The density ratio is
    p(y|x)/p(y) = 1 / |[y−ε, y+ε] ∩ [0, 1]| on the support |y − x| <= ε (−∞ off it). The tests
    check h(Y) by numerical integration.

    >>> round(AdditiveUniformTask(0.25).mi, 6) == round(0.25 - math.log(0.5), 6)
    True
    """

    def __init__(self, eps: float, dim: int = 1, id: str | None = None):
        if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a positive half-width of the noise, got {eps!r}")
        positive_int("dim", dim)
        self.eps, self.x_dim, self.y_dim = float(eps), dim, dim
        self.id = id or f"uniform-{dim}x{dim}-eps{eps:g}"

    @property
    def mi(self) -> float:
        return float(self.x_dim * additive_uniform_mi(self.eps))

    def _sample(self, n, rng):
        x = rng.uniform(0.0, 1.0, size=(n, self.x_dim))
        return x, x + rng.uniform(-self.eps, self.eps, size=(n, self.x_dim))

    def log_density_ratio(self, x, y) -> np.ndarray:
        x, y = check_pair(x, y, self.x_dim, self.y_dim)
        overlap = np.minimum(y + self.eps, 1.0) - np.maximum(y - self.eps, 0.0)
        inside = (np.abs(y - x) <= self.eps) & (overlap > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_dim = np.where(inside, -np.log(np.where(overlap > 0, overlap, 1.0)), -np.inf)
        return per_dim.sum(1)

"""The mixture families of the second version of Czyż et al.'s benchmark, with their maps.

Each is a :class:`~mi_estimators.tasks.mixtures.GaussianMixtureTask` (exact density ratio, MI by
Monte Carlo), followed for the galaxy and the waves by an invertible map of X that keeps the MI
(:mod:`mi_estimators.tasks.transformed`). Parameters are the benchmark's defaults:

* **X** (1 × 1, :func:`x_task`): ½ N(0, [[1, ρ], [ρ, 1]]) + ½ N(0, [[1, −ρ], [−ρ, 1]]), ρ = 0.9.
  Both marginals are N(0, 1) and X, Y are uncorrelated, yet dependent.
* **AI** (1 × 1, :func:`ai_task`): six equally weighted components drawing the letters "A" and "I".
* **Galaxy** (2 × 1, :func:`galaxy_task`): ½ N(−c, I₃) + ½ N(c, I₃) with c = (1.5, 1.5, 1.5)
  (``distance`` 3 between the centres), X = the first two axes, then X turned by the spiral
  x ↦ R(s‖x‖²) x, s = 0.5 (:class:`~mi_estimators.tasks.spiral.Spiral`).
* **Waves** (2 × 1, :func:`waves_task`): 12 equally weighted components with means
  1.5 (k, 0, k mod 4) and covariance diag(0.1, 1, 0.1), k = 0..11, then X mapped by
  :class:`Waves`: (x₁, x₂) ↦ (0.1 (x₁ + 5 sin 3x₂) − 0.8, 0.5 x₂).
* **Concentric** (d × 1, :func:`concentric_task`): K equally weighted components; the i-th
  (i = 1..K) is X ~ N(0, i² I_d) beside Y ~ N(i, 10⁻⁴). Y all but names the component, and X
  tells it only through its radius.
* **Inliers** (:func:`inliers_task`): (1 − f) N(0, Σ) + f N(0, Σ_XX ⊕ Σ_YY) for a Gaussian task
  N(0, Σ): a fraction f of the pairs are drawn independently from the same marginals, so the
  marginals stay Gaussian while the dependence is diluted. The benchmark takes Σ of the 2-pair
  Gaussian (:meth:`~mi_estimators.tasks.GaussianTask.structured`, two pairs of correlation 0.8).

The benchmark also z-scores every column of each sample (``transform_rescale``), an affine map
of each side with the sample's moments; it leaves the MI alone and ``estimate()`` standardises
its inputs itself, so the tasks here are the unscaled distributions.

Czyż, Grabowski, Vogt, Beerenwinkel, Marx (2023), "On the Properties and Estimation of Pointwise
Mutual Information Profiles", arXiv:2310.10240 (the X, AI, galaxy, waves, concentric and inlier
distributions; ``bmi.benchmark.tasks.mixtures``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mi_estimators.options import finite_float, integer, positive_float, unit_interval_float
from mi_estimators.tasks.gaussian import GaussianTask
from mi_estimators.tasks.mixtures import GaussianMixtureTask
from mi_estimators.tasks.spiral import Spiral
from mi_estimators.tasks.transformed import TransformedTask

__all__ = ["Waves", "ai_task", "concentric_task", "galaxy_task", "inliers_task", "waves_task", "x_task"]


def x_task(rho: float = 0.9, **cached) -> GaussianMixtureTask:
    """The X: an equal mixture of two standard bivariate normals of correlation +ρ and −ρ."""
    rho = finite_float("rho", rho)
    if not -1 < rho < 1:
        raise ValueError(f"rho must lie strictly between -1 and 1, got {rho}")
    covs = [[[1.0, s * rho], [s * rho, 1.0]] for s in (-1, 1)]
    return GaussianMixtureTask([0.5, 0.5], np.zeros((2, 2)), covs, 1, id=f"mixture-x-1x1-rho{rho:g}", **cached)


def ai_task(**cached) -> GaussianMixtureTask:
    """The AI: the letter I of three axis-aligned components at x = 1, and the letter A of two
    slanted strokes (correlation ±0.95, variances 0.04 and 0.2) and a crossbar, equally weighted."""
    cross = 0.95 * math.sqrt(0.04 * 0.2)
    means = [[1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [-0.8, -0.2], [-1.2, 0.0], [-0.4, 0.0]]
    covs = [np.diag([0.01, 0.2]), np.diag([0.05, 0.001]), np.diag([0.05, 0.001]), np.diag([0.03, 0.001]),
            [[0.04, cross], [cross, 0.2]], [[0.04, -cross], [-cross, 0.2]]]
    return GaussianMixtureTask(np.full(6, 1 / 6), means, covs, 1, id="mixture-ai-1x1", **cached)


def galaxy_task(speed: float = 0.5, distance: float = 3.0, **cached) -> TransformedTask:
    """The galaxy: two unit-covariance balls at ±(distance/2)(1, 1, 1) in ℝ³, X the first two axes
    turned by the spiral of ``speed`` in the plane (0, 1); same MI as the balls."""
    half = positive_float("distance", distance) / 2
    balls = GaussianMixtureTask([0.5, 0.5], [[-half] * 3, [half] * 3], [np.eye(3)] * 2, 2, **cached)
    return TransformedTask(balls, Spiral(2, finite_float("speed", speed), (0, 1), name="galaxy-spiral"), None,
                           id=f"mixture-galaxy-2x1-s{speed:g}-d{distance:g}")


@dataclass(frozen=True)
class Waves:
    """(x₁, x₂) ↦ (scale₁ (x₁ + a sin(b x₂)) + shift, scale₂ x₂): a bijection of ℝ² (x₂ is read
    back first, then x₁); the benchmark's a = 5, b = 3, scales 0.1 and 0.5, shift −0.8. A
    :class:`~mi_estimators.tasks.base.SideMap` of rows ``(n, 2)``.

    >>> w = Waves()
    >>> v = np.array([[0.3, -1.2], [2.0, 0.5]])
    >>> bool(np.allclose(w.inverse(w.forward(v)), v))
    True
    """

    amplitude: float = 5.0
    frequency: float = 3.0
    scale: tuple[float, float] = (0.1, 0.5)
    shift: float = -0.8
    name: str = "waves"

    def __post_init__(self):
        finite_float("amplitude", self.amplitude)
        finite_float("frequency", self.frequency)
        if len(self.scale) != 2 or not all(math.isfinite(s) and s != 0 for s in self.scale):
            raise ValueError(f"scale must be two finite non-zero factors (so the map is invertible), got {self.scale}")

    def out_dim(self, d: int) -> int:
        if d != 2:
            raise ValueError(f"the waves map takes rows of 2 columns, got {d}")
        return 2

    def forward(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        self.out_dim(v.shape[-1])
        wave = v[..., 0] + self.amplitude * np.sin(self.frequency * v[..., 1])
        return np.stack([self.scale[0] * wave + self.shift, self.scale[1] * v[..., 1]], axis=-1)

    def inverse(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        self.out_dim(u.shape[-1])
        v2 = u[..., 1] / self.scale[1]
        v1 = (u[..., 0] - self.shift) / self.scale[0] - self.amplitude * np.sin(self.frequency * v2)
        return np.stack([v1, v2], axis=-1)


def waves_task(n_components: int = 12, amplitude: float = 5.0, frequency: float = 3.0, **cached) -> TransformedTask:
    """The waves: components at 1.5 (k, 0, k mod 4), covariance diag(0.1, 1, 0.1), k < ``n_components``,
    X = the first two axes bent by :class:`Waves` (``amplitude``, ``frequency``); same MI as the mixture."""
    k = integer("n_components", n_components, minimum=1)
    means = [[1.5 * i, 0.0, 1.5 * (i % 4)] for i in range(k)]
    base = GaussianMixtureTask(np.full(k, 1 / k), means, [np.diag([0.1, 1.0, 0.1])] * k, 2, **cached)
    return TransformedTask(base, Waves(amplitude, frequency), None,
                           id=f"mixture-waves-2x1-k{k}-a{amplitude:g}-f{frequency:g}")


def concentric_task(dim_x: int, n_components: int = 3, **cached) -> GaussianMixtureTask:
    """Concentric: component i = 1..K is X ~ N(0, i² I), Y ~ N(i, 10⁻⁴), equally weighted."""
    d = integer("dim_x", dim_x, minimum=1)
    k = integer("n_components", n_components, minimum=1)
    means = [[0.0] * d + [float(i)] for i in range(1, k + 1)]
    covs = [np.diag([float(i * i)] * d + [1e-4]) for i in range(1, k + 1)]
    return GaussianMixtureTask(np.full(k, 1 / k), means, covs, d, id=f"mixture-concentric-{d}x1-k{k}", **cached)


def inliers_task(base: GaussianTask, fraction: float, **cached) -> GaussianMixtureTask:
    """(1 − f) N(0, Σ) + f N(0, Σ_XX ⊕ Σ_YY): the Gaussian ``base`` with a fraction f of independent pairs."""
    f = unit_interval_float("fraction", fraction, " (0 is the base task, 1 independence)", open_left=True,
                            open_right=True)
    independent = base.cov.copy()
    independent[: base.x_dim, base.x_dim:] = 0.0
    independent[base.x_dim:, : base.x_dim] = 0.0
    d = base.cov.shape[0]
    return GaussianMixtureTask([1 - f, f], np.zeros((2, d)), [base.cov, independent], base.x_dim,
                               id=f"mixture-inliers{f:g}-{base.id}", **cached)

"""Monotone 1-D maps with a numerical inverse: Czyż et al.'s wiggly and bimodal marginals.

Both are strictly increasing smooth bijections of ℝ, applied elementwise, so they keep the MI
and the density ratio of any task they transform (:mod:`mi_estimators.tasks.transformed`).

* **wiggly** (``bmi.benchmark.tasks.wiggly``): f(v) = v + Σ_k a_k sin(b_k v + c_k) with
  Σ_k |a_k b_k| < 1, so f'(v) >= 1 − Σ|a_k b_k| > 0. Its inverse has no closed form; since
  |f(v) − v| <= Σ|a_k| =: A, f⁻¹(u) lies in [u − A, u + A] and is found by bisection and Newton
  steps (:func:`solve_increasing`).
* **bimodal** (``bmi.benchmark.tasks.bimodal_gaussians``): f = F⁻¹ ∘ G, with G the CDF of the
  source marginal (standard normal, or Student-t with ``df``) and F the CDF of a mixture
  Σ_k w_k N(m_k, 1). Then f(V) has the mixture as its law whenever V ~ G. Its inverse
  G⁻¹ ∘ F is closed form; f itself is found by bisection and Newton steps. Both work on the
  probit scale, q(x) = Φ⁻¹(F(x)), from log-CDFs of both tails, so nothing saturates at 0 or 1. As
  Φ(q − max m) <= F(x) <= Φ(q − min m) for unit-variance components, f(v) lies in
  [q + min m, q + max m] with q = Φ⁻¹(G(v)).

Czyż, Grabowski, Vogt, Beerenwinkel, Marx (2023), "Beyond Normal: On the Evaluation of Mutual
Information Estimators", NeurIPS, arXiv:2306.11078; the coefficients are theirs.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from scipy import special, stats

from mi_estimators.tasks.base import Transform

__all__ = ["MARGINAL_TRANSFORMS", "bimodal", "solve_increasing", "wiggly"]


def solve_increasing(f: Callable[[np.ndarray], np.ndarray], target: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray, slope: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Elementwise root of f(x) = target for an increasing f, given lo <= root <= hi.

    Vectorised bisection: each step halves every bracket, so 64 steps take a bracket of width
    w <= 10 under 1e-18. With ``slope`` = f', 24 halvings (width under 1e-6) and then 3 Newton
    steps, each kept inside the bracket, reach the same accuracy at a third of the cost: Newton's
    error squares at each step once the bracket is this small.
    """
    lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
    lo, hi = lo.copy(), hi.copy()
    for _ in range(64 if slope is None else 24):
        mid = 0.5 * (lo + hi)
        below = f(mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    x = 0.5 * (lo + hi)
    for _ in range(0 if slope is None else 3):
        x = np.clip(x - (f(x) - target) / slope(x), lo, hi)
    return x


def wiggly(name: str, terms: Sequence[tuple[float, float, float]]) -> Transform:
    """v ↦ v + Σ a sin(b v + c) over ``terms`` = ((a, b, c), ...); needs Σ|a b| < 1 (monotone)."""
    a, b, c = (np.array(col, dtype=np.float64) for col in zip(*terms))
    slack = float(np.abs(a * b).sum())
    if not slack < 1.0:
        raise ValueError(f"wiggly terms need sum |a*b| < 1 to stay increasing, got {slack:g}; shrink the amplitudes")
    reach = float(np.abs(a).sum())

    def forward(v):
        v = np.asarray(v, dtype=np.float64)
        return v + (a * np.sin(b * v[..., None] + c)).sum(-1)

    def derivative(v):
        return 1.0 + (a * b * np.cos(b * np.asarray(v, dtype=np.float64)[..., None] + c)).sum(-1)

    def inverse(u):
        u = np.asarray(u, dtype=np.float64)
        return solve_increasing(forward, u, u - reach, u + reach, derivative)

    def log_abs_derivative(v):
        return np.log(derivative(v))

    return Transform(name, forward, inverse, log_abs_derivative)


def _probit_from_logs(log_lower: np.ndarray, log_upper: np.ndarray) -> np.ndarray:
    """Φ⁻¹(P) from log P (lower tail) and log(1 − P) (upper tail), exact in both tails."""
    return np.where(log_lower < math.log(0.5), special.ndtri_exp(log_lower), -special.ndtri_exp(log_upper))


def _source(df: float | None):
    """(probit, inverse probit, log pdf) of the source marginal G: N(0, 1), or t with ``df``."""
    if df is None:
        return (lambda v: v), (lambda q: q), (lambda v: -0.5 * v**2 - 0.5 * math.log(2 * math.pi))
    t = stats.t(df)

    def probit(v):
        return _probit_from_logs(t.logcdf(v), t.logsf(v))

    def from_probit(q):  # G⁻¹(Φ(q)), through the smaller tail
        return np.where(q < 0, t.ppf(special.ndtr(q)), -t.ppf(special.ndtr(-q)))

    return probit, from_probit, t.logpdf


def bimodal(name: str, weights: Sequence[float], means: Sequence[float], df: float | None = None) -> Transform:
    """v ↦ F⁻¹(G(v)): F the CDF of Σ w_k N(m_k, 1), G that of N(0, 1) (``df`` None) or of t_df."""
    w, m = np.asarray(weights, dtype=np.float64), np.asarray(means, dtype=np.float64)
    if w.shape != m.shape or w.ndim != 1 or (w <= 0).any() or not math.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be positive, sum to 1 and match means; got {weights} and {means}")
    log_w = np.log(w)
    source_probit, source_from_probit, source_logpdf = _source(df)

    def mixture_probit(x):  # Φ⁻¹(F(x)) from log F(x) = log Σ w_k Φ(x − m_k) and log(1 − F(x))
        x = np.asarray(x, dtype=np.float64)[..., None]
        log_lower = np.logaddexp.reduce(log_w + special.log_ndtr(x - m), axis=-1)
        log_upper = np.logaddexp.reduce(log_w + special.log_ndtr(m - x), axis=-1)
        return _probit_from_logs(log_lower, log_upper)

    def log_mixture_pdf(x):
        x = np.asarray(x, dtype=np.float64)[..., None]
        return np.logaddexp.reduce(log_w - 0.5 * (x - m) ** 2, axis=-1) - 0.5 * math.log(2 * math.pi)

    def probit_slope(x):  # d/dx Φ⁻¹(F(x)) = p_F(x) / φ(Φ⁻¹(F(x)))
        q = mixture_probit(x)
        return np.exp(log_mixture_pdf(x) + 0.5 * q**2 + 0.5 * math.log(2 * math.pi))

    def forward(v):
        q = source_probit(np.asarray(v, dtype=np.float64))
        return solve_increasing(mixture_probit, q, q + m.min(), q + m.max(), probit_slope)

    def inverse(u):
        return source_from_probit(mixture_probit(u))

    def log_abs_derivative(v):  # f' = g(v) / p_F(f(v))
        return source_logpdf(np.asarray(v, dtype=np.float64)) - log_mixture_pdf(forward(v))

    return Transform(name, forward, inverse, log_abs_derivative)


#: bmi's maps: ``wiggly_x``/``wiggly_y`` (``wiggly_x``/``wiggly_y`` of bmi's wiggly task) and
#: ``bimodal_x``/``bimodal_y`` (standard normal to 0.3 N(0, 1) + 0.7 N(5, 1), and to
#: 0.5 N(−1, 1) + 0.5 N(3, 1), bmi's bimodal task)
MARGINAL_TRANSFORMS: tuple[Transform, ...] = (
    wiggly("wiggly_x", [(0.4, 1.0, 0.0), (0.2, 1.7, 1.0), (0.03, 3.3, -2.5)]),
    wiggly("wiggly_y", [(-0.4, 0.4, 0.0), (0.17, 1.3, 3.5), (0.02, 4.3, -2.5)]),
    bimodal("bimodal_x", [0.3, 0.7], [0.0, 5.0]),
    bimodal("bimodal_y", [0.5, 0.5], [-1.0, 3.0]),
)

"""The Kraskov–Stögbauer–Grassberger k-nearest-neighbour MI estimator (a non-neural reference).

Kraskov, Stögbauer & Grassberger 2004, "Estimating mutual information", Phys. Rev. E 69,
066138, arXiv:cond-mat/0305641 — their estimator (1):

    Î = ψ(k) + ψ(N) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩,

where, in the max-norm, ε_i is the distance from (x_i, y_i) to its k-th nearest neighbour in the
joint space and n_x(i) (n_y(i)) counts the other points strictly closer than ε_i to x_i (y_i) in
the marginal space. Neighbour searches use :class:`scipy.spatial.cKDTree`. The estimate is
consistent but biased towards 0 at high MI or dimension; here it serves as a baseline for the
neural estimates in the validation report.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(2000, 1)); y = 0.8 * x + 0.6 * rng.normal(size=(2000, 1))
>>> bool(abs(ksg_mi(x, y) - (-0.5 * np.log(1 - 0.8**2))) < 0.05)
True
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

from mi_estimators.arrays import as_array
from mi_estimators.options import integer

__all__ = ["ksg_mi"]


def ksg_mi(x, y, k: int = 3, standardize: bool = True, jitter: float = 1e-10, seed: int | None = 0) -> float:
    """KSG estimate (estimator 1) of I(X; Y) in nats. ``x`` ``(n, dx)``, ``y`` ``(n, dy)``; 1-D
    input is one column. ``standardize`` scales every column to unit variance (the max-norm is
    not scale-free); ``jitter`` adds tiny noise (relative to unit scale) to break ties in
    discrete-valued data, as Kraskov et al. recommend."""
    x, y = as_array(x, "x"), as_array(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    n = x.shape[0]
    if integer("k", k, 1) >= n:
        raise ValueError(f"k must be an integer in [1, n) = [1, {n}), got {k!r}")
    if standardize:
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
        y = (y - y.mean(0)) / np.where(y.std(0) > 0, y.std(0), 1.0)
    if jitter:
        rng = np.random.default_rng(seed)
        x = x + jitter * rng.standard_normal(x.shape)
        y = y + jitter * rng.standard_normal(y.shape)
    joint = np.hstack([x, y])
    # k + 1 neighbours: the first is the point itself
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]
    # strictly closer than eps: shrink the radius by one ulp; subtract the point itself
    radius = np.nextafter(eps, 0)
    nx = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1
    ny = cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True) - 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))

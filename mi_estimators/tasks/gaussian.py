"""Jointly Gaussian tasks: per-dimension correlation, general covariance, BMI-style structures."""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg

from mi_estimators.tasks.base import Task, check_pair

__all__ = ["GaussianTask", "gaussian_logpdf", "rho_for_mi"]


def gaussian_logpdf(z: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``log N(z; 0, cov)`` per row of ``z`` (Cholesky-based)."""
    chol = linalg.cholesky(cov, lower=True)
    sol = linalg.solve_triangular(chol, z.T, lower=True)  # (d, n)
    d = cov.shape[0]
    return -0.5 * (sol**2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * d * math.log(2 * math.pi)


def rho_for_mi(mi: float, d: int) -> float:
    """The correlation ρ giving ``mi`` nats over ``d`` independent pairs: ρ = sqrt(1 − e^{−2 mi/d})."""
    if not mi >= 0 or not math.isfinite(mi):
        raise ValueError(f"mi must be a finite number of nats >= 0, got {mi!r}")
    rho = math.sqrt(-math.expm1(-2.0 * mi / d))
    if rho >= 1.0:  # 1 - rho^2 = e^(-2 mi / d) is below float64 resolution (about 18 nats a pair)
        raise ValueError(
            f"{mi:g} nats over d = {d} pairs is {mi / d:.3g} nats a pair: the correlation rounds to 1 "
            f"in float64 (the limit is about 18 nats a pair); use d >= {math.ceil(mi / 15)} pairs"
        )
    return rho


def _logdet(a: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(a)
    return value


class GaussianTask(Task):
    """Zero-mean jointly Gaussian (X, Y) with joint covariance ``cov`` (X = the first ``x_dim`` axes).

    Mutual information: with differential entropies h(N(0, S)) = ½ log((2πe)^k det S),

        I(X; Y) = h(X) + h(Y) − h(X, Y) = ½ log(det Σ_XX · det Σ_YY / det Σ),

    the (2πe) factors cancelling because dim X + dim Y = dim (X, Y). For d independent pairs each
    of correlation ρ, det Σ = (1 − ρ²)^d and the blocks are identities, so I = −(d/2) log(1 − ρ²);
    the target ``m`` nats needs ρ = sqrt(1 − e^{−2m/d}) (:meth:`from_mi`).

    The optimal critic is ``log p(x, y) − log p(x) − log p(y)``, three Gaussian log-densities.

    >>> task = GaussianTask.from_mi(1.0, d=2)
    >>> round(task.mi, 6)
    1.0
    >>> x, y = task.sample(4, seed=0); x.shape, y.shape
    ((4, 2), (4, 2))
    """

    def __init__(self, cov, x_dim: int, id: str | None = None):
        cov = np.array(cov, dtype=np.float64)
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not 0 < x_dim < cov.shape[0]:
            raise ValueError(f"cov must be a square (dx+dy, dx+dy) matrix with 0 < x_dim < its size; "
                             f"got shape {cov.shape} and x_dim={x_dim}")
        if not np.allclose(cov, cov.T):
            raise ValueError("cov must be symmetric")
        try:
            self._chol = linalg.cholesky(cov, lower=True)
        except linalg.LinAlgError:
            raise ValueError("cov must be positive definite (lower the correlations)") from None
        self.cov = cov
        self.x_dim, self.y_dim = int(x_dim), cov.shape[0] - int(x_dim)
        self.id = id or f"gauss-{self.x_dim}x{self.y_dim}"

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def correlated(cls, d: int, rho: float, id: str | None = None) -> "GaussianTask":
        """d independent pairs (X_k, Y_k), unit variances, correlation ρ each: I = −(d/2) log(1 − ρ²)."""
        if not -1 < rho < 1:
            raise ValueError(f"rho must lie strictly between -1 and 1, got {rho}")
        eye = np.eye(d)
        return cls(np.block([[eye, rho * eye], [rho * eye, eye]]), d, id=id or f"gauss-{d}x{d}-rho{rho:g}")

    @classmethod
    def from_mi(cls, mi: float, d: int = 1, id: str | None = None) -> "GaussianTask":
        """d correlated pairs with ρ chosen so that I = ``mi`` nats."""
        return cls.correlated(d, rho_for_mi(mi, d), id=id or f"gauss-{d}x{d}-mi{mi:g}")

    @classmethod
    def structured(cls, x_dim: int, y_dim: int, corr: float, n_interacting: int | None = None,
                   off_diag: float = 0.0, id: str | None = None) -> "GaussianTask":
        """Unit variances; within X and within Y every pair has correlation ``off_diag``; the
        cross-correlation Cor(X_k, Y_k) = ``corr`` for the first ``n_interacting`` k (sparse
        interactions, BMI's ``sparse``), or Cor(X_i, Y_j) = ``corr`` for every (i, j) when
        ``n_interacting`` is None (dense interactions). After Czyż et al. 2023 (arXiv:2306.11078).
        """
        d = x_dim + y_dim
        cov = np.eye(d)
        for lo, hi in ((0, x_dim), (x_dim, d)):
            block = np.full((hi - lo, hi - lo), off_diag)
            np.fill_diagonal(block, 1.0)
            cov[lo:hi, lo:hi] = block
        if n_interacting is None:
            cov[:x_dim, x_dim:] = corr
            kind = "dense"
        else:
            if not 0 < n_interacting <= min(x_dim, y_dim):
                raise ValueError(f"n_interacting must be in [1, {min(x_dim, y_dim)}], got {n_interacting}")
            for k in range(n_interacting):
                cov[k, x_dim + k] = corr
            kind = f"sparse{n_interacting}"
        cov[x_dim:, :x_dim] = cov[:x_dim, x_dim:].T
        return cls(cov, x_dim, id=id or f"gauss-{kind}-{x_dim}x{y_dim}")

    # -- the task ----------------------------------------------------------------------------
    @property
    def mi(self) -> float:
        dx = self.x_dim
        return float(0.5 * (_logdet(self.cov[:dx, :dx]) + _logdet(self.cov[dx:, dx:]) - _logdet(self.cov)))

    def _sample(self, n, rng):
        z = rng.standard_normal((n, self.cov.shape[0])) @ self._chol.T
        return z[:, : self.x_dim], z[:, self.x_dim:]

    def log_density_ratio(self, x, y) -> np.ndarray:
        x, y = check_pair(x, y, self.x_dim, self.y_dim)
        dx = self.x_dim
        return (gaussian_logpdf(np.hstack([x, y]), self.cov)
                - gaussian_logpdf(x, self.cov[:dx, :dx]) - gaussian_logpdf(y, self.cov[dx:, dx:]))

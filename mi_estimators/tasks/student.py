"""Multivariate Student-t: heavy tails, and MI > 0 even with an identity dispersion."""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg, special

from mi_estimators.tasks.base import Task, check_pair

__all__ = ["StudentTTask", "student_t_logpdf"]


def student_t_logpdf(z: np.ndarray, dispersion: np.ndarray, df: float) -> np.ndarray:
    """``log t_ν(z; 0, Σ)`` per row: lgamma((ν+d)/2) − lgamma(ν/2) − (d/2)log(νπ) − ½log det Σ
    − ((ν+d)/2) log(1 + zᵀΣ⁻¹z/ν)."""
    d = dispersion.shape[0]
    chol = linalg.cholesky(dispersion, lower=True)
    maha = (linalg.solve_triangular(chol, z.T, lower=True) ** 2).sum(0)
    return (special.gammaln((df + d) / 2) - special.gammaln(df / 2) - 0.5 * d * math.log(df * math.pi)
            - np.log(np.diag(chol)).sum() - 0.5 * (df + d) * np.log1p(maha / df))


def _t_entropy_shape(df: float, d: int) -> float:
    """The ν-dependent part of the entropy of a d-variate t with identity dispersion, minus its
    (d/2) log(νπ) term: log Γ(ν/2) − log Γ((ν+d)/2) + ((ν+d)/2)(ψ((ν+d)/2) − ψ(ν/2))."""
    a, b = df / 2, (df + d) / 2
    return special.gammaln(a) - special.gammaln(b) + b * (special.digamma(b) - special.digamma(a))


class StudentTTask(Task):
    """(X, Y) multivariate Student-t with ``df`` = ν degrees of freedom and dispersion Σ.

    Sampling: Z ~ N(0, Σ), W ~ χ²_ν / ν independent, (X, Y) = Z / sqrt(W). The marginals are
    t_ν with the diagonal blocks of Σ. The entropy of a k-variate t_ν(0, S) is

        h = ½ log det S + (k/2) log(νπ) + log Γ(ν/2) − log Γ((ν+k)/2)
            + ((ν+k)/2) (ψ((ν+k)/2) − ψ(ν/2)),

    so in I = h(X) + h(Y) − h(X, Y) the log(νπ) terms cancel and

        I = ½ log(det Σ_XX det Σ_YY / det Σ) + c(ν, dx) + c(ν, dy) − c(ν, dx + dy),

    c(ν, k) = log Γ(ν/2) − log Γ((ν+k)/2) + ((ν+k)/2)(ψ((ν+k)/2) − ψ(ν/2)): the Gaussian term
    plus a correction that is > 0 even for Σ = I (the shared scale W makes X and Y dependent)
    and vanishes as ν → ∞. (Czyż et al. 2023, arXiv:2306.11078, Appendix; Arellano-Valle et al.
    2013.)

    >>> task = StudentTTask.identity(1, 1, df=3)
    >>> task.mi > 0
    True
    """

    def __init__(self, dispersion, x_dim: int, df: float, id: str | None = None):
        if not (isinstance(df, (int, float)) and df > 0 and math.isfinite(df)):
            raise ValueError(f"df must be a positive finite number of degrees of freedom, got {df!r}")
        disp = np.array(dispersion, dtype=np.float64)
        if disp.ndim != 2 or disp.shape[0] != disp.shape[1] or not 0 < x_dim < disp.shape[0]:
            raise ValueError(f"dispersion must be square (dx+dy, dx+dy) with 0 < x_dim < its size, "
                             f"got {disp.shape}, x_dim={x_dim}")
        try:
            self._chol = linalg.cholesky(disp, lower=True)
        except linalg.LinAlgError:
            raise ValueError("dispersion must be symmetric positive definite") from None
        self.dispersion, self.df = disp, float(df)
        self.x_dim, self.y_dim = int(x_dim), disp.shape[0] - int(x_dim)
        self.id = id or f"student-t-{self.x_dim}x{self.y_dim}-df{df:g}"

    @classmethod
    def identity(cls, x_dim: int, y_dim: int, df: float, id: str | None = None) -> "StudentTTask":
        """Identity dispersion: X and Y uncorrelated, yet dependent through the shared scale."""
        return cls(np.eye(x_dim + y_dim), x_dim, df, id=id)

    @classmethod
    def correlated(cls, d: int, rho: float, df: float, id: str | None = None) -> "StudentTTask":
        """d pairs with dispersion correlation ρ each (as :meth:`GaussianTask.correlated`)."""
        eye = np.eye(d)
        return cls(np.block([[eye, rho * eye], [rho * eye, eye]]), d, df,
                   id=id or f"student-t-{d}x{d}-df{df:g}-rho{rho:g}")

    @property
    def gaussian_mi(self) -> float:
        """The Gaussian term ½ log(det Σ_XX det Σ_YY / det Σ)."""
        dx, s = self.x_dim, self.dispersion
        return float(0.5 * (np.linalg.slogdet(s[:dx, :dx])[1] + np.linalg.slogdet(s[dx:, dx:])[1]
                            - np.linalg.slogdet(s)[1]))

    @property
    def mi(self) -> float:
        nu = self.df
        correction = (_t_entropy_shape(nu, self.x_dim) + _t_entropy_shape(nu, self.y_dim)
                      - _t_entropy_shape(nu, self.x_dim + self.y_dim))
        return float(self.gaussian_mi + correction)

    def _sample(self, n, rng):
        z = rng.standard_normal((n, self.dispersion.shape[0])) @ self._chol.T
        w = rng.chisquare(self.df, size=(n, 1)) / self.df
        z = z / np.sqrt(w)
        return z[:, : self.x_dim], z[:, self.x_dim:]

    def log_density_ratio(self, x, y) -> np.ndarray:
        x, y = check_pair(x, y, self.x_dim, self.y_dim)
        dx, s, nu = self.x_dim, self.dispersion, self.df
        return (student_t_logpdf(np.hstack([x, y]), s, nu)
                - student_t_logpdf(x, s[:dx, :dx], nu) - student_t_logpdf(y, s[dx:, dx:], nu))

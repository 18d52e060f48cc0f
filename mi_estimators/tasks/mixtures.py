"""Gaussian mixtures: tasks whose density ratio is exact and whose MI is a Monte-Carlo integral.

A mixture of K Gaussians on the joint space,

    p(x, y) = Σ_k w_k N((x, y); μ_k, Σ_k),

has the mixtures of the components' marginal blocks as its marginals (integrate each component
over y, resp. x):

    p(x) = Σ_k w_k N(x; μ_k^X, Σ_k^XX),    p(y) = Σ_k w_k N(y; μ_k^Y, Σ_k^YY).

So the pointwise mutual information ``log p(x, y) − log p(x) − log p(y)`` is exact (three
log-sum-exps over the components), while its mean under p(x, y), the mutual information

    I(X; Y) = E_p(x,y)[log p(x, y) / (p(x) p(y))],

has no closed form in general (an entropy of a mixture). :meth:`GaussianMixtureTask.monte_carlo_mi`
estimates it as the mean Î = (1/n) Σ_i log r(x_i, y_i) over n joint draws, with standard error
sd(log r) / √n. The task's ``mi`` is that estimate at :data:`MC_SAMPLES` = 10⁶ draws from the seed
:data:`MC_SEED` = 0 (or the value the catalogue caches for it, the same number), and ``mi_stderr``
its standard error: between 4·10⁻⁴ and 1.2·10⁻³ nats for the catalogued tasks. An estimator is then
judged against ``mi ± mi_stderr``, not an exact value; any invertible map of each side
(:class:`~mi_estimators.tasks.transformed.TransformedTask`) keeps both.

These are the "Bend and Mix" models of Czyż, Grabowski, Vogt, Beerenwinkel, Marx (2023), "On
the Properties and Estimation of Pointwise Mutual Information Profiles", arXiv:2310.10240, the
mixture tasks of the second version of their benchmark (:mod:`mi_estimators.tasks.mixture_families`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg, special

from mi_estimators.options import integer
from mi_estimators.tasks.base import Task, as_generator, check_pair

__all__ = ["GaussianMixtureTask", "MC_SAMPLES", "MC_SEED", "mixture_logpdf"]

#: draws and seed of the Monte-Carlo MI every mixture task reports (unless given a cached value)
MC_SAMPLES, MC_SEED = 1_000_000, 0
_CHUNK = 100_000


def _cholesky(cov: np.ndarray, what: str) -> np.ndarray:
    try:
        return linalg.cholesky(cov, lower=True)
    except linalg.LinAlgError:
        raise ValueError(f"the covariance of {what} must be positive definite") from None


def mixture_logpdf(z: np.ndarray, log_weights: np.ndarray, means: np.ndarray, chols: np.ndarray) -> np.ndarray:
    """``log Σ_k w_k N(z; μ_k, L_k L_kᵀ)`` per row of ``z`` ``(n, d)``, from ``log w`` ``(K,)``,
    means ``(K, d)`` and lower Cholesky factors ``(K, d, d)``; a log-sum-exp, so no underflow."""
    d = z.shape[1]
    terms = np.empty((z.shape[0], len(log_weights)))
    for k, (mean, chol) in enumerate(zip(means, chols)):
        sol = linalg.solve_triangular(chol, (z - mean).T, lower=True, check_finite=False)
        terms[:, k] = (log_weights[k] - 0.5 * (sol**2).sum(0) - np.log(np.diag(chol)).sum()
                       - 0.5 * d * math.log(2 * math.pi))
    return special.logsumexp(terms, axis=1)


class GaussianMixtureTask(Task):
    """(X, Y) drawn from Σ_k w_k N(μ_k, Σ_k) on ℝ^(dx+dy), X the first ``x_dim`` axes.

    ``weights`` ``(K,)``: positive, summing to 1. ``means`` ``(K, dx+dy)``. ``covs``
    ``(K, dx+dy, dx+dy)``: symmetric positive definite. ``mi``, ``mi_stderr``: a cached value of
    :meth:`monte_carlo_mi` at :data:`MC_SAMPLES`, :data:`MC_SEED` (the catalogue passes them so
    that building a task costs nothing); computed on first use when not given.

    The log density ratio is exact (module doc); ``mi`` is its Monte-Carlo mean, with standard
    error ``mi_stderr``.

    >>> two = GaussianMixtureTask([0.5, 0.5], [[0, 0], [0, 0]], [[[1, .9], [.9, 1]], [[1, -.9], [-.9, 1]]], 1)
    >>> x, y = two.sample(5, seed=0); x.shape, y.shape
    ((5, 1), (5, 1))
    >>> mi, se = two.monte_carlo_mi(20_000, seed=1); 0.3 < mi < 0.45 and se < 0.01
    True
    """

    def __init__(self, weights, means, covs, x_dim: int, id: str | None = None,
                 mi: float | None = None, mi_stderr: float | None = None):
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        covs = np.asarray(covs, dtype=np.float64)
        if weights.ndim != 1 or not (weights > 0).all() or not math.isclose(weights.sum(), 1.0, abs_tol=1e-9):
            raise ValueError(f"weights must be a 1-d array of positive proportions summing to 1, got {weights}")
        k = len(weights)
        if means.ndim != 2 or means.shape[0] != k or covs.shape != (k, means.shape[1], means.shape[1]):
            raise ValueError(f"for {k} components expected means (K, d) and covs (K, d, d) with K = {k}, "
                             f"got {means.shape} and {covs.shape}")
        d = means.shape[1]
        x_dim = integer("x_dim", x_dim, minimum=1)
        if not x_dim < d:
            raise ValueError(f"x_dim must leave at least one axis for Y: 1 <= x_dim < {d}, got {x_dim}")
        if not np.allclose(covs, covs.transpose(0, 2, 1)):
            raise ValueError("every component covariance must be symmetric")
        if (mi is None) != (mi_stderr is None):
            raise ValueError("give the cached mi and mi_stderr together (or neither, to compute both)")
        self.weights, self.means, self.covs = weights, means, covs
        self.x_dim, self.y_dim = x_dim, d - x_dim
        self.id = id or f"mixture{k}-{x_dim}x{d - x_dim}"
        self._log_w = np.log(weights)
        self._chol = np.stack([_cholesky(c, f"component {i}") for i, c in enumerate(covs)])
        self._chol_x = np.stack([_cholesky(c[:x_dim, :x_dim], f"X in component {i}") for i, c in enumerate(covs)])
        self._chol_y = np.stack([_cholesky(c[x_dim:, x_dim:], f"Y in component {i}") for i, c in enumerate(covs)])
        self._mi = None if mi is None else (float(mi), float(mi_stderr))

    @property
    def mi(self) -> float:
        """I(X; Y) in nats: the Monte-Carlo mean of the exact log ratio (:data:`MC_SAMPLES` draws)."""
        return self._mc()[0]

    @property
    def mi_stderr(self) -> float:
        """The standard error of ``mi``: sd(log r) / √:data:`MC_SAMPLES`."""
        return self._mc()[1]

    def _mc(self) -> tuple[float, float]:
        if self._mi is None:
            self._mi = self.monte_carlo_mi(MC_SAMPLES, MC_SEED)
        return self._mi

    def monte_carlo_mi(self, n: int, seed=0) -> tuple[float, float]:
        """``(mean, standard error)`` of the log density ratio over ``n`` joint draws from ``seed``,
        drawn and evaluated in chunks of 10⁵ rows (one generator, so the draws are those of one
        ``sample(n)`` call only up to chunking)."""
        n = integer("n", n, minimum=2)
        rng = as_generator(seed)
        values = []
        for start in range(0, n, _CHUNK):
            x, y = self.sample(min(_CHUNK, n - start), rng)
            values.append(self.log_density_ratio(x, y))
        pmi = np.concatenate(values)
        return float(pmi.mean()), float(pmi.std(ddof=1) / math.sqrt(n))

    def _sample(self, n, rng):
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        z = rng.standard_normal((n, self.means.shape[1]))
        for k in range(len(self.weights)):
            rows = component == k
            z[rows] = self.means[k] + z[rows] @ self._chol[k].T
        return z[:, : self.x_dim], z[:, self.x_dim:]

    def log_density_ratio(self, x, y) -> np.ndarray:
        x, y = check_pair(x, y, self.x_dim, self.y_dim)
        dx = self.x_dim
        return (mixture_logpdf(np.hstack([x, y]), self._log_w, self.means, self._chol)
                - mixture_logpdf(x, self._log_w, self.means[:, :dx], self._chol_x)
                - mixture_logpdf(y, self._log_w, self.means[:, dx:], self._chol_y))

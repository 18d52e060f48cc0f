r"""Closed-form critics of elliptical copulas: the Student-t copula and its ν = ∞ limit, the Gaussian
copula, reduced to the k leading canonical pairs. This is the library's one closed-form fitted
critic (the Gaussian log density ratio is ν = ∞); :func:`mi_estimators.estimate` uses it as its
copula candidate (:mod:`mi_estimators.estimation.candidates.copula`).

The inputs are normal scores (:func:`mi_estimators.arrays.marginal_transform`, ``"rank"``): each
column already has the marginal N(0, 1), and MI is unchanged by increasing maps of a column. Each
column is mapped to Student-t scores, ``z = t_ν⁻¹(Φ(s))`` (the scores themselves for ν = ∞), and the
joint law of ``z = [x; y]`` is modelled as a centred multivariate t with ν degrees of freedom and a
correlation matrix ``R`` as dispersion: the t copula.

**Canonical coordinates.** With ``Wx = Rxx^{-1/2}``, ``Wy = Ryy^{-1/2}`` and the SVD
``Wx Rxy Wy = U diag(ρ) Vᵀ`` (canonical correlations ρ₁ ≥ ρ₂ ≥ …), the variates ``a = Uᵀ Wx x``,
``b = Vᵀ Wy y`` have dispersion ``[[I, D], [Dᵀ, I]]``. The rank-k model keeps ρ₁..ρ_k and sets the
others to 0. Its log density ratio (the per-column densities and the whitening Jacobians cancel) is

.. math::

    T(x, y) = C_ν - ½ \sum_{l \le k} \log(1 - ρ_l^2)
              - \frac{ν + d}{2} \log\Big(1 + \frac{Q}{ν}\Big)
              + \frac{ν + d_x}{2} \log\Big(1 + \frac{Q_x}{ν}\Big)
              + \frac{ν + d_y}{2} \log\Big(1 + \frac{Q_y}{ν}\Big),

    Q_x = xᵀ R_{xx}^{-1} x,\quad Q_y = yᵀ R_{yy}^{-1} y,\quad
    Q = Q_x + Q_y + \sum_{l \le k} \frac{ρ_l^2 (a_l^2 + b_l^2) - 2 ρ_l a_l b_l}{1 - ρ_l^2},

``C_ν = lnΓ((ν+d)/2) + lnΓ(ν/2) − lnΓ((ν+d_x)/2) − lnΓ((ν+d_y)/2)``, ``d = d_x + d_y``; for ν = ∞
``T = −½ Σ log(1 − ρ_l²) − ½ (Q − Q_x − Q_y)``, the Gaussian log density ratio. It is the exact
log density ratio when the copula is t_ν (or Gaussian) of that rank, and the MI of the model is
(Arellano-Valle, Contreras-Reyes & Genton 2013, Scand. J. Stat. 40:42)

.. math::

    I = -½ \sum_l \log(1-ρ_l^2) + C_ν
        - \frac{ν}{2}ψ\big(\tfrac{ν}{2}\big) - \frac{ν+d}{2}ψ\big(\tfrac{ν+d}{2}\big)
        + \frac{ν+d_x}{2}ψ\big(\tfrac{ν+d_x}{2}\big) + \frac{ν+d_y}{2}ψ\big(\tfrac{ν+d_y}{2}\big).

**Why reduced rank.** A full dispersion fitted on n rows and read out on held-out rows loses about
``d_x d_y / (2n)`` nats (the noise of the cross block): 0.09 nats at 25×25 and n = 3,500, 0.36 at
50×50. Keeping only the canonical pairs that held-out rows support removes that loss when the
dependence is sparse (``studies/README.md``).

**A fraction of independent pairs** (``independent`` = w > 0, Gaussian only). Real pairs are often
partly unrelated: mismatched records, a share of rows in which the two sides were drawn apart. The
Gaussian copula is then contaminated (Huber 1964, Ann. Math. Stat. 35:73) by the product of its
marginals: ``c(x, y) = (1 − w) c_R(x, y) + w``. Both parts have the same marginals, so the cross
block of the mixture is ``(1 − w)`` times the dependent part's and the canonical directions are the
same; the log density ratio of rank k is

.. math::

    T_w(x, y) = \log\big((1 - w)\, e^{T(x, y)} + w\big),

with T the Gaussian ratio above of canonical correlations ρ₁..ρ_k (the dependent part's, not the
mixture's). :func:`fit_independent_fraction` fits (w, ρ) by maximum likelihood on the canonical
variates of the pooled fit: k + 1 parameters. This is the law of the inlier tasks of Czyż et al.'s
benchmark (2023, arXiv:2310.10240). The model's MI has no closed form and is computed by Monte Carlo
(:meth:`EllipticalCopulaCritic.mutual_information`).

**Sparse directions** (``sparse=True``, with independent pairs). In many columns the canonical
directions of a sample cross block are noisy: each of its ``d_x d_y`` entries carries noise of about
``1/√n``, and the leading singular vectors pick up every column a little. Where the dependence lives
in a few of the given columns, soft-thresholding the cross block at the universal level
``λ = √(2 log(d_x d_y) / n)`` (Donoho & Johnstone 1994, Biometrika 81:425; for covariances Rothman,
Levina & Zhu 2009, JASA 104:177) removes that noise before the SVD, with n the rows' effective number
(Kish's ``(Σ τ)² / Σ τ²`` for the weights τ of an EM step). Thresholding also shrinks the kept entries
by λ, so ρ is refitted on the variates by :func:`fit_independent_fraction` as above. The sides' own
blocks, which whiten the directions, are thresholded the same way (:func:`threshold_within`, kept
unthresholded where that would break positive definiteness): with the cross block alone, their noise
still tilts the directions and ρ fits 0.5 % low. On the 25 × 25 inlier task at n = 3,500 this reads
0.278 nats on held-out rows (truth 0.271; 0.272 with the cross blocks alone), where the dense
directions read 0.252 and the true axes 0.279 (six samples). The candidate keeps it only where the
monitor split prefers it.

**Fitting R for ν < ∞**: the EM iteration of the centred multivariate t (Liu & Rubin 1995, Stat.
Sinica 5:19), ``w_i = (ν + d) / (ν + z_iᵀ R⁻¹ z_i)``, ``S = Σ w_i z_i z_iᵀ / n``, R = S scaled to unit
diagonal (the copula's marginals are standard t_ν).

>>> import numpy as np, mi_estimators as mie
>>> task = mie.get("student-t-2x2-df2", kind="tasks")
>>> x, y = task.sample(20000, seed=0)
>>> from mi_estimators.arrays import marginal_transform
>>> rows = np.arange(len(x))
>>> critic = EllipticalCopulaCritic.fit(marginal_transform(x, rows), marginal_transform(y, rows), df=2.0)
>>> abs(critic.mutual_information() - task.mi) < 0.02
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, special
from torch import Tensor, nn

from mi_estimators.options import integer, positive_float

__all__ = ["DF_GRID", "INDEPENDENT_MAX_RANK", "Canonical", "EllipticalCopulaCritic", "fit_dispersion",
           "fit_independent_fraction", "gaussian_pair_ratio", "rank_grid", "t_scores", "threshold_cross",
           "threshold_within"]

#: degrees of freedom :func:`mi_estimators.estimate` tries (``inf``: the Gaussian copula)
DF_GRID = (1.0, 2.0, 3.0, 5.0, 10.0, 30.0, math.inf)
#: the smallest eigenvalue a fitted correlation matrix keeps (:func:`fit_dispersion`)
EIGEN_FLOOR = 1e-8
#: the largest independent fraction and canonical correlation :func:`fit_independent_fraction` fits,
#: and the starting fractions of its optimiser (the likelihood can have several local maxima)
MAX_INDEPENDENT, MAX_RHO, INDEPENDENT_STARTS = 0.99, 0.999, (0.01, 0.3, 0.6)
#: re-estimations of the canonical directions from the dependent part's cross block
#: (:meth:`EllipticalCopulaCritic.with_independent`); the copula candidate fits the fraction at ranks
#: up to ``INDEPENDENT_MAX_RANK``
INDEPENDENT_EM_STEPS, INDEPENDENT_MAX_RANK = 2, 8
#: Monte-Carlo draws of the MI of a model with independent pairs (standard error below 0.002 nats
#: at MI <= 2) and the generator's seed: the same model always gets the same value
MI_DRAWS, MI_SEED = 200_000, 0
#: the smallest eigenvalue a thresholded correlation block of one side may have (:func:`threshold_within`)
WITHIN_EIGEN_FLOOR = 1e-3


def t_scores(s: np.ndarray, df: float) -> np.ndarray:
    """Normal scores ``s`` mapped to standard Student-t scores ``t_ν⁻¹(Φ(s))`` (``s`` for ν = ∞).

    Φ(−|s|) is taken from the lower tail so that extreme scores keep their precision, and each
    distinct |s| is mapped once (normal scores of ranks take few distinct values).
    """
    s = np.asarray(s, dtype=np.float64)
    if math.isinf(df):
        return s
    values, inverse = np.unique(np.abs(s), return_inverse=True)
    return np.sign(s) * -special.stdtrit(df, special.ndtr(-values))[inverse].reshape(s.shape)


def fit_dispersion(z: np.ndarray, df: float, iters: int = 100, tol: float = 1e-7) -> np.ndarray:
    """The correlation-scaled dispersion of a centred multivariate t_ν fitted to the rows ``z`` by
    EM (module docstring); for ν = ∞ the correlation matrix of ``z``."""
    n, d = z.shape
    r = _correlation(z.T @ z / n)
    if math.isinf(df):
        return r
    for _ in range(iters):
        q = ((z @ np.linalg.inv(r)) * z).sum(1)
        w = (df + d) / (df + q)
        new = _correlation((z * w[:, None]).T @ z / n)
        if np.abs(new - r).max() < tol:
            return new
        r = new
    return r


def _correlation(s: np.ndarray) -> np.ndarray:
    """The second-moment matrix ``s`` scaled to unit diagonal, made safely invertible.

    A column that is zero on every row (constant on the training rows, mapped to 0) gets the unit
    row and column: independent of the rest, as it carries nothing. A correlation matrix with an
    eigenvalue below ``EIGEN_FLOOR`` (duplicated or collinear columns) has its eigenvalues raised to
    the floor and is rescaled to unit diagonal: a ridge that leaves every well-conditioned matrix
    untouched (bit for bit) and keeps ``inv`` and the canonical decomposition finite on nearly
    singular ones (their MI stays large, about ``−½ log EIGEN_FLOOR`` per singular direction).
    """
    diag = np.diag(s)
    dead = np.flatnonzero(diag <= 0)
    safe = np.where(diag > 0, diag, 1.0)
    r = s / np.sqrt(np.outer(safe, safe))
    r[dead, :] = 0.0
    r[:, dead] = 0.0
    r[dead, dead] = 1.0
    w, v = np.linalg.eigh(r)
    if w[0] >= EIGEN_FLOOR:
        return r
    r = (v * np.maximum(w, EIGEN_FLOOR)) @ v.T
    scale = np.sqrt(np.diag(r))
    r = r / np.outer(scale, scale)
    np.fill_diagonal(r, 1.0)
    return r


def _inv_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v / np.sqrt(np.clip(w, 1e-12, None))) @ v.T


@dataclass(frozen=True)
class Canonical:
    """The canonical decomposition of a dispersion of ``[x; y]``: the inverse diagonal blocks, the
    canonical directions (``a = ax x``, ``b = by y``) and the canonical correlations ρ (descending)."""

    px: np.ndarray
    py: np.ndarray
    ax: np.ndarray
    by: np.ndarray
    rho: np.ndarray

    @classmethod
    def of(cls, r: np.ndarray, x_dim: int) -> "Canonical":
        wx, wy = _inv_sqrt(r[:x_dim, :x_dim]), _inv_sqrt(r[x_dim:, x_dim:])
        u, rho, vt = np.linalg.svd(wx @ r[:x_dim, x_dim:] @ wy)
        k = len(rho)
        return cls(px=np.linalg.inv(r[:x_dim, :x_dim]), py=np.linalg.inv(r[x_dim:, x_dim:]), ax=u[:, :k].T @ wx,
                   by=vt[:k] @ wy, rho=np.clip(rho, 0.0, 1 - 1e-9))


def gaussian_pair_ratio(a: np.ndarray, b: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """The Gaussian log density ratio of row-paired canonical variates ``a``, ``b`` ``(n, k)`` with
    canonical correlations ``rho`` ``(k,)``: ``Σ_l −½ log(1 − ρ_l²) − (ρ_l²(a_l² + b_l²) − 2ρ_l a_l b_l)
    / (2(1 − ρ_l²))``, one value per row (the diagonal of :meth:`EllipticalCopulaCritic.scores_t`)."""
    g, c = rho ** 2 / (1 - rho ** 2), rho / (1 - rho ** 2)
    return (-0.5 * np.log1p(-rho ** 2) - 0.5 * g * (a ** 2 + b ** 2) + c * a * b).sum(-1)


def fit_independent_fraction(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """The maximum-likelihood (w, ρ) of the Gaussian copula with a fraction w of independent pairs
    (module docstring) on the rows of canonical variates ``a``, ``b`` ``(n, k)``: the mean of
    ``log((1 − w) e^{T(a, b; ρ)} + w)`` maximised by L-BFGS-B from each of ``INDEPENDENT_STARTS``
    (ρ starting at the variates' correlations), w in [0, ``MAX_INDEPENDENT``] and ρ in [0, ``MAX_RHO``].
    The variates of pooled canonical directions have unit variance, so only their cross moments carry
    the fit."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    k = a.shape[1]

    def loss(p: np.ndarray) -> float:
        t = gaussian_pair_ratio(a, b, p[1:])
        return -float(np.mean(np.logaddexp(np.log1p(-p[0]) + t, np.log(max(p[0], 1e-300)))))

    rho0 = np.clip(np.abs((a * b).mean(0)), 0.0, MAX_RHO)
    bounds = [(0.0, MAX_INDEPENDENT)] + [(0.0, MAX_RHO)] * k
    fits = [optimize.minimize(loss, np.r_[w0, rho0], method="L-BFGS-B", bounds=bounds) for w0 in INDEPENDENT_STARTS]
    best = min(fits, key=lambda r: r.fun)
    return float(best.x[0]), best.x[1:]


def threshold_cross(cross: np.ndarray, rows: float) -> np.ndarray:
    """The cross block ``cross`` ``(dx, dy)`` of a correlation matrix fitted on ``rows`` (effective) rows,
    soft-thresholded at the universal level ``λ = √(2 log(dx dy) / rows)`` (module docstring): every
    entry moves λ towards 0 and those within λ of it become 0.

    >>> round(math.sqrt(2 * math.log(4) / 10_000), 4)   # λ for a 2 x 2 block on 10,000 rows
    0.0167
    >>> threshold_cross(np.array([[0.5, 0.01], [-0.02, -0.4]]), rows=10_000).round(3)
    array([[ 0.483,  0.   ],
           [-0.003, -0.383]])
    """
    return _soft_threshold(cross, cross.size, rows)


def _soft_threshold(a: np.ndarray, entries: int, rows: float) -> np.ndarray:
    """``a`` moved towards 0 by the universal level ``√(2 log(entries) / rows)``, clipped at 0."""
    lam = math.sqrt(2 * math.log(max(entries, 2)) / rows)
    return np.sign(a) * np.maximum(np.abs(a) - lam, 0.0)


def threshold_within(r: np.ndarray, rows: float) -> np.ndarray:
    """A side's correlation block ``r`` ``(d, d)`` fitted on ``rows`` rows with its off-diagonal entries
    soft-thresholded like :func:`threshold_cross`, at ``√(2 log(d(d − 1)/2) / rows)``; ``r`` itself where
    that would leave an eigenvalue below ``WITHIN_EIGEN_FLOOR`` (thresholding can break positive
    definiteness when columns are strongly correlated).

    >>> threshold_within(np.array([[1.0, 0.01], [0.01, 1.0]]), rows=10_000)   # 0.01 < λ = 0.0118
    array([[1., 0.],
           [0., 1.]])
    """
    d = len(r)
    out = _soft_threshold(r, d * (d - 1) // 2, rows)
    np.fill_diagonal(out, np.diag(r))
    return out if d < 2 or np.linalg.eigvalsh(out).min() > WITHIN_EIGEN_FLOOR else r


def rank_grid(kmax: int) -> list[int]:
    """The ranks :func:`mi_estimators.estimate` tries: every rank up to 8, then a geometric grid
    (×1.5) up to ``kmax``.

    >>> rank_grid(25)
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 18, 25]
    """
    ks = list(range(0, min(kmax, 8) + 1))
    k = 8
    while k < kmax:
        k = min(kmax, int(math.ceil(k * 1.5)))
        ks.append(k)
    return ks


class EllipticalCopulaCritic(nn.Module):
    """The rank-k t_ν (Gaussian for ν = ∞) copula log density ratio of the module docstring as a
    critic on normal scores: ``critic(x, y)`` is the ``(N, M)`` matrix ``T(x_i, y_j)``.

    Build it with :meth:`fit` (from rows of normal scores) or from a :class:`Canonical`
    decomposition. The scores are computed in float64 and returned as float32; the t scores of
    the inputs are computed on the CPU with SciPy (the critic is never trained).
    """

    def __init__(self, canon: Canonical, df: float, rank: int, independent: float = 0.0, sparse: bool = False):
        super().__init__()
        self.df = math.inf if math.isinf(df) else positive_float("df", df)
        self.rank = min(integer("rank", rank, 0), len(canon.rho))
        self.independent, self.sparse = float(independent), bool(sparse)
        if not 0.0 <= self.independent < 1.0 or (self.independent > 0 and not math.isinf(self.df)):
            raise ValueError(f"independent is the fraction w in [0, 1) of independent pairs of a Gaussian copula "
                             f"(df=inf), got {independent!r} with df={df}")
        self.x_dim, self.y_dim = canon.px.shape[0], canon.py.shape[0]
        for name in ("px", "py"):
            self.register_buffer(name, torch.as_tensor(getattr(canon, name), dtype=torch.float64))
        for name in ("ax", "by", "rho"):
            self.register_buffer(name, torch.as_tensor(getattr(canon, name)[:self.rank], dtype=torch.float64))
        d, dx, dy, nu = self.x_dim + self.y_dim, self.x_dim, self.y_dim, self.df
        lg = special.gammaln
        self.const = 0.0 if math.isinf(nu) else float(lg((nu + d) / 2) + lg(nu / 2) - lg((nu + dx) / 2)
                                                       - lg((nu + dy) / 2))

    @classmethod
    def fit(cls, x, y, df: float = math.inf, rank: int | None = None,
            independent: bool = False, sparse: bool = False) -> "EllipticalCopulaCritic":
        """Fit the t_ν copula (ν = ``df``, ``inf``: Gaussian) of rank ``rank`` (None: full) to rows of
        normal scores ``x`` ``(n, dx)`` and ``y`` ``(n, dy)``; needs n > dx + dy rows. With
        ``independent=True`` (Gaussian only) it is the Gaussian copula with a fraction of independent
        pairs, w and ρ fitted by :func:`fit_independent_fraction` on the rank-k canonical variates,
        and ``sparse=True`` (with ``independent``) takes its directions from thresholded cross blocks.

        With ``df=inf`` and full rank this is the Gaussian log density ratio of the correlation
        matrix of the rows, and its MI ``-½ Σ log(1 − ρ_l²) = ½ log(det Rxx det Ryy / det R)``
        the Gaussian-copula estimate of Ince et al. 2017 (Hum. Brain Mapp. 38:1541): a lower bound
        on I(X; Y) for normal scores, since among joint laws with these marginals and this
        covariance the Gaussian has the largest entropy.
        """
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"fit needs x (n, dx) and y (n, dy) with the same number of rows n, got shapes "
                             f"{x.shape} and {y.shape}; reshape 1-D data with a[:, None]")
        if x.shape[0] <= x.shape[1] + y.shape[1]:
            raise ValueError(f"fit needs more than dx + dy = {x.shape[1] + y.shape[1]} rows to fit a dispersion, "
                             f"got {x.shape[0]}")
        z = t_scores(np.hstack([x, y]), df)
        canon = Canonical.of(fit_dispersion(z, df), x.shape[1])
        rank = len(canon.rho) if rank is None else rank
        if sparse and not independent:
            raise ValueError("sparse=True thresholds the directions of the fit with independent pairs; "
                             "pass independent=True with it")
        return cls.with_independent(canon, rank, x, y, sparse) if independent else cls(canon, df, rank)

    @classmethod
    def with_independent(cls, canon: Canonical, rank: int, x: np.ndarray, y: np.ndarray,
                         sparse: bool = False) -> "EllipticalCopulaCritic":
        """The Gaussian copula of ``canon``'s first ``rank`` canonical directions with a fraction of
        independent pairs, (w, ρ) fitted to the normal-score rows ``(x, y)`` (:func:`fit_independent_fraction`).

        The pooled directions mix both parts; ``INDEPENDENT_EM_STEPS`` times, the rows are weighted
        by their probability of the dependent part, that part's cross block (beside the pooled
        diagonal blocks, which both parts share) gives new canonical directions, and (w, ρ) is
        refitted on them (an EM step for the directions, Dempster, Laird & Rubin 1977). With
        ``sparse=True`` every cross block, the pooled one first, is soft-thresholded
        (:func:`threshold_cross`) before its directions are taken, and so are the two sides' own
        blocks, once (:func:`threshold_within`)."""
        k = min(rank, len(canon.rho))
        rxx, ryy = np.linalg.inv(canon.px), np.linalg.inv(canon.py)  # the pooled blocks, shared by both parts
        if sparse:
            rxx, ryy = threshold_within(rxx, len(x)), threshold_within(ryy, len(x))

        def directions(tau: np.ndarray) -> Canonical:
            cross = (x * tau[:, None]).T @ y / tau.sum()
            if sparse:
                cross = threshold_cross(cross, tau.sum() ** 2 / (tau ** 2).sum())
            return Canonical.of(np.block([[rxx, cross], [cross.T, ryy]]), x.shape[1])

        if sparse:
            canon = directions(np.ones(len(x)))
        for step in range(INDEPENDENT_EM_STEPS + 1):
            a, b = x @ canon.ax[:k].T, y @ canon.by[:k].T
            w, rho = fit_independent_fraction(a, b)
            if step == INDEPENDENT_EM_STEPS or w == 0:
                break
            # each row's probability of the dependent part, and that part's cross block
            tau = special.expit(np.log1p(-w) + gaussian_pair_ratio(a, b, rho) - math.log(w))
            canon = directions(tau)
        return cls(Canonical(canon.px, canon.py, canon.ax, canon.by, np.r_[rho, canon.rho[k:]]), math.inf, k, w,
                   sparse)

    def mutual_information(self) -> float:
        """The MI of the fitted model in nats: closed form (module docstring), or with independent
        pairs ``E[T_w]`` over ``MI_DRAWS`` draws of the model from a generator seeded ``MI_SEED``."""
        if self.independent > 0:
            return self._mi_by_monte_carlo()
        gauss = float(-0.5 * torch.log1p(-self.rho ** 2).sum())
        if math.isinf(self.df):
            return gauss
        nu, d, dx, dy = self.df, self.x_dim + self.y_dim, self.x_dim, self.y_dim
        psi = special.digamma
        return gauss + self.const + float(-nu / 2 * psi(nu / 2) - (nu + d) / 2 * psi((nu + d) / 2)
                                          + (nu + dx) / 2 * psi((nu + dx) / 2) + (nu + dy) / 2 * psi((nu + dy) / 2))

    def _mi_by_monte_carlo(self) -> float:
        rng = np.random.default_rng(MI_SEED)
        rho = self.rho.cpu().numpy()
        a, noise = rng.standard_normal((2, MI_DRAWS, self.rank))
        dependent = rng.random(MI_DRAWS) >= self.independent
        b = np.where(dependent[:, None], rho * a + np.sqrt(1 - rho ** 2) * noise, noise)
        t = gaussian_pair_ratio(a, b, rho)
        return float(np.mean(np.logaddexp(math.log1p(-self.independent) + t, math.log(self.independent))))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of normal-score inputs (mapped to t_ν scores first), on the inputs' device."""
        xt = torch.as_tensor(t_scores(x.detach().cpu().numpy(), self.df), device=self.px.device)
        yt = torch.as_tensor(t_scores(y.detach().cpu().numpy(), self.df), device=self.px.device)
        return self.scores_t(xt, yt).to(device=x.device, dtype=torch.float32)

    def scores_t(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of inputs already mapped to t_ν scores, ``(N, M)`` in float64."""
        x, y = x.to(self.px), y.to(self.px)
        qx, qy = ((x @ self.px) * x).sum(1), ((y @ self.py) * y).sum(1)      # (N,), (M,)
        a, b = x @ self.ax.T, y @ self.by.T                                  # (N, k), (M, k)
        g, c = self.rho ** 2 / (1 - self.rho ** 2), self.rho / (1 - self.rho ** 2)
        extra = (a ** 2 * g).sum(1)[:, None] + (b ** 2 * g).sum(1)[None, :] - 2 * (a * c) @ b.T   # Q − Qx − Qy
        half_logdet = 0.5 * float(torch.log1p(-self.rho ** 2).sum())
        if math.isinf(self.df):
            t = -half_logdet - 0.5 * extra
            if self.independent == 0:
                return t
            return torch.logaddexp(t + math.log1p(-self.independent), t.new_tensor(math.log(self.independent)))
        nu, d = self.df, self.x_dim + self.y_dim
        q = qx[:, None] + qy[None, :] + extra
        return (self.const - half_logdet - (nu + d) / 2 * torch.log1p(q / nu)
                + (nu + self.x_dim) / 2 * torch.log1p(qx / nu)[:, None]
                + (nu + self.y_dim) / 2 * torch.log1p(qy / nu)[None, :])

    def extra_repr(self) -> str:
        extra = (f", independent={self.independent:.4g}" if self.independent else "") + (
            ", sparse=True" if self.sparse else "")
        return f"df={self.df}, rank={self.rank}, x_dim={self.x_dim}, y_dim={self.y_dim}{extra}"

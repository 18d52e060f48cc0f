r"""The reduced candidate: a trained critic on ridge-regularised canonical variates, for inputs too wide
for the copula candidate (images, embeddings: hundreds to thousands of columns, a few rows per column).

**Ridge CCA** (Vinod 1976, J. Econometrics 4:147; the regularised CCA of Leurgans, Moyeed &
Silverman 1993, JRSS B 55:725). With the training covariances ``C_xx``, ``C_yy``, ``C_xy`` of the
normal scores (each column has variance 1, so the mean eigenvalue of ``C_xx`` is 1) and a ridge λ,

.. math::

    W_x = (C_{xx} + λ I)^{-1/2},\quad W_y = (C_{yy} + λ I)^{-1/2},\quad
    W_x C_{xy} W_y = U \operatorname{diag}(\tilde ρ) V^T,

the l-th canonical pair is ``a_l = u_lᵀ W_x x``, ``b_l = v_lᵀ W_y y``, each rescaled to unit variance
on the training rows. λ = 0 is plain CCA, which needs more rows than columns and overfits badly with
few rows per column (its leading sample correlations are near 1 whatever the truth); λ → ∞ is the
SVD of the cross-covariance (partial least squares). The ridge only shrinks the directions of small
variance of each side, i.e. it is PCA-whitening with a soft rank ``Σ e_i / (e_i + λ)``.

**The choice on the monitor split** (:func:`fit_ridge_canonical`). For every λ in ``RIDGE_GRID`` and
every k of :func:`~mi_estimators.copula.rank_grid` (up to ``REDUCED_MAX_RANK``), the Gaussian log
density ratio of the k pairs with the correlations ``r_l`` they have on the training rows,

.. math::

    T_k(a, b) = -½ \sum_{l \le k} \log(1 - r_l^2)
                - ½ \sum_{l \le k} \frac{r_l^2 (a_l^2 + b_l^2) - 2 r_l a_l b_l}{1 - r_l^2},

is read out by DV on the monitor split (any function is a critic, so each value is a lower bound on
I(X; Y); the largest picks λ and k by held-out evidence, not by a rule of thumb).

**The candidate** (:func:`reduced_candidate`): the trained critic of ``opts`` on those k variates of
each side plus its mean square (:class:`~mi_estimators.critics.ProjectedCritic`, as the canonical
reduction of the trained candidate), early stopping on the monitor split; cross-fitted by refitting
the ridge CCA (same λ and k) and the critic on each fold. Its name is ``"trained-ridge-cca-k"``.
It is fitted only where the copula candidate is not (``reduce=True``, fewer than
``COPULA_MIN_ROWS_PER_DIM`` training rows per column) and both sides have at least
``CANONICAL_MIN_DIM`` columns; it competes with the trained critic on all columns on the monitor.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from mi_estimators import registry
from mi_estimators.copula import rank_grid
from mi_estimators.critics import ProjectedCritic
from mi_estimators.estimation.candidates.base import Context
from mi_estimators.estimation.candidates.copula import COPULA_MIN_ROWS_PER_DIM
from mi_estimators.estimation.candidates.trained import CANONICAL_MIN_DIM, TrainedCandidate, make_critic
from mi_estimators.estimation.options import EstimateOptions
from mi_estimators.fit import held_out

__all__ = ["REDUCED_MAX_RANK", "RIDGE_GRID", "RidgeCanonical", "RidgeReduction", "fit_ridge_canonical",
           "gaussian_pair_scores", "reduced_candidate"]

#: ridges λ tried, relative to the mean eigenvalue of each side's covariance (1 for normal scores)
RIDGE_GRID = (0.01, 0.1, 1.0, 10.0)
#: the most canonical pairs the reduced critic takes
REDUCED_MAX_RANK = 32


def _inv_sqrt_ridge(c: np.ndarray, ridge: float) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(np.clip(w, 0.0, None) + ridge)) @ v.T


@dataclass(frozen=True)
class RidgeCanonical:
    """Ridge-CCA directions of a pair of sides (module docstring): ``ax`` ``(k, d_x)`` and ``by``
    ``(k, d_y)`` map rows to unit-variance canonical variates; ``r`` are the variates' correlations
    on the rows they were fitted to (descending in the ridge correlations)."""

    ax: np.ndarray
    by: np.ndarray
    r: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float, rank: int | None = None) -> "RidgeCanonical":
        """Fit to rows ``x`` ``(n, d_x)``, ``y`` ``(n, d_y)`` with ridge λ = ``ridge`` times each side's mean
        eigenvalue, keeping ``rank`` pairs (None: ``min(d_x, d_y, n − 1)``)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) < 3:
            raise ValueError(f"RidgeCanonical.fit needs x (n, dx) and y (n, dy) with the same n >= 3 rows, got "
                             f"{x.shape} and {y.shape}")
        if not ridge > 0:
            raise ValueError(f"ridge must be > 0 (a fraction of the mean eigenvalue, e.g. 0.1), got {ridge}")
        n = len(x)
        x, y = x - x.mean(0), y - y.mean(0)
        cxx, cyy = x.T @ x / n, y.T @ y / n
        wx = _inv_sqrt_ridge(cxx, ridge * max(np.trace(cxx) / len(cxx), 1e-12))
        wy = _inv_sqrt_ridge(cyy, ridge * max(np.trace(cyy) / len(cyy), 1e-12))
        u, _, vt = np.linalg.svd(wx @ (x.T @ y / n) @ wy, full_matrices=False)
        k = min(len(vt), n - 1) if rank is None else min(rank, len(vt))
        ax, by = u[:, :k].T @ wx, vt[:k] @ wy
        a, b = x @ ax.T, y @ by.T
        sa, sb = a.std(0), b.std(0)
        sa, sb = np.where(sa > 0, sa, 1.0), np.where(sb > 0, sb, 1.0)
        r = np.clip((a * b).mean(0) / (sa * sb), -1 + 1e-6, 1 - 1e-6)
        return cls(ax / sa[:, None], by / sb[:, None], r)

    def variates(self, x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` canonical variates of rows ``(x, y)``."""
        return x @ self.ax[:k].T, y @ self.by[:k].T


def gaussian_pair_scores(a: Tensor, b: Tensor, r: Tensor) -> Tensor:
    """``T_k(a_i, b_j)`` of the module docstring: the ``(N, M)`` Gaussian log density ratio of k
    independent pairs of unit-variance variates with correlations ``r``."""
    g, c = r ** 2 / (1 - r ** 2), r / (1 - r ** 2)
    quad = (a ** 2 * g).sum(1)[:, None] + (b ** 2 * g).sum(1)[None, :] - 2 * (a * c) @ b.T
    return -0.5 * torch.log1p(-r ** 2).sum() - 0.5 * quad


def fit_ridge_canonical(ctx: Context) -> tuple[float, int, float]:
    """``(ridge, k, monitor value)``: the λ of ``RIDGE_GRID`` and k <= ``REDUCED_MAX_RANK`` whose Gaussian
    pair critic has the largest DV value on the monitor split (module docstring); k = 0 scores 0."""
    (xtr, ytr), (xva, yva) = ((a.detach().cpu().double().numpy() for a in pair) for pair in ctx.data[:2])
    dv = registry.get("dv")
    kmax = min(xtr.shape[1], ytr.shape[1], REDUCED_MAX_RANK, len(xtr) - 1)
    best = (0.0, RIDGE_GRID[0], 0)
    for ridge in RIDGE_GRID:
        canon = RidgeCanonical.fit(xtr, ytr, ridge, kmax)
        a, b = (torch.as_tensor(v) for v in canon.variates(xva - xtr.mean(0), yva - ytr.mean(0), kmax))
        r = torch.as_tensor(canon.r)
        for k in rank_grid(kmax)[1:]:
            value, _ = held_out(lambda u, v, k=k: gaussian_pair_scores(u[:, :k], v[:, :k], r[:k]), dv, a, b,
                                ctx.opts.eval_batch, groups=0)
            if value > best[0]:
                best = (value, ridge, k)
    value, ridge, k = best
    return ridge, k, value


@dataclass(frozen=True)
class RidgeReduction:
    """The :class:`~mi_estimators.estimation.candidates.trained.Reduction` of this module: ridge CCA with
    λ = ``ridge`` fitted to the rows given, its ``rank`` leading pairs (plus each side's mean square)
    feeding the critic of ``opts``."""

    ridge: float
    rank: int
    info: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"trained-ridge-cca-{self.rank}"

    def critic(self, opts: EstimateOptions, x: Tensor, y: Tensor) -> nn.Module:
        """Ridge CCA fitted to the rows ``(x, y)``; the critic of ``opts`` on its variates."""
        canon = RidgeCanonical.fit(x.detach().cpu().double().numpy(), y.detach().cpu().double().numpy(),
                                   self.ridge, self.rank)
        inner = make_critic(dataclasses.replace(opts, critic_options=dict(opts.critic_options, norm_feature=False)),
                            self.rank + 1, self.rank + 1)
        return ProjectedCritic(inner, *(torch.as_tensor(p, dtype=x.dtype, device=x.device)
                                        for p in (canon.ax, canon.by)))


def applies(ctx: Context, copula_fitted: bool) -> bool:
    """Whether the reduced candidate is fitted (module docstring)."""
    opts, (x, y) = ctx.opts, ctx.data.train
    return (opts.reduce and not copula_fitted and isinstance(opts.critic, str)
            and min(x.shape[1], y.shape[1]) >= CANONICAL_MIN_DIM
            and len(x) < COPULA_MIN_ROWS_PER_DIM * (x.shape[1] + y.shape[1]))


def reduced_candidate(ctx: Context, copula_fitted: bool) -> TrainedCandidate | None:
    """The trained critic on the ridge-CCA variates chosen on the monitor split, or None where it does
    not apply (:func:`applies`) or no canonical pair beats independence on the monitor split."""
    if not applies(ctx, copula_fitted):
        return None
    ridge, k, value = fit_ridge_canonical(ctx)
    if k == 0 or not math.isfinite(value):
        return None
    return TrainedCandidate.fit(ctx, reduction=RidgeReduction(ridge, k, dict(ridge=ridge, ridge_cca_monitor=value)))

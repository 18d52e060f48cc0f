"""Poole et al.'s interpolated bound I_α between the multi-sample InfoNCE and the single-sample NWJ.

Reference: B. Poole, S. Ozair, A. van den Oord, A. A. Alemi, G. Tucker, "On Variational Bounds of
Mutual Information", ICML 2019, arXiv:1905.06922 (Sec. 2.5, eq. 11).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mi_estimators.bounds.base import Bound, BoundInfo
from mi_estimators.scores import ScoreShape, off_diagonal_mean, safe_exp
from mi_estimators.options import finite_float, unit_interval_float

__all__ = ["Interpolated", "interpolated_ceiling", "leave_one_out_log_mean_exp"]


def leave_one_out_log_mean_exp(scores: Tensor) -> Tensor:
    """``out[i, j] = log mean_{k != j} exp(scores[i, k])`` for an ``(N, N)`` matrix, stably.

    ``log(e^{lse_i} - e^{s_ij}) = lse_i + log1p(-e^{s_ij - lse_i})`` is exact and stable except
    where ``s_ij`` dominates its row; that one entry per row (the row's arg-max) is recomputed as a
    masked ``logsumexp``. O(N^2) memory.
    """
    n = scores.shape[1]
    lse = torch.logsumexp(scores, dim=1, keepdim=True)                       # (N, 1)
    top = scores.argmax(dim=1)                                               # (N,)
    rows = torch.arange(scores.shape[0], device=scores.device)
    is_top = torch.zeros_like(scores, dtype=torch.bool)
    is_top[rows, top] = True
    # every non-arg-max entry has s_ij - lse_i <= -log 2; the clamp only guards the discarded branch
    removed = lse + torch.log1p(-torch.exp((scores - lse).clamp(max=-math.log(2.0))))
    without_top = torch.logsumexp(scores.masked_fill(is_top, -math.inf), dim=1, keepdim=True)
    return torch.where(is_top, without_top, removed) - math.log(n - 1)


def interpolated_ceiling(alpha: float, n: int) -> float | None:
    """The most ``I_α`` can be on ``(N, N)`` scores (see :class:`Interpolated`); None at ``α = 0``."""
    if alpha == 1.0:
        return math.log(n - 1)
    return 1.0 + math.log((n - 1) / alpha) if alpha > 0 else None


class Interpolated(Bound):
    r"""Interpolated lower bound ``I_α`` (Poole et al. 2019, eq. 11; arXiv:1905.06922).

    .. math::

        I_\alpha = 1 + \mathbb{E}\Big[\log\frac{e^{f(x_1,y)}}{\alpha\, m(y; x_{1:K}) + (1-\alpha)\, q(y)}\Big]
                 - \mathbb{E}\Big[\frac{e^{f(x_1,y)}}{\alpha\, m(y; x_{1:K}) + (1-\alpha)\, q(y)}\Big],
        \qquad m = \frac{1}{K}\sum_k e^{f(x_k, y)}

    (first expectation over joint samples, second over independent ones). The paper's ``α``
    weights the multi-sample term ``m``, so **α = 1 is the InfoNCE end and α = 0 the NWJ end**:

    * ``α = 0``: with this class's constant baseline ``log q = log_baseline = 1`` (default), the
      value is exactly :class:`~mi_estimators.bounds.nwj.NWJ` (another constant gives TUBA);
    * ``α = 1``: the value is InfoNCE with ``K = N - 1`` candidates (the positive and ``N - 2``
      negatives), averaged over which negative is left out, so it never exceeds ``log(N - 1)``.

    In between it trades NWJ's variance for InfoNCE's ``log K`` ceiling: for ``α > 0`` the joint term
    is at most ``log((N - 1) / α)`` (``m`` for ``j != i`` contains ``e^{T_ii} / (N - 1)``) and the
    marginal term is ``>= 0``, so ``I_α <= 1 + log((N - 1) / α)`` (``log(N - 1)`` at ``α = 1``; no
    ceiling at ``α = 0``, as for NWJ). Implementation as the
    authors' code, in our row convention (``scores[i, j] = T(x_i, y_j)``, the multi-sample
    average runs along a row): ``m`` for the pair ``(i, j)`` is the leave-one-out mean over
    ``k != j`` of ``e^{T(x_i, y_k)}``, the joint term averages ``T_ii - log(α m_ij + (1-α) q)``
    over ``j != i``, the marginal term averages ``e^{T_ij} / (α m_ii + (1-α) q)`` over ``j != i``.
    Poole et al. learn a baseline network ``q(y)``; we use the constant ``e^{log_baseline}`` so
    the bound needs scores only. Takes ``(N, N)`` scores.

    >>> import torch, mi_estimators as mie
    >>> scores = torch.randn(6, 6)
    >>> bool(torch.isclose(mie.get("interpolated", alpha=0.0)(scores), mie.get("nwj")(scores), atol=1e-5))
    True
    """

    info = BoundInfo(
        name="interpolated",
        summary="Poole et al.'s I_alpha: alpha=1 InfoNCE-like (K = N - 1), alpha=0 NWJ",
        kind="lower",
        reference="Poole et al. 2019, arXiv:1905.06922",
        score_shapes=(ScoreShape.PAIRS,),
        ceiling="log(N - 1) at alpha = 1; 1 + log((N - 1) / alpha) for alpha > 0",
        max_value=lambda bound, shape: interpolated_ceiling(bound.alpha, shape[0]),
        options={"alpha": "weight of the multi-sample (InfoNCE) baseline, in [0, 1] (default 0.5)",
                 "log_baseline": "constant log q of the single-sample baseline (default 1.0: alpha=0 is NWJ)"},
    )
    def __init__(self, alpha: float = 0.5, log_baseline: float = 1.0):
        super().__init__()
        self.alpha = unit_interval_float("alpha", alpha, " (1 = InfoNCE end, 0 = NWJ end)")
        self.log_baseline = finite_float("log_baseline", log_baseline, " (nats)")

    def value(self, scores: Tensor) -> Tensor:
        log_a = math.log(self.alpha) if self.alpha > 0 else -math.inf
        log_1ma = math.log1p(-self.alpha) if self.alpha < 1 else -math.inf
        if self.alpha > 0:
            m = leave_one_out_log_mean_exp(scores)                                # (N, N)
            baseline = torch.logaddexp(m + log_a, torch.full_like(m, log_1ma + self.log_baseline))
        else:
            baseline = torch.full_like(scores, self.log_baseline)
        joint = off_diagonal_mean(scores.diagonal()[:, None] - baseline)
        marginal = off_diagonal_mean(safe_exp(scores - baseline.diagonal()[:, None]))
        return 1.0 + joint - marginal

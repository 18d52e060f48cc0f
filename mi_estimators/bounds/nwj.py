"""NWJ (f-divergence) and TUBA lower bounds.

References: X. Nguyen, M. J. Wainwright, M. I. Jordan, "Estimating divergence functionals and the
likelihood ratio by convex risk minimization", IEEE Trans. Inf. Theory 2010, arXiv:0809.0853;
B. Poole, S. Ozair, A. van den Oord, A. A. Alemi, G. Tucker, "On Variational Bounds of Mutual
Information", ICML 2019, arXiv:1905.06922.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mi_estimators.bounds.base import Bound, BoundInfo
from mi_estimators.scores import PAIRS_AND_LOCATIONS, nwj_value
from mi_estimators.options import finite_float

__all__ = ["NWJ", "TUBA"]


class NWJ(Bound):
    r"""NWJ / f-divergence lower bound (Nguyen et al. 2010, arXiv:0809.0853; "MINE-f", "f-GAN KL").

    .. math::

        I(X;Y) \ge \hat I_{NWJ} = \mathbb{E}_{P_{XY}}[T] - e^{-1}\,\mathbb{E}_{P_X\otimes P_Y}[e^{T}]

    The bound is tight at ``T* = 1 + log p(x,y)/(p(x)p(y))``, where each batch estimate is
    *unbiased* (both expectations are plain means); its variance grows like ``e^I``. For
    ``(N, N, L)`` scores the means pool all ``N·L`` positives and all ``N(N-1)·L`` negatives.
    ``e^T`` is continued linearly above 50 nats (:func:`~mi_estimators.scores.safe_exp`) so
    that values and gradients stay finite for any finite scores.

    >>> import torch, mi_estimators as mie
    >>> float(mie.get("nwj")(torch.ones(4, 4)))        # T = 1 everywhere: 1 - e^{-1} e^1 = 0
    0.0
    """

    info = BoundInfo(
        name="nwj",
        summary="Nguyen-Wainwright-Jordan: E_P[T] - e^-1 E_PxP[e^T] (unbiased, high variance)",
        kind="lower",
        reference="Nguyen, Wainwright & Jordan 2010, arXiv:0809.0853",
        score_shapes=PAIRS_AND_LOCATIONS,
    )

    def value(self, scores: Tensor) -> Tensor:
        return nwj_value(scores)


class TUBA(Bound):
    r"""TUBA, the tractable unnormalised Barber–Agakov bound (Poole et al. 2019, eq. 6; arXiv:1905.06922).

    .. math::

        I(X;Y) \ge \mathbb{E}_{P_{XY}}[T - a] - \mathbb{E}_{P_X\otimes P_Y}[e^{T - a}] + 1

    with a log-baseline ``a``. Poole et al. write ``a(y)``; the bound holds for a baseline of
    either variable, and with our row convention (``scores[i, j] = T(x_i, y_j)``) the natural
    per-row baseline is ``a(x_i)``. Call ``bound(scores, log_baseline=a)`` with ``a`` a float or a
    tensor of shape ``(N,)`` (one value per row ``i``; reshaped to broadcast over ``j`` and the
    locations) or of any shape broadcastable to ``scores``. Without it the constructor's constant
    ``log_baseline`` is used (default 0). ``log_baseline=1`` gives exactly :class:`NWJ`.
    Expectations pool locations as in NWJ.

    >>> import torch, mi_estimators as mie
    >>> tuba, scores = mie.get("tuba"), torch.randn(6, 6)
    >>> bool(torch.isclose(tuba(scores, log_baseline=1.0), mie.get("nwj")(scores)))
    True
    """

    info = BoundInfo(
        name="tuba",
        summary="TUBA: E_P[T - a] - E_PxP[e^(T - a)] + 1 with a log-baseline a (per row)",
        kind="lower",
        reference="Poole et al. 2019, arXiv:1905.06922",
        score_shapes=PAIRS_AND_LOCATIONS,
        options={"log_baseline": "constant log-baseline a used when forward() gets none (default 0.0)"},
    )

    def __init__(self, log_baseline: float = 0.0):
        super().__init__()
        self.log_baseline = finite_float("log_baseline", log_baseline,
                                          " (nats; pass per-row baselines to forward(scores, log_baseline=...))")

    def value(self, scores: Tensor, log_baseline: Tensor | float | None = None) -> Tensor:
        return nwj_value(scores, log_baseline=self._baseline(scores, log_baseline))

    def _baseline(self, scores: Tensor, log_baseline: Tensor | float | None) -> Tensor | float:
        if log_baseline is None:
            return self.log_baseline
        if not isinstance(log_baseline, Tensor):
            return float(log_baseline)
        n = scores.shape[0]
        if log_baseline.dim() == 1 and log_baseline.shape[0] == n:
            log_baseline = log_baseline.reshape((n,) + (1,) * (scores.dim() - 1))
        try:
            ok = torch.broadcast_shapes(log_baseline.shape, scores.shape) == scores.shape
        except RuntimeError:
            ok = False
        if not ok or not log_baseline.is_floating_point():
            raise ValueError(
                f"log_baseline must be a float tensor of shape (N,) = ({n},) (one per row) or broadcastable "
                f"to the scores {tuple(scores.shape)}; got {tuple(log_baseline.shape)} {log_baseline.dtype}")
        return log_baseline

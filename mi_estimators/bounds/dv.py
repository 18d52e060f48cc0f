"""Donsker–Varadhan (DV) bound and MINE, its bias-corrected training rule.

References: M. D. Donsker, S. R. S. Varadhan, "Asymptotic evaluation of certain Markov process
expectations for large time IV", Comm. Pure Appl. Math. 1983; M. I. Belghazi, A. Baratin,
S. Rajeswar, S. Ozair, Y. Bengio, A. Courville, R. D. Hjelm, "Mutual Information Neural
Estimation" (MINE), ICML 2018, arXiv:1801.04062.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mi_estimators.bounds.base import Bound, BoundInfo
from mi_estimators.scores import PAIRS_AND_LOCATIONS, diagonal, log_mean_exp_off_diagonal
from mi_estimators.options import unit_interval_float

__all__ = ["DV", "MINE", "dv_value"]


def dv_value(scores: Tensor) -> Tensor:
    """``mean(positives) - log mean exp(negatives)``, pooling the ``L`` locations of (N, N, L) scores."""
    return diagonal(scores).mean() - log_mean_exp_off_diagonal(scores)


class DV(Bound):
    r"""Donsker–Varadhan lower bound (Belghazi et al. 2018, eq. 5; arXiv:1801.04062).

    .. math::

        I(X;Y) \ge \hat I_{DV} = \mathbb{E}_{P_{XY}}[T] - \log \mathbb{E}_{P_X \otimes P_Y}[e^{T}]

    estimated as the mean of the ``N`` diagonal scores minus the log-mean-exp of the ``N(N-1)``
    off-diagonal ones. For ``(N, N, L)`` scores both expectations pool the locations: the mean over
    all ``N·L`` positives ``[i, i, l]`` minus the log-mean-exp over all ``N(N-1)·L`` negatives.
    The optimal critic is ``T* = log p(x,y)/(p(x)p(y)) + const``; the estimate is unchanged by
    adding a constant to every score. The batch estimate of ``log E[e^T]`` is biased, which is
    what :class:`MINE` corrects in the gradient.

    >>> import torch, mi_estimators as mie
    >>> dv = mie.get("dv")
    >>> float(dv(torch.zeros(4, 4)))                   # an uninformative critic: 0 nats
    0.0
    """

    info = BoundInfo(
        name="dv",
        summary="Donsker-Varadhan: E_P[T] - log E_PxP[e^T]",
        kind="lower",
        reference="Donsker & Varadhan 1983; Belghazi et al. 2018, arXiv:1801.04062",
        score_shapes=PAIRS_AND_LOCATIONS,
    )

    def value(self, scores: Tensor) -> Tensor:
        return dv_value(scores)


class MINE(DV):
    r"""MINE (Belghazi et al. 2018, arXiv:1801.04062): the DV value, trained with a bias-corrected gradient.

    The value is the DV estimate (see :class:`DV`). The minibatch gradient of
    ``log E[e^T]``, ``E_B[∇T e^T] / E_B[e^T]``, is biased because the denominator is a batch
    estimate; MINE (Sec. 3.2) replaces it with an exponential moving average across steps:

    .. math::

        \hat G = \mathbb{E}_B[\nabla T] - \frac{\mathbb{E}_B[\nabla T\, e^{T}]}{\bar m_t},
        \qquad \bar m_t = (1 - r)\,\bar m_{t-1} + r\,\mathbb{E}_B[e^{T}].

    ``loss(scores)`` has the value ``-DV`` and the gradient ``-Ĝ``; each call (of ``loss`` or
    ``value_and_loss``) first updates the moving average (a buffer, kept in log space, ``log_ema``)
    with the batch, then uses it, so the correction factor ``E_B[e^T] / m̄`` is at most ``1 / r``.
    The first call initialises the average with the batch (its gradient equals DV's).
    ``bound(scores)`` neither reads nor updates the state. Option ``ema_rate`` ``r`` in ``(0, 1]``
    (default 0.01; 1 means no averaging).

    >>> import torch, mi_estimators as mie
    >>> mine = mie.get("mine", ema_rate=0.1)
    >>> loss = mine.loss(torch.randn(8, 8, requires_grad=True))
    >>> bool(torch.isfinite(mine.log_ema))             # the state is initialised by the first loss
    True
    """

    info = BoundInfo(
        name="mine",
        summary="DV value; loss with MINE's moving-average bias-corrected gradient",
        kind="lower",
        reference="Belghazi et al. 2018, arXiv:1801.04062",
        score_shapes=PAIRS_AND_LOCATIONS,
        stateful=True,
        options={"ema_rate": "moving-average rate r of E[e^T] across loss() calls, in (0, 1] (default 0.01)"},
    )

    def __init__(self, ema_rate: float = 0.01):
        super().__init__()
        self.ema_rate = unit_interval_float("ema_rate", ema_rate, " (MINE's moving-average rate, e.g. 0.01)",
                                             open_left=True)
        self.register_buffer("log_ema", torch.tensor(float("nan")))

    def reset(self) -> None:
        """Forget the moving average (the next ``loss`` call re-initialises it)."""
        self.log_ema.fill_(float("nan"))

    def value_and_loss(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        log_mean = log_mean_exp_off_diagonal(scores)           # log E_B[e^T]
        batch = log_mean.detach().to(self.log_ema.dtype)
        with torch.no_grad():
            if torch.isnan(self.log_ema) or self.ema_rate == 1.0:
                self.log_ema.copy_(batch)
            else:                                              # log((1-r) m + r E_B[e^T])
                self.log_ema.copy_(torch.logaddexp(self.log_ema + math.log1p(-self.ema_rate),
                                                   batch + math.log(self.ema_rate)))
        ratio = torch.exp(log_mean.detach() - self.log_ema.to(log_mean.dtype))   # E_B[e^T] / m
        # value: log E_B[e^T]; gradient: ratio * ∇ log E_B[e^T] = E_B[∇T e^T] / m
        corrected = log_mean.detach() + ratio * (log_mean - log_mean.detach())
        positives = diagonal(scores).mean()
        return positives - log_mean, -(positives - corrected)

"""SMILE: Smoothed Mutual Information "Lower-bound" Estimator.

Reference: J. Song, S. Ermon, "Understanding the Limitations of Variational Mutual Information
Estimators", ICLR 2020, arXiv:1910.06222.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mi_estimators.bounds.base import Bound, BoundInfo
from mi_estimators.scores import (PAIRS_AND_LOCATIONS, diagonal, jsd_value, log_mean_exp_off_diagonal,
                                  value_with_gradient_of)
from mi_estimators.options import positive_float

__all__ = ["SMILE"]


class SMILE(Bound):
    r"""SMILE (Song & Ermon 2020, eq. 17; arXiv:1910.06222): DV with a clipped partition function.

    .. math::

        \hat I_{SMILE} = \mathbb{E}_{P_{XY}}[T]
                         - \log \mathbb{E}_{P_X\otimes P_Y}\big[e^{\operatorname{clip}(T, -\tau, \tau)}\big]

    Clipping the negatives' scores to ``[-τ, τ]`` bounds the variance of the partition estimate
    (by ``(e^τ - e^{-τ})^2 / 4N``) at the price of a bias; only the denominator is clipped. As in the
    authors' code the returned tensor has the value above and the *gradient of* the JSD objective
    ``E_P[-sp(-T)] - E_{PxP}[sp(T)]`` (the critic is trained by JSD and read out by clipped DV), and
    ``loss(scores) = -bound(scores)``. Option ``clip`` ``τ > 0`` (default 5.0); ``clip=None``
    gives the DV value exactly (still with the JSD gradient). Expectations pool the locations of
    ``(N, N, L)`` scores as in :class:`~mi_estimators.bounds.dv.DV`.

    >>> import torch, mi_estimators as mie
    >>> scores = torch.randn(8, 8).clamp(-4, 4)         # |s| <= 5: SMILE(5) equals DV
    >>> bool(torch.isclose(mie.get("smile", clip=5.0)(scores), mie.get("dv")(scores), atol=1e-5))
    True
    """

    info = BoundInfo(
        name="smile",
        summary="SMILE: DV with negatives clipped to [-tau, tau] in the partition; JSD gradient",
        kind="neither",
        reference="Song & Ermon 2020, arXiv:1910.06222",
        score_shapes=PAIRS_AND_LOCATIONS,
        options={"clip": "tau > 0 clipping the negatives' scores (default 5.0); None gives DV's value"},
    )

    def __init__(self, clip: float | None = 5.0):
        super().__init__()
        self.clip = None if clip is None else positive_float("clip", clip, " (SMILE's tau, e.g. 5.0) or None")

    def value(self, scores: Tensor) -> Tensor:
        clipped = scores if self.clip is None else torch.clamp(scores, -self.clip, self.clip)
        value = diagonal(scores).mean() - log_mean_exp_off_diagonal(clipped)
        return value_with_gradient_of(value, jsd_value(scores))

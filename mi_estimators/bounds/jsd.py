"""Jensen–Shannon (JSD) objective of Deep InfoMax, read out in nats through a shifted NWJ bound.

References: R. D. Hjelm, A. Fedorov, S. Lavoie-Marchildon, K. Grewal, P. Bachman, A. Trischler,
Y. Bengio, "Learning deep representations by mutual information estimation and maximization"
(DIM), ICLR 2019, arXiv:1808.06670; S. Nowozin, B. Cseke, R. Tomioka, "f-GAN", NeurIPS 2016,
arXiv:1606.00709; B. Poole et al., "On Variational Bounds of Mutual Information", ICML 2019,
arXiv:1905.06922.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mi_estimators.bounds.base import Bound, BoundInfo
from mi_estimators.scores import PAIRS_AND_LOCATIONS, jsd_value, nwj_value, value_with_gradient_of

__all__ = ["JSD"]


class JSD(Bound):
    r"""DIM's Jensen–Shannon MI objective (Hjelm et al. 2019, eq. 4; arXiv:1808.06670).

    .. math::

        \hat I_{JSD} = \mathbb{E}_{P_{XY}}[-\operatorname{sp}(-T)]
                       - \mathbb{E}_{P_X\otimes P_Y}[\operatorname{sp}(T)],
        \qquad \operatorname{sp}(z) = \log(1 + e^z)

    trains the critic well but is not a bound on MI in nats (its optimum is
    ``T* = log r``, ``r = p(x,y)/(p(x)p(y))``, where it equals ``2 JS - 2 log 2``).

    * ``loss(scores) = -Î_JSD`` (what a trainer minimises).
    * ``bound(scores)`` reports MI in nats by reading the critic out through NWJ **shifted by
      one**, ``Î_NWJ(T + 1) = E_P[T] + 1 - E_{PxP}[e^T]``: NWJ is tight at ``1 + log r`` while the
      JSD critic sits at ``log r``, so the unshifted read-out ``Î_NWJ(T)`` used in published code
      is biased low by ``1/e ≈ 0.368`` nats even at the optimum. Following Poole et al. (2019),
      the returned tensor has that value but the *gradient of* ``Î_JSD``, so ``-bound(scores)``
      and ``loss(scores)`` train identically and the high-variance NWJ gradient is never used.

    Expectations pool locations for ``(N, N, L)`` scores (all ``N·L`` positives, all
    ``N(N-1)·L`` negatives), as DIM's local objective averages over locations.

    >>> import torch, mi_estimators as mie
    >>> jsd = mie.get("jsd")
    >>> round(float(jsd(torch.zeros(4, 4))), 4)        # T = 0 everywhere: 0 + 1 - 1
    0.0
    >>> round(float(jsd.loss(torch.zeros(4, 4))), 4)   # 2 log 2
    1.3863
    """

    info = BoundInfo(
        name="jsd",
        summary="DIM's Jensen-Shannon objective; value read out as NWJ(T + 1), gradient of JSD",
        kind="neither",
        reference="Hjelm et al. 2019, arXiv:1808.06670; Poole et al. 2019, arXiv:1905.06922",
        score_shapes=PAIRS_AND_LOCATIONS,
    )

    def value(self, scores: Tensor) -> Tensor:
        return value_with_gradient_of(nwj_value(scores, shift=1.0), jsd_value(scores))

    def value_and_loss(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        jsd = jsd_value(scores)
        with torch.no_grad():
            read_out = nwj_value(scores, shift=1.0)
        return value_with_gradient_of(read_out, jsd), -jsd

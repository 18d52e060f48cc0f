"""InfoNCE (CPC; DIM's and AMDIM's "NCE") lower bound.

References: A. van den Oord, Y. Li, O. Vinyals, "Representation Learning with Contrastive
Predictive Coding", 2018, arXiv:1807.03748; B. Poole et al., "On Variational Bounds of Mutual
Information", ICML 2019, arXiv:1905.06922; P. Bachman, R. D. Hjelm, W. Buchwalter, "Learning
Representations by Maximizing Mutual Information Across Views" (AMDIM), NeurIPS 2019,
arXiv:1906.00910.
"""

from __future__ import annotations

import math

from torch import Tensor

from mi_estimators.bounds.base import Bound, BoundInfo
from mi_estimators.scores import PAIRS_AND_LOCATIONS
from mi_estimators.options import non_negative_float, positive_float
from mi_estimators.nce import nce_candidates, nce_terms, score_penalty

__all__ = ["InfoNCE", "ContrastiveBound", "nce_ceiling"]


def nce_ceiling(bound: object, shape: tuple[int, ...]) -> float:
    """``log K``, ``K = 1 + (N - 1)·L`` candidates per positive (``L = 1`` for ``(N, N)`` scores):
    the most an NCE estimate on scores of ``shape`` can be (each term is a log-probability plus
    ``log K``). The :attr:`~mi_estimators.bounds.base.BoundInfo.max_value` of the NCE bounds."""
    return math.log(nce_candidates(shape[0], shape[2] if len(shape) > 2 else 1))


class ContrastiveBound(Bound):
    """Base class of the NCE-based bounds: their shared ``penalty`` / ``clip`` options (AMDIM's two
    stabilisers)."""

    def __init__(self, penalty: float = 0.0, clip: float | None = None):
        super().__init__()
        self.penalty = non_negative_float("penalty", penalty, " (AMDIM's score penalty lambda, e.g. 4e-2)")
        self.clip = None if clip is None else positive_float("clip", clip, " (soft-clip range c, AMDIM uses 20)")


class InfoNCE(ContrastiveBound):
    r"""InfoNCE lower bound (van den Oord et al. 2018, arXiv:1807.03748; Poole et al. 2019, eq. 12).

    .. math::

        I(X;Y) \ge \hat I_{NCE} = \frac{1}{N}\sum_{i=1}^{N}
            \Big[T(x_i, y_i) - \log \frac{1}{K}\sum_{k=1}^{K} e^{T(x_i, y_k)}\Big] \;\le\; \log K

    For ``(N, N)`` scores, ``K = N`` (each row is a softmax over the ``N`` candidates ``y_j``),
    so the estimate never exceeds ``log N``. For ``(N, N, L)`` scores (DIM/AMDIM: antecedent ``i``
    against location ``l`` of image ``j``) each positive ``[i, i, l]`` is contrasted with the
    negatives **shared across locations**: all ``[i, j, l']``, ``j != i``. Then
    ``K = 1 + (N - 1)·L``, the ceiling is ``log K``, and the estimate is the mean over all
    ``N·L`` positives, computed by the memory-efficient kernel :mod:`mi_estimators.nce`.

    The estimate is unchanged by adding any constant to a row (a function of ``x_i`` alone);
    the optimal critic is ``T* = log p(y|x)/p(y) + c(x)``.

    Options (AMDIM's stabilisers, Bachman et al. 2019, Sec. 3.3): ``clip`` ``c`` applies the soft
    clip ``s' = c·tanh(s / c)`` before the log-softmax (value and loss both see clipped scores);
    ``penalty`` ``λ`` adds ``λ·mean(s^2)`` over the raw scores to ``loss`` only (the value is
    unaffected). ``loss(scores) = -bound(scores) + λ·mean(s^2)``.

    >>> import torch, mi_estimators as mie
    >>> nce = mie.get("infonce")
    >>> bool(nce(10 * torch.eye(8)) <= math.log(8))     # near-perfect critic: close to log N
    True
    >>> abs(float(nce(torch.zeros(4, 4, 3)))) < 1e-6     # (N, N, L): log K - log K = 0
    True
    """

    info = BoundInfo(
        name="infonce",
        summary="InfoNCE / CPC: mean_i [T_ii - log mean_j e^T_ij]; negatives shared across locations",
        kind="lower",
        reference="van den Oord et al. 2018, arXiv:1807.03748; Bachman et al. 2019, arXiv:1906.00910",
        score_shapes=PAIRS_AND_LOCATIONS,
        ceiling="log N for (N, N); log(1 + (N - 1) L) for (N, N, L)",
        max_value=nce_ceiling,
        options={"penalty": "AMDIM score penalty lambda: loss += lambda * mean(s^2) (default 0)",
                 "clip": "soft clip c * tanh(s / c) before the log-softmax (default None)"},
    )

    def _terms(self, scores: Tensor, with_penalty: bool) -> tuple[Tensor, Tensor | None]:
        s3 = scores if scores.dim() == 3 else scores.unsqueeze(-1)
        snce, msq = nce_terms(s3, clip=self.clip, with_mean_square=with_penalty)
        value = snce.mean() + math.log(nce_candidates(s3.shape[1], s3.shape[2]))
        return value, msq

    def value(self, scores: Tensor) -> Tensor:
        return self._terms(scores, with_penalty=False)[0]

    def value_and_loss(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        value, msq = self._terms(scores, with_penalty=bool(self.penalty))
        return value, -value + score_penalty(self.penalty, msq)

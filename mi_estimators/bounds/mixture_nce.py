"""AMDIM's mixture-based NCE objective over k antecedent components.

Reference: P. Bachman, R. D. Hjelm, W. Buchwalter, "Learning Representations by Maximizing Mutual
Information Across Views" (AMDIM), NeurIPS 2019, arXiv:1906.00910, Sec. 3.5, eqs. 18-19.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mi_estimators.bounds.base import BoundInfo
from mi_estimators.scores import ScoreShape
from mi_estimators.options import non_negative_float, positive_float
from mi_estimators.bounds.infonce import ContrastiveBound, nce_ceiling
from mi_estimators.nce import nce_candidates, nce_terms, score_penalty

__all__ = ["MixtureNCE"]


class MixtureNCE(ContrastiveBound):
    r"""AMDIM's mixture NCE (Bachman et al. 2019, eqs. 18-19; arXiv:1906.00910).

    Each image has ``k`` antecedent features ``f_1^1..f_1^k`` (mixture components) and ``n_c``
    consequent features ``f_7^1..f_7^{n_c}``. With ``s_nce(f_1^j, f_7^i)`` the NCE
    log-probability of the positive for component ``j`` at consequent location ``i`` (negatives:
    every location of the other images, shared as in :class:`~mi_estimators.bounds.infonce.InfoNCE`),

    .. math::

        q(f_1^j \mid f_7^i) = \frac{\exp(\tau\, s_{nce}(f_1^j, f_7^i))}
                                   {\sum_{j'} \exp(\tau\, s_{nce}(f_1^{j'}, f_7^i))}, \qquad
        \max_{f, q}\; \frac{1}{n_c}\sum_{i=1}^{n_c}\Big[\sum_{j=1}^{k}
            q(f_1^j \mid f_7^i)\, s_{nce}(f_1^j, f_7^i) + \alpha\, H(q(\cdot \mid f_7^i))\Big]

    Scores: ``(N, N, L, K)`` with ``scores[i, j, l, k]`` = component ``k`` of image ``i``'s
    antecedent against location ``l`` of image ``j``'s consequents (``n_c = L``); ``(N, N)`` and
    ``(N, N, L)`` are taken as ``K = 1``. Each component's ``s_nce`` comes from the shared
    memory-efficient kernel (:func:`mi_estimators.nce.nce_terms`), ``K`` candidates per softmax
    ``= 1 + (N - 1)·L``.

    * ``bound(scores)`` = ``mean_{i, l} Σ_k q(k | i, l) s_nce(k, i, l) + log(1 + (N - 1) L)``: an
      InfoNCE-scale estimate in nats (a ``q``-weighted average of the components' InfoNCE
      estimates, so ``<= log(1 + (N - 1) L)``); the entropy bonus is not part of the value.
    * ``loss(scores)`` = ``-(mean_{i,l}[Σ_k q s_nce + α H(q)]) - log(1 + (N-1) L) + λ·mean(s^2)``.
    * ``q`` is **not detached**: it is eq. 19's function of the scores and gradients flow through
      it. For ``α = 1/τ`` (the default) ``q`` is exactly the maximiser of eq. 18 over ``q``, so the
      objective equals ``(1/τ) log Σ_k e^{τ s_nce}`` and, by the envelope theorem, its gradient is
      the same whether or not ``q`` is held fixed.
    * With ``K = 1`` (``q = 1``, ``H = 0``) value and loss equal :class:`InfoNCE`'s exactly.

    Options: ``tau`` (temperature τ of eq. 19, default 1.0), ``alpha`` (entropy weight α of eq. 18,
    default ``1 / tau``), ``penalty`` and ``clip`` as in InfoNCE (applied to the raw scores of every
    component).

    >>> import torch, mi_estimators as mie
    >>> scores = torch.randn(4, 4, 9)                                   # K = 1
    >>> bool(mie.get("mixture_nce")(scores) == mie.get("infonce")(scores))
    True
    >>> float(mie.get("mixture_nce", tau=2.0)(torch.randn(4, 4, 9, 3))) <= math.log(1 + 3 * 9)
    True
    """

    info = BoundInfo(
        name="mixture_nce",
        summary="AMDIM mixture NCE: q-weighted per-component NCE with entropy bonus (eqs. 18-19)",
        kind="lower",
        reference="Bachman, Hjelm & Buchwalter 2019, arXiv:1906.00910",
        score_shapes=tuple(ScoreShape),
        ceiling="log(1 + (N - 1) L)",
        max_value=nce_ceiling,
        options={"tau": "temperature of q = softmax_k(tau * s_nce) (default 1.0)",
                 "alpha": "entropy weight of the objective (default 1 / tau)",
                 "penalty": "AMDIM score penalty lambda: loss += lambda * mean(s^2) (default 0)",
                 "clip": "soft clip c * tanh(s / c) before the log-softmax (default None)"},
    )

    def __init__(self, tau: float = 1.0, alpha: float | None = None, penalty: float = 0.0,
                 clip: float | None = None):
        super().__init__(penalty=penalty, clip=clip)
        self.tau = positive_float("tau", tau, " (temperature of the component posterior q, e.g. 1.0)")
        self.alpha = 1.0 / self.tau if alpha is None else non_negative_float("alpha", alpha, " (entropy weight)")

    def value(self, scores: Tensor) -> Tensor:
        return self._terms(scores, with_penalty=False)[0]

    def value_and_loss(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        value, entropy, msq = self._terms(scores, with_penalty=bool(self.penalty))
        return value, -(value + self.alpha * entropy) + score_penalty(self.penalty, msq)

    def _terms(self, scores: Tensor, with_penalty: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """(value in nats, mean entropy of q, mean raw s^2 or None)."""
        while scores.dim() < 4:
            scores = scores.unsqueeze(-1)
        n, _, n_loc, k = scores.shape
        # one antecedent row per (image, component): (N*K, N, L); positives at consequent i
        rows = scores.permute(0, 3, 1, 2).reshape(n * k, n, n_loc)
        pos = torch.arange(n, device=scores.device).repeat_interleave(k)
        snce, msq = nce_terms(rows, pos_index=pos, clip=self.clip, with_mean_square=with_penalty)
        snce = snce.view(n, k, n_loc)                                        # (N, K, L)
        log_q = torch.log_softmax(self.tau * snce, dim=1)
        q = log_q.exp()
        value = (q * snce).sum(dim=1).mean() + math.log(nce_candidates(n, n_loc))
        entropy = -(q * log_q).sum(dim=1).mean()
        return value, entropy, msq

"""What every bound shares: the :class:`Bound` contract and its metadata, :class:`BoundInfo`.

The score convention (``scores[i, j] = T(x_i, y_j)``, positives on the diagonal; ``(N, N, L)``
scores for DIM and AMDIM), the score checks, the finite-check switch and the numerics on score
tensors live one floor down, in :mod:`mi_estimators.scores`; their names are re-exported here so
that ``from mi_estimators.bounds.base import check_scores`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import Tensor, nn

from mi_estimators.scores import (EXP_LINEAR_ABOVE, PAIRS_AND_LOCATIONS, ScoreShape, check_scores, diagonal,
                                  finite_checks, finite_checks_enabled, jsd_value, log_mean_exp_off_diagonal,
                                  nwj_value, off_diagonal_mean, safe_exp, stabilise, value_with_gradient_of)

__all__ = ["Bound", "BoundInfo", "value_and_loss",
           # re-exported from mi_estimators.scores, their home
           "ScoreShape", "PAIRS_AND_LOCATIONS", "check_scores", "diagonal", "finite_checks", "finite_checks_enabled",
           "off_diagonal_mean", "log_mean_exp_off_diagonal", "stabilise", "safe_exp", "nwj_value", "jsd_value",
           "value_with_gradient_of", "EXP_LINEAR_ABOVE"]


@dataclass(frozen=True)
class BoundInfo:
    """Metadata of a registered bound, printed by ``mi-estimators list``."""

    name: str
    summary: str
    kind: Literal["lower", "upper", "neither"]
    reference: str
    #: the score layouts :meth:`Bound.check` accepts
    score_shapes: tuple[ScoreShape, ...] = (ScoreShape.PAIRS,)
    stateful: bool = False
    #: the value can never exceed this function of the batch size (e.g. log N for InfoNCE), in words
    ceiling: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    #: the same ceiling in a checkable form: ``max_value(bound, shape)`` is the most ``bound`` (with
    #: its options) can return for scores of ``shape``, in nats, or None where it has no ceiling;
    #: :func:`mi_estimators.testing.check_bound` checks it
    max_value: Callable[[Any, tuple[int, ...]], float | None] | None = None


class Bound(nn.Module):
    """Base class of the built-in bounds.

    The calls: ``bound(scores)`` checks the scores against ``info.score_shapes`` and returns the MI
    estimate in nats (a differentiable scalar); ``bound.loss(scores)`` checks them and returns what
    a trainer minimises. A subclass overrides one or both of two methods, which receive scores
    that :meth:`check` has accepted:

    * :meth:`value` (required): the estimate in nats;
    * :meth:`value_and_loss` (when the loss is not ``-value``, or shares work with it): the pair
      ``(value, loss)`` from one pass. The default is ``(v, -v)``.

    A training step calls ``value_and_loss`` once and gets both the estimate and the loss (the
    module function :func:`value_and_loss` does so for any bound, built-in or not). Bounds are
    ``nn.Module`` so that stateful ones (MINE's moving average) follow ``.to(device)`` and
    ``state_dict``.
    """

    info: ClassVar[BoundInfo]

    def check(self, scores: Tensor) -> Tensor:
        """``scores``, if they have a layout this bound takes and are finite; else ``ValueError``."""
        return check_scores(scores, self.info.score_shapes)

    def forward(self, scores: Tensor, **kwargs: Any) -> Tensor:
        return self.value(self.check(scores), **kwargs)

    def loss(self, scores: Tensor, **kwargs: Any) -> Tensor:
        return self.value_and_loss(self.check(scores), **kwargs)[1]

    def value(self, scores: Tensor, **kwargs: Any) -> Tensor:  # pragma: no cover - abstract
        """The MI estimate in nats of checked ``scores``."""
        raise NotImplementedError

    def value_and_loss(self, scores: Tensor, **kwargs: Any) -> tuple[Tensor, Tensor]:
        """``(value, loss)`` of checked ``scores`` in one pass; by default the loss is ``-value``."""
        value = self.value(scores, **kwargs)
        return value, -value

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "training")


def value_and_loss(bound: Any, scores: Tensor) -> tuple[Tensor, Tensor]:
    """``(estimate, loss)`` of any bound on ``scores``: one pass for a :class:`Bound`; for a bound
    of another kind (anything callable with a ``.loss``), its loss and its value on the detached
    scores. The estimate carries no gradient the caller should use; the loss does."""
    if isinstance(bound, Bound):
        return bound.value_and_loss(bound.check(scores))
    loss = bound.loss(scores)
    with torch.no_grad():
        return bound(scores.detach()), loss

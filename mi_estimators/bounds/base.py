"""What every bound shares: the score convention, input checks, metadata and the base class.

Score convention
----------------
``scores[i, j] = T(x_i, y_j)`` for a batch of N joint samples ``(x_i, y_i)``. The diagonal holds
the N joint ("positive") pairs; the N(N-1) off-diagonal entries are pairs drawn from the product
of marginals p(x)p(y) ("negatives").

Bounds used by DIM and AMDIM also take ``(N, N, L)`` scores: ``scores[i, j, l]`` is the score of
antecedent i (e.g. image i's global feature) against location l of consequent j (e.g. image j's
local feature map). Positives are ``scores[i, i, :]`` (N·L of them), negatives every ``[i, j, :]``
with ``j != i``. Each bound's docstring says how it averages over L.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Bound", "BoundInfo", "ScoreShape", "check_scores", "diagonal", "finite_checks", "off_diagonal_mean",
           "log_mean_exp_off_diagonal", "stabilise", "safe_exp", "nwj_value", "jsd_value",
           "value_and_loss", "value_with_gradient_of", "EXP_LINEAR_ABOVE"]


class ScoreShape(str, enum.Enum):
    """The score layouts a bound can take (declared once per bound, in :class:`BoundInfo`)."""

    #: ``scores[i, j] = T(x_i, y_j)``, positives on the diagonal
    PAIRS = "(N, N)"
    #: ``scores[i, j, l]``: antecedent i against location l of consequent j (DIM, AMDIM)
    LOCATIONS = "(N, N, L)"
    #: ``scores[i, j, l, k]``: component k of antecedent i (AMDIM's mixture NCE)
    COMPONENTS = "(N, N, L, K)"

    @property
    def ndim(self) -> int:
        return {"(N, N)": 2, "(N, N, L)": 3, "(N, N, L, K)": 4}[self.value]

    def __str__(self) -> str:
        return self.value


#: what most bounds take: pairs, and locations pooled with the pairs
PAIRS_AND_LOCATIONS = (ScoreShape.PAIRS, ScoreShape.LOCATIONS)


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


_FINITE_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("finite_checks", default=True)


@contextlib.contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Turn the NaN/Inf test of :func:`check_scores` on or off inside the block.

    The test reads the scores back on the host, which stalls a GPU at every call. A training loop
    that checks its loss for NaN/Inf itself, at its own sync points (the trainer kit does), runs its
    steps with ``finite_checks(False)``; shapes and dtypes are still checked (they cost no sync).
    """
    token = _FINITE_CHECKS.set(bool(enabled))
    try:
        yield
    finally:
        _FINITE_CHECKS.reset(token)


def check_scores(scores: Tensor, shapes: tuple[ScoreShape, ...] = PAIRS_AND_LOCATIONS, *,
                 min_n: int = 2) -> Tensor:
    """Validate a score tensor against the accepted ``shapes``; return it unchanged.

    Raises ``ValueError`` (never returns NaN) for: non-tensors, integer/bool dtypes, layouts not in
    ``shapes``, fewer than ``min_n`` samples, empty location/component axes, NaN or Inf entries
    (unless turned off by :func:`finite_checks`).
    """
    if not isinstance(scores, Tensor):
        raise ValueError(
            f"scores must be a torch.Tensor of shape (N, N), got {type(scores).__name__}; "
            "wrap arrays with torch.as_tensor(..., dtype=torch.float32)"
        )
    if not scores.is_floating_point():
        raise ValueError(
            f"scores must be a floating-point tensor, got dtype {scores.dtype}; "
            "convert with scores.float()"
        )
    names = " or ".join(s.value for s in shapes)
    if scores.dim() not in {s.ndim for s in shapes} or scores.shape[0] != scores.shape[1]:
        raise ValueError(
            f"scores must have shape {names} with scores[i, j] = T(x_i, y_j) and the positive "
            f"pairs on the diagonal; got shape {tuple(scores.shape)}"
        )
    if scores.shape[0] < min_n:
        raise ValueError(
            f"need at least {min_n} samples (a batch of N >= {min_n} gives N(N-1) negative pairs), "
            f"got N = {scores.shape[0]}"
        )
    if scores.dim() >= 3 and scores.numel() == 0:
        raise ValueError(f"scores of shape {names} need L >= 1 locations (and K >= 1 components); "
                         f"got shape {tuple(scores.shape)}")
    if _FINITE_CHECKS.get() and not torch.isfinite(scores).all():
        n_nan = int(torch.isnan(scores).sum())
        n_inf = int(torch.isinf(scores).sum())
        raise ValueError(
            f"scores contain {n_nan} NaN and {n_inf} infinite entries; the critic diverged or its "
            "input holds NaN/Inf. Check the inputs, lower the learning rate, or use a bound with "
            "clipping (smile) or the soft clip option (clip=...)"
        )
    return scores


def _with_diagonal(values: Tensor, fill: float) -> Tensor:
    """A copy of ``values`` with every positive ``[i, i, ...]`` set to ``fill`` (differentiable)."""
    out = values.clone()
    out.diagonal(dim1=0, dim2=1).fill_(fill)
    return out


def _negatives(scores: Tensor) -> int:
    """How many negatives ``(N, N[, L])`` scores hold: ``N(N-1)·L``."""
    n = scores.shape[0]
    return n * (n - 1) * scores[0, 0].numel()


def off_diagonal_mean(values: Tensor) -> Tensor:
    """Mean of ``values`` over the negatives (every ``i != j``, and every location), without
    gathering them: the positives are zeroed in place of being indexed out."""
    return _with_diagonal(values, 0.0).sum() / _negatives(values)


def diagonal(scores: Tensor) -> Tensor:
    """Positive-pair scores: shape ``(N,)`` for ``(N, N)``, ``(N, L)`` for ``(N, N, L)``."""
    return torch.diagonal(scores, dim1=0, dim2=1).movedim(-1, 0) if scores.dim() == 3 else scores.diagonal()


def log_mean_exp_off_diagonal(scores: Tensor) -> Tensor:
    """``log mean_{i != j} exp(scores[i, j])`` over all negatives (and locations), stably."""
    return torch.logsumexp(_with_diagonal(scores, -math.inf).reshape(-1), dim=0) - math.log(_negatives(scores))


def stabilise(scores: Tensor, clip: float | None = None) -> Tensor:
    """AMDIM's soft clip ``s' = c * tanh(s / c)`` (Bachman et al. 2019); identity when ``clip`` is None."""
    if clip is None:
        return scores
    if clip <= 0:
        raise ValueError(f"clip must be a positive number of nats (AMDIM uses 20), got {clip}")
    return clip * torch.tanh(scores / clip)


#: :func:`safe_exp` continues ``exp`` linearly above this many nats (e^50 ~ 5e21).
EXP_LINEAR_ABOVE = 50.0


def safe_exp(x: Tensor, linear_above: float = EXP_LINEAR_ABOVE) -> Tensor:
    """``exp(x)`` for ``x <= linear_above``, continued by its tangent line above.

    Bounds with a plain ``E[e^T]`` term (NWJ, TUBA, JSD's read-out, the interpolated bound)
    would overflow to ``-inf`` with infinite gradients for scores above ~88 nats in float32. The
    tangent continuation is C^1, below ``exp`` (so the estimate is only affected when it is already
    below ``-e^50``), and keeps values and gradients finite for scores up to ~1e10.
    """
    capped = x.clamp(max=linear_above)
    tangent = math.exp(linear_above) * (1.0 + (x - linear_above))
    return torch.where(x <= linear_above, torch.exp(capped), tangent)


def nwj_value(scores: Tensor, shift: float = 0.0, log_baseline: Tensor | float = 1.0) -> Tensor:
    """``E_P[T + shift - a] - E_{P x P}[exp(T + shift - a)] + 1`` over positives and negatives.

    With the default ``log_baseline`` ``a = 1`` this is NWJ, ``E_P[T] - e^{-1} E_{PxP}[e^T]``;
    other ``a`` (a float or a tensor broadcastable to ``scores``) give TUBA. Expectations pool
    all ``N·L`` positives and all ``N(N-1)·L`` negatives of ``(N, N, L)`` scores.
    """
    centred = scores + shift - log_baseline
    return diagonal(centred).mean() - off_diagonal_mean(safe_exp(centred)) + 1.0


def jsd_value(scores: Tensor) -> Tensor:
    """The Jensen–Shannon objective ``E_P[-sp(-T)] - E_{PxP}[sp(T)]``, ``sp = softplus``."""
    return -F.softplus(-diagonal(scores)).mean() - off_diagonal_mean(F.softplus(scores))


def value_with_gradient_of(value: Tensor, surrogate: Tensor) -> Tensor:
    """A tensor equal to ``value`` whose gradient is ``surrogate``'s (Poole et al. 2019's trick)."""
    return surrogate + (value - surrogate).detach()


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

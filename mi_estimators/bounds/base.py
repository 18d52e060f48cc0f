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

import functools
import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Bound", "BoundInfo", "check_scores", "diagonal", "off_diagonal", "off_diagonal_mask",
           "log_mean_exp_off_diagonal", "stabilise", "safe_exp", "nwj_value", "jsd_value",
           "value_with_gradient_of", "EXP_LINEAR_ABOVE"]


@dataclass(frozen=True)
class BoundInfo:
    """Metadata of a registered bound, printed by ``mi-estimators list``."""

    name: str
    summary: str
    kind: Literal["lower", "upper", "neither"]
    reference: str
    score_shapes: tuple[str, ...] = ("(N, N)",)
    stateful: bool = False
    #: the value can never exceed this function of the batch size (e.g. log N for InfoNCE)
    ceiling: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def check_scores(scores: Tensor, *, allow_locations: bool = True, min_n: int = 2,
                 allow_components: bool = False) -> Tensor:
    """Validate a score tensor; return it unchanged.

    Raises ``ValueError`` (never returns NaN) for: non-tensors, integer/bool dtypes, shapes other
    than ``(N, N)`` / ``(N, N, L)`` (and ``(N, N, L, K)`` with ``allow_components``), fewer than
    ``min_n`` samples, NaN or Inf entries.
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
    shapes = "(N, N) or (N, N, L)" if allow_locations else "(N, N)"
    if allow_components:
        shapes = "(N, N), (N, N, L) or (N, N, L, K)"
    ok_dim = (scores.dim() == 2 or (allow_locations and scores.dim() == 3)
              or (allow_components and scores.dim() == 4))
    if not ok_dim or scores.shape[0] != scores.shape[1]:
        raise ValueError(
            f"scores must have shape {shapes} with scores[i, j] = T(x_i, y_j) and the positive "
            f"pairs on the diagonal; got shape {tuple(scores.shape)}"
        )
    if scores.shape[0] < min_n:
        raise ValueError(
            f"need at least {min_n} samples (a batch of N >= {min_n} gives N(N-1) negative pairs), "
            f"got N = {scores.shape[0]}"
        )
    if scores.dim() >= 3 and scores.numel() == 0:
        raise ValueError(f"scores of shape {shapes} need L >= 1 locations (and K >= 1 components); "
                         f"got shape {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        n_nan = int(torch.isnan(scores).sum())
        n_inf = int(torch.isinf(scores).sum())
        raise ValueError(
            f"scores contain {n_nan} NaN and {n_inf} infinite entries; the critic diverged or its "
            "input holds NaN/Inf. Check the inputs, lower the learning rate, or use a bound with "
            "clipping (smile) or the soft clip option (clip=...)"
        )
    return scores


def off_diagonal_mask(n: int, device: torch.device | None = None) -> Tensor:
    """Boolean ``(n, n)`` mask, True off the diagonal."""
    return ~torch.eye(n, dtype=torch.bool, device=device)


@functools.lru_cache(maxsize=16)
def _diagonal_mask(n: int, device: torch.device) -> Tensor:
    with torch.inference_mode(False):  # a normal tensor even if first made under inference_mode
        return torch.eye(n, dtype=torch.bool, device=device)


def _diagonal_mask_like(scores: Tensor) -> Tensor:
    """Boolean mask of the positives, broadcastable to ``scores`` (cached: bounds call it every step)."""
    mask = _diagonal_mask(scores.shape[0], scores.device)
    return mask.view(*mask.shape, *([1] * (scores.dim() - 2)))


def _negatives(scores: Tensor) -> int:
    """How many negatives ``(N, N[, L])`` scores hold: ``N(N-1)·L``."""
    n = scores.shape[0]
    return n * (n - 1) * scores[0, 0].numel()


def off_diagonal_mean(values: Tensor) -> Tensor:
    """Mean of ``values`` over the negatives (every ``i != j``, and every location), without
    gathering them: the positives are zeroed in place of being indexed out."""
    return values.masked_fill(_diagonal_mask_like(values), 0.0).sum() / _negatives(values)


def diagonal(scores: Tensor) -> Tensor:
    """Positive-pair scores: shape ``(N,)`` for ``(N, N)``, ``(N, L)`` for ``(N, N, L)``."""
    return torch.diagonal(scores, dim1=0, dim2=1).movedim(-1, 0) if scores.dim() == 3 else scores.diagonal()


def off_diagonal(scores: Tensor) -> Tensor:
    """Negative-pair scores, flattened to shape ``(N(N-1)·L,)``."""
    return scores[off_diagonal_mask(scores.shape[0], scores.device)].reshape(-1)


def log_mean_exp_off_diagonal(scores: Tensor) -> Tensor:
    """``log mean_{i != j} exp(scores[i, j])`` over all negatives (and locations), stably."""
    masked = scores.masked_fill(_diagonal_mask_like(scores), -math.inf)
    return torch.logsumexp(masked.reshape(-1), dim=0) - math.log(_negatives(scores))


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
    """Base class of the built-in bounds. Subclasses implement :meth:`estimate`.

    ``bound(scores)`` checks the scores and returns the MI estimate in nats (a differentiable
    scalar). ``bound.loss(scores)`` is what a trainer minimises; by default ``-bound(scores)``.
    Bounds are ``nn.Module`` so that stateful ones (MINE's moving average) follow ``.to(device)``
    and ``state_dict``.
    """

    info: ClassVar[BoundInfo]
    allow_locations: ClassVar[bool] = True

    def forward(self, scores: Tensor) -> Tensor:
        return self.estimate(check_scores(scores, allow_locations=self.allow_locations))

    def estimate(self, scores: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, scores: Tensor) -> Tensor:
        return -self(scores)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "training")

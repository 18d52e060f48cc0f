"""The ground floor of the bounds: the score convention, its checks and the numerics on score tensors.

Score convention
----------------
``scores[i, j] = T(x_i, y_j)`` for a batch of N joint samples ``(x_i, y_i)``. The diagonal holds
the N joint ("positive") pairs; the N(N-1) off-diagonal entries are pairs drawn from the product
of marginals p(x)p(y) ("negatives").

Bounds used by DIM and AMDIM also take ``(N, N, L)`` scores: ``scores[i, j, l]`` is the score of
antecedent i (e.g. image i's global feature) against location l of consequent j (e.g. image j's
local feature map). Positives are ``scores[i, i, :]`` (N·L of them), negatives every ``[i, j, :]``
with ``j != i``. Each bound's docstring says how it averages over L.

This module imports nothing else from the package: the bounds (:mod:`mi_estimators.bounds`) and
the NCE kernels (:mod:`mi_estimators.nce`) both build on it.

>>> import torch
>>> s = torch.tensor([[2.0, 0.0], [1.0, 4.0]])
>>> diagonal(s).tolist(), float(off_diagonal_mean(s))
([2.0, 4.0], 0.5)
>>> with finite_checks(False):
...     finite_checks_enabled()
False
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ScoreShape", "PAIRS_AND_LOCATIONS", "check_scores", "finite_checks", "finite_checks_enabled",
           "diagonal", "off_diagonal_mean", "log_mean_exp_off_diagonal", "stabilise", "safe_exp",
           "EXP_LINEAR_ABOVE", "nwj_value", "jsd_value", "value_with_gradient_of"]


class ScoreShape(str, enum.Enum):
    """The score layouts a bound can take (declared once per bound, in its ``BoundInfo``)."""

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

# ------------------------------------------------------------------------------ the finite-check switch

_FINITE_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("finite_checks", default=True)


def finite_checks_enabled() -> bool:
    """Whether score checks look for NaN/Inf here (True unless inside ``finite_checks(False)``).

    Code that would read a value back on the host only for such a check (the NCE kernels) asks
    this first."""
    return _FINITE_CHECKS.get()


@contextlib.contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Turn the NaN/Inf test of :func:`check_scores` (and of the NCE kernels) on or off inside the block.

    The test reads the scores back on the host, which stalls a GPU at every call. A training loop
    that checks its loss for NaN/Inf itself, at its own sync points (the trainer kit does), runs its
    steps with ``finite_checks(False)``; shapes and dtypes are still checked (they cost no sync).
    The switch is a context variable: it holds for the current thread or task only.
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
    if finite_checks_enabled() and not torch.isfinite(scores).all():
        n_nan = int(torch.isnan(scores).sum())
        n_inf = int(torch.isinf(scores).sum())
        raise ValueError(
            f"scores contain {n_nan} NaN and {n_inf} infinite entries; the critic diverged or its "
            "input holds NaN/Inf. Check the inputs, lower the learning rate, or use a bound with "
            "clipping (smile) or the soft clip option (clip=...)"
        )
    return scores


# ------------------------------------------------------------------------------ positives and negatives


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


# ------------------------------------------------------------------------------ stable pieces of the bounds


def stabilise(scores: Tensor, clip: float | None = None) -> Tensor:
    """AMDIM's soft clip ``s' = c * tanh(s / c)`` (Bachman et al. 2019, Sec. 3.3); identity when
    ``clip`` is None. Used by the NCE kernels and AMDIM's objective."""
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

    With the default ``log_baseline`` ``a = 1`` this is NWJ, ``E_P[T] - e^{-1} E_{PxP}[e^T]``
    (Nguyen, Wainwright & Jordan 2010); other ``a`` (a float or a tensor broadcastable to
    ``scores``) give TUBA (Poole et al. 2019). Expectations pool all ``N·L`` positives and all
    ``N(N-1)·L`` negatives of ``(N, N, L)`` scores.
    """
    centred = scores + shift - log_baseline
    return diagonal(centred).mean() - off_diagonal_mean(safe_exp(centred)) + 1.0


def jsd_value(scores: Tensor) -> Tensor:
    """The Jensen–Shannon objective ``E_P[-sp(-T)] - E_{PxP}[sp(T)]``, ``sp = softplus``
    (Nowozin et al. 2016; Hjelm et al. 2019)."""
    return -F.softplus(-diagonal(scores)).mean() - off_diagonal_mean(F.softplus(scores))


def value_with_gradient_of(value: Tensor, surrogate: Tensor) -> Tensor:
    """A tensor equal to ``value`` whose gradient is ``surrogate``'s (Poole et al. 2019's trick)."""
    return surrogate + (value - surrogate).detach()

"""Compute- and memory-efficient NCE with shared negatives (AMDIM, Bachman et al. 2019).

Setting: ``na`` antecedents (e.g. global features of the images of a batch) are scored against
``nb >= na`` consequent images with ``nc`` locations each; ``scores[i, j, c] = phi(f_a(x_i))^T
phi(f_c(x_j))_c``. Antecedent ``i``'s positives are the ``nc`` locations of consequent
``p(i) = i + pos_offset``; its negatives are *all* locations of every other consequent, shared by
its ``nc`` positives. The NCE log-probability of positive ``(i, c)`` is (seed, "Algorithm")

.. math::

    s_{nce}[i, c] = s[i, p(i), c] - \\log\\Big(e^{s[i, p(i), c]}
                    + \\sum_{j \\ne p(i)} \\sum_{c'} e^{s[i, j, c']}\\Big),

i.e. a log-softmax over ``1 + (nb - 1)·nc`` candidates, and the loss is
``-mean_{i, c} s_nce[i, c]`` (+ ``penalty · mean(s^2)`` over the raw scores). The optional soft
clip ``s' = clip · tanh(s / clip)`` is applied after the penalty and before the log-softmax.

Only one number per antecedent is needed from the negatives, ``lse[i] = log sum_{j != p(i), c'}
exp(s[i, j, c'])``; then ``s_nce = s_pos - logaddexp(s_pos, lse)``. This is the seed's
``sshift``/``sother`` algorithm written in log space, so it is stable for scores of any magnitude.
Both entry points run custom ``torch.autograd.Function``\\ s (:mod:`mi_estimators.nce_kernels`)
that work in chunks of antecedent rows (``chunk_size``) and recompute the softmax in the backward
pass from the saved ``lse``:

* :func:`nce_loss` takes the ``(na, nb, nc)`` scores; besides the scores and their gradient it
  allocates only a few chunk-sized temporaries.
* :func:`nce_loss_features` takes the features and never holds more than the one
  ``(na, nb·nc)`` score tensor (plus chunk-sized temporaries): three matrix products in all
  (scores forward; ``dL/da`` and ``dL/db`` backward), no ``(na, nb·nc)`` gradient tensor.

NaN or ``+inf`` scores raise ``ValueError`` (detected from the per-row results, without an extra
pass over the scores; skipped inside :func:`mi_estimators.scores.finite_checks` ``(False)``, as the
bounds' check); a ``-inf`` negative counts as absent. The kernels read no value on the host when
the scores live on an accelerator, so they do not stall it.

Reference: P. Bachman, R. D. Hjelm, W. Buchwalter, "Learning Representations by Maximizing Mutual
Information Across Views", NeurIPS 2019, arXiv:1906.00910.

>>> import torch
>>> from mi_estimators.nce import nce_loss, nce_loss_features
>>> a, b = torch.randn(4, 8), torch.randn(4, 5, 8)          # 4 images, 5 locations, d = 8
>>> loss = nce_loss_features(a, b)
>>> torch.allclose(loss, nce_loss(torch.einsum("id,jcd->ijc", a, b)))
True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mi_estimators.nce_kernels import NCEFromFeatures, NCEFromScores, acc_dtype
from mi_estimators.scores import finite_checks_enabled, stabilise
from mi_estimators.options import non_negative_float, optional, positive_float, positive_int

__all__ = ["nce_candidates", "nce_log_probs", "nce_loss", "nce_loss_features", "nce_terms", "rows_per_chunk",
           "score_penalty"]

#: default chunk: at most this many score elements per chunk of antecedent rows (64 MiB in float32) ...
MAX_CHUNK_ELEMENTS = 1 << 24
#: ... and at least this many (4 MiB), below which thin matrix products lose speed
MIN_CHUNK_ELEMENTS = 1 << 20
#: score tensors up to this many elements skip the chunked kernels for plain autograd operations
#: (same values and gradients; on a (64, 64) matrix the kernel's fixed costs made it ~4x slower;
#: from about this size on the kernels are as fast or faster: ``benchmarks/bench_nce.py``)
SMALL_SCORES = 1 << 15
#: ... and with one location (``(na, nb)`` scores, e.g. InfoNCE on a batch), where the plain path is
#: one fused log-softmax per row: 1.9-3.3x faster than the kernel up to (256, 256), 1.2x at
#: (512, 512), 0.8x at (1024, 1024) (forward + backward, one CPU thread)
SMALL_ROW_SCORES = 1 << 18
#: the same for :func:`nce_loss_features` (``na·nb·nc`` scores): there the kernel's fixed costs
#: are paid back from about twice that size (at d = 256-1024; ``benchmarks/bench_nce.py``)
SMALL_FEATURE_SCORES = 1 << 16


def nce_candidates(nb: int, nc: int) -> int:
    """Number of candidates in each positive's softmax: itself and ``(nb - 1)·nc`` negatives."""
    return 1 + (nb - 1) * nc


# --------------------------------------------------------------------------------------------
# input checks


def _check_options(penalty: float, clip: float | None, chunk_size: int | None) -> None:
    non_negative_float("penalty", penalty, " (AMDIM uses 4e-2)")
    optional(positive_float, "clip", clip, " of nats, or None (AMDIM uses 20)")
    optional(positive_int, "chunk_size", chunk_size, " (antecedent rows per chunk), or None (automatic)")


def _check_float(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert with .float()")


def _positive_index(na: int, nb: int, pos_offset: int, pos_index: Tensor | None, device) -> Tensor:
    if pos_index is not None:
        pos_index = torch.as_tensor(pos_index, device=device)
        if pos_index.shape != (na,) or pos_index.is_floating_point():
            raise ValueError(f"pos_index must be an integer tensor of shape ({na},), got "
                             f"{tuple(pos_index.shape)} {pos_index.dtype}")
        if na and finite_checks_enabled() and (int(pos_index.min()) < 0 or int(pos_index.max()) >= nb):
            raise ValueError(f"pos_index entries must lie in [0, {nb}) (consequent indices)")
        return pos_index.long()
    if isinstance(pos_offset, bool) or not isinstance(pos_offset, int) or pos_offset < 0 or na + pos_offset > nb:
        raise ValueError(
            f"pos_offset must be an integer with 0 <= pos_offset <= nb - na = {nb - na} (positives at "
            f"[i, i + pos_offset]; a DDP rank passes rank * na), got {pos_offset!r}")
    return torch.arange(pos_offset, pos_offset + na, device=device)


def _check_nce_scores(scores: Tensor) -> Tensor:
    _check_float("scores", scores)
    if scores.dim() == 2:
        scores = scores.unsqueeze(-1)
    if scores.dim() != 3 or scores.shape[2] < 1 or scores.shape[0] < 1:
        raise ValueError(
            "scores must have shape (na, nb, nc) with nb >= na: scores[i, j, c] = antecedent i against "
            f"location c of consequent j, positives at [i, i + pos_offset, :]; got {tuple(scores.shape)}")
    if scores.shape[1] < 2:
        raise ValueError(f"need nb >= 2 consequents so that every positive has negatives, got {tuple(scores.shape)}")
    return scores

# --------------------------------------------------------------------------------------------
# chunks and results of the kernels (:mod:`mi_estimators.nce_kernels`)


def rows_per_chunk(na: int, cols: int, chunk_size: int | None) -> int:
    """Rows per chunk: the user's ``chunk_size``, else 1/8 of the scores within [2^20, 2^24] elements."""
    if chunk_size is not None:
        return min(chunk_size, na)
    budget = max(cols, MIN_CHUNK_ELEMENTS, min(MAX_CHUNK_ELEMENTS, (na * cols) // 8))
    return max(1, min(na, budget // cols))


def _check_finite(log_probs: Tensor, sq: Tensor | None) -> None:
    """Raise ``ValueError`` when a log-probability (<= 0, so their sum is finite exactly when each
    is) or the square sum is not finite: a NaN or ``+inf`` score, or a ``-inf`` positive.

    Skipped inside :func:`mi_estimators.scores.finite_checks` ``(False)``, as the bounds' check is
    (the trainer kit's step runs so and checks its loss at its own sync points instead).
    """
    if not finite_checks_enabled():
        return
    total = float(log_probs.detach().sum()) + (0.0 if sq is None else float(sq.detach()))
    if not math.isfinite(total):
        raise ValueError("scores contain NaN or infinite entries (NaN/Inf in the features?); check the "
                         "encoder's inputs and lower the learning rate")


def _log_probs(s_pos: Tensor, lse: Tensor) -> Tensor:
    """``s_pos - log(e^{s_pos} + e^{lse})``: the positives' log-softmax, (na, nc)."""
    return s_pos - torch.logaddexp(s_pos, lse[:, None])


# --------------------------------------------------------------------------------------------
# public API


def nce_terms(scores: Tensor, *, pos_offset: int = 0, pos_index: Tensor | None = None,
              clip: float | None = None, chunk_size: int | None = None,
              with_mean_square: bool = False) -> tuple[Tensor, Tensor | None]:
    """``(s_nce, mean(s^2))``: :func:`nce_log_probs` and the raw scores' mean square in one pass.

    The mean square (AMDIM's penalty term before its weight) is None unless ``with_mean_square``.
    """
    _check_options(0.0, clip, chunk_size)
    scores = _check_nce_scores(scores)
    na, nb, nc = scores.shape
    pos = _positive_index(na, nb, pos_offset, pos_index, scores.device)
    if chunk_size is None and scores.numel() <= (SMALL_ROW_SCORES if nc == 1 else SMALL_SCORES):
        log_probs, sq = _small_log_probs(scores, pos, clip, with_mean_square)
    else:
        rows = rows_per_chunk(na, nb * nc, chunk_size)
        s_pos, lse, sq = NCEFromScores.apply(scores, pos, clip, rows, with_mean_square)
        log_probs = _log_probs(s_pos, lse)
    _check_finite(log_probs, sq)
    return log_probs, (sq / scores.numel() if with_mean_square else None)


def _small_log_probs(scores: Tensor, pos: Tensor, clip: float | None, want_sq: bool) -> tuple[Tensor, Tensor | None]:
    """The log-probabilities ``(na, nc)`` and the square sum that the chunked kernels give, with
    autograd operations (for small tensors). With one location a positive's candidates are its
    whole row, so its log-probability is the row's log-softmax at the positive (one fused pass)."""
    na, nb, nc = scores.shape
    x = scores.to(acc_dtype(scores.dtype))
    sq = x.pow(2).sum() if want_sq else None
    x = stabilise(x, clip)
    rows = torch.arange(na, device=x.device)
    if nc == 1:
        return torch.log_softmax(x[:, :, 0], dim=1)[rows, pos][:, None], sq
    s_pos = x[rows, pos]                                                    # (na, nc)
    is_pos = pos[:, None] == torch.arange(nb, device=x.device)              # (na, nb)
    lse = torch.logsumexp(x.masked_fill(is_pos[:, :, None], -math.inf).reshape(na, -1), dim=1)
    return _log_probs(s_pos, lse), sq


def nce_log_probs(scores: Tensor, *, pos_offset: int = 0, pos_index: Tensor | None = None,
                  clip: float | None = None, chunk_size: int | None = None) -> Tensor:
    """Per-positive NCE log-probabilities ``s_nce[i, c]``, shape ``(na, nc)``, each <= 0.

    ``scores``: ``(na, nb, nc)`` (or ``(na, nb)`` for ``nc = 1``), positives at
    ``scores[i, pos_index[i], :]`` with ``pos_index[i] = i + pos_offset`` unless given. Every
    positive is contrasted with all ``(nb - 1)·nc`` locations of the other consequents, so
    ``s_nce + log(1 + (nb - 1)·nc)`` is the InfoNCE estimate of each positive (<= log of that).

    >>> import torch
    >>> nce_log_probs(torch.zeros(3, 3, 2)).exp()      # 1 positive among 1 + 2*2 equal candidates
    tensor([[0.2000, 0.2000],
            [0.2000, 0.2000],
            [0.2000, 0.2000]])
    """
    return nce_terms(scores, pos_offset=pos_offset, pos_index=pos_index, clip=clip, chunk_size=chunk_size)[0]


def score_penalty(penalty: float, mean_square: Tensor | None) -> Tensor | float:
    """AMDIM's score penalty ``λ · mean(s²)`` over the raw scores (Bachman et al. 2019, Sec. 3.3).

    ``0.0`` when ``penalty`` (λ) is 0, whatever ``mean_square`` is (it may then be None, so that
    callers compute the mean square only when it is used). The one place the penalty is written:
    the NCE losses here, the NCE bounds and AMDIM's objective all add it through this function.

    >>> import torch
    >>> float(score_penalty(0.5, torch.tensor(4.0))), score_penalty(0.0, None)
    (2.0, 0.0)
    """
    return penalty * mean_square if penalty else 0.0


def nce_loss(scores: Tensor, *, pos_offset: int = 0, penalty: float = 0.0, clip: float | None = None,
             chunk_size: int | None = None) -> Tensor:
    """AMDIM's NCE loss ``-mean_{i,c} s_nce[i, c] + penalty · mean(s^2)`` from ``(na, nb, nc)`` scores.

    ``pos_offset``: positives at ``scores[i, i + pos_offset, :]`` (a DDP rank scores its ``na``
    local antecedents against the ``nb`` gathered consequents and passes ``rank · na``).
    ``clip``: soft clip ``clip · tanh(s / clip)`` before the log-softmax (the penalty sees the raw
    scores). ``chunk_size``: antecedent rows per chunk (default: 1/8 of the rows, kept between
    2^20 and 2^24 score elements per chunk).

    >>> import torch
    >>> loss = nce_loss(torch.zeros(4, 4, 3))          # chance: log(1 + 3*3)
    >>> round(float(loss), 4) == round(math.log(10), 4)
    True
    """
    _check_options(penalty, clip, chunk_size)
    snce, msq = nce_terms(scores, pos_offset=pos_offset, clip=clip, chunk_size=chunk_size,
                          with_mean_square=bool(penalty))
    return -snce.mean() + score_penalty(penalty, msq)


def _check_features(antecedents: Tensor, consequents: Tensor, pos_index: Tensor | None) -> Tensor:
    """Validate the inputs of :func:`nce_loss_features`; returns the consequents as ``(nb, nc, d)``."""
    _check_float("antecedents", antecedents)
    _check_float("consequents", consequents)
    if consequents.dim() == 2:
        consequents = consequents.unsqueeze(1)
    if antecedents.dim() != 2 or consequents.dim() != 3 or antecedents.shape[1] != consequents.shape[2]:
        raise ValueError(
            "antecedents must have shape (na, d) and consequents (nb, nc, d) with the same d; got "
            f"{tuple(antecedents.shape)} and {tuple(consequents.shape)}")
    if antecedents.dtype != consequents.dtype or antecedents.device != consequents.device:
        raise ValueError(f"antecedents and consequents must share dtype and device; got {antecedents.dtype} on "
                         f"{antecedents.device} and {consequents.dtype} on {consequents.device}")
    na, nb = antecedents.shape[0], consequents.shape[0]
    if na < 1 or nb < 2 or (pos_index is None and nb < na):
        raise ValueError(f"need na >= 1 antecedents, nb >= 2 consequents and na <= nb unless pos_index is "
                         f"given (antecedents {na}, consequents {nb})")
    return consequents


def nce_loss_features(antecedents: Tensor, consequents: Tensor, *, pos_offset: int = 0,
                      pos_index: Tensor | None = None, penalty: float = 0.0, clip: float | None = None,
                      chunk_size: int | None = None) -> Tensor:
    """:func:`nce_loss` of the scores ``antecedents @ consequents^T``, computed memory-efficiently.

    ``antecedents``: ``(na, d)``; ``consequents``: ``(nb, nc, d)`` (or ``(nb, d)`` for ``nc = 1``);
    ``scores[i, j, c] = antecedents[i] · consequents[j, c]``. Positives at consequent
    ``pos_index[i]`` when given (any ``na``, e.g. several antecedent locations per image), else at
    ``i + pos_offset`` (then ``nb >= na``). Up to :data:`SMALL_FEATURE_SCORES` score elements
    (and no ``chunk_size``) the loss is plain autograd operations, which are faster there; above,
    the ``(na, nb·nc)`` score tensor is materialised once and the backward pass recomputes the
    softmax from it in chunks and never builds the gradient of the scores as a whole, so peak
    memory stays near one score tensor and the time near three score-sized matrix products.

    >>> import torch
    >>> a = torch.randn(8, 16, requires_grad=True)
    >>> nce_loss_features(a, torch.randn(8, 49, 16), clip=20.0).backward()
    >>> a.grad.shape
    torch.Size([8, 16])
    """
    _check_options(penalty, clip, chunk_size)
    consequents = _check_features(antecedents, consequents, pos_index)
    na, (nb, nc, d) = antecedents.shape[0], consequents.shape
    pos = _positive_index(na, nb, pos_offset, pos_index, antecedents.device)
    if chunk_size is None and na * nb * nc <= SMALL_FEATURE_SCORES:
        scores = (antecedents @ consequents.reshape(nb * nc, d).T).view(na, nb, nc)
        log_probs, sq = _small_log_probs(scores, pos, clip, bool(penalty))
    else:
        rows = rows_per_chunk(na, nb * nc, chunk_size)
        s_pos, lse, sq = NCEFromFeatures.apply(antecedents, consequents.contiguous(), pos, clip, rows,
                                                bool(penalty))
        log_probs = _log_probs(s_pos, lse)
    _check_finite(log_probs, sq)
    return -log_probs.mean() + score_penalty(penalty, sq / (na * nb * nc) if penalty else None)

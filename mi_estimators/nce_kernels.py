"""The chunked autograd kernels behind :mod:`mi_estimators.nce` (no input checks here).

Notation as in :mod:`mi_estimators.nce`: ``scores`` ``(na, nb, nc)``, positives of antecedent
``i`` at ``scores[i, pos[i], :]``; the negatives enter only through ``lse[i] = log sum_{j != pos[i],
c'} exp(s[i, j, c'])``. Each kernel is a ``torch.autograd.Function`` that returns ``(clipped
positives (na, nc), lse (na,), sum of the raw s^2)`` and loops over chunks of ``rows`` antecedents,
so its temporaries are chunk-sized; the backward pass recomputes the softmax from the saved ``lse``:

* :class:`NCEFromScores` takes the scores;
* :class:`NCEFromFeatures` takes antecedent ``(na, d)`` and consequent ``(nb, nc, d)`` features and
  never builds the scores' gradient as a separate tensor (it overwrites the scores with it).

The caller checks the inputs, picks ``rows`` and checks the results for NaN/Inf. The kernels read
no value on the host when the scores live on an accelerator, so they do not stall it.

Reference: P. Bachman, R. D. Hjelm, W. Buchwalter, "Learning Representations by Maximizing Mutual
Information Across Views", NeurIPS 2019, arXiv:1906.00910.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["NCEFromFeatures", "NCEFromScores", "acc_dtype"]


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Soft-max arithmetic runs in at least float32 (bf16/fp16 scores are upcast per chunk)."""
    return torch.promote_types(dtype, torch.float32)


def _exp_floor(dtype: torch.dtype) -> float:
    """Exponents are clamped below at this value before ``exp``.

    ``exp`` of very negative numbers and arithmetic on the subnormal results are 10-100x slower on
    CPUs (and poison the matrix products of the backward pass). ``log(tiny) + 20`` (-67 in float32)
    keeps every intermediate a normal number; each clamped term is below ``e^-67 ~ 1e-29`` of the
    largest one, far under the float's resolution, so values and gradients are unchanged.
    """
    return math.log(torch.finfo(dtype).tiny) + 20.0


def _forward_block(block: Tensor, pos: Tensor, clip: float | None, want_sq: bool, work: Tensor,
                   spare: Tensor | None):
    """One chunk of rows: ``block`` (r, nb, nc) raw scores, ``pos`` (r,) positive consequents.

    Returns the clipped positive scores (r, nc), ``lse`` of the negatives (r,), and the sum of the
    raw squared scores (0-dim; 0 unless ``want_sq``). ``work`` and ``spare`` are reusable buffers of
    at least ``r`` rows in the accumulation dtype; ``spare`` None means the block itself may be
    used as scratch (it is modified temporarily and restored). A NaN or +inf anywhere in a row
    makes its ``lse`` or positives non-finite, which the caller checks.
    """
    r = block.shape[0]
    rows = torch.arange(r, device=block.device)
    restore = None                                       # the negatives' log-sum-exp works on ``neg``
    if spare is None:
        neg = block
        restore = block[rows, pos].clone()
    else:
        neg = spare[:r].copy_(block)                     # our own copy (upcast when needed)
    flat = neg.reshape(-1)
    sq = torch.dot(flat, flat) if want_sq else neg.new_zeros(())
    if clip is not None:
        neg.div_(clip).tanh_().mul_(clip)                # AMDIM's soft clip, after the penalty's s^2
    s_pos = neg[rows, pos].clone()                       # (r, nc)
    neg[rows, pos] = -math.inf                           # the positives' own consequent is no negative
    shift = neg.reshape(r, -1).amax(dim=1)               # (r,): the seed's sshift, over negatives only
    terms = torch.sub(neg, shift[:, None, None], out=work[:r]).clamp_(min=_exp_floor(neg.dtype)).exp_()
    terms[rows, pos] = 0.0
    lse = terms.reshape(r, -1).sum(dim=1).log_().add_(shift)   # (r,)
    if restore is not None:
        neg[rows, pos] = restore
    return s_pos, lse, sq


def _grad_block(block: Tensor, pos: Tensor, lse: Tensor, g_pos: Tensor, g_lse: Tensor,
                g_sq: Tensor | None, clip: float | None, out: Tensor | None = None) -> Tensor:
    """Gradient w.r.t. a block of raw scores ``block`` (r, nb, nc), positives at ``[i, pos[i]]``.

    ``d lse[i] / d s[i, j, c] = softmax over the negatives``; ``d s_pos[i, c] / d s[i, p(i), c] = 1``;
    both are chained through the soft clip; the penalty adds ``2 g_sq s``. The factor ``g_lse`` is
    folded into the exponent (``exp(s - lse + log|g_lse|)``) so that no subnormal number arises.
    Written into ``out`` when given (same shape, the accumulation dtype); ``out`` may be ``block``
    itself unless the penalty term (which reads the raw scores last) is on.
    """
    x = block.to(acc_dtype(block.dtype))
    floor = _exp_floor(x.dtype)
    g_lse = g_lse.to(x.dtype)
    log_g = g_lse.abs().log()[:, None, None]              # -inf where g_lse == 0
    if clip is not None:
        t = torch.tanh(x / clip)                          # (r, nb, nc)
        grad = torch.mul(t, clip, out=out).sub_(lse[:, None, None] - log_g)
    else:
        t = None
        grad = torch.sub(x, lse[:, None, None] - log_g, out=out)
    grad.clamp_(min=floor, max=-floor).exp_()            # |g_lse[i]| * softmax; > -floor only at positives
    if not _on_host(g_lse) or bool((g_lse <= 0).any()):   # the sign, without a device sync
        grad.mul_(torch.sign(g_lse)[:, None, None])
    grad[torch.arange(block.shape[0], device=grad.device), pos] = g_pos.to(grad.dtype)  # d s_pos, not d lse
    if t is not None:
        grad.mul_(t.square_().neg_().add_(1.0))           # d clip(s) / ds = 1 - tanh^2
    if g_sq is not None:
        grad.addcmul_(x, (2.0 * g_sq).to(x.dtype))       # a 0-dim tensor: no host sync
    return grad


def _forward_all(scores: Tensor, pos: Tensor, clip: float | None, rows: int, want_sq: bool, owned: bool = False):
    """Loop :func:`_forward_block` over chunks of ``rows`` antecedents, reusing two chunk buffers."""
    na, nb, nc = scores.shape
    acc = acc_dtype(scores.dtype)
    s_pos = scores.new_empty((na, nc), dtype=acc)
    lse = scores.new_empty((na,), dtype=acc)
    sq = scores.new_zeros((), dtype=acc)
    work = scores.new_empty((min(rows, na), nb, nc), dtype=acc)
    in_place = owned and clip is None and acc == scores.dtype
    spare = None if in_place else torch.empty_like(work)
    for r0 in range(0, na, rows):
        r1 = min(na, r0 + rows)
        s_pos[r0:r1], lse[r0:r1], q = _forward_block(scores[r0:r1], pos[r0:r1], clip, want_sq, work, spare)
        sq += q
    return s_pos, lse, sq


def _on_host(x: Tensor) -> bool:
    """Whether reading a value of ``x`` on the host is free (on the CPU); on an accelerator it would
    wait for the device, so the kernels avoid it there."""
    return x.device.type == "cpu"


class NCEFromScores(torch.autograd.Function):
    """(na, nb, nc) scores -> (clipped positives (na, nc), negatives' lse (na,), sum s^2)."""

    @staticmethod
    def forward(ctx, scores, pos, clip, rows, want_sq):
        s_pos, lse, sq = _forward_all(scores, pos, clip, rows, want_sq)
        ctx.save_for_backward(scores, pos, lse)
        ctx.clip, ctx.rows, ctx.want_sq = clip, rows, want_sq
        return s_pos, lse, sq

    @staticmethod
    def backward(ctx, g_pos, g_lse, g_sq):
        scores, pos, lse = ctx.saved_tensors
        acc = acc_dtype(scores.dtype)
        grad = torch.empty_like(scores, dtype=acc)
        for r0 in range(0, scores.shape[0], ctx.rows):
            r1 = min(scores.shape[0], r0 + ctx.rows)
            _grad_block(scores[r0:r1], pos[r0:r1], lse[r0:r1], g_pos[r0:r1], g_lse[r0:r1],
                        g_sq if ctx.want_sq else None, ctx.clip, out=grad[r0:r1])
        return grad.to(scores.dtype), None, None, None, None


class NCEFromFeatures(torch.autograd.Function):
    """Antecedents (na, d), consequents (nb, nc, d) -> same outputs as :class:`NCEFromScores`.

    The score tensor ``a @ b^T`` (na, nb·nc) is computed once and kept for the backward pass, which
    turns it, one chunk of rows at a time, into ``G = dL/ds`` in place (the scores are not needed
    afterwards); then ``dL/da = G b`` and ``dL/db = G^T a`` (in consequent blocks). A second
    backward through the same graph (``retain_graph``) recomputes the scores from the saved inputs
    first.
    """

    @staticmethod
    def forward(ctx, a, b, pos, clip, rows, want_sq):
        na, (nb, nc, d) = a.shape[0], b.shape
        scores = (a @ b.reshape(nb * nc, d).T).view(na, nb, nc)
        s_pos, lse, sq = _forward_all(scores, pos, clip, rows, want_sq, owned=True)
        ctx.save_for_backward(a, b, pos, lse)
        ctx.scores = scores                                # an intermediate, overwritten by the backward
        ctx.clip, ctx.rows, ctx.want_sq = clip, rows, want_sq
        return s_pos, lse, sq

    @staticmethod
    def backward(ctx, g_pos, g_lse, g_sq):
        a, b, pos, lse = ctx.saved_tensors
        clip, g_sq = ctx.clip, (g_sq if ctx.want_sq else None)
        na, (nb, nc, d) = a.shape[0], b.shape
        b_flat = b.reshape(nb * nc, d)
        scores, ctx.scores = ctx.scores, None
        if scores is None:                                 # backward again through a retained graph
            scores = (a @ b_flat.T).view(na, nb, nc)
        in_place = g_sq is None and acc_dtype(scores.dtype) == scores.dtype
        for r0 in range(0, na, ctx.rows):               # chunks bound the temporaries only
            r1 = min(na, r0 + ctx.rows)
            block = scores[r0:r1]
            g = _grad_block(block, pos[r0:r1], lse[r0:r1], g_pos[r0:r1], g_lse[r0:r1], g_sq, clip,
                            out=block if in_place else None)
            if not in_place:
                block.copy_(g)                             # G (in the scores' dtype) replaces the scores
            del g                                          # a chunk-sized temporary: gone before dL/da, dL/db
        grad = scores.view(na, nb * nc)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = grad.to(b.dtype) @ b_flat             # one whole product: chunking it streams b again
        if ctx.needs_input_grad[1]:
            grad = grad.to(a.dtype)
            grad_b = torch.empty_like(b_flat)
            cons = max(1, (ctx.rows * nb) // na)          # consequents per product
            for j0 in range(0, nb, cons):
                j1 = min(nb, j0 + cons)
                torch.mm(grad[:, j0 * nc:j1 * nc].T, a, out=grad_b[j0 * nc:j1 * nc])
            grad_b = grad_b.view(nb, nc, d)
        return grad_a, grad_b, None, None, None, None

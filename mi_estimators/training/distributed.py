"""DDP helpers: process-group setup from torchrun's environment, and a gradient-preserving gather.

Under ``torchrun --nproc_per_node=N`` every rank reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`init_distributed` starts the process group (NCCL on CUDA, gloo on the CPU). Without those
variables everything here is a no-op on one process.

Contrastive negatives across ranks
----------------------------------
:func:`gather_with_grad` concatenates a tensor over all ranks along dim 0 and keeps the gradient:
its backward sends each rank the *sum over ranks* of the gradient of its own slice. Two ways to use
it, both exactly equivalent (values and DDP-averaged gradients) to one process holding the whole
global batch:

* **global scores** (any bound): gather both sides, build the full ``(W·B, W·B[, L])`` score tensor
  on every rank and take ``bound.loss`` of it. Every rank computes the same loss ``L``; the gather's
  backward gives each local slice ``W · dL/dslice`` and DDP's averaging divides by ``W``.
* **local rows** (row-separable losses such as ``mi_estimators.nce.nce_loss``): gather only the
  consequents and score the ``B`` local antecedents against them, ``(B, W·B, L)``, positives at
  ``pos_offset = rank * B`` (:func:`rank_offset`). Each rank's loss is the mean over its rows; DDP's
  average over ranks is the mean over the global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["DistInfo", "init_distributed", "gather_with_grad", "rank_offset", "world_size", "rank"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: the one source of the rank a trainer and its objective use.

    An objective gets it from the trainer when it is built (``Trainer.dist``) and uses
    :meth:`gather` for negatives from every rank and :meth:`rank_offset` for its positives.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, x: Tensor) -> Tensor:
        """:func:`gather_with_grad` over the ranks; the identity on one process."""
        return gather_with_grad(x) if self.enabled else x

    def rank_offset(self, local_batch: int) -> int:
        """Index of this rank's first sample in the gathered batch: ``rank * local_batch``."""
        return self.rank * local_batch


def init_distributed(device: torch.device) -> DistInfo:
    """Start the default process group if torchrun's variables are set; returns rank information.

    Reuses a group that is already initialised (e.g. by a test that spawns processes itself).
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_available():  # pragma: no cover
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_with_grad(x: Tensor) -> Tensor:
    """``cat([x from rank 0, x from rank 1, ...], dim=0)`` with gradients flowing back to each rank.

    Identity on one process. All ranks must pass the same shape.
    """
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums the incoming gradient over ranks and keeps this rank's slice.

    (The gradient is made contiguous before the collective: gloo's collectives on non-contiguous
    gradients, which einsum/matmul backward passes produce, give wrong values.)
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.contiguous()
        ctx.n, ctx.rank = x.shape[0], dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        if dist.get_backend() == "nccl":
            out = torch.empty((ctx.n, *grad.shape[1:]), dtype=grad.dtype, device=grad.device)
            dist.reduce_scatter_tensor(out, grad)
            return out
        total = grad.clone()
        dist.all_reduce(total)
        return total[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def rank_offset(local_batch: int) -> int:
    """Index of this rank's first sample in the gathered batch: ``rank * local_batch``."""
    return rank() * local_batch


"""Run a test function on several CPU ranks (gloo), the way ``torchrun`` would start them.

>>> from mi_estimators.testing.distributed import run_on_ranks
>>> def worker(rank, world, path):          # module level: the spawned processes import it
...     ...                                 # the default process group is already up
>>> run_on_ranks(worker, "out.pt")           # doctest: +SKIP

:func:`run_on_ranks` spawns ``world_size`` processes, sets torchrun's variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), starts the gloo process group
with one torch thread per rank and calls ``fn(rank, world_size, *args)`` in each. After ``fn``
returns, every rank waits at a barrier before the group is destroyed: a rank that tears gloo down
while another is still using it can abort with ``terminate called without an active exception``
(seen on a loaded 2-core machine). If ``fn`` raises on one rank, the others are terminated and the
exception is re-raised here (:func:`torch.multiprocessing.spawn`).
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["gloo_available", "run_on_ranks"]


def gloo_available() -> bool:
    """Whether this PyTorch build has ``torch.distributed`` with the gloo backend."""
    return dist.is_available() and dist.is_gloo_available()


def run_on_ranks(fn: Callable[..., Any], *args: Any, world_size: int = 2) -> None:
    """Call ``fn(rank, world_size, *args)`` on ``world_size`` spawned gloo ranks; wait for all."""
    if not gloo_available():
        raise RuntimeError("run_on_ranks needs torch.distributed with the gloo backend")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_main, args=(world_size, port, fn, args), nprocs=world_size, join=True)


def _rank_main(rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    try:
        fn(rank, world_size, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()

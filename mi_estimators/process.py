"""Process state that a call changes and gives back on exit: torch's random generators
(:func:`seeded`), its CPU thread count (:func:`threads`) and the flushing of denormal floats
(:func:`flush_denormals`).

:func:`mi_estimators.estimate`, ``mi-estimators validate`` and the studies run inside these, so
that a caller's state is the same after the call; :mod:`mi_estimators.fit` re-exports them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["flush_denormals", "flushing_denormals", "seeded", "threads"]


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's CPU generator inside the block, and that of ``device`` when it is a CUDA device,
    and give the caller's states back on exit (``seed=None``: nothing is seeded, the states are still
    restored). No other device's generator is touched (:func:`torch.manual_seed` would seed every
    CUDA device and leave them changed)."""
    cuda = [] if device is None or device.type != "cuda" else [
        torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=cuda):
        if seed is not None:
            torch.random.default_generator.manual_seed(seed)
            for index in cuda:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
        yield


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then restore the caller's count (None: as is)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def flushing_denormals() -> bool:
    """Whether this thread flushes denormal floats to zero (:func:`torch.set_flush_denormal`): then
    the denormal 1e-323 reads back as 0 (the test in torch's documentation)."""
    return torch.tensor([1e-323], dtype=torch.float64).item() == 0.0


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Run the block with denormal floats flushed to zero, then restore the caller's setting.

    Denormals (float32 below 1.2e-38) are 10-100x slower in CPU arithmetic, and the soft-max of a
    sharp critic at high MI produces many of them (e^{s - max} for gaps of 87-103 nats): on
    ``uniform-3x3-eps0.1`` a training step took 3.9-6.2 ms with them and 2.3-2.5 ms without. Values
    that small do not change any estimate. A no-op where the CPU cannot flush them."""
    before = flushing_denormals()
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(before)

"""Checkpoints that are written atomically and read without running code.

A checkpoint is one ``torch.save`` dictionary of tensors and plain builtins only: the weights and
the optimiser's and scheduler's ``state_dict``\\ s, the random-number-generator states (tensors,
lists and ints, :func:`capture_rng`), counters, the history and the config as a plain dict. It is
written to a temporary file in the same directory, flushed to disk, then moved over the previous
one with ``os.replace`` (atomic on POSIX): a run killed at any moment leaves either the old or the
new checkpoint, never a torn one.

It is read with ``torch.load(..., weights_only=True)``, which only rebuilds tensors and builtins
and refuses any other pickled object, so a checkpoint from elsewhere cannot run code when it is
loaded. A file the safe loader refuses, or that lacks this library's format marker, raises
:class:`CheckpointError` (a ``ValueError``) and nothing in it is used. There is no unsafe
fallback.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FORMAT", "CheckpointError", "save_atomic", "save_checkpoint", "load_checkpoint", "capture_rng",
           "restore_rng"]

#: the format marker of the checkpoints this library writes
FORMAT = "mi-estimators-checkpoint/2"


class CheckpointError(ValueError):
    """A file that is not a checkpoint this library wrote (or not one it can read safely)."""


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a trainer's ``state`` (tensors and builtins) with the format marker, atomically."""
    return save_atomic({**state, "format": FORMAT}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` with torch's safe loader.

    Raises ``FileNotFoundError`` if it is missing and :class:`CheckpointError` if the safe loader
    refuses it (an object other than tensors and builtins: nothing is run), if it is unreadable,
    or if it is not one of this library's checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; run without --resume to start a new run there")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path} is not a checkpoint this library wrote or trusts: the safe loader "
                              f"refused it ({_reason(exc)}) and nothing in it was run; train a new run "
                              "in another --out") from exc
    except Exception as exc:  # torch's reader raises RuntimeError, KeyError, EOFError, ... on damaged files
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {_reason(exc)}); "
                              "it is damaged or not a checkpoint") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint this library wrote (no {FORMAT!r} marker); "
                              "train a new run in another --out")
    return state


def _reason(exc: BaseException) -> str:
    """The informative line of a (often multi-line) torch loading error, shortened."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln] or lines or [repr(exc)]
    text = useful[0]
    return text if len(text) <= 160 else text[:157] + "..."


def capture_rng() -> dict:
    """Python, numpy, torch CPU and (when present) all CUDA generator states, as tensors, lists
    and numbers (what the safe loader reads back)."""
    version, internal, gauss_next = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss_next],
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Set every generator :func:`capture_rng` recorded back to that state."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

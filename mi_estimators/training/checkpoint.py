"""Checkpoints that are written atomically, verified when read, and read without running code.

A checkpoint is one ``torch.save`` dictionary of tensors and plain builtins only: the weights and
the optimiser's and scheduler's ``state_dict``\\ s, the random-number-generator states (tensors,
lists and ints, :func:`capture_rng`), counters, the history and the config as a plain dict, plus
a format marker and a SHA-256 digest of all of it (:func:`state_digest`).

Writing (:func:`save_checkpoint`): the new state goes to a temporary file in the same directory
and is flushed to disk; then the current checkpoint becomes the previous one
(``checkpoint.prev.pt``, :func:`previous_path`) and the temporary file becomes the current one,
each by ``os.replace`` (atomic on POSIX). A run killed at any moment, or a write that fails (a full
disk), leaves the earlier checkpoints as they were.

Reading (:func:`load_checkpoint`): ``torch.load(..., weights_only=True)``, which only rebuilds
tensors and builtins and refuses any other pickled object, so a checkpoint from elsewhere cannot
run code when it is loaded; then the marker and the digest are checked (torch does not notice a
flipped bit in tensor data; the digest does). Any failure raises :class:`CheckpointError` (a
``ValueError``) and nothing in the file is used. There is no unsafe fallback.
:func:`load_latest` falls back to the previous checkpoint when the current one is unreadable.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FORMAT", "CheckpointError", "save_atomic", "save_checkpoint", "load_checkpoint", "load_latest",
           "previous_path", "state_digest", "capture_rng", "restore_rng"]

#: the format marker of the checkpoints this library writes
FORMAT = "mi-estimators-checkpoint/2"


class CheckpointError(ValueError):
    """A file that is not a checkpoint this library wrote (or not one it can read safely)."""


def _write_temp(obj: Any, path: Path) -> str:
    """``torch.save(obj)`` to a new temporary file beside ``path``, flushed to disk; its name.

    Serialised in memory first, so that a failing write (a full disk) is the ``OSError`` it is,
    not torch's opaque ``RuntimeError`` from inside its zip writer.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _replace(tmp: str, path: Path, previous: Path | None = None) -> None:
    """Move ``path`` to ``previous`` (when both exist/are given), then ``tmp`` to ``path``."""
    try:
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the directory entry itself, where the platform allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    path = Path(path)
    _replace(_write_temp(obj, path), path)
    return path


def previous_path(path: str | os.PathLike) -> Path:
    """Where the checkpoint before ``path`` is kept: ``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike, *, keep_previous: bool = True) -> Path:
    """Write a trainer's ``state`` (tensors and builtins) with the format marker and its digest,
    atomically; the checkpoint it replaces becomes :func:`previous_path` (``keep_previous``)."""
    path = Path(path)
    payload = {**state, "format": FORMAT}
    payload["digest"] = state_digest(payload)
    _replace(_write_temp(payload, path), path, previous_path(path) if keep_previous else None)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` with torch's safe loader, and verify it.

    Raises ``FileNotFoundError`` if it is missing and :class:`CheckpointError` if the safe loader
    refuses it (an object other than tensors and builtins: nothing is run), if it is unreadable
    (truncated), if it is not one of this library's checkpoints, or if its digest does not match
    (a damaged file).
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
                              "it is damaged (truncated?) or not a checkpoint") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint this library wrote (no {FORMAT!r} marker); "
                              "train a new run in another --out")
    if state.get("digest") != state_digest(state):
        raise CheckpointError(f"{path} is damaged: its content does not match the SHA-256 digest written "
                              "with it")
    return state


def load_latest(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[dict, Path, str | None]:
    """``(state, file read, warning)``: the checkpoint at ``path``, or, when that one is missing or
    unreadable, the previous one (:func:`previous_path`) with a warning saying why."""
    path = Path(path)
    previous = previous_path(path)
    try:
        return load_checkpoint(path, map_location), path, None
    except (CheckpointError, FileNotFoundError) as exc:
        if not previous.is_file():
            raise
        latest_error = exc
    try:
        state = load_checkpoint(previous, map_location)
    except CheckpointError as exc:
        raise CheckpointError(f"{latest_error}; the previous checkpoint is unusable too: {exc}") from exc
    reason = "missing" if isinstance(latest_error, FileNotFoundError) else f"unusable: {latest_error}"
    return state, previous, f"the latest checkpoint {path} is {reason}; using the previous one, {previous}"


def state_digest(state: dict[str, Any]) -> str:
    """SHA-256 over every value of a checkpoint state but its ``"digest"``: tensors by dtype, shape
    and bytes, builtins by ``repr``, in key order."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "digest"})
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in obj:
            h.update(repr(k).encode() + b":")
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(repr(obj).encode() + b";")


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

"""The run directory (``--out``): checked writable and locked before any work starts.

:func:`claim_run_dir` creates the directory, writes this process's id into ``OUT/run.lock`` (which
proves the directory is writable) and holds an exclusive ``flock`` on that file until
:meth:`RunLock.release`. A second run on the same directory finds the lock held and stops with an
:class:`OutDirError` naming the holder's process id. The operating system drops the ``flock`` of
a process that dies, even by SIGKILL, so a lock file left by a killed run is taken over (the
caller is told, to warn the user). Temporary files a killed run left behind (``.*.tmp``) are
removed once the lock is held.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the directory is checked but not locked
    fcntl = None

__all__ = ["LOCK_NAME", "OutDirError", "RunLock", "claim_run_dir", "write_json"]

LOCK_NAME = "run.lock"


class OutDirError(OSError):
    """``--out`` cannot be written, or another run is using it; the message says what to do."""


@dataclass
class RunLock:
    """A held lock on a run directory; ``stale`` describes a dead holder's lock that was taken over.
    Released by :meth:`release`, or on leaving a ``with`` block."""

    path: Path
    fd: int
    stale: str | None = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Empty the lock file and drop the lock (the file stays: removing it would race)."""
        if self.fd < 0:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        finally:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def claim_run_dir(out: str | os.PathLike) -> RunLock:
    """Create ``out`` if needed, check that it is writable and lock it for this process."""
    out = Path(out)
    lock = out / LOCK_NAME
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutDirError(f"cannot write to --out {out} ({exc.strerror or exc}); choose a writable "
                          "directory with --out") from exc
    try:
        holder = _lock(fd, lock)
        if holder is not None:
            raise OutDirError(f"--out {out} is in use by another run ({holder}, lock file {lock}); wait for it "
                              "to finish, or choose another --out")
        previous = os.pread(fd, 200, 0).decode(errors="replace").strip()
        _write_owner(fd, out)
    except BaseException:
        os.close(fd)
        raise
    _remove_temporaries(out)
    stale = f"took over the lock of a run that is no longer running ({previous})" if previous else None
    return RunLock(lock, fd, stale)


def _lock(fd: int, lock: Path) -> str | None:
    """Take the exclusive lock; ``None`` on success, else who holds it."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "a process that is starting"


def _write_owner(fd: int, out: Path) -> None:
    text = f"process {os.getpid()} on {socket.gethostname()}\n".encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
        os.fsync(fd)
    except OSError as exc:
        raise OutDirError(f"cannot write to --out {out} ({exc.strerror or exc}); free some space or choose "
                          "another directory with --out") from exc


def _remove_temporaries(out: Path) -> None:
    for tmp in out.glob(".*.tmp"):
        try:
            tmp.unlink()
        except OSError:
            pass


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """``obj`` as indented JSON, written atomically (a temporary file moved over ``path``); a write
    error raises :class:`OutDirError` and leaves an earlier ``path`` as it was."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(obj, fh, indent=2, default=str)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise OutDirError(f"could not write {path} ({exc.strerror or exc}); free some disk space or choose a "
                          "writable --out") from exc
    return path

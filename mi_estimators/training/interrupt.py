"""Stopping a run cleanly on SIGINT/SIGTERM: :class:`StopFlag`.

While :meth:`StopFlag.catching` is active, the first SIGINT or SIGTERM only records the signal;
the training loop reads the flag at its next sync point (all-reduced under torchrun, so every rank
stops at the same step), writes an exact mid-epoch checkpoint and exits with ``128 + signal``. A
second signal raises ``KeyboardInterrupt`` at once. The previous handlers are restored on leaving.
Handlers can only be installed from the main thread; elsewhere the flag is set by code only.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["StopFlag"]


class StopFlag:
    """The signal number of the first stop request, or ``None``; ``exit_code`` is what the
    process exits with when it stops for it (``128 + signal``, the shell's convention)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def raised(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum or signal.SIGTERM)

    def handle(self, signum: int, frame: object = None) -> None:
        """The signal handler: record the first signal; a second one stops now."""
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    @contextlib.contextmanager
    def catching(self) -> Iterator["StopFlag"]:
        """SIGINT/SIGTERM set this flag inside the block (main thread only); restored afterwards."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self.handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

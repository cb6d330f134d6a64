"""Stopping on request: the first Ctrl-C or SIGTERM finishes the current step, then stops.

SIGTERM is what ``docker stop``, SLURM and systemd send; it is treated like the first
Ctrl-C, so the run stops at a step boundary and ModelCheckpoint saves it. A second
signal aborts at once. Only the process that installed the handlers reacts, so
DataLoader workers (which inherit them) print nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from ._logging import logger

__all__ = ["GracefulStop", "TrainingInterrupted"]

_NAMES: dict[int, str] = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on Ctrl-C or SIGTERM.

    Attributes:
        signal_number: The signal received.
        exit_code: What a command should exit with: 128 + the signal (130, 143).
    """

    def __init__(self, signal_number: int, step: int) -> None:
        name = _NAMES.get(signal_number, f"signal {signal_number}")
        super().__init__(f"training interrupted by {name} after step {step}")
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number


class GracefulStop:
    """Defers Ctrl-C and SIGTERM to the next step boundary while the block runs."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._pid = os.getpid()

    def check(self, step: int) -> None:
        """Raise [`TrainingInterrupted`][ganlib.TrainingInterrupted] if a stop was requested."""
        if self.requested is not None:
            raise TrainingInterrupted(self.requested, step)

    def _handler(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:  # a DataLoader worker: the main process decides
            return
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signum
        logger.warning(
            f"\n{_NAMES.get(signum, signum)}: finishing the current step, then stopping "
            "(press Ctrl-C again to abort at once)"
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[GracefulStop]:
        """Install the handlers (main thread only; elsewhere signals stay as they are)."""
        self.requested = None
        self._pid = os.getpid()
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handler) for sig in _NAMES}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

"""The ``ganlib`` logger: the library's notices, shown on stderr unless the user says otherwise.

A library usually attaches only a ``NullHandler`` and leaves output to the application,
but then a user who configured nothing would miss notices such as "saved a checkpoint
before stopping". So the ``ganlib`` logger gets a handler of its own, on the current
stderr with the bare message (``"%(message)s"``), unless it already had handlers when
ganlib was imported. It does not propagate, so a ``logging.basicConfig`` does not print
each notice twice. The user stays in charge:

- ``logging.getLogger("ganlib").setLevel(logging.ERROR)`` silences the notices;
- ``logging.getLogger("ganlib").propagate = True`` routes them to the user's own (root)
  handlers instead: the default handler then steps aside;
- handlers added to the ``ganlib`` logger receive them too (remove the default one,
  ``logging.getLogger("ganlib").handlers.clear()``, to receive them only there).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["logger"]

logger = logging.getLogger("ganlib")


class _DefaultHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (so redirections and test
    captures see it), unless the user made ganlib's records propagate to their own
    handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """The stream is always the current stderr; StreamHandler's assignment is ignored."""

    def emit(self, record: logging.LogRecord) -> None:
        if logger.propagate:
            return  # the user's handlers have it
        bars = sys.modules.get("tqdm")
        if bars is not None and getattr(bars.tqdm, "_instances", None):
            # A progress bar is drawn: tqdm.write clears it, writes the notice on its own
            # line and draws the bar again below (a plain write lands on the bar's line).
            try:
                bars.tqdm.write(self.format(record), file=sys.stderr)
            except Exception:
                self.handleError(record)
            return
        super().emit(record)


def _install() -> None:
    """Attach the default handler, once, if the user set up nothing for ``ganlib``."""
    if logger.handlers:
        return
    logger.addHandler(_DefaultHandler())
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


_install()

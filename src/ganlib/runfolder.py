"""Run folders: checked writable before step 1, locked against a second live run, and
never clobbered by a fresh run without being told.

The rule, in one line: **a new run refuses a folder that holds another run's files;
resume that run (``fit(ckpt_path=...)``), pass ``overwrite=True``, or choose another
folder.** A lock file (``.ganlib.lock``, holding the owner's pid and host) refuses a
second live run in the same folder; a lock left by a run that died is taken over
with a notice.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ._logging import logger

if TYPE_CHECKING:
    from .callbacks.base import Callback

__all__ = [
    "LOCK_NAME",
    "RunFolderError",
    "check_writable",
    "describe_os_error",
    "existing_file",
    "hold_locks",
    "output_folders",
    "prepared",
    "refuse_clobbering",
]

LOCK_NAME = ".ganlib.lock"
_held: dict[Path, int] = {}  # folders this process holds, with a count of holders


class RunFolderError(ValueError):
    """An output folder cannot be used: not writable, locked by another run, or holding an
    earlier run's files."""


def describe_os_error(exc: OSError) -> str:
    """What an OS error means for a user, in words: disk full, permission denied, ..."""
    reasons = {
        errno.ENOSPC: "no space left on the device (disk full)",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOTDIR: "a path component is a file, not a folder",
        errno.EISDIR: "it is a folder, not a file",
        errno.EEXIST: "a file of that name is in the way",
    }
    return reasons.get(exc.errno or 0, exc.strerror or str(exc) or type(exc).__name__)


def check_writable(folder: Path, who: str) -> None:
    """Create ``folder`` if needed and write (then remove) a probe file in it.

    Raises:
        RunFolderError: Naming ``who`` (the callback and argument), the folder and why.
    """
    probe = folder / f".ganlib-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"ganlib")
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink()
        raise RunFolderError(
            f"{who}: cannot write to {str(folder)!r}: {describe_os_error(exc)}"
        ) from exc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _acquire(folder: Path) -> None:
    key = folder.resolve()
    if _held.get(key):
        _held[key] += 1
        return
    lock = key / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            pid, host = owner.get("pid"), owner.get("host")
            same_host = host == me["host"]
            if isinstance(pid, int) and pid != me["pid"] and (not same_host or _alive(pid)):
                raise RunFolderError(
                    f"another run (pid {pid} on {host}) is writing to {str(folder)!r}; wait for "
                    f"it to end, or choose another folder (if it is dead, delete {lock})"
                ) from None
            logger.warning(
                f"ganlib: taking over the lock of {str(folder)!r} left by a run that ended "
                f"without releasing it (pid {pid})"
            )
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        _held[key] = 1
        return
    raise RunFolderError(f"could not lock {str(folder)!r}: the lock file keeps reappearing")


def _release(folder: Path) -> None:
    key = folder.resolve()
    count = _held.get(key, 0)
    if count > 1:
        _held[key] = count - 1
        return
    _held.pop(key, None)
    with contextlib.suppress(OSError):
        owner = json.loads((key / LOCK_NAME).read_text() or "{}")
        if owner.get("pid") == os.getpid():
            (key / LOCK_NAME).unlink()


@contextlib.contextmanager
def hold_locks(folders: Iterable[Path]) -> Iterator[None]:
    """Lock every folder for this process while the block runs; release them after.

    Raises:
        RunFolderError: If another live run holds one (nothing stays locked then).
    """
    taken: list[Path] = []
    try:
        for folder in dict.fromkeys(Path(f) for f in folders):
            _acquire(folder)
            taken.append(folder)
        yield
    finally:
        for folder in reversed(taken):
            _release(folder)


def existing_file(path: Path, who: str) -> list[Path]:
    """``[path]`` if a non-empty file is there (an earlier run's), else ``[]``.

    Raises:
        RunFolderError: If ``path`` is a folder.
    """
    if path.is_dir():
        raise RunFolderError(f"{who}: {str(path)!r} is a folder; give a file path")
    return [path] if path.is_file() and path.stat().st_size > 0 else []


def output_folders(callbacks: Iterable[Callback]) -> list[Path]:
    """Every callback's output folders, each checked writable (created if missing).

    Raises:
        RunFolderError: Naming the callback, the folder and why it cannot be written.
    """
    folders: dict[Path, None] = {}
    for callback in callbacks:
        for folder in callback.output_folders():
            check_writable(Path(folder), type(callback).__name__)
            folders[Path(folder)] = None
    return list(folders)


API_REMEDY = (
    "resume that run (fit(ckpt_path=...), or ckpt_path='last'), pass Trainer(overwrite=True) "
    "to replace them, or write this run elsewhere"
)


def refuse_clobbering(callbacks: Iterable[Callback], remedy: str = API_REMEDY) -> None:
    """Refuse a fresh run whose callbacks would replace an earlier run's files.

    Args:
        callbacks: The run's callbacks.
        remedy: The ways on, in the caller's terms (a command names its flags).

    Raises:
        RunFolderError: Listing the files and the ways on.
    """
    earlier = [path for callback in callbacks for path in callback.earlier_outputs()]
    if not earlier:
        return
    shown = ", ".join(str(p) for p in earlier[:4]) + (" ..." if len(earlier) > 4 else "")
    raise RunFolderError(
        f"the output folders hold an earlier run's files ({shown})"
        + (f"; {remedy}" if remedy else "")
    )


@contextlib.contextmanager
def prepared(
    callbacks: list[Callback], fresh: bool, agree: Callable[[bool], bool] = bool
) -> Iterator[None]:
    """The callbacks' output folders, ready for a run: writable, locked, and (for a
    ``fresh`` run) holding no earlier run's files; released when the block ends.

    Args:
        callbacks: The callbacks running in this process.
        fresh: A new run (not a resumed one, not told to overwrite).
        agree: True on every process if the argument is true on any (under DDP only
            rank 0 writes files, but all ranks must stop together when it refuses).

    Raises:
        RunFolderError: For the first problem found (on the other ranks: that rank 0 refused).
    """
    with contextlib.ExitStack() as stack:
        problem: RunFolderError | None = None
        try:
            stack.enter_context(hold_locks(output_folders(callbacks)))
            if fresh:
                refuse_clobbering(callbacks)
        except RunFolderError as exc:
            problem = exc
        if agree(problem is not None):
            raise problem or RunFolderError("another process refused the output folders")
        yield

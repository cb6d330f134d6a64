"""A run folder and the one rule for finding its files.

    RUN/config.toml            the settings that ran, versions, the data's fingerprint
    RUN/checkpoints/last.ckpt  the newest checkpoint (step-NNNNNNN.ckpt beside it)
    RUN/summary.json           the end of the run: steps, time, device, final metrics
    RUN/.replaced-STAMP/       an earlier run that --overwrite set aside, until the new
                               run's first checkpoint

Every command and script that takes a run — ``ganlib train --resume``, ``ganlib sample``,
``ganlib fid``, ``examples/mnist.py --resume``, the benchmarks — finds its checkpoint
through [`RunFolder.checkpoint`][ganlib.runs.RunFolder.checkpoint].
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from typing_extensions import override

from .._logging import logger
from ..callbacks.base import Callback
from ..checkpoint import CheckpointError
from ..runfolder import LOCK_NAME

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = [
    "CHECKPOINTS",
    "CONFIG_NAME",
    "REPLACED_PREFIX",
    "RUN_FILES",
    "SUMMARY_NAME",
    "RunFolder",
    "resume_command",
]

CONFIG_NAME = "config.toml"
SUMMARY_NAME = "summary.json"
CHECKPOINTS = "checkpoints"
# What a run writes in its folder (``ganlib train``'s callbacks, summary.json, the
# example's metrics.json): what ``--overwrite`` sets aside. Other files stay where they are.
RUN_FILES = (
    CONFIG_NAME,
    SUMMARY_NAME,
    "metrics.csv",
    "metrics.json",
    "loss_curve.png",
    "report.html",
    "real_samples.png",
    "overview.png",
    "generated_*.png",
    CHECKPOINTS,
    "tensorboard",
)
REPLACED_PREFIX = ".replaced-"


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run.

    Attributes:
        path: The folder (``--out``).
    """

    path: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> RunFolder:
        """The run a path names: a run folder, or a checkpoint inside one
        (``RUN/checkpoints/x.ckpt`` -> ``RUN``)."""
        path = Path(path)
        if path.is_file():
            parent = path.parent
            return cls(parent.parent if parent.name == CHECKPOINTS else parent)
        return cls(path)

    @property
    def config(self) -> Path:
        """``config.toml``: the settings that ran."""
        return self.path / CONFIG_NAME

    @property
    def summary(self) -> Path:
        """``summary.json``: how the run ended."""
        return self.path / SUMMARY_NAME

    @property
    def checkpoints(self) -> Path:
        """The folder of its checkpoints."""
        return self.path / CHECKPOINTS

    @property
    def last(self) -> Path:
        """``checkpoints/last.ckpt``, where the newest checkpoint is linked."""
        return self.checkpoints / "last.ckpt"

    def is_run(self) -> bool:
        """Whether the folder holds a run (its ``config.toml``)."""
        return self.config.is_file()

    def step_checkpoints(self) -> list[Path]:
        """The step checkpoints, newest first."""
        found = self.checkpoints.glob("step-*.ckpt") if self.checkpoints.is_dir() else []
        return sorted(found, reverse=True)

    def checkpoint(self, given: str | os.PathLike[str] | None = None) -> Path:
        """The checkpoint to continue or sample this run from: ``given`` when it is a
        file; else ``last.ckpt`` (in ``checkpoints/``, or in the folder itself as
        ModelCheckpoint(dirpath=RUN) writes it); else, when that is missing or damaged,
        the newest intact ``step-*.ckpt``, named in a notice. "Intact" reads the file's
        zip directory, not its tensors (a killed or full-disk save leaves it incomplete);
        loading it checks the rest.

        Raises:
            CheckpointError: When the folder holds no readable checkpoint, saying what it
                looked for.
        """
        if given is not None and Path(given).is_file():
            return Path(given)
        folder = Path(given) if given is not None else self.path
        candidates = [folder / CHECKPOINTS / "last.ckpt", folder / "last.ckpt"]
        last = next((p for p in candidates if p.is_file()), None)
        problem = "it has no checkpoints/last.ckpt"
        if last is not None:
            if _complete(last):
                return last
            problem = f"its {last.name} is truncated or not a checkpoint"
        for step in RunFolder(folder).step_checkpoints():
            if _complete(step):
                logger.warning(f"ganlib: {folder}: {problem}; using the newest intact {step.name}")
                return step
        if not folder.exists():
            raise CheckpointError(f"{str(folder)!r} does not exist")
        kept = RunFolder(folder).replaced()
        if kept:  # an --overwrite that ended before its first checkpoint, killed
            problem += (
                f"; the run it replaced is kept in {kept[-1]} (move its files back to use it)"
            )
        raise CheckpointError(f"{str(folder)!r} has no checkpoint yet: {problem}")

    # ------------------------------------------------- --overwrite: replacing a run

    def run_files(self, extra: Iterable[Path] = ()) -> list[Path]:
        """The run's own entries in the folder (`RUN_FILES`), and the ``extra`` paths
        (other callbacks' outputs) that lie directly in it."""
        found = {p for pattern in RUN_FILES for p in self.path.glob(pattern)}
        found |= {p for p in map(Path, extra) if p.parent == self.path and p.exists()}
        return sorted(p for p in found if not p.name.startswith(REPLACED_PREFIX))

    def replaced(self) -> list[Path]:
        """The earlier runs ``--overwrite`` set aside (``.replaced-STAMP``), oldest first."""
        return sorted(self.path.glob(REPLACED_PREFIX + "*")) if self.path.is_dir() else []

    def set_aside(self, extra: Iterable[Path] = ()) -> Path | None:
        """Move the run's files into a new ``.replaced-STAMP`` folder inside it (for a
        folder such as ``checkpoints/``: its files, not its lock); ``None`` when there
        were none. The caller holds the folders' locks.

        Raises:
            OSError: If a file cannot be moved (those moved stay in the returned folder).
        """
        entries = self.run_files(extra)
        if not entries:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path / f"{REPLACED_PREFIX}{stamp}"
        number = 1
        while aside.exists():
            number += 1
            aside = self.path / f"{REPLACED_PREFIX}{stamp}-{number}"
        aside.mkdir()
        for entry in entries:
            _move(entry, aside / entry.name)
        return aside

    def put_back(self, aside: Path) -> None:
        """Undo [`set_aside`][ganlib.runs.RunFolder.set_aside]: delete the run files now in
        the folder (a replacement that failed), then move ``aside``'s files back.

        Raises:
            OSError: If a file cannot be deleted or moved (``aside`` keeps what is left).
        """
        for entry in self.run_files():
            _remove(entry)
        for entry in sorted(aside.iterdir()):
            _move(entry, self.path / entry.name)
        aside.rmdir()

    def restore_replaced(self, aside: Path) -> None:
        """[`put_back`][ganlib.runs.RunFolder.put_back] after a replacement that failed before
        its first checkpoint, saying so (or where the earlier run is kept, if it cannot)."""
        try:
            self.put_back(aside)
        except OSError as exc:
            logger.warning(
                f"ganlib: --overwrite: this run ended before its first checkpoint; the run it "
                f"was replacing is kept in {aside} (putting it back failed: {exc})"
            )
        else:
            logger.warning(
                f"ganlib: --overwrite: this run ended before its first checkpoint, so the run "
                f"it was replacing is back in {self.path}, as it was"
            )

    def remove_replaced(self) -> list[Path]:
        """Delete every earlier run ``--overwrite`` set aside; returns the folders deleted."""
        gone = self.replaced()
        for folder in gone:
            shutil.rmtree(folder)
        return gone


def resume_command(folder: RunFolder | Path) -> str:
    """The command that continues the run in ``folder``, quoted for a shell."""
    path = folder.path if isinstance(folder, RunFolder) else Path(folder)
    return f"ganlib train --resume {shlex.quote(str(path))}"


class ReplacedRun(Callback):
    """Deletes the earlier run that ``--overwrite`` set aside (``RUN/.replaced-STAMP``) as
    soon as the new run has a checkpoint, saying which. Listed after the run's
    ModelCheckpoint, so it sees each save (an exception's too) as it happens."""

    main_process_only = True
    runs_last = True

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.pending = False  # set once the earlier run was set aside

    @property
    @override
    def state_key(self) -> str:
        return f"ReplacedRun[{self.folder.path}]"

    def _check(self) -> None:
        if not self.pending or not self.folder.last.is_file():
            return
        gone = self.folder.remove_replaced()
        self.pending = False
        if gone:
            logger.info(
                f"ganlib: --overwrite: this run wrote its first checkpoint, so the run it "
                f"replaced is deleted ({', '.join(str(g) for g in gone)})"
            )

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self._check()

    @override
    def on_epoch_end(self, trainer: Trainer) -> None:
        self._check()

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        self._check()

    @override
    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self._check()


def _move(source: Path, target: Path) -> None:
    """Move a file, or a folder's contents but its lock (held by this run), to ``target``."""
    if source.is_dir() and not source.is_symlink():
        target.mkdir(exist_ok=True)
        for entry in source.iterdir():
            if entry.name != LOCK_NAME:
                _move(entry, target / entry.name)
        if not any(source.iterdir()):
            source.rmdir()
    else:
        os.replace(source, target)


def _remove(path: Path) -> None:
    """Delete a file, or a folder's contents but its lock."""
    if path.is_dir() and not path.is_symlink():
        for entry in path.iterdir():
            if entry.name != LOCK_NAME:
                _remove(entry)
        if not any(path.iterdir()):
            path.rmdir()
    else:
        path.unlink(missing_ok=True)


def _complete(path: Path) -> bool:
    """Whether ``path`` is a whole torch checkpoint file (its zip directory is readable)."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False

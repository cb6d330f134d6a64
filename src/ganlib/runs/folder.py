"""A run folder and the one rule for finding its files.

    RUN/config.toml            the settings that ran, versions, the data's fingerprint
    RUN/checkpoints/last.ckpt  the newest checkpoint (step-NNNNNNN.ckpt beside it)
    RUN/summary.json           the end of the run: steps, time, device, final metrics

Every command and script that takes a run — ``ganlib train --resume``, ``ganlib sample``,
``ganlib fid``, ``examples/mnist.py --resume``, the benchmarks — finds its checkpoint
through [`RunFolder.checkpoint`][ganlib.runs.RunFolder.checkpoint].
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .._logging import logger
from ..checkpoint import CheckpointError

__all__ = ["CHECKPOINTS", "CONFIG_NAME", "SUMMARY_NAME", "RunFolder"]

CONFIG_NAME = "config.toml"
SUMMARY_NAME = "summary.json"
CHECKPOINTS = "checkpoints"


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
        raise CheckpointError(f"{str(folder)!r} has no checkpoint yet: {problem}")


def _complete(path: Path) -> bool:
    """Whether ``path`` is a whole torch checkpoint file (its zip directory is readable)."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False

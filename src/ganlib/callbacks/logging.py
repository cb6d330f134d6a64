"""Metric logs: a CSV or JSON-lines file of every step, and TensorBoard when installed."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from typing_extensions import override

from .._logging import logger
from .base import Callback, FileWriter

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["MetricsLogger", "TensorBoardLogger"]


class MetricsLogger(FileWriter):
    """Appends one row per step (``step``, ``epoch`` and every metric) to a file.

    The format follows the suffix: ``.csv`` or ``.jsonl``. Each row is flushed
    as written, so a crash loses nothing. On resume, rows past the resumed step
    (steps the crash undid) are dropped first; a fresh run starts a new file.

    Args:
        path: The log file.
        format: ``"csv"`` or ``"jsonl"``; from the suffix when ``None``.
    """

    main_process_only = True  # writes files or prints

    def __init__(
        self, path: str | os.PathLike[str], format: Literal["csv", "jsonl"] | None = None
    ) -> None:
        self.path = Path(path)
        fmt = format or ("csv" if self.path.suffix == ".csv" else "jsonl")
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"`format` must be 'csv' or 'jsonl', got {format!r}")
        self.format = fmt
        self._file: io.TextIOWrapper | None = None
        self._fields: list[str] | None = None

    @property
    @override
    def state_key(self) -> str:
        return f"MetricsLogger[{self.path}]"

    def _kept_rows(self, up_to_step: int) -> list[dict[str, Any]]:
        if up_to_step == 0 or not self.path.exists():
            return []
        with self.path.open() as handle:
            if self.format == "csv":
                rows: list[dict[str, Any]] = list(csv.DictReader(handle))
            else:
                rows = [json.loads(line) for line in handle if line.strip()]
        return [row for row in rows if int(row["step"]) <= up_to_step]

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        kept = self._kept_rows(trainer.state.step)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="")
        self._fields = None
        for row in kept:
            self._write(row)

    def _write(self, row: Mapping[str, Any]) -> None:
        assert self._file is not None
        if self.format == "jsonl":
            self._file.write(json.dumps(row) + "\n")
        else:
            if self._fields is None:
                self._fields = list(row)
                self._file.write(",".join(self._fields) + "\n")
            self._file.write(",".join(str(row[k]) for k in self._fields) + "\n")
        self._file.flush()

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self._write({"step": trainer.state.step, "epoch": trainer.state.epoch, **metrics})

    @override
    def on_teardown(self, trainer: Trainer) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoardLogger(Callback):
    """Writes every step's metrics to TensorBoard, when the ``tensorboard`` package is
    installed; otherwise prints one notice and does nothing.

    Args:
        log_dir: The TensorBoard run folder.
        every_n_steps: Steps between writes.
    """

    main_process_only = True  # writes files or prints

    def __init__(self, log_dir: str | os.PathLike[str], every_n_steps: int = 1) -> None:
        self.log_dir = Path(log_dir)
        self.every_n_steps = every_n_steps
        self._writer: Any = None

    @override
    def output_folders(self) -> list[Path]:
        return [self.log_dir]

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning(
                "TensorBoardLogger: tensorboard is not installed (pip install tensorboard); "
                "not logging to TensorBoard"
            )
            return
        self._writer = SummaryWriter(str(self.log_dir), purge_step=trainer.state.step + 1)

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if self._writer is not None and trainer.state.step % self.every_n_steps == 0:
            for key, value in metrics.items():
                self._writer.add_scalar(key, value, trainer.state.step)

    @override
    def on_teardown(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

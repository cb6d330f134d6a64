"""Metric logs: a CSV or JSON-lines file of every step, and TensorBoard (metrics, sample
grids, settings) when installed."""

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
from .._validation import check_int
from ._grids import check_after_sample_grid, grid_files, sample_grid
from .base import Callback, FileWriter
from .history import MetricKinds

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["MetricsLogger", "TensorBoardLogger"]


class MetricsLogger(FileWriter):
    """Appends one row per step (``step``, ``epoch`` and every metric) to a file.

    The format follows the suffix: ``.csv`` or ``.jsonl``. Each row is flushed
    as written, so a crash loses nothing. On resume, rows past the resumed step
    (steps the crash undid) are dropped first; a fresh run starts a new file.

    The CSV's columns: ``step``, ``epoch``, the first step's metrics, then the scores the
    callbacks declare ([`MetricKinds`][ganlib.callbacks.history.MetricKinds]: an
    [`Evaluation`][ganlib.callbacks.Evaluation]'s ``fd``), empty in the rows of steps
    without them. A metric first logged later that nobody declared gets a column when it
    first appears (the file is rewritten once with the new header, earlier rows empty
    there).

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
        self.kinds = MetricKinds()  # (the trainer's, from on_fit_start)

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
        self.kinds = MetricKinds.of(trainer)
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
            if self._fields is None:  # (the declared scores too: no rewrite when they come)
                self._fields = [*row, *(k for k in self.kinds.scores if k not in row)]
                self._file.write(",".join(self._fields) + "\n")
            new = [k for k in row if k not in self._fields]
            if new:
                self._add_columns(new)
            cells = (row.get(k) for k in self._fields)
            self._file.write(",".join("" if v is None else str(v) for v in cells) + "\n")
        self._file.flush()

    def _add_columns(self, names: list[str]) -> None:
        """Rewrite the CSV with ``names`` appended to its header (earlier rows empty there),
        atomically, and go on appending to it."""
        assert self._file is not None and self._fields is not None
        self._file.close()
        lines = self.path.read_text().splitlines()
        self._fields += names
        padding = "," * len(names)
        body = [",".join(self._fields)] + [line + padding for line in lines[1:]]
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text("\n".join(body) + "\n")
        os.replace(temporary, self.path)
        self._file = self.path.open("a", newline="")

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self._write({"step": trainer.state.step, "epoch": trainer.state.epoch, **metrics})

    @override
    def on_teardown(self, trainer: Trainer) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoardLogger(Callback):
    """Writes every step's metrics, the sample grids and the run's settings to
    TensorBoard, when the ``tensorboard`` package is installed (``pip install
    'ganlib[tensorboard]'``); otherwise prints one notice and does nothing.

    - Scalars: each metric under its name, every ``every_n_steps`` steps; scores logged
      at some steps only (an [`Evaluation`][ganlib.callbacks.Evaluation]'s) whenever they are.
    - Images: with a [`SampleGrid`][ganlib.callbacks.SampleGrid] in the trainer (listed
      before this logger), its newest ``generated_*.png`` grid as ``samples``, at each
      step it draws one (``every_n_steps``), at each epoch's end and at the end of
      training.
    - Settings: ``hparams`` as a markdown table in the Text tab (``hparams``) and in the
      HParams tab (with the step metrics as its metrics), at each ``fit``'s start.

    Args:
        log_dir: The TensorBoard run folder.
        every_n_steps: Steps between scalar writes.
        hparams: The run's settings; values other than numbers, strings and booleans
            are shown as ``str`` shows them.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    main_process_only = True  # writes files or prints

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        every_n_steps: int = 1,
        hparams: Mapping[str, Any] | None = None,
    ) -> None:
        if hparams is not None and not isinstance(hparams, Mapping):
            raise TypeError(f"`hparams` must be a mapping, got {type(hparams).__name__}")
        self.log_dir = Path(log_dir)
        self.every_n_steps = check_int("every_n_steps", every_n_steps, 1)
        self.hparams = dict(hparams or {})
        self._writer: Any = None
        self._logged_grid: tuple[Path, int] | None = None  # (file, mtime) last logged
        self.kinds = MetricKinds()  # (the trainer's, from on_fit_start)

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
        self.kinds = MetricKinds.of(trainer)
        check_after_sample_grid(self, trainer)
        if self.hparams:
            self._write_hparams(trainer.state.step)

    def _write_hparams(self, step: int) -> None:
        from torch.utils.tensorboard.summary import hparams

        plain = {
            str(k): v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in self.hparams.items()
        }
        rows = "".join(f"| {k} | {v} |\n" for k, v in plain.items())
        self._writer.add_text("hparams", "| setting | value |\n|---|---|\n" + rows, step)
        # What add_hparams writes, but into this run (add_hparams opens a sub-run).
        shown = [*self.kinds.step_names, *self.kinds.scores]
        for summary in hparams(plain, dict.fromkeys(shown, 0.0)):
            self._writer.file_writer.add_summary(summary, step)

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        due = trainer.state.step % self.every_n_steps == 0
        for key, value in metrics.items():
            if due or key in self.kinds.scores:  # (scores logged at some steps: whenever they are)
                self._writer.add_scalar(key, value, trainer.state.step)
        grid = sample_grid(trainer)
        if grid is not None and grid.every_n_steps and trainer.state.step % grid.every_n_steps == 0:
            self._write_newest_grid(trainer)  # (the grid SampleGrid drew at this step)

    def _write_newest_grid(self, trainer: Trainer) -> None:
        grid = sample_grid(trainer)
        if self._writer is None or grid is None:
            return
        files = grid_files(grid.out_dir)
        if not files:
            return
        try:
            newest = (files[-1], files[-1].stat().st_mtime_ns)
            if newest == self._logged_grid:
                return
            import numpy as np
            from PIL import Image

            with Image.open(files[-1]) as image:
                pixels = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
        except OSError:  # removed or half-written meanwhile: the next one will do
            return
        self._writer.add_image("samples", pixels, trainer.state.step, dataformats="HWC")
        self._writer.flush()
        self._logged_grid = newest

    @override
    def on_epoch_end(self, trainer: Trainer) -> None:
        self._write_newest_grid(trainer)

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        self._write_newest_grid(trainer)

    @override
    def on_teardown(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

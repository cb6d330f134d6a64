"""Periodic, atomic checkpoints that keep the last k, and save on Ctrl-C or a crash."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from typing_extensions import override

from .._logging import logger
from .._validation import check_int, check_mode
from ..checkpoint import CheckpointError, atomic_link
from .base import Callback
from .guard import NonFiniteLossError

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["ModelCheckpoint", "last_checkpoint"]


class ModelCheckpoint(Callback):
    """Writes ``step-NNNNNNN.ckpt`` files and keeps ``last.ckpt`` pointing at the newest.

    Runs after every other callback, so it saves their latest state. Every
    write is atomic: a crash never leaves a half-written checkpoint, and the
    previous one survives. On an exception (Ctrl-C included) it saves once more,
    unless the exception came from a half-done step or its hooks (its state would
    not resume exactly) or from [`NaNGuard`][ganlib.callbacks.NaNGuard] (the weights are bad).

    The final save comes first: at the run's last step (``max_steps``, the last batch of
    ``max_epochs``, or a callback's stop) it saves in ``on_batch_end``, before the end of
    the epoch and of the run (grids, plots, the report), so nothing those do can cost the
    trained weights; it saves again at the epoch's or the run's end where the loop's
    state moved on (an epoch counted).

    A failed save (disk full, permission denied) records nothing, names the cause
    and the newest good checkpoint; temporary files left by a killed save are
    removed at the next one.

    Args:
        dirpath: Folder for the checkpoints.
        every_n_steps: Save every this many steps (``None``: not by steps).
        every_n_epochs: Save every this many epochs (``None``: not by epochs). By
            default 1, unless ``every_n_steps`` is given: as in Lightning, giving one
            interval means that interval alone.
        keep_last: How many step checkpoints to keep (``None``: all).
        save_on_exception: Save when training ends with an exception.
        save_on_fit_end: Save when training ends normally.
        monitor: A logged metric: ``best.ckpt`` is kept as a link to the saved
            checkpoint where it was best. For a score a callback logs at some steps only
            (``"fd"`` of [`Evaluation`][ganlib.callbacks.Evaluation]: its
            ``score_names``), a checkpoint is also saved at each step where the score
            improves, so ``best.ckpt`` holds the weights of the best-scored step; a
            metric of every step (``loss_g``) is compared at the saves only.
        mode: ``"min"`` or ``"max"``: which way ``monitor`` is better.
    """

    main_process_only = True  # writes files or prints
    runs_last = True

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        *,
        every_n_steps: int | None = None,
        every_n_epochs: int | Literal["default"] | None = "default",
        keep_last: int | None = 3,
        save_on_exception: bool = True,
        save_on_fit_end: bool = True,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        self.dirpath = Path(dirpath)
        check_mode(mode)
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"`monitor` must be a metric name, got {monitor!r}")
        self.monitor, self.mode = monitor, mode
        self.best_score: float | None = None
        self.every_n_steps = (
            None if every_n_steps is None else check_int("every_n_steps", every_n_steps, 1)
        )
        if every_n_epochs == "default":
            every_n_epochs = None if every_n_steps is not None else 1
        self.every_n_epochs = (
            None if every_n_epochs is None else check_int("every_n_epochs", every_n_epochs, 1)
        )
        self.keep_last = None if keep_last is None else check_int("keep_last", keep_last, 1)
        self.save_on_exception = save_on_exception
        self.save_on_fit_end = save_on_fit_end
        self.saved: list[str] = []
        self._saved_at: tuple[int, int, int] | None = None  # (step, epoch, batch) of the last save
        self._fit_start_step = 0
        self._monitors_score = False  # monitor is a score logged at some steps only

    @property
    @override
    def state_key(self) -> str:
        return f"ModelCheckpoint[{self.dirpath}]"

    @override
    def output_folders(self) -> list[Path]:
        return [self.dirpath]

    @override
    def earlier_outputs(self) -> list[Path]:
        if not self.dirpath.is_dir():
            return []
        # (files this callback saved itself, in an earlier fit of this process, are its own)
        files = [f for f in sorted(self.dirpath.glob("step-*.ckpt")) if str(f) not in self.saved]
        if not self.saved:
            files += [p for p in (self.last_path, self.best_path) if p.exists()]
        return files

    @property
    def last_path(self) -> Path:
        """``last.ckpt``: always the newest checkpoint."""
        return self.dirpath / "last.ckpt"

    @property
    def newest(self) -> str:
        """The newest checkpoint this callback wrote, or ``"none"``."""
        return self.saved[-1] if self.saved else "none"

    def save(self, trainer: Trainer) -> Path:
        """Save now, update ``last.ckpt`` and drop checkpoints beyond ``keep_last``.

        Raises:
            OSError: If the file cannot be written (the message says why); nothing is
                recorded and ``last.ckpt`` still names the previous checkpoint.
        """
        for leftover in self.dirpath.glob(".*.ckpt.*.tmp"):  # from a save that was killed
            leftover.unlink(missing_ok=True)
        path = self.dirpath / f"step-{trainer.state.step:07d}.ckpt"
        previous = list(self.saved)
        if str(path) not in self.saved:
            self.saved.append(str(path))  # (the checkpoint records itself)
        stale = self.saved[: -self.keep_last] if self.keep_last else []
        self.saved = self.saved[len(stale) :]
        try:
            trainer.save_checkpoint(str(path))
            atomic_link(path, self.last_path)
        except BaseException:
            self.saved = previous  # only files that exist are recorded
            raise
        for old in stale:
            Path(old).unlink(missing_ok=True)
        self._saved_at = _position(trainer)
        self._keep_best(trainer, path)
        return path

    @property
    def best_path(self) -> Path:
        """``best.ckpt``: the saved checkpoint where ``monitor`` was best."""
        return self.dirpath / "best.ckpt"

    def _improves(self, metrics: Mapping[str, float]) -> bool:
        """Whether ``metrics`` hold the monitored value, and it beats the best so far."""
        value = None if self.monitor is None else metrics.get(self.monitor)
        if value is None or value != value:  # not logged (at this step), or NaN
            return False
        best = self.best_score
        return best is None or (value < best if self.mode == "min" else value > best)

    def _keep_best(self, trainer: Trainer, path: Path) -> None:
        if self._improves(trainer.state.metrics):
            atomic_link(path, self.best_path)  # a hard link: keep_last cannot take it away
            self.best_score = float(trainer.state.metrics[self.monitor])  # type: ignore[index]

    def _newest_is_current(self, trainer: Trainer) -> bool:
        return bool(self.saved) and self.saved[-1].endswith(f"step-{trainer.state.step:07d}.ckpt")

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        every = self.every_n_steps
        due = every is not None and trainer.state.step % every == 0
        final = self.save_on_fit_end and _is_last_step(trainer)  # before any end-of-run work
        if due or final or (self._monitors_score and self._improves(trainer.state.metrics)):
            self.save(trainer)

    @override
    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.every_n_epochs and trainer.state.epoch % self.every_n_epochs == 0:
            self.save(trainer)

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        self._fit_start_step = trainer.state.step
        self._monitors_score = self.monitor in trainer.callbacks.score_names()

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        # (saved at this step in on_batch_end, and the epoch's end moved the loop on since)
        moved_on = self._saved_at is not None and self._saved_at != _position(trainer)
        if self.save_on_fit_end and (moved_on or not self._newest_is_current(trainer)):
            self.save(trainer)

    @override
    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        if not self.save_on_exception:
            return
        if self._newest_is_current(trainer):
            logger.info(f"ModelCheckpoint: {self.saved[-1]} holds the last step")
            return
        if trainer.state.step == self._fit_start_step:
            reason = "no step was trained since fit started"
        elif isinstance(exception, NonFiniteLossError):
            reason = "the losses are not finite"
        elif not trainer.at_step_boundary:
            reason = "the exception came in the middle of a step or its hooks"
        else:
            try:
                path = self.save(trainer)
            except OSError as exc:
                reason = f"saving failed ({exc})"
            else:
                logger.info(f"ModelCheckpoint: saved {path} before stopping")
                return
        logger.warning(f"ModelCheckpoint: not saving, {reason}; newest checkpoint: {self.newest}")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"saved": list(self.saved), "best_score": self.best_score}

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.saved = list(state_dict["saved"])
        self.best_score = state_dict.get("best_score")  # (absent from older checkpoints)


def _position(trainer: Trainer) -> tuple[int, int, int]:
    state = trainer.state
    return state.step, state.epoch, state.batch_in_epoch


def _is_last_step(trainer: Trainer) -> bool:
    """Whether the step just trained ends the run (as far as this process knows)."""
    state = trainer.state
    if trainer.should_stop or (trainer.max_steps is not None and state.step >= trainer.max_steps):
        return True
    batches, epochs = trainer.num_batches, trainer.max_epochs
    last_batch = batches is not None and state.batch_in_epoch >= batches
    return last_batch and epochs is not None and state.epoch + 1 >= epochs


def last_checkpoint(callbacks: Iterable[Callback]) -> str:
    """``last.ckpt`` of the first [`ModelCheckpoint`][ganlib.callbacks.ModelCheckpoint] among
    ``callbacks``.

    Raises:
        CheckpointError: If there is none, or it has not saved yet.
    """
    saver = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    if saver is None or not saver.last_path.is_file():
        missing = (
            "there is no ModelCheckpoint" if saver is None else f"{saver.last_path} is missing"
        )
        raise CheckpointError(
            "`ckpt_path='last'` resumes from the newest checkpoint of the trainer's "
            f"ModelCheckpoint, but {missing}"
        )
    return str(saver.last_path)

"""Stop a run whose monitored metric has stopped improving (Keras' and Lightning's
``EarlyStopping``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from typing_extensions import override

from .._logging import logger
from .._validation import check_int, check_mode, check_positive_float
from .base import Callback

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["EarlyStopping", "improves"]

Mode = Literal["min", "max"]


def improves(value: float, best: float | None, mode: Mode, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (``mode``: which way is
    better); a non-finite value never does, anything finite beats no best."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stops training (``trainer.should_stop``) after ``patience`` checks in a row
    without an improvement of ``monitor`` by more than ``min_delta``.

    A check is a step whose metrics hold ``monitor``: every step for a step metric
    (``loss_g``), each evaluation for a score logged at some steps only (an
    [`Evaluation`][ganlib.callbacks.Evaluation]'s ``fd``, which runs before this
    callback). A non-finite value counts as no improvement. The best value, its step and
    the checks since it are kept in checkpoints, so a resumed run stops where an
    uninterrupted one does. Under distributed training every process decides alike
    (the metrics are the same everywhere); rank 0 alone prints.

    Example::

        Trainer(gan, callbacks=[Evaluation.mnist(test_images), EarlyStopping("fd", patience=3)])

    Args:
        monitor: The metric: a name the task logs every step or a callback's score
            (``Callback.score_names()``).
        patience: Checks without improvement before stopping, >= 1.
        min_delta: An improvement must be larger than this, >= 0.
        mode: ``"min"`` or ``"max"``: which way ``monitor`` is better.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument; ``ValueError`` at
            the first step if ``monitor`` is neither a metric of that step nor a declared
            score.
    """

    def __init__(
        self,
        monitor: str = "fd",
        *,
        patience: int = 3,
        min_delta: float = 0.0,
        mode: Mode = "min",
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"`monitor` must be a metric name, got {monitor!r}")
        self.monitor = monitor
        self.patience = check_int("patience", patience, 1)
        self.min_delta = check_positive_float("min_delta", min_delta, allow_zero=True)
        check_mode(mode)
        self.mode: Mode = mode
        self.best: float | None = None
        self.best_step: int | None = None
        self.wait = 0  # checks since the best
        self.stopped_step: int | None = None
        self._checked_name = False

    @property
    @override
    def state_key(self) -> str:
        return f"EarlyStopping[{self.monitor}]"

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        self._scores = trainer.callbacks.score_names()
        self._checked_name = False

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if not self._checked_name:
            known = [*metrics, *(s for s in self._scores if s not in metrics)]
            if self.monitor not in known:
                raise ValueError(
                    f"EarlyStopping: `monitor` must be a logged metric or score, got "
                    f"{self.monitor!r}; this run logs {known}"
                )
            self._checked_name = True
        if self.monitor in metrics:
            self.check(trainer, float(metrics[self.monitor]))

    def check(self, trainer: Trainer, value: float) -> bool:
        """Count one check of ``value`` at the trainer's step; stop the run when patience
        runs out. Returns whether ``value`` is the best so far."""
        step = trainer.state.step
        better = improves(value, self.best, self.mode, self.min_delta)
        if better:
            self.best, self.best_step, self.wait = value, step, 0
        else:
            self.wait += 1
        if self.wait >= self.patience and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_step = step
            if trainer.is_main_process:
                best = "none" if self.best is None else f"{self.best:.4g} at step {self.best_step}"
                logger.info(
                    f"EarlyStopping: stopping at step {step}: {self.monitor} has not improved "
                    f"for {self.wait} checks (patience {self.patience}, min_delta "
                    f"{self.min_delta:g}); best {best}"
                )
        return better

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_step": self.best_step,
            "wait": self.wait,
            "stopped_step": self.stopped_step,
        }

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.best = state_dict["best"]
        self.best_step = state_dict["best_step"]
        self.wait = int(state_dict["wait"])
        self.stopped_step = state_dict["stopped_step"]

"""Stop on NaN or infinite losses, naming the step and the loss."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from typing_extensions import override

from .base import Callback

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["NaNGuard", "NonFiniteLossError", "check_finite"]


class NonFiniteLossError(FloatingPointError):
    """A loss or metric became NaN or infinite."""


class NaNGuard(Callback):
    """Raises [`NonFiniteLossError`][ganlib.callbacks.NonFiniteLossError] at the first step whose
    metrics (of ``keys``) are not finite, in a ``Trainer(nan_guard=False)`` run: the Trainer
    checks every metric itself by default, before any hook runs, so there this callback
    does nothing (the check never runs twice).

    Checkpoints are not written for this error, so the last good one survives.

    Args:
        keys: The metrics to check; every metric when ``None``.
    """

    def __init__(self, keys: tuple[str, ...] | None = None) -> None:
        self.keys = keys

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if not trainer.nan_guard:  # (with the guard on, the loop has checked every metric)
            check_finite(trainer, metrics, self.keys)


def check_finite(
    trainer: Trainer, metrics: Mapping[str, float], keys: tuple[str, ...] | None = None
) -> None:
    """Raise [`NonFiniteLossError`][ganlib.callbacks.NonFiniteLossError] if a metric (of ``keys``;
    all by default) is not
    finite, naming it, the step, and what to try. The Trainer runs it after every step
    unless ``Trainer(nan_guard=False)``."""
    for key in keys or tuple(metrics):
        value = metrics[key]
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"{key} is {value} at step {trainer.state.step} "
                f"(epoch {trainer.state.epoch + 1}, batch {trainer.state.batch_in_epoch}); "
                "try a lower learning rate, precision='32', or another loss"
            )

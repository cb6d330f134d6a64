"""Finding the sample grids a [`SampleGrid`][ganlib.callbacks.SampleGrid] wrote, for the
callbacks that show them elsewhere (the run report, TensorBoard)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .._logging import logger
from .base import Callback
from .samples import SampleGrid

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["check_after_sample_grid", "evenly_spaced", "grid_files", "grid_label", "sample_grid"]

T = TypeVar("T")


def sample_grid(trainer: Trainer) -> SampleGrid | None:
    """The trainer's first [`SampleGrid`][ganlib.callbacks.SampleGrid], or ``None``."""
    grid = trainer.callback(SampleGrid)
    return grid if isinstance(grid, SampleGrid) else None


def grid_files(folder: Path) -> list[Path]:
    """The ``generated_*.png`` grids in ``folder``, oldest first (by modification time,
    then name)."""
    stamped = []
    for path in folder.glob("generated_*.png"):
        with contextlib.suppress(OSError):  # removed meanwhile
            stamped.append((path.stat().st_mtime_ns, path.name, path))
    return [path for _, _, path in sorted(stamped)]


def grid_label(path: Path) -> str:
    """``generated_epoch_003.png`` -> ``"epoch 3"``; ``generated_step_0000120.png`` ->
    ``"step 120"``; any other name: its stem."""
    kind, _, number = path.stem.removeprefix("generated_").partition("_")
    return f"{kind} {int(number)}" if number.isdigit() else path.stem


def evenly_spaced(items: list[T], count: int) -> list[T]:
    """At most ``count`` of ``items``, evenly spaced, the first and the last included."""
    if len(items) <= count:
        return list(items)
    if count == 1:
        return [items[-1]]
    picks = sorted({round(i * (len(items) - 1) / (count - 1)) for i in range(count)})
    return [items[i] for i in picks]


def check_after_sample_grid(callback: Callback, trainer: Trainer) -> None:
    """A notice when ``callback`` runs before the trainer's SampleGrid: at an epoch's
    end it would then show the previous epoch's grid."""
    order = list(trainer.callbacks)
    grid = sample_grid(trainer)
    if grid is not None and callback in order and order.index(callback) < order.index(grid):
        name = type(callback).__name__
        logger.warning(
            f"{name}: it runs before SampleGrid, so at each epoch's end it shows the "
            f"previous epoch's grid; list {name} after SampleGrid in `callbacks`"
        )

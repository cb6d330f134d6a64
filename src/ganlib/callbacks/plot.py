"""A loss-curve image, drawn with matplotlib when it is installed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from .._logging import logger
from .base import FileWriter
from .history import MetricHistory, MetricKinds

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["LossCurve"]

_COLUMNS = 3  # charts per row


class LossCurve(FileWriter):
    """Plots the step's metrics against steps into a PNG after every epoch and at the end:
    a chart per group of the task's own metrics (``Task.metric_groups()``: the adversarial
    task's losses and D's mean scores), one per other metric (what a loss reports), and,
    on a row of their own, one per score logged at some steps only (an
    [`Evaluation`][ganlib.callbacks.Evaluation]'s ``fd``), a point per evaluation
    ([`MetricKinds`][ganlib.callbacks.history.MetricKinds] says which is which).

    Its history is bounded ([`MetricHistory`][ganlib.callbacks.history.MetricHistory],
    the report's): each point is the mean of equally many steps, so a run of any length
    keeps between ``max_points`` and twice as many; it is kept in checkpoints (an earlier
    release's per-step history loads too).

    Needs matplotlib (``pip install ganlib[plots]``); without it, prints one
    notice and keeps collecting, so nothing is lost if it is installed later. It draws
    on a figure of its own, never through pyplot: the matplotlib backend a user chose
    (an interactive window, a notebook's inline one) stays as it was.

    Args:
        path: The image file.
        max_points: Curves keep between this many and twice this many points.
    """

    main_process_only = True  # writes files or prints

    def __init__(self, path: str | os.PathLike[str], max_points: int = 500) -> None:
        self.path = Path(path)
        self.history = MetricHistory(max_points)
        self.kinds = MetricKinds()  # (the trainer's, from on_fit_start)
        self._warned = False

    @property
    @override
    def state_key(self) -> str:
        return f"LossCurve[{self.path}]"

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        self.kinds = MetricKinds.of(trainer)

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self.history.add(trainer.state.step, metrics)

    def draw(self) -> bool:
        """Write the image; False (with a notice) when matplotlib is missing."""
        try:
            # A Figure with its own Agg canvas: no pyplot, so the user's backend stays as it is.
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            if not self._warned:
                logger.warning(
                    f"LossCurve: matplotlib is not installed (pip install 'ganlib[plots]'); "
                    f"{self.path} not drawn"
                )
                self._warned = True
            return False
        charts = self.kinds.charts(self.history.names())
        steps, values = self.history.series()
        # The step's charts fill rows of _COLUMNS; the scores start a row of their own.
        dense = [c for c in charts if c[2] != "score"]
        sparse = [c for c in charts if c[2] == "score"]
        rows = [dense[i : i + _COLUMNS] for i in range(0, len(dense), _COLUMNS)]
        rows += [sparse[i : i + _COLUMNS] for i in range(0, len(sparse), _COLUMNS)]
        rows = rows or [[]]
        columns = max(1, *(len(row) for row in rows))
        fig = Figure(figsize=(5.5 * columns, 3.8 * len(rows)))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(rows), columns, squeeze=False)
        for axes_row, row_charts in zip(axes, rows, strict=True):
            for axis in axes_row[len(row_charts) :]:
                axis.set_visible(False)
            for axis, (title, names, kind) in zip(axes_row, row_charts, strict=False):
                for name in names:
                    if kind == "score":  # a point per evaluation, joined
                        xs, ys = self.history.points(name)
                        axis.plot(xs, ys, "o-", label=name, linewidth=0.8, markersize=3)
                    else:  # (NaN: a gap)
                        axis.plot(steps, values[name], label=name, linewidth=0.8)
                axis.set_xlabel("step")
                axis.set_title(title)
                axis.legend()
                axis.grid(alpha=0.3)
        fig.tight_layout()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.path, dpi=100)
        return True

    @override
    def on_epoch_end(self, trainer: Trainer) -> None:
        self.draw()

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        self.draw()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history.state_dict()}

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the history; an earlier release's ``{name: float64 tensor}`` of every
        step loads too."""
        self.history.load_state_dict(state_dict.get("history", state_dict))

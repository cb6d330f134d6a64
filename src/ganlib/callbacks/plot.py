"""A loss-curve image, drawn with matplotlib when it is installed."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from typing_extensions import override

from .._logging import logger
from ..step import METRIC_NAMES
from .base import FileWriter

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["LossCurve"]

_PANELS = (("loss_d", "loss_g"), ("d_real", "d_fake", "d_fake_after"))
_TITLES = ("losses", "D's mean score: real, fake before >> after D's step", "reported by the loss")


def _logged(steps: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """The (step, value) pairs where ``values`` was logged (finite)."""
    pairs = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
    return [s for s, _ in pairs], [v for _, v in pairs]


class LossCurve(FileWriter):
    """Plots losses and D's scores against steps into a PNG after every epoch and at the end;
    scores logged at some steps only (an [`Evaluation`][ganlib.callbacks.Evaluation]'s
    ``fd``) get a second row, one panel each, a point per evaluation.

    Needs matplotlib (``pip install ganlib[plots]``); without it, prints one
    notice and keeps collecting, so nothing is lost if it is installed later. It draws
    on a figure of its own, never through pyplot: the matplotlib backend a user chose
    (an interactive window, a notebook's inline one) stays as it was.

    Args:
        path: The image file.
    """

    main_process_only = True  # writes files or prints

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.history: dict[str, list[float]] = {}  # each as long as "step" (NaN: not logged)
        self._warned = False
        self._scores: list[str] = []

    @property
    @override
    def state_key(self) -> str:
        return f"LossCurve[{self.path}]"

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        self._scores = trainer.callbacks.score_names()

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        steps = self.history.setdefault("step", [])
        for key, value in metrics.items():  # (a metric first logged now: NaN before)
            self.history.setdefault(key, [math.nan] * len(steps)).append(value)
        steps.append(float(trainer.state.step))
        for column in self.history.values():  # (a metric not logged at this step)
            if len(column) < len(steps):
                column.append(math.nan)

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
        steps = self.history.get("step", [])
        scores = [k for k in self._scores if k in self.history]
        # Metrics a loss reports (a penalty's size, say) get a third panel.
        extra = tuple(
            k for k in self.history if k != "step" and k not in METRIC_NAMES and k not in scores
        )
        panels = [*zip((*_PANELS, extra) if extra else _PANELS, _TITLES, strict=False)]
        rows = [panels] + ([[((k,), f"evaluation: {k}") for k in scores]] if scores else [])
        columns = max(len(row) for row in rows)
        fig = Figure(figsize=(5.5 * columns, 3.8 * len(rows)))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(rows), columns, squeeze=False)
        for row, (axes_row, row_panels) in enumerate(zip(axes, rows, strict=False)):
            for axis in axes_row[len(row_panels) :]:
                axis.set_visible(False)
            for axis, (keys, title) in zip(axes_row, row_panels, strict=False):
                for key in (k for k in keys if k in self.history):
                    if row:  # a score: a point per evaluation, joined
                        xs, ys = _logged(steps, self.history[key])
                        axis.plot(xs, ys, "o-", label=key, linewidth=0.8, markersize=3)
                    else:
                        axis.plot(steps, self.history[key], label=key, linewidth=0.8)
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
        return {
            key: torch.tensor(values, dtype=torch.float64) for key, values in self.history.items()
        }

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.history = {key: values.tolist() for key, values in state_dict.items()}

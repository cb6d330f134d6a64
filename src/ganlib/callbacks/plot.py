"""A loss-curve image, drawn with matplotlib when it is installed."""

from __future__ import annotations

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


class LossCurve(FileWriter):
    """Plots losses and D's scores against steps into a PNG after every epoch and at the end.

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
        self.history: dict[str, list[float]] = {}
        self._warned = False

    @property
    @override
    def state_key(self) -> str:
        return f"LossCurve[{self.path}]"

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self.history.setdefault("step", []).append(float(trainer.state.step))
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)

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
        # Metrics a loss reports (a penalty's size, say) get a third panel.
        extra = tuple(k for k in self.history if k != "step" and k not in METRIC_NAMES)
        panels = (*_PANELS, extra) if extra else _PANELS
        fig = Figure(figsize=(5.5 * len(panels), 3.8))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(panels))
        for axis, keys, title in zip(axes, panels, _TITLES, strict=False):
            for key in keys:
                if key in self.history:
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

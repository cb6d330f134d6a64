"""Every step's metrics in bounded memory, for curves of runs of any length."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .._validation import check_int

__all__ = ["MetricHistory"]


class MetricHistory:
    """Every step's metrics in bounded memory: each point is the mean of ``stride``
    consecutive steps, and when ``2 * max_points`` points are kept, neighbours are
    merged and ``stride`` doubles. Means skip non-finite values (a bucket with none
    finite is NaN, a gap in the curve).

    Args:
        max_points: Points kept at least before merging; at most twice as many.
    """

    def __init__(self, max_points: int = 500) -> None:
        self.max_points = check_int("max_points", max_points, 2)
        self.stride = 1
        self.steps: list[float] = []
        self.values: dict[str, list[float]] = {}
        self._count = 0  # steps in the open bucket
        self._step_sum = 0.0
        self._sums: dict[str, list[float]] = {}  # metric -> [sum, finite count]

    def add(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record one step."""
        self._count += 1
        self._step_sum += step
        for key, value in metrics.items():
            total = self._sums.setdefault(key, [0.0, 0.0])
            if math.isfinite(value):
                total[0] += value
                total[1] += 1
        if self._count == self.stride:
            self._close_bucket()

    def _open_point(self) -> tuple[float, dict[str, float]]:
        return self._step_sum / self._count, {
            k: s / n if n else math.nan for k, (s, n) in self._sums.items()
        }

    def _close_bucket(self) -> None:
        step, means = self._open_point()
        for key in means.keys() - self.values.keys():  # a metric that starts late
            self.values[key] = [math.nan] * len(self.steps)
        self.steps.append(step)
        for key, column in self.values.items():
            column.append(means.get(key, math.nan))
        self._count, self._step_sum, self._sums = 0, 0.0, {}
        if len(self.steps) >= 2 * self.max_points:
            self.steps = _halve(self.steps)
            self.values = {key: _halve(column) for key, column in self.values.items()}
            self.stride *= 2

    def series(self) -> tuple[list[float], dict[str, list[float]]]:
        """``(steps, {metric: values})``, the open bucket's mean included as the last point."""
        steps, values = list(self.steps), {k: list(v) for k, v in self.values.items()}
        if self._count:
            step, means = self._open_point()
            for key in means.keys() - values.keys():
                values[key] = [math.nan] * len(steps)
            steps.append(step)
            for key, column in values.items():
                column.append(means.get(key, math.nan))
        return steps, values

    def state_dict(self) -> dict[str, Any]:
        return {
            "stride": self.stride,
            "steps": torch.tensor(self.steps, dtype=torch.float64),
            "values": {k: torch.tensor(v, dtype=torch.float64) for k, v in self.values.items()},
            "open": {"count": self._count, "step_sum": self._step_sum, "sums": self._sums},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stride = int(state["stride"])
        self.steps = state["steps"].tolist()
        self.values = {k: v.tolist() for k, v in state["values"].items()}
        self._count = int(state["open"]["count"])
        self._step_sum = float(state["open"]["step_sum"])
        self._sums = {k: list(v) for k, v in state["open"]["sums"].items()}


def _halve(column: list[float]) -> list[float]:
    """Neighbours merged: the mean of each pair, or the finite one of the two."""
    merged = []
    for a, b in zip(column[::2], column[1::2], strict=False):
        if math.isfinite(a) and math.isfinite(b):
            merged.append((a + b) / 2)
        else:
            merged.append(a if math.isfinite(a) else b)
    return merged

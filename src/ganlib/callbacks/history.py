"""The one metrics model of the callbacks that show metrics (the logger, the progress
line, the loss curve, the report): which logged names are which
([`MetricKinds`][ganlib.callbacks.history.MetricKinds]), and every step's metrics in
bounded memory ([`MetricHistory`][ganlib.callbacks.history.MetricHistory]).

A logged name is one of three kinds:

- a **step metric** of the task's own groups (``Task.metric_groups()``: the adversarial
  task's ``losses`` and ``D's mean score``), charted together per group;
- a **score**, logged at some steps only by a callback that declares it
  (``Callback.score_names()``: an [`Evaluation`][ganlib.callbacks.Evaluation]'s ``fd``),
  charted a point per evaluation;
- an **extra**: any other name (what a loss reports, a user's own), charted on its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from .._validation import check_int

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["MetricHistory", "MetricKinds"]

Kind = Literal["step", "score", "extra"]


@dataclass(frozen=True)
class MetricKinds:
    """Which logged names are the task's step metrics (by group), scores and extras.

    Attributes:
        groups: The task's own metrics, a chart per group: title -> names, in order.
        scores: Names logged at some steps only (the callbacks' ``score_names()``).
    """

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    scores: tuple[str, ...] = ()

    @classmethod
    def of(cls, trainer: Trainer) -> MetricKinds:
        """The kinds of ``trainer``'s metrics: its task's groups, its callbacks' scores."""
        groups = {str(title): tuple(names) for title, names in trainer.task.metric_groups().items()}
        return cls(groups, tuple(trainer.callbacks.score_names()))

    @property
    def step_names(self) -> tuple[str, ...]:
        """The task's own metrics, group by group, each once."""
        return tuple(dict.fromkeys(name for names in self.groups.values() for name in names))

    def kind(self, name: str) -> Kind:
        """``"step"``, ``"score"`` or ``"extra"``."""
        if name in self.scores:
            return "score"
        return "step" if name in self.step_names else "extra"

    def extras(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` that are neither step metrics nor scores, in their order."""
        return [name for name in names if self.kind(name) == "extra"]

    def ordered(self, names: Iterable[str]) -> list[str]:
        """``names`` as the loggers show them: step metrics in group order, then the
        extras in the order given, then the scores."""
        present = list(dict.fromkeys(names))
        steps = [name for name in self.step_names if name in present]
        scores = [name for name in self.scores if name in present]
        return [*steps, *self.extras(present), *scores]

    def charts(self, names: Iterable[str]) -> list[tuple[str, tuple[str, ...], Kind]]:
        """The charts of the logged ``names``: ``(title, names, kind)`` for each group
        with a name logged, then one per extra (titled by its name), then one per score
        (``"evaluation: fd"``)."""
        present = list(dict.fromkeys(names))
        charts: list[tuple[str, tuple[str, ...], Kind]] = []
        for title, group in self.groups.items():
            shown = tuple(name for name in group if name in present)
            if shown:
                charts.append((title, shown, "step"))
        charts += [(name, (name,), "extra") for name in self.extras(present)]
        charts += [(f"evaluation: {s}", (s,), "score") for s in self.scores if s in present]
        return charts


class MetricHistory:
    """Every step's metrics in bounded memory, exactly: each point is the mean of
    ``stride`` consecutive steps, and when ``2 * max_points`` points are kept, neighbours
    are merged and ``stride`` doubles. A point keeps, per metric, the sum and count of its
    finite values and the sum of their steps, so merged points are exact means, and a
    score logged at some steps only keeps the step it was taken at
    ([`points`][ganlib.callbacks.history.MetricHistory.points]).

    Args:
        max_points: Points kept at least before merging; at most twice as many.
    """

    def __init__(self, max_points: int = 500) -> None:
        self.max_points = check_int("max_points", max_points, 2)
        self._clear()

    def _clear(self) -> None:
        self.stride = 1
        self._open = 0  # steps in the last point while it still takes steps
        self._step_sums: list[float] = []  # per point: the sum of its steps
        self._sizes: list[int] = []  # per point: its steps
        self._sums: dict[str, list[float]] = {}  # per metric and point: finite values' sum
        self._at: dict[str, list[float]] = {}  # ... the sum of those values' steps
        self._counts: dict[str, list[int]] = {}  # ... how many there were

    def _columns(self) -> tuple[dict[str, list[Any]], ...]:
        return (self._sums, self._at, self._counts)

    def add(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record one step's metrics (a non-finite value is a gap, not a value)."""
        if self._open == 0:
            self._step_sums.append(0.0)
            self._sizes.append(0)
            for columns in self._columns():
                for column in columns.values():
                    column.append(0)
        self._step_sums[-1] += step
        self._sizes[-1] += 1
        for key, value in metrics.items():
            if key not in self._sums:  # a metric that starts late: nothing before
                points = len(self._sizes)
                self._sums[key], self._at[key], self._counts[key] = (
                    [0.0] * points,
                    [0.0] * points,
                    [0] * points,
                )
            value = float(value)
            if math.isfinite(value):
                self._sums[key][-1] += value
                self._at[key][-1] += step
                self._counts[key][-1] += 1
        self._open += 1
        if self._open == self.stride:
            self._open = 0
            if len(self._sizes) >= 2 * self.max_points:
                self._merge()

    def _merge(self) -> None:
        """Neighbouring points summed into one; the stride doubles."""

        def pairs(column: list[Any]) -> list[Any]:
            return [a + b for a, b in zip(column[::2], column[1::2], strict=True)]

        self._step_sums, self._sizes = pairs(self._step_sums), pairs(self._sizes)
        for columns in self._columns():
            for key in columns:
                columns[key] = pairs(columns[key])
        self.stride *= 2

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        """The points kept (the last one may still be taking steps)."""
        return len(self._sizes)

    def __contains__(self, name: object) -> bool:
        return name in self._sums

    def names(self) -> list[str]:
        """Every metric recorded, in the order first seen."""
        return list(self._sums)

    def __getitem__(self, name: str) -> list[float]:
        """``name``'s value at each point (NaN where it had no finite value)."""
        sums, counts = self._sums[name], self._counts[name]
        return [s / n if n else math.nan for s, n in zip(sums, counts, strict=True)]

    def series(self) -> tuple[list[float], dict[str, list[float]]]:
        """``(steps, {metric: values})``: each point's mean step and each metric's mean
        there (NaN where it had no finite value), the last point included while it is
        still taking steps."""
        steps = [s / n for s, n in zip(self._step_sums, self._sizes, strict=True)]
        return steps, {name: self[name] for name in self._sums}

    def points(self, name: str) -> tuple[list[float], list[float]]:
        """``(steps, values)`` of the points where ``name`` had finite values, each at
        the mean step of those values: a score logged at some steps only is drawn at the
        steps it was taken (two of them merge into one point only at a stride wider
        than their distance)."""
        kept = [
            (at / n, s / n)
            for s, at, n in zip(self._sums[name], self._at[name], self._counts[name], strict=True)
            if n
        ]
        return [x for x, _ in kept], [y for _, y in kept]

    # -------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        def tensors(columns: Mapping[str, list[Any]], dtype: torch.dtype) -> dict[str, Any]:
            return {k: torch.tensor(v, dtype=dtype) for k, v in columns.items()}

        return {
            "version": 2,
            "stride": self.stride,
            "open": self._open,
            "step_sums": torch.tensor(self._step_sums, dtype=torch.float64),
            "sizes": torch.tensor(self._sizes, dtype=torch.int64),
            "sums": tensors(self._sums, torch.float64),
            "at": tensors(self._at, torch.float64),
            "counts": tensors(self._counts, torch.int64),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` wrote, or the history of an earlier release:
        RunReport's means per point
        (``stride``, ``steps``, ``values``, ``open``) or LossCurve's every step
        (``{name: float64 tensor}``, ``step`` among them)."""
        if state.get("version") == 2:
            self.stride, self._open = int(state["stride"]), int(state["open"])
            self._step_sums = [float(v) for v in state["step_sums"].tolist()]
            self._sizes = [int(v) for v in state["sizes"].tolist()]
            self._sums = {k: [float(x) for x in v.tolist()] for k, v in state["sums"].items()}
            self._at = {k: [float(x) for x in v.tolist()] for k, v in state["at"].items()}
            self._counts = {k: [int(x) for x in v.tolist()] for k, v in state["counts"].items()}
        elif "stride" in state and "values" in state:
            self._load_means(state)
        else:
            self._load_steps(state)

    def _load_means(self, state: Mapping[str, Any]) -> None:
        """An earlier RunReport's history: closed points of ``stride`` steps each (means
        of their finite values), and the open point's sums."""
        self._clear()
        stride = int(state["stride"])
        steps = [float(s) for s in state["steps"].tolist()]
        values = {k: [float(x) for x in v.tolist()] for k, v in state["values"].items()}
        self.stride = stride
        self._step_sums, self._sizes = [s * stride for s in steps], [stride] * len(steps)
        for key, column in values.items():
            finite = [math.isfinite(v) for v in column]
            self._sums[key] = [
                v * stride if ok else 0.0 for v, ok in zip(column, finite, strict=True)
            ]
            self._at[key] = [s * stride if ok else 0.0 for s, ok in zip(steps, finite, strict=True)]
            self._counts[key] = [stride if ok else 0 for ok in finite]
        opened = state["open"]
        count = int(opened["count"])
        if count:
            step = float(opened["step_sum"]) / count
            self._step_sums.append(float(opened["step_sum"]))
            self._sizes.append(count)
            for columns in self._columns():
                for column in columns.values():
                    column.append(0)
            for key, (total, n) in opened["sums"].items():
                if key not in self._sums:
                    points = len(self._sizes)
                    self._sums[key], self._at[key] = [0.0] * points, [0.0] * points
                    self._counts[key] = [0] * points
                self._sums[key][-1], self._counts[key][-1] = float(total), int(n)
                self._at[key][-1] = step * int(n)
            self._open = count

    def _load_steps(self, state: Mapping[str, Any]) -> None:
        """An earlier LossCurve's history: one row per step (``step`` and every metric,
        NaN where it was not logged), replayed step by step."""
        self._clear()
        if "step" not in state:
            raise ValueError(
                "a metric history must hold `version` 2, RunReport's `stride` and `values`, "
                f"or LossCurve's `step`; got keys {sorted(state)}"
            )
        steps = state["step"].tolist()
        columns = {k: v.tolist() for k, v in state.items() if k != "step"}
        for row, step in enumerate(steps):
            self.add(int(step), {k: column[row] for k, column in columns.items()})

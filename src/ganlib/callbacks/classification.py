"""A classifier's error on held-out images during training: the scores of a
semi-supervised run (``error``, ``error_avg``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from typing_extensions import override

from .._logging import logger
from .._validation import check_int
from .base import Callback
from .evaluation import _last_step

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["ClassificationError", "Classifies"]


@runtime_checkable
class Classifies(Protocol):
    """A task that classifies images: its live network, and an averaged copy
    ([`SemiSupervisedTask`][ganlib.tasks.SemiSupervisedTask] is one)."""

    def classify(self, images: Tensor, *, averaged: bool = False) -> Tensor:
        """Class logits (B, K) of images (B, C, H, W), in eval mode, leaving state as it was."""
        ...


class ClassificationError(Callback):
    """Every ``every_n_steps`` steps, the task's classifier's error on fixed labelled
    images (a test split), in percent, as two scores: ``error`` (the live network, noise
    off) and ``error_avg`` (the task's averaged copy).

    Without ``images``, it scores the task's held-back training examples (those outside
    its labelled set, ``task.held_back()``), where a data set has no test split.

    They are added to ``trainer.state.metrics`` (``score_names``), so ``metrics.csv``, the
    progress line and ``report.html`` show them, and ``ModelCheckpoint(monitor="error_avg",
    mode="min")`` keeps the best evaluation as ``best.ckpt``. It draws no random numbers
    and leaves the networks as they were: a run trains bitwise the same with it as
    without it. Its history is kept in checkpoints.

    Args:
        images: The images scored (N, C, H, W) in [-1, 1], kept on the CPU and moved a
            batch at a time; ``None``: the task's held-back training examples.
        labels: Their classes (N,) (``None`` with ``images``).
        every_n_steps: Steps between evaluations (600: an MNIST epoch in batches of 100).
        batch_size: Images per forward pass.
        at_end: Also evaluate at the run's last step when it is not an evaluation step.
        prefix: Put before both names, to keep two such callbacks apart.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    order = -10  # after the task's step; before every callback that reads the metrics

    def __init__(
        self,
        images: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        every_n_steps: int = 600,
        batch_size: int = 1000,
        at_end: bool = True,
        prefix: str = "",
    ) -> None:
        if (images is None) != (labels is None):
            raise ValueError("`images` and `labels` go together: give both, or neither")
        if images is not None and labels is not None:
            images, labels = _checked(images, labels)
        if not isinstance(prefix, str):
            raise TypeError(f"`prefix` must be a string, got {type(prefix).__name__}")
        self.images, self.labels = images, labels
        self.every_n_steps = check_int("every_n_steps", every_n_steps, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.at_end, self.prefix = bool(at_end), prefix
        self.steps: list[int] = []
        self.history: dict[str, list[float]] = {}

    @property
    @override
    def state_key(self) -> str:
        return f"ClassificationError[{self.prefix}]" if self.prefix else "ClassificationError"

    @override
    def score_names(self) -> tuple[str, ...]:
        return (self.prefix + "error", self.prefix + "error_avg")

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        task = trainer.task
        if not isinstance(task, Classifies):
            raise TypeError(
                f"ClassificationError needs a task that classifies (classify(images, "
                f"averaged=...)), got {type(task).__name__}"
            )
        if self.images is None:
            held_back = getattr(task, "held_back", None)
            if not callable(held_back):
                raise TypeError(
                    f"ClassificationError without images scores the task's held-back "
                    f"examples, but {type(task).__name__} has no held_back()"
                )
            self.images, self.labels = _checked(*held_back())

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        step = trainer.state.step
        if step % self.every_n_steps == 0 or (self.at_end and _last_step(trainer)):
            scores = self.evaluate(trainer.task)  # type: ignore[arg-type]
            trainer.state.metrics.update(scores)  # the later callbacks log them
            self.steps.append(step)
            for name, value in scores.items():
                self.history.setdefault(name, []).append(value)
            if trainer.is_main_process:
                best = min(self.history[self.prefix + "error_avg"])
                count = 0 if self.labels is None else len(self.labels)
                logger.info(
                    f"test error at step {step} ({count} images): live "
                    f"{scores[self.prefix + 'error']:.2f}%, averaged "
                    f"{scores[self.prefix + 'error_avg']:.2f}% (best averaged {best:.2f}%)"
                )

    @torch.no_grad()
    def evaluate(self, task: Classifies) -> dict[str, float]:
        """The live and averaged classifiers' error on the images now, in percent."""
        assert self.images is not None and self.labels is not None  # (set at on_fit_start)
        wrong = {False: 0, True: 0}
        for start in range(0, len(self.images), self.batch_size):
            images = self.images[start : start + self.batch_size]
            labels = self.labels[start : start + self.batch_size]
            for averaged in wrong:
                predicted = task.classify(images, averaged=averaged).argmax(dim=1).cpu()
                wrong[averaged] += int((predicted != labels).sum())
        percent = {k: 100.0 * v / len(self.images) for k, v in wrong.items()}
        return {self.prefix + "error": percent[False], self.prefix + "error_avg": percent[True]}

    def best(self) -> tuple[int, float] | None:
        """(step, error) of the lowest averaged error so far, or ``None``."""
        values = self.history.get(self.prefix + "error_avg", [])
        if not values:
            return None
        index = min(range(len(values)), key=lambda i: (values[i], i))
        return self.steps[index], values[index]

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "history": {name: list(values) for name, values in self.history.items()},
        }

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.steps = [int(s) for s in state_dict["steps"]]
        self.history = {k: [float(v) for v in vs] for k, vs in state_dict["history"].items()}


def _checked(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``images`` and ``labels`` on the CPU, checked.

    Raises:
        TypeError, ValueError: Naming the argument, the rule and what was given.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) < 1:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"`images` must be a tensor shaped (N, C, H, W), got {shape}")
    if not isinstance(labels, Tensor) or labels.shape != (len(images),):
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"`labels` must be a tensor shaped ({len(images)},), got {shape}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"`labels` must hold integer classes, got dtype {labels.dtype}")
    return images.detach().cpu(), labels.detach().cpu().long()

"""How long a run trains: its budget in images shown, steps or epochs.

The rule (`training_budget`): ``--kimg`` (thousands of images shown), ``--max-steps`` and
``--epochs`` are limits, and the first reached ends the run; given none, a run trains 10
epochs, or for a task with a floor (the GAN pair's: `MIN_KIMG`) at least that many
thousand images, so a folder of a few thousand images is shown enough of them to learn
(2,255 icons: 200 kimg is 4,000 steps of 50, 89 epochs, where 10 epochs were 460 steps).
MNIST's 60,000 images pass the floor in 4 epochs, so its default stays 10 epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..trainer import DEFAULT_MAX_EPOCHS
from .settings import RunSettings

__all__ = ["MIN_KIMG", "Budget", "training_budget"]

# The least a GAN pair is shown by default, in thousands of images.
MIN_KIMG = 200.0


@dataclass(frozen=True)
class Budget:
    """A run's limits, as the Trainer takes them, and the sentence that explains them.

    Attributes:
        max_steps: The step limit, or ``None``.
        max_epochs: The epoch limit, or ``None``.
        steps: The steps the run will take from its start (the nearer limit).
        images: The images it will show (``steps * batch_size``).
        reason: Where the limits come from, for the start line and ``config.toml``.
    """

    max_steps: int | None
    max_epochs: int | None
    steps: int
    images: int
    reason: str

    def describe(self, data_images: int) -> str:
        """One line: the budget in images, steps and epochs, and its reason."""
        epochs = self.images / data_images
        shown = f"{epochs:.0f}" if epochs >= 10 else f"{epochs:.2g}"
        return (
            f"budget: {self.images / 1000:,.4g} kimg = {self.steps:,} steps of "
            f"{self.images // max(self.steps, 1):,} images ({shown} epochs of "
            f"{data_images:,}); {self.reason}"
        )


def training_budget(settings: RunSettings, data_images: int, min_kimg: float | None) -> Budget:
    """The limits of a run on ``data_images`` images (see the module docstring).

    Args:
        settings: The run's settings (``kimg``, ``max_steps``, ``epochs``, ``batch_size``).
        data_images: Images in the training data (one epoch), >= 1.
        min_kimg: The task's floor for the default budget, or ``None``: 10 epochs.
    """
    batch = settings.batch_size
    batches = math.ceil(data_images / batch)
    max_steps, max_epochs = settings.max_steps, settings.epochs
    limits_given = {"--kimg": settings.kimg, "--max-steps": max_steps, "--epochs": max_epochs}
    given = [flag for flag, value in limits_given.items() if value is not None]
    if settings.kimg is not None:
        by_images = math.ceil(settings.kimg * 1000 / batch)
        max_steps = by_images if max_steps is None else min(max_steps, by_images)
    if given:
        reason = f"{given[0]} as given" if len(given) == 1 else f"{', '.join(given)}: first reached"
    else:
        floor = 0 if min_kimg is None else math.ceil(min_kimg * 1000 / batch)
        if floor > DEFAULT_MAX_EPOCHS * batches:
            max_steps = floor
            reason = (
                f"the default for {data_images:,} images: at least {min_kimg:g} kimg (10 epochs "
                f"would show {DEFAULT_MAX_EPOCHS * data_images / 1000:,.3g} kimg); --kimg, "
                "--max-steps or --epochs to change it"
            )
        else:
            max_epochs = DEFAULT_MAX_EPOCHS
            reason = (
                f"the default, {DEFAULT_MAX_EPOCHS} epochs; --kimg, --max-steps or --epochs to "
                "change it"
            )
    limits = [] if max_steps is None else [max_steps]
    if max_epochs is not None:
        limits.append(max_epochs * batches)
    steps = min(limits)
    return Budget(max_steps, max_epochs, steps, steps * batch, reason)

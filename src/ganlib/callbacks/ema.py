"""Exponential moving average of a network's weights (the generator's by default)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from typing_extensions import override

from .._validation import check_in_range, check_int
from ..checkpoint import EMA_STATE_KEY
from ..sampling import BATCHNORM_BATCH_SIZE, BATCHNORM_BATCHES, recompute_batchnorm
from ..seeding import batchnorm_seed
from .base import Callback

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["EMA"]


class EMA(Callback):
    """Keeps ``module``, an averaged copy of a network: ``avg = decay * avg + (1 - decay) * w``.

    The network is the task's image network (a GAN's generator) unless ``network``
    names another of ``trainer.task.networks`` (a CycleGAN's ``g_ab``, say); one EMA per
    network, each its own callback.

    It runs before the other callbacks (``order = -20``), so at every step they
    sample, score and save the average of that step.

    Buffers (BatchNorm statistics) are copied from the live generator, so they
    do not match the averaged weights: sample the average in train mode (batch
    statistics), or call [`recompute_batchnorm`][ganlib.callbacks.EMA.recompute_batchnorm] before
    sampling in eval
    mode. The average is stored in checkpoints, and
    [`SampleGrid`][ganlib.callbacks.SampleGrid] draws from it when present.

    Args:
        decay: Weight of the old average, in [0, 1).
        start_step: Steps before averaging starts (the average tracks the weights until then).
        every_n_steps: Update every this many steps.
        warmup: Ramp the decay up as ``min(decay, (1 + n) / (10 + n))`` over the
            ``n`` steps averaged so far (TensorFlow's ``num_updates`` rule), so
            early in training the average does not lag far behind.
        network: The name of the network averaged, in ``trainer.task.networks``;
            ``None``: the task's ``image_network``.
    """

    order = -20  # the others sample, score and save this step's average

    def __init__(
        self,
        decay: float = 0.999,
        start_step: int = 0,
        every_n_steps: int = 1,
        warmup: bool = False,
        network: str | None = None,
    ) -> None:
        self.decay = check_in_range("decay", decay, 0.0, 1.0, high_open=True)
        self.start_step = check_int("start_step", start_step, 0)
        self.every_n_steps = check_int("every_n_steps", every_n_steps, 1)
        self.warmup = bool(warmup)
        self.network = network
        self.module: nn.Module | None = None
        self._pending: Mapping[str, Any] | None = None

    @property
    @override
    def state_key(self) -> str:
        # (the image network's key is where load_gan(ema=True) finds the average)
        return EMA_STATE_KEY if self.network is None else f"{EMA_STATE_KEY}[{self.network}]"

    def name(self, trainer: Trainer) -> str:
        """The name of the network averaged, in ``trainer.task.networks``.

        Raises:
            ValueError: If the task has no network of that name.
        """
        name = self.network or trainer.task.image_network
        if name is None or name not in trainer.task.networks:
            raise ValueError(
                f"EMA(network={self.network!r}): {type(trainer.task).__name__} has no such "
                f"network; it has {list(trainer.task.networks)}"
            )
        return name

    def averaged(self, trainer: Trainer) -> dict[str, nn.Module]:
        """``{name: average}``, to draw from in place of the live network (empty before
        the average exists)."""
        return {} if self.module is None else {self.name(trainer): self.module}

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        if self.module is None:
            live = trainer.task.networks[self.name(trainer)]
            self.module = copy.deepcopy(live).eval().requires_grad_(False)
        if self._pending is not None:
            self.module.load_state_dict(self._pending)
            self._pending = None

    @torch.no_grad()
    def update(self, generator: nn.Module, decay: float) -> None:
        """Move the average toward ``generator``'s weights by ``1 - decay``; copy buffers."""
        assert self.module is not None
        averaged: list[torch.Tensor] = list(self.module.parameters())
        live = [p.detach() for p in generator.parameters()]
        torch._foreach_lerp_(averaged, live, 1.0 - decay)
        for mine, theirs in zip(self.module.buffers(), generator.buffers(), strict=True):
            mine.copy_(theirs)

    def recompute_batchnorm(
        self,
        trainer: Trainer,
        num_batches: int = BATCHNORM_BATCHES,
        batch_size: int = BATCHNORM_BATCH_SIZE,
    ) -> nn.Module:
        """Measure the average's own BatchNorm statistics on ``num_batches`` batches of
        the task's drawn inputs (latents), for eval-mode sampling, and return the average.

        The latents come from a generator seeded by the trainer's seed, not from
        the trainer's noise stream, so training (and resuming) is unaffected. The
        next update copies the live statistics back.
        """
        assert self.module is not None, "the EMA starts at on_fit_start"
        return recompute_batchnorm(
            self.module,
            trainer.task,
            batchnorm_seed(trainer.seed),
            num_batches=num_batches,
            batch_size=batch_size,
        )

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        step = trainer.state.step
        if step % self.every_n_steps == 0:
            self.update(trainer.task.networks[self.name(trainer)], self.decay_at(step))

    def decay_at(self, step: int) -> float:
        """The decay used at ``step``: 0 (copy) until ``start_step``, then ``decay``,
        ramped up with ``warmup``."""
        if step <= self.start_step:
            return 0.0
        if not self.warmup:
            return self.decay
        averaged = step - self.start_step
        return min(self.decay, (1 + averaged) / (10 + averaged))

    @override
    def state_dict(self) -> dict[str, Any]:
        if self.module is None:
            return {} if self._pending is None else {"module": dict(self._pending)}
        return {"module": self.module.state_dict()}

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if "module" not in state_dict:
            return
        if self.module is None:
            self._pending = state_dict["module"]
        else:
            self.module.load_state_dict(state_dict["module"])

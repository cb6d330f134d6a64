"""pix2pix (Isola et al., 2017): paired translation with a conditional PatchGAN; and what
the translation tasks share (CycleGAN's task builds on it).

[`Pix2PixTask`][ganlib.tasks.Pix2PixTask] trains on ``(images_a, images_b)`` pairs, B the
true output for A, as the reference's ``pix2pix_model.py`` does: each step, D on
(input, output) pairs (real: (a, b); fake: (a, G(a))), half the sum of the two GAN
losses; then G on the GAN loss of D's verdict on (a, G(a)) plus ``l1_weight`` times
L1(G(a), b), with ``l1_weight`` 100 and the vanilla (BCE-with-logits) loss averaged over
every patch.

What every translation task shares lives in [`TranslationTask`][ganlib.tasks.TranslationTask]:
the learning-rate schedule ([`LinearDecay`][ganlib.tasks.LinearDecay]: constant, then
linearly to 0, computed from the step, so a resumed run continues it exactly), the check
that the data holds image pairs, the networks as each update calls them (DDP-wrapped and
compiled as the run says), the grids (inputs beside their translations) and
[`translate`][ganlib.tasks.TranslationTask.translate].
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from .. import optim
from .._validation import check_choice, check_int, check_positive_float
from ..batching import split_batch
from ..data.checks import check_not_empty
from ..models.translation import (
    PatchGANDiscriminator,
    UNetTranslator,
    build_translation_network,
)
from ..runtime import CompiledOrEager, Runtime
from ..sampling import preserved_state
from .base import GridInputs, Task, TaskContext

if TYPE_CHECKING:
    from ..batching import Batch, BatchSource

__all__ = [
    "Direction",
    "GanLossName",
    "LinearDecay",
    "Pix2PixTask",
    "TranslationTask",
    "gan_loss",
]

GanLossName = Literal["vanilla", "lsgan"]
Direction = Literal["a2b", "b2a"]


def gan_loss(scores: Tensor, real: bool, kind: GanLossName) -> Tensor:
    """The reference's ``GANLoss``: every patch's raw score against 1 (``real``) or 0, by
    BCE with logits (``"vanilla"``) or squared error (``"lsgan"``), averaged."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    if kind == "lsgan":
        return F.mse_loss(scores, target)
    return F.binary_cross_entropy_with_logits(scores, target)


@dataclass(frozen=True)
class LinearDecay:
    """The reference's ``linear`` learning-rate policy, counted in steps: the base rate
    for ``constant_steps`` steps, then down in ``decay_steps + 1`` equal parts, reaching 0
    the step after the last decaying one: ``1 - max(0, step + 1 - constant_steps) /
    (decay_steps + 1)``, never below 0. (The reference counts epochs, 100 + 100.)

    Args:
        constant_steps: Steps at the base rate.
        decay_steps: Steps of the linear decay.
    """

    constant_steps: int
    decay_steps: int

    def __post_init__(self) -> None:
        check_int("constant_steps", self.constant_steps, 0)
        check_int("decay_steps", self.decay_steps, 0)

    @classmethod
    def halves(cls, steps: int) -> LinearDecay:
        """Half of ``steps`` constant, half decaying, as the reference's 100 + 100 epochs."""
        check_int("steps", steps, 1)
        return cls(steps // 2, steps - steps // 2)

    def factor(self, step: int) -> float:
        """The share of the base rate used at ``step`` (0 first)."""
        past = max(0, step + 1 - self.constant_steps)
        return max(0.0, 1.0 - past / (self.decay_steps + 1))


def network_entry(network: nn.Module) -> dict[str, Any]:
    """A registered network's name and settings, for a task's ``config``."""
    return {"kind": getattr(network, "kind", "") or None, "config": getattr(network, "config", {})}


def schedule_entry(schedule: LinearDecay | None) -> list[int] | None:
    return None if schedule is None else [schedule.constant_steps, schedule.decay_steps]


def network_from(entry: Mapping[str, Any], role: str) -> nn.Module:
    if not entry.get("kind"):
        raise ValueError(
            f"the task's {role} is not a registered translation network, so its config "
            "cannot rebuild it; build the task with your network and load the state instead"
        )
    return build_translation_network(entry["kind"], dict(entry["config"]))


def as_grid_channels(images: Tensor, channels: int) -> Tensor:
    """Images with ``channels`` channels for one grid (grey repeated as RGB)."""
    return images if images.shape[1] == channels else images.expand(-1, channels, -1, -1)


class TranslationTask(Task):
    """What pix2pix and CycleGAN share: image pairs as data, a learning-rate schedule
    from the step, the networks as updates call them, grids of inputs beside their
    translations, and [`translate`][ganlib.tasks.TranslationTask.translate].

    Subclasses set ``networks``, ``channels`` (domain A's and B's; ``None``: any),
    ``image_size`` (``None``: any) and
    ``lr_schedule``, build their optimizers in ``_build_optimizers``, and say which
    network translates each way in ``translators``.

    The schedule keeps each optimizer group's base rate in its ``initial_lr`` entry
    (torch's name for it) and sets ``lr`` from it at every step, so checkpoints hold both;
    a resumed run takes the base rate of the settings it was started with (the Trainer
    names any change).
    """

    translators: ClassVar[dict[str, str]] = {"a2b": "generator"}
    channels: tuple[int | None, int | None]
    image_size: int | None
    lr_schedule: LinearDecay | None

    @abc.abstractmethod
    def _build_optimizers(self) -> None:
        """Build the task's optimizers (called by `setup`)."""

    def setup(self, context: TaskContext) -> None:
        """Build the optimizers (their base rates kept for the schedule) and the calls."""
        super().setup(context)
        self._build_optimizers()
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self._rebase = False
        self._wrapped = {name: context.wrap(net) for name, net in self.networks.items()}
        self._build_calls(context.runtime.compile)

    def _build_calls(self, compile: bool) -> None:
        """``calls``: each network for its own update (DDP-wrapped once, compiled if asked);
        ``reads``: each network where another's loss reads it (never DDP-wrapped)."""
        self.calls: dict[str, Any] = {}
        self.reads: dict[str, Any] = {}
        for name, net in self.networks.items():
            wrapped = self._wrapped[name]
            self.calls[name] = CompiledOrEager(wrapped) if compile else wrapped
            if wrapped is net:  # (no DDP: one compilation serves both)
                self.reads[name] = self.calls[name]
            else:
                self.reads[name] = CompiledOrEager(net) if compile else net

    def start_run(self, steps: int | None) -> Runtime:
        runtime = super().start_run(steps)
        if runtime.compile != self.context.runtime.compile:
            self._build_calls(runtime.compile)
        if self._rebase:  # after a load: the base rates are the ones this run was given
            for optimizer in self.optimizers.values():
                for group in optimizer.param_groups:
                    group["initial_lr"] = group["lr"]
            self._rebase = False
        return runtime

    def _apply_schedule(self, step: int) -> None:
        if self.lr_schedule is None:
            return
        factor = self.lr_schedule.factor(step)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def load_state_dict(self, payload: Mapping[str, Any]) -> None:
        super().load_state_dict(payload)
        # The Trainer compares rates with the ones this run was given: compare base rates.
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group.get("initial_lr", group["lr"])
        self._rebase = True

    # ----------------------------------------------------------------- data

    def check_data(self, source: BatchSource) -> None:
        """Refuse data that is not ``(images_a, images_b)`` pairs of this task's shapes.

        Raises:
            ValueError: Naming what is wrong.
        """
        check_not_empty(source)
        images_a, images_b = split_batch(source.sample_item())
        if images_b is None or not images_b.is_floating_point() or images_b.dim() < 3:
            raise ValueError(
                f"`data` must hold (images_a, images_b) pairs of image tensors for "
                f"{type(self).__name__}, got {'no second item' if images_b is None else 'labels'}"
            )
        whole_a, whole_b = source.images, source.labels
        if whole_a is not None and whole_b is not None and len(whole_a) != len(whole_b):
            raise ValueError(
                f"`data` must pair every A image with a B image: {len(whole_a)} A images, "
                f"{len(whole_b)} B images"
            )
        size = self.image_size
        for domain, images, channels in (("A", images_a, self.channels[0]),
                                         ("B", images_b, self.channels[1])):  # fmt: skip
            shape = tuple(images.shape[-3:])
            if (
                images.dim() not in (3, 4)
                or (channels is not None and shape[0] != channels)
                or (size is not None and shape[1:] != (size, size))
            ):
                wanted = (channels or "C", size or "S", size or "S")
                raise ValueError(
                    f"`data`'s {domain} images must be shaped (N, C, H, W) with (C, H, W) = "
                    f"{wanted} for this task, got {tuple(images.shape)}"
                )

    def _pair(self, batch: Batch) -> tuple[Tensor, Tensor]:
        images_a, images_b = batch
        assert images_b is not None, "check_data refuses data without B images"
        return self.runtime.format_batch(images_a), self.runtime.format_batch(images_b)

    def generator_inputs(
        self, n: int, device: torch.device, rng: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        raise TypeError(
            f"{type(self).__name__}'s generators translate data images and take no drawn "
            "inputs: draw grids from an EMA in train mode (SampleGrid(eval_mode=False))"
        )

    # ------------------------------------------------------------ translating

    @torch.no_grad()
    def translate(
        self,
        images: Tensor,
        direction: Direction = "a2b",
        *,
        networks: Mapping[str, nn.Module] | None = None,
        eval_mode: bool = True,
        batch_size: int = 64,
    ) -> Tensor:
        """``images`` (N, C, H, W) in [-1, 1] translated ``direction``, float32, on the
        CPU; the network's mode and buffers are left as they were.

        Args:
            images: Domain A images for ``"a2b"``, B for ``"b2a"``.
            direction: ``"a2b"``, or ``"b2a"`` for a task that translates both ways.
            networks: Networks to use in place of the task's (an EMA's average, say).
            eval_mode: BatchNorm's running statistics and no dropout (else the batch's
                statistics and dropout on, as the reference tests by default).
            batch_size: Images per forward pass.

        Raises:
            ValueError: For a direction this task does not translate.
        """
        check_choice("direction", direction, list(self.translators))
        check_int("batch_size", batch_size, 1)
        network = {**self.networks, **(networks or {})}[self.translators[direction]]
        device = next(network.parameters()).device
        with preserved_state(network):
            network.train(not eval_mode)
            outputs = [
                network(batch.to(device).float()).float().cpu()
                for batch in images.split(batch_size)
            ]
        return torch.cat(outputs)

    def grid_inputs(
        self, count: int, nrow: int, rng: torch.Generator, batch: Batch | None
    ) -> tuple[GridInputs, int] | None:
        """Up to ``nrow`` pairs from the first training batch (``None`` before it)."""
        if batch is None:
            return None
        images_a, images_b = batch
        shown = min(nrow, len(images_a))
        assert images_b is not None
        return {"a": images_a[:shown].float().cpu(), "b": images_b[:shown].float().cpu()}, shown


class Pix2PixTask(TranslationTask):
    """pix2pix: G translates A to B, a conditional PatchGAN judges (A, B) pairs.

    Build the reference's networks for a size with [`build`][ganlib.tasks.Pix2PixTask.build]
    (U-Net, PatchGAN of 3 layers, BatchNorm, dropout), or pass any two networks.

    Args:
        generator: Images A (B, C_a, S, S) -> images B (B, C_b, S, S) in [-1, 1].
        discriminator: Pairs (B, C_a + C_b, S, S) -> patch scores (B, 1, s, s), raw.
        gan_loss: ``"vanilla"`` (BCE with logits, the reference's) or ``"lsgan"``.
        l1_weight: Weight of L1(G(a), b) in G's loss (the reference's λ = 100).
        g_optimizer: G's optimizer, a function ``params -> Optimizer``, Adam's settings,
            or ``None``: Adam(lr 2e-4, betas (0.5, 0.999)), the reference's.
        d_optimizer: The same for D.
        lr_schedule: Constant then linear to 0 ([`LinearDecay`][ganlib.tasks.LinearDecay]),
            or ``None`` for a constant rate.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    kind: ClassVar[str] = "pix2pix"
    image_network: ClassVar[str | None] = "generator"

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        gan_loss: GanLossName = "vanilla",
        l1_weight: float = 100.0,
        g_optimizer: optim.OptimizerArg = None,
        d_optimizer: optim.OptimizerArg = None,
        lr_schedule: LinearDecay | None = None,
    ) -> None:
        for name, value in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(value, nn.Module):
                raise TypeError(f"`{name}` must be a torch.nn.Module, got {type(value).__name__}")
        self.gan_loss: GanLossName = check_choice("gan_loss", gan_loss, get_args(GanLossName))  # type: ignore[assignment]
        self.l1_weight = check_positive_float("l1_weight", l1_weight, allow_zero=True)
        if lr_schedule is not None and not isinstance(lr_schedule, LinearDecay):
            raise TypeError(f"`lr_schedule` must be a LinearDecay or None, got {lr_schedule!r}")
        self.lr_schedule = lr_schedule
        self._optimizer_args = {"g_optimizer": g_optimizer, "d_optimizer": d_optimizer}
        self.networks = {"generator": generator, "discriminator": discriminator}
        # (a network of the user's, without a config, is checked on the data by shape)
        config = getattr(generator, "config", {})
        self.channels = (config.get("in_channels"), config.get("out_channels"))
        self.image_size = config.get("image_size")

    @classmethod
    def build(
        cls,
        image_size: int = 256,
        in_channels: int = 3,
        out_channels: int = 3,
        *,
        width: int = 64,
        discriminator_width: int = 64,
        layers: int = 3,
        norm: Literal["batch", "instance"] = "batch",
        dropout: bool = True,
        init_generator: torch.Generator | None = None,
        **task: Any,
    ) -> Pix2PixTask:
        """The reference's pix2pix at ``image_size``: a U-Net generator halving as often as
        the size allows ([`UNetTranslator`][ganlib.models.UNetTranslator]; their
        ``unet_256`` at 256) and a PatchGAN of ``layers`` layers on the joined pair.

        Args:
            image_size: Side of the square images (a U-Net's rule applies).
            in_channels: Channels of domain A (the inputs).
            out_channels: Channels of domain B (the outputs).
            width: The generator's outermost width (their ``ngf``).
            discriminator_width: The discriminator's first width (their ``ndf``).
            layers: The PatchGAN's stride-2 layers (3: 70x70 patches).
            norm: ``"batch"`` (the reference's pix2pix) or ``"instance"``.
            dropout: The U-Net's dropout in its 8x-width middle.
            init_generator: Random source for reproducible initial weights.
            **task: The task's own arguments (``l1_weight``, ``lr_schedule``, ...).
        """
        generator = UNetTranslator(
            image_size, in_channels, out_channels, width, norm=norm, dropout=dropout,
            init_generator=init_generator,
        )  # fmt: skip
        discriminator = PatchGANDiscriminator(
            image_size, in_channels + out_channels, discriminator_width, layers, norm=norm,
            init_generator=init_generator,
        )  # fmt: skip
        return cls(generator, discriminator, **task)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Pix2PixTask:
        """The task a checkpoint's ``task_config`` describes (networks freshly initialised).

        Raises:
            ValueError: For networks that are not registered translation networks.
        """
        schedule = config.get("lr_schedule")
        return cls(
            network_from(config["generator"], "generator"),
            network_from(config["discriminator"], "discriminator"),
            gan_loss=config["gan_loss"],
            l1_weight=config["l1_weight"],
            lr_schedule=None if schedule is None else LinearDecay(*schedule),
        )

    def _build_optimizers(self) -> None:
        self.g_optimizer = self.build_optimizer(
            self._optimizer_args["g_optimizer"], self.networks["generator"], "g_optimizer"
        )
        self.d_optimizer = self.build_optimizer(
            self._optimizer_args["d_optimizer"], self.networks["discriminator"], "d_optimizer"
        )

    @property
    def optimizers(self) -> dict[str, Optimizer]:
        return {"g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}

    @property
    def config(self) -> dict[str, Any]:
        return {
            "generator": network_entry(self.networks["generator"]),
            "discriminator": network_entry(self.networks["discriminator"]),
            "gan_loss": self.gan_loss,
            "l1_weight": self.l1_weight,
            "lr_schedule": schedule_entry(self.lr_schedule),
        }

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One D update on (input, output) pairs, then one G update (the reference's order)."""
        real_a, real_b = self._pair(batch)
        self._apply_schedule(step)
        calls, runtime, kind = self.calls, self.runtime, self.gan_loss
        discriminator = self.networks["discriminator"]
        with runtime.autocast():
            fake_b = calls["generator"](real_a)
            # D judges pairs: the input joined to a translation of it, fake or true.
            fake_scores = calls["discriminator"](torch.cat([real_a, fake_b.detach()], 1))
            real_scores = calls["discriminator"](torch.cat([real_a, real_b], 1))
            loss_d_fake = gan_loss(fake_scores, False, kind)
            loss_d_real = gan_loss(real_scores, True, kind)
            loss_d = 0.5 * (loss_d_fake + loss_d_real)
        self.optimizer_step(loss_d, self.d_optimizer, "discriminator")
        discriminator.requires_grad_(False)  # G's backward needs no grads for D's weights
        try:
            with runtime.autocast():
                scores = self.reads["discriminator"](torch.cat([real_a, fake_b], 1))
                loss_g_gan = gan_loss(scores, True, kind)
                loss_g_l1 = (fake_b.float() - real_b.float()).abs().mean()
                loss_g = loss_g_gan + self.l1_weight * loss_g_l1
            self.optimizer_step(loss_g, self.g_optimizer, "generator")
        finally:
            discriminator.requires_grad_(True)
        self.updates.scaler.update()
        values = [loss_d, loss_g, loss_d_real, loss_d_fake, loss_g_gan, loss_g_l1]
        numbers = self.context.reduce(torch.stack([v.detach().float() for v in values])).tolist()
        return dict(zip(_METRICS, numbers, strict=True))

    def describe(self) -> str:
        g, d = (self.networks[n] for n in ("generator", "discriminator"))
        return (
            f"pix2pix: {type(g).__name__} G, {type(d).__name__} D on (input, output) pairs, "
            f"{self.gan_loss} GAN loss + {self.l1_weight:g} x L1"
        )

    def metric_groups(self) -> dict[str, tuple[str, ...]]:
        return {"losses": _METRICS[:2], "D's terms": _METRICS[2:4], "G's terms": _METRICS[4:]}

    @torch.no_grad()
    def grid(
        self,
        inputs: Mapping[str, Tensor | None],
        networks: Mapping[str, nn.Module],
        eval_mode: bool,
    ) -> Tensor:
        """Rows: inputs, their translations, the true outputs."""
        a, b = inputs["a"], inputs["b"]
        assert a is not None and b is not None
        generator = networks["generator"]
        with preserved_state(generator):
            generator.train(not eval_mode)
            fake_b = generator(a.to(next(generator.parameters()).device)).float().cpu()
        channels = max(a.shape[1], b.shape[1])
        return torch.cat(
            [
                as_grid_channels(a, channels),
                as_grid_channels(fake_b, channels),
                as_grid_channels(b, channels),
            ]
        )


# The step's metrics: the two losses, D's real and fake terms, G's GAN and L1 terms (L1
# unweighted, in [-1, 1] pixel units).
_METRICS = ("loss_d", "loss_g", "loss_d_real", "loss_d_fake", "loss_g_gan", "loss_g_l1")

"""CycleGAN (Zhu et al., 2017): unpaired translation between two domains, A and B.

[`CycleGANTask`][ganlib.tasks.CycleGANTask] trains as the reference's
``cycle_gan_model.py`` does, on ``(images_a, images_b)`` batches whose pairing means
nothing: each step, both generators against both discriminators (LSGAN loss), plus
``cycle_weight`` (λ = 10) times the L1 cycle errors |G_ba(G_ab(a)) - a| and
|G_ab(G_ba(b)) - b|, plus ``identity_weight`` λ (0.5 λ) times the identity errors
|G_ab(b) - b| and |G_ba(a) - a|; then each discriminator on real images against a
[`history pool`][ganlib.tasks.ImagePool] of 50 earlier fakes, half the sum of its two
losses. The names are the paper's: ``g_ab`` is its G, ``g_ba`` its F, ``d_b`` its D_Y
(the reference's G_A, G_B, D_A, D_B).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .. import optim
from .._validation import check_choice, check_int, check_positive_float
from ..models.translation import PatchGANDiscriminator, ResNetTranslator
from ..sampling import preserved_state
from .pix2pix import (
    GanLossName,
    LinearDecay,
    TranslationTask,
    as_grid_channels,
    gan_loss,
    network_entry,
    network_from,
    schedule_entry,
)
from .pool import ImagePool

if TYPE_CHECKING:
    from ..batching import Batch

__all__ = ["CycleGANTask"]

_GENERATORS = ("g_ab", "g_ba")
_DISCRIMINATORS = ("d_a", "d_b")
# The step's metrics; the cycle and identity terms are plain L1 errors (before their
# weights), in [-1, 1] pixel units.
_METRICS = (
    "loss_g",
    "loss_d",
    "gan_ab",
    "gan_ba",
    "cycle_a",
    "cycle_b",
    "identity_a",
    "identity_b",
    "loss_d_a",
    "loss_d_b",
)


def _l1(x: Tensor, y: Tensor) -> Tensor:
    return (x.float() - y.float()).abs().mean()


class CycleGANTask(TranslationTask):
    """CycleGAN: ``g_ab`` and ``g_ba`` translate each way, ``d_a`` and ``d_b`` judge each
    domain; trained on unpaired ``(images_a, images_b)`` batches.

    Build the reference's networks for a size with
    [`build`][ganlib.tasks.CycleGANTask.build] (ResNet blocks, PatchGAN of 3 layers,
    instance norm), or pass four networks.

    Args:
        g_ab: Images A -> images B, in [-1, 1].
        g_ba: Images B -> images A.
        d_a: Images A -> patch scores (B, 1, s, s), raw.
        d_b: Images B -> patch scores.
        cycle_weight: λ, the weight of each cycle error (the reference's 10).
        identity_weight: The identity errors' weight as a share of λ (the reference's
            0.5); it needs both domains to have one channel count. 0 turns it off.
        pool_size: Earlier fakes each discriminator's pool keeps (0: none).
        gan_loss: ``"lsgan"`` (the reference's) or ``"vanilla"``.
        g_optimizer: One optimizer over both generators: an optimizer, a function
            ``params -> Optimizer``, Adam's settings, or ``None``: Adam(lr 2e-4, betas
            (0.5, 0.999)), the reference's.
        d_optimizer: The same over both discriminators.
        lr_schedule: Constant then linear to 0 ([`LinearDecay`][ganlib.tasks.LinearDecay]),
            or ``None`` for a constant rate.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    kind: ClassVar[str] = "cyclegan"
    image_network: ClassVar[str | None] = "g_ab"
    translators: ClassVar[dict[str, str]] = {"a2b": "g_ab", "b2a": "g_ba"}

    def __init__(
        self,
        g_ab: nn.Module,
        g_ba: nn.Module,
        d_a: nn.Module,
        d_b: nn.Module,
        *,
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        pool_size: int = 50,
        gan_loss: GanLossName = "lsgan",
        g_optimizer: optim.OptimizerArg = None,
        d_optimizer: optim.OptimizerArg = None,
        lr_schedule: LinearDecay | None = None,
    ) -> None:
        networks = {"g_ab": g_ab, "g_ba": g_ba, "d_a": d_a, "d_b": d_b}
        for name, value in networks.items():
            if not isinstance(value, nn.Module):
                raise TypeError(f"`{name}` must be a torch.nn.Module, got {type(value).__name__}")
        self.networks = networks
        self.cycle_weight = check_positive_float("cycle_weight", cycle_weight, allow_zero=True)
        self.identity_weight = check_positive_float(
            "identity_weight", identity_weight, allow_zero=True
        )
        pool_size = check_int("pool_size", pool_size, 0)
        self.pools = {"a": ImagePool(pool_size), "b": ImagePool(pool_size)}
        self.gan_loss: GanLossName = check_choice("gan_loss", gan_loss, get_args(GanLossName))  # type: ignore[assignment]
        if lr_schedule is not None and not isinstance(lr_schedule, LinearDecay):
            raise TypeError(f"`lr_schedule` must be a LinearDecay or None, got {lr_schedule!r}")
        self.lr_schedule = lr_schedule
        self._optimizer_args = {"g_optimizer": g_optimizer, "d_optimizer": d_optimizer}
        config = getattr(g_ab, "config", {})
        self.channels = (config.get("in_channels"), config.get("out_channels"))
        self.image_size = config.get("image_size")
        if self.identity_weight and None not in self.channels and len(set(self.channels)) > 1:
            raise ValueError(
                f"`identity_weight` needs domains of one channel count (G_ab(b) is compared "
                f"with b), got {self.channels[0]} and {self.channels[1]} channels: pass "
                "identity_weight=0"
            )

    @classmethod
    def build(
        cls,
        image_size: int = 256,
        channels_a: int = 3,
        channels_b: int | None = None,
        *,
        width: int = 64,
        blocks: int = 9,
        discriminator_width: int = 64,
        layers: int = 3,
        norm: Literal["instance", "batch"] = "instance",
        dropout: bool = False,
        init_generator: torch.Generator | None = None,
        **task: Any,
    ) -> CycleGANTask:
        """The reference's CycleGAN at ``image_size``: two ResNet-blocks generators
        ([`ResNetTranslator`][ganlib.models.ResNetTranslator]; their ``resnet_9blocks``)
        and two PatchGANs of ``layers`` layers, instance norm, no dropout.

        Args:
            image_size: Side of the square images (a multiple of 4).
            channels_a: Channels of domain A.
            channels_b: Channels of domain B (``None``: as A).
            width: The generators' first width (their ``ngf``).
            blocks: Residual blocks per generator (their ``n_blocks``).
            discriminator_width: The discriminators' first width (their ``ndf``).
            layers: The PatchGANs' stride-2 layers (3: 70x70 patches).
            norm: ``"instance"`` (the reference's CycleGAN) or ``"batch"``.
            dropout: Dropout in the residual blocks.
            init_generator: Random source for reproducible initial weights.
            **task: The task's own arguments (``cycle_weight``, ``lr_schedule``, ...).
        """
        channels_b = channels_a if channels_b is None else channels_b
        shared = dict(norm=norm, init_generator=init_generator)
        generator = dict(width=width, blocks=blocks, dropout=dropout, **shared)
        return cls(
            ResNetTranslator(image_size, channels_a, channels_b, **generator),  # type: ignore[arg-type]
            ResNetTranslator(image_size, channels_b, channels_a, **generator),  # type: ignore[arg-type]
            PatchGANDiscriminator(image_size, channels_a, discriminator_width, layers, **shared),  # type: ignore[arg-type]
            PatchGANDiscriminator(image_size, channels_b, discriminator_width, layers, **shared),  # type: ignore[arg-type]
            **task,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CycleGANTask:
        """The task a checkpoint's ``task_config`` describes (networks freshly initialised).

        Raises:
            ValueError: For networks that are not registered translation networks.
        """
        schedule = config.get("lr_schedule")
        networks = {
            name: network_from(config[name], name) for name in (*_GENERATORS, *_DISCRIMINATORS)
        }
        return cls(
            **networks,
            cycle_weight=config["cycle_weight"],
            identity_weight=config["identity_weight"],
            pool_size=config["pool_size"],
            gan_loss=config["gan_loss"],
            lr_schedule=None if schedule is None else LinearDecay(*schedule),
        )

    def _build_optimizers(self) -> None:
        n = self.networks
        generators = nn.ModuleList([n["g_ab"], n["g_ba"]])
        discriminators = nn.ModuleList([n["d_a"], n["d_b"]])
        self.g_optimizer = self.build_optimizer(
            self._optimizer_args["g_optimizer"], generators, "g_optimizer"
        )
        self.d_optimizer = self.build_optimizer(
            self._optimizer_args["d_optimizer"], discriminators, "d_optimizer"
        )

    @property
    def optimizers(self) -> dict[str, Optimizer]:
        return {"g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}

    @property
    def config(self) -> dict[str, Any]:
        return {
            **{name: network_entry(net) for name, net in self.networks.items()},
            "cycle_weight": self.cycle_weight,
            "identity_weight": self.identity_weight,
            "pool_size": self.pools["a"].size,
            "gan_loss": self.gan_loss,
            "lr_schedule": schedule_entry(self.lr_schedule),
        }

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """Both generators' update, then both discriminators' (the reference's order)."""
        real_a, real_b = self._pair(batch)
        self._apply_schedule(step)
        call, read, runtime, kind = self.calls, self.reads, self.runtime, self.gan_loss
        with runtime.autocast():
            fake_b, fake_a = call["g_ab"](real_a), call["g_ba"](real_b)
            cycle_a = _l1(call["g_ba"](fake_b), real_a)
            cycle_b = _l1(call["g_ab"](fake_a), real_b)
            if self.identity_weight:
                identity_a = _l1(call["g_ba"](real_a), real_a)
                identity_b = _l1(call["g_ab"](real_b), real_b)
            else:
                identity_a = identity_b = torch.zeros((), device=real_a.device)
        for name in _DISCRIMINATORS:  # G's backward needs no grads for D's weights
            self.networks[name].requires_grad_(False)
        try:
            with runtime.autocast():
                gan_ab = gan_loss(read["d_b"](fake_b), True, kind)
                gan_ba = gan_loss(read["d_a"](fake_a), True, kind)
                loss_g = (
                    gan_ab
                    + gan_ba
                    + self.cycle_weight * (cycle_a + cycle_b)
                    + self.cycle_weight * self.identity_weight * (identity_a + identity_b)
                )
            self.optimizer_step(loss_g, self.g_optimizer, "generators")
        finally:
            for name in _DISCRIMINATORS:
                self.networks[name].requires_grad_(True)
        rng = self.context.rng
        with runtime.autocast():
            old_b = runtime.format_batch(self.pools["b"].query(fake_b, rng))
            loss_d_b = 0.5 * (
                gan_loss(call["d_b"](real_b), True, kind)
                + gan_loss(call["d_b"](old_b), False, kind)
            )
            old_a = runtime.format_batch(self.pools["a"].query(fake_a, rng))
            loss_d_a = 0.5 * (
                gan_loss(call["d_a"](real_a), True, kind)
                + gan_loss(call["d_a"](old_a), False, kind)
            )
            loss_d = loss_d_a + loss_d_b
        self.optimizer_step(loss_d, self.d_optimizer, "discriminators")
        self.updates.scaler.update()
        values = (loss_g, loss_d, gan_ab, gan_ba, cycle_a, cycle_b, identity_a, identity_b,
                  loss_d_a, loss_d_b)  # fmt: skip
        numbers = self.context.reduce(torch.stack([v.detach().float() for v in values])).tolist()
        return dict(zip(_METRICS, numbers, strict=True))

    def describe(self) -> str:
        g, d = type(self.networks["g_ab"]).__name__, type(self.networks["d_a"]).__name__
        return (
            f"cyclegan: {g} g_ab, g_ba; {d} d_a, d_b; {self.gan_loss} GAN loss + "
            f"{self.cycle_weight:g} x cycle + {self.cycle_weight * self.identity_weight:g} x "
            f"identity; pools of {self.pools['a'].size}"
        )

    def metric_groups(self) -> dict[str, tuple[str, ...]]:
        return {
            "losses": _METRICS[:2],
            "G's GAN terms": _METRICS[2:4],
            "cycle and identity (L1)": _METRICS[4:8],
            "D's losses": _METRICS[8:],
        }

    @torch.no_grad()
    def grid(
        self,
        inputs: Mapping[str, Tensor | None],
        networks: Mapping[str, nn.Module],
        eval_mode: bool,
    ) -> Tensor:
        """Rows: A, A -> B, A -> B -> A, then B, B -> A, B -> A -> B."""
        a, b = inputs["a"], inputs["b"]
        assert a is not None and b is not None
        g_ab, g_ba = networks["g_ab"], networks["g_ba"]
        device = next(g_ab.parameters()).device
        with preserved_state(g_ab), preserved_state(g_ba):
            g_ab.train(not eval_mode)
            g_ba.train(not eval_mode)
            a, b = a.to(device), b.to(device)
            fake_b, fake_a = g_ab(a), g_ba(b)
            rows = [a, fake_b, g_ba(fake_b), b, fake_a, g_ab(fake_a)]
        channels = max(row.shape[1] for row in rows)
        return torch.cat([as_grid_channels(row.float().cpu(), channels) for row in rows])

    # ---------------------------------------------------------- state

    def extra_state(self) -> dict[str, Any]:
        """The two pools' images."""
        return {"pools": {domain: pool.state_dict() for domain, pool in self.pools.items()}}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pools = state.get("pools")
        if not isinstance(pools, Mapping) or set(pools) != set(self.pools):
            raise ValueError(f"`task_state.pools` must hold pools 'a' and 'b', got {pools!r}")
        for domain, pool in self.pools.items():
            pool.load_state_dict(pools[domain])

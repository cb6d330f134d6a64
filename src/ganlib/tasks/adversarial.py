"""The adversarial task: a generator/discriminator pair trained by
[`AdversarialStep`][ganlib.step.AdversarialStep] (D's updates, then G's).

What ``Trainer(gan, loss=..., ...)`` builds; ``Trainer(AdversarialTask(gan, ...))`` is the
same run. Its checkpoint entries keep the layout every earlier release wrote (``arch``,
``gan_config``, ``generator``, ``discriminator``, ``g_optimizer``, ``d_optimizer``,
``scaler``), so ``load_gan``, ``ganlib sample`` and earlier checkpoints work unchanged; a run
with adaptive augmentation adds one entry, ``ada`` (its probability and the signal gathered
since its last adjustment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .. import optim
from .._logging import logger
from .._validation import check_int
from ..ada import AdaptiveAugment, overfitting_ratio
from ..augment import Augment
from ..checkpoint import misfit
from ..data.checks import check_data
from ..gan import GAN, as_gan
from ..losses import Loss, LossName, as_loss
from ..runtime import Runtime
from ..sampling import generate
from ..step import METRIC_NAMES, AdversarialStep, StepNetworks
from .base import GridInputs, Task, TaskContext

if TYPE_CHECKING:
    from ..batching import Batch, BatchSource

__all__ = ["AdversarialTask"]

# The entries of a checkpoint this task writes and reads (the layout of every release).
_NETWORK_KEYS = ("generator", "discriminator")
_OPTIMIZER_KEYS = ("g_optimizer", "d_optimizer")


class AdversarialTask(Task):
    """A GAN pair trained adversarially: ``d_steps`` D updates, then one G update.

    Args:
        gan: A [`ganlib.GAN`][ganlib.GAN] (such as ``DCGAN``), an object with
            ``.generator``, ``.discriminator`` and ``.sample_noise``, or a ``(generator,
            discriminator, latent_dim_or_sampler)`` tuple; trained on (images, labels)
            if conditional (``num_classes``).
        loss: ``"bce"`` (the recipe), ``"hinge"``, ``"wgan-gp"``, ``"lsgan"``, or a
            [`Loss`][ganlib.losses.Loss] (see [`ganlib.losses`][ganlib.losses]).
        g_optimizer: Optimizer for G, a function ``params -> Optimizer``, Adam's settings
            (``{"lr": 1e-4}``), or ``None`` for Adam(lr 2e-4, betas (0.5, 0.999)).
        d_optimizer: The same for D.
        d_steps: D updates per G update, >= 1.
        augment: DiffAugment on all D sees ([`augment`][ganlib.augment]): a policy like
            ``"translation,cutout,color"``, a callable ``(images, rng) -> images``, or ``None``.
            ``"ada"`` or an [`AdaptiveAugment`][ganlib.ada.AdaptiveAugment] (ADA; ``"ada"``:
            its defaults) is tuned after every step from the step's ``d_real_sign``; its
            probability is logged as ``aug_p`` and kept in checkpoints. One with
            ``validation`` images is tuned from ``r_v`` instead: every ``interval`` steps
            D scores a batch of them before the step, and ``r_v`` is logged as ``ada_rv``
            (0 until its first measurement); unconditional pairs only.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    kind: ClassVar[str] = "adversarial"
    image_network: ClassVar[str | None] = "generator"

    def __init__(
        self,
        gan: Any,
        *,
        loss: LossName | Loss = "bce",
        g_optimizer: optim.OptimizerArg = None,
        d_optimizer: optim.OptimizerArg = None,
        d_steps: int = 1,
        augment: str | Augment | None = None,
    ) -> None:
        self.gan: GAN = as_gan(gan)
        self.loss: Loss = as_loss(loss)
        self.d_steps = check_int("d_steps", d_steps, 1)
        if augment == "ada":
            augment = AdaptiveAugment()
        self.augment = augment
        self.ada = augment if isinstance(augment, AdaptiveAugment) else None
        if self.ada is not None and self.ada.validation is not None:
            if self.gan.num_classes is not None:
                raise ValueError(
                    "an adaptive augmentation tuned from validation images (r_v) suits an "
                    f"unconditional pair, got one of {self.gan.num_classes} classes"
                )
            if tuple(self.ada.validation.shape[1:]) != tuple(self.gan.image_shape):
                raise ValueError(
                    f"the adaptive augmentation's validation images are "
                    f"{tuple(self.ada.validation.shape[1:])}, the pair's images "
                    f"{tuple(self.gan.image_shape)}"
                )
        self._optimizer_args = {"g_optimizer": g_optimizer, "d_optimizer": d_optimizer}
        self.networks = {"generator": self.gan.generator, "discriminator": self.gan.discriminator}

    @property
    def num_classes(self) -> int | None:
        """The pair's classes (``None``: unconditional)."""
        return self.gan.num_classes

    def setup(self, context: TaskContext) -> None:
        """Build G's and D's optimizers and the [`AdversarialStep`][ganlib.step.AdversarialStep]."""
        super().setup(context)
        self.g_optimizer = self.build_optimizer(
            self._optimizer_args["g_optimizer"], self.gan.generator, "g_optimizer"
        )
        self.d_optimizer = self.build_optimizer(
            self._optimizer_args["d_optimizer"], self.gan.discriminator, "d_optimizer"
        )
        self.step = AdversarialStep(
            self.gan,
            self.g_optimizer,
            self.d_optimizer,
            self.loss,
            runtime=context.runtime,
            rng=context.rng,
            d_steps=self.d_steps,
            augment=self.augment,
            networks=StepNetworks.build(self.gan, context.runtime, context.wrap),
            before_optimizer_step=context.before_optimizer_step,
            reduce=context.reduce,
            real_sign=self.ada is not None,
            raw_scores=self.ada is not None and self.ada.validation is not None,
        )
        self.updates = self.step.updates  # (one grad scaler: the step's)

    @property
    def optimizers(self) -> dict[str, Optimizer]:
        return {"g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}

    def start_run(self, steps: int | None) -> Runtime:
        self._runtime = self.step.start_run(steps)
        return self._runtime

    def check_data(self, source: BatchSource) -> None:
        check_data(source, self.gan.image_shape, self.num_classes)

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        images, labels = batch
        ada = self.ada
        validation = (
            self._validation_score(len(images), step)
            if ada and ada.wants_validation_score
            else None
        )
        metrics = self.step(images, labels if self.num_classes is not None else None, step=step)
        if ada is not None:  # tuned from this step's signal; logged as it stands after
            rv = None
            if validation is not None:
                rv = overfitting_ratio(metrics["d_real_raw"], validation, metrics["d_fake_raw"])
            ada.update(metrics["d_real_sign"], images.shape[0], rv)
            metrics["aug_p"] = ada.p
            if ada.validation is not None:
                metrics["ada_rv"] = ada.last_rv or 0.0
        return metrics

    @torch.no_grad()
    def _validation_score(self, count: int, step: int) -> float:
        """D's mean raw output on ``count`` of the adaptive augmentation's validation images
        (drawn and augmented by seeds of ``step``, so a resumed run draws the same), as D
        stands before this step (with ``d_steps`` > 1: before its first update, where the
        step's own means come from its last)."""
        assert self.ada is not None and self.ada.validation is not None
        discriminator = self.gan.discriminator
        device = next(discriminator.parameters()).device
        chosen = torch.randint(
            len(self.ada.validation), (count,), generator=torch.Generator().manual_seed(step)
        )
        images = self.ada.validation[chosen].to(device)
        draws = torch.Generator(device).manual_seed(step)
        with self._runtime.autocast():
            return float(discriminator(self.ada(images, draws)).float().mean())

    def describe(self) -> str:
        kind = type(self.gan).__name__ if self.gan.arch else "GAN pair"
        return f"{kind}, loss {type(self.loss).__name__}, {self.d_steps} D step(s) per G step"

    def metric_groups(self) -> dict[str, tuple[str, ...]]:
        groups = {"losses": METRIC_NAMES[:2], "D's mean score": METRIC_NAMES[2:]}
        if self.ada is not None:
            signals = ("ada_rv",) if self.ada.validation is not None else ()
            groups["adaptive augmentation"] = ("aug_p", "d_real_sign", *signals)
        return groups

    # ------------------------------------------------------------ samples

    def grid_inputs(
        self, count: int, nrow: int, rng: torch.Generator, batch: Batch | None
    ) -> tuple[GridInputs, int]:
        """``count`` latents; a conditional pair's grid has one row per class instead
        (``num_classes`` rows of ``nrow``), column j keeping latent j in every row."""
        device = rng.device
        if self.num_classes is None:
            return {"noise": self.gan.sample_noise(count, device, rng).cpu(), "labels": None}, nrow
        row = self.gan.sample_noise(nrow, device, rng).cpu()
        noise = row.repeat(self.num_classes, *[1] * (row.dim() - 1))
        labels = torch.arange(self.num_classes).repeat_interleave(nrow)
        return {"noise": noise, "labels": labels}, nrow

    def grid(
        self,
        inputs: Mapping[str, Tensor | None],
        networks: Mapping[str, nn.Module],
        eval_mode: bool,
    ) -> Tensor:
        generator = networks["generator"]
        noise, labels = inputs["noise"], inputs.get("labels")
        assert noise is not None
        device = next(generator.parameters()).device
        labels = None if labels is None else labels.to(device)
        return generate(generator, noise.to(device), eval_mode, labels)

    def generator_inputs(
        self, n: int, device: torch.device, rng: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        return self.gan.generator_inputs(n, device, rng)

    # ---------------------------------------------------------- state

    @property
    def config(self) -> dict[str, Any]:
        return {"arch": self.gan.arch or None, "gan_config": self.gan.config}

    def state_dict(self) -> dict[str, Any]:
        state = {
            "arch": self.gan.arch or None,
            "gan_config": self.gan.config,
            "generator": self.gan.generator.state_dict(),
            "discriminator": self.gan.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "scaler": self.updates.scaler.state_dict(),
        }
        if self.ada is not None:  # (only then: other runs' checkpoints keep every release's keys)
            state["ada"] = self.ada.state_dict()
        return state

    def state_problem(self, payload: Mapping[str, Any]) -> str | None:
        task = payload.get("task")
        if task is not None and task != self.kind:
            return f"it holds a {task!r} task, not a GAN pair"
        for name in _NETWORK_KEYS:
            entry = payload.get(name)
            if not isinstance(entry, dict) or not all(
                isinstance(v, torch.Tensor) for v in entry.values()
            ):
                return f"`{name}` is not a state dict of tensors"
        for name in _OPTIMIZER_KEYS:
            entry = payload.get(name)
            if not isinstance(entry, dict) or not isinstance(entry.get("param_groups"), list):
                return f"`{name}` is not an optimizer state"
        ada = payload.get("ada")
        if ada is not None and not (isinstance(ada, dict) and isinstance(ada.get("p"), float)):
            return "`ada` is not an adaptive augmentation's state"
        return None

    def load_state_dict(self, payload: Mapping[str, Any]) -> None:
        optim.check_same_kind(self.g_optimizer, payload["g_optimizer"], "g_optimizer")
        optim.check_same_kind(self.d_optimizer, payload["d_optimizer"], "d_optimizer")
        for name in _NETWORK_KEYS:
            try:
                self.networks[name].load_state_dict(payload[name])
            except RuntimeError as exc:
                what = f"holds a {name} of another shape than this trainer's"
                raise misfit("", exc, what) from exc
        self.g_optimizer.load_state_dict(payload["g_optimizer"])
        self.d_optimizer.load_state_dict(payload["d_optimizer"])
        if payload.get("scaler"):
            self.updates.scaler.load_state_dict(payload["scaler"])
        if self.ada is not None:
            if "ada" in payload:
                self.ada.load_state_dict(payload["ada"])
            else:
                logger.info(
                    f"adaptive augmentation: the checkpoint holds none; p starts at {self.ada.p:g}"
                )

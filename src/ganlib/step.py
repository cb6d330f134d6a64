"""One adversarial step: D's updates, then G's, and one metrics dict.

As the reference recipe does it:

1. ``d_steps`` times: D on a real batch and, in a separate forward pass, on
   ``G(z).detach()`` (BatchNorm never mixes real and fake); the two losses are
   summed (plus any penalty) and D steps.
2. G against ``D(G(z))`` on the fakes of the last D step, with D's weights
   frozen during G's backward; G steps.

With an augmentation (``augment``, DiffAugment: [`ganlib.augment`][ganlib.augment]) D never sees
an image unaugmented: real images and fakes are augmented, each pass with its own
draws from the step's random stream, before D scores them; G's loss reads D on the
same augmented fakes D's last update scored (so ``d_fake_after`` still compares like
with like), through the augmentation back to G. Penalties score D after the
augmentation, ``D(T(x))``, differentiated with respect to the unaugmented ``x``: R1
then penalises the gradient on augmented reals, as DiffAugment's StyleGAN2 setup does.

Metrics of every step (`METRIC_NAMES`): ``loss_d``, ``loss_g``, ``d_real``,
``d_fake`` (D's mean score on real and fake before its step: a probability for
BCE, the raw score otherwise) and ``d_fake_after`` (the same fakes after D's
step; if D is not learning the two stay equal), then whatever the loss reports
([`report`][ganlib.losses.ReportsMetrics.report]), then with ``real_sign``
``d_real_sign``: E[sign(D(real) - b)] of the last D update's (augmented) real batch
(``b``: the loss's ``decision_boundary``), the
overfitting signal adaptive augmentation tunes its probability from
([`ganlib.ada`][ganlib.ada]), and with ``raw_scores`` ``d_real_raw`` and ``d_fake_raw``: D's
mean raw output on that real batch and on its fakes (what ADA's held-out signal ``r_v``
compares). They reach the host in one device sync.

Everything the step uses is passed in, so it runs and is tested without a Trainer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .augment import Augment, resolve_augment
from .gan import GAN
from .losses import Loss, as_loss
from .optim import Updater, no_hook
from .runtime import CompiledOrEager, Runtime

__all__ = ["METRIC_NAMES", "AdversarialStep", "StepNetworks"]

# The metrics every step logs, in this order; a loss may add its own after them.
METRIC_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_after")

Forward = Callable[..., Tensor]


@dataclass(frozen=True)
class StepNetworks:
    """The networks as the step calls them (compiled and/or DDP-wrapped, or plain).

    Attributes:
        generator: G.
        discriminator: D, for its own update.
        discriminator_for_g: D as G's loss reads it: never DDP-wrapped, since D is
            not updated there and a DDP forward must be followed by a backward over
            its own parameters.
    """

    generator: Forward
    discriminator: Forward
    discriminator_for_g: Forward

    @classmethod
    def build(
        cls,
        gan: GAN,
        runtime: Runtime,
        wrap: Callable[[nn.Module], nn.Module] = lambda module: module,
    ) -> StepNetworks:
        """Wrap ``gan``'s networks with ``wrap`` (DDP or nothing), then compile them if
        ``runtime`` says so. Without DDP, G's loss reads the same compiled D (one
        compilation, not two)."""
        plain_d = gan.discriminator
        generator, discriminator = wrap(gan.generator), wrap(plain_d)
        if not runtime.compile:
            return cls(generator, discriminator, plain_d)
        compiled_d = CompiledOrEager(discriminator)
        for_g = compiled_d if discriminator is plain_d else CompiledOrEager(plain_d)
        return cls(CompiledOrEager(generator), compiled_d, for_g)

    def eager(self) -> StepNetworks:
        """The same networks uncompiled (each compiled wrapper's module; the rest as is)."""

        def plain(network: Forward) -> Forward:
            return network.module if isinstance(network, CompiledOrEager) else network

        return StepNetworks(
            plain(self.generator), plain(self.discriminator), plain(self.discriminator_for_g)
        )


class AdversarialStep:
    """One D/G training step of a GAN pair.

    Args:
        gan: The pair (its plain networks are frozen, penalised and fed from here).
        g_optimizer: G's optimizer.
        d_optimizer: D's optimizer.
        loss: The adversarial loss: a [`Loss`][ganlib.losses.Loss] (or a loss name); the
            step calls its optional parts as it declares them.
        runtime: Precision (autocast, grad scaling) and memory format; a run may drop its
            compile ([`start_run`][ganlib.step.AdversarialStep.start_run]).
        rng: The step's random stream: latents, fake labels, augmentation, penalties.
        d_steps: D updates per G update.
        augment: Augment every image D sees (see the module docstring): a DiffAugment
            policy such as ``"translation,cutout,color"``, a callable ``(images,
            generator) -> images``, or ``None`` (off).
        networks: The networks as called; plain (or compiled per ``runtime``) by default.
        before_optimizer_step: Called as ``(network, optimizer)`` after each backward
            (gradients unscaled) and before the optimizer steps.
        reduce: Applied to the stacked metrics before they are read (DDP averages them).
        real_sign: Also report ``d_real_sign`` (see the module docstring).
        raw_scores: Also report ``d_real_raw`` and ``d_fake_raw`` (see the module docstring).
    """

    def __init__(
        self,
        gan: GAN,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        loss: Loss,
        *,
        runtime: Runtime,
        rng: torch.Generator,
        d_steps: int = 1,
        augment: str | Augment | None = None,
        networks: StepNetworks | None = None,
        before_optimizer_step: Callable[[str, Optimizer], None] = no_hook,
        reduce: Callable[[Tensor], Tensor] = lambda values: values,
        real_sign: bool = False,
        raw_scores: bool = False,
    ) -> None:
        self.gan = gan
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss = as_loss(loss)
        self.runtime = runtime
        self.rng = rng
        self.d_steps = d_steps
        self.augment = resolve_augment(augment)
        self.networks = networks or StepNetworks.build(gan, runtime)
        self._resolved, self._built = runtime, self.networks
        self.reduce = reduce
        self.real_sign = bool(real_sign)
        self.raw_scores = bool(raw_scores)
        self.updates = Updater(runtime.grad_scaler(), before_optimizer_step)
        self.scaler = self.updates.scaler
        self.steps_done = 0  # this object's count, for calls that give no ``step``

    def start_run(self, steps: int | None) -> Runtime:
        """Settle the runtime for a run of ``steps`` more steps (``None``: not known), as
        [`Runtime.for_run`][ganlib.runtime.Runtime.for_run] decides: a run too short to pay
        back compiling calls the networks uncompiled. Returns that runtime (also
        ``self.runtime``); each call decides afresh from the runtime given at construction.
        """
        self.runtime = self._resolved.for_run(steps)
        self.networks = self._built if self.runtime.compile else self._built.eager()
        return self.runtime

    def _seen(self, images: Tensor) -> Tensor:
        """``images`` as D sees them: augmented (fresh draws from the step's stream), or as is."""
        if self.augment is None:
            return images
        return self.runtime.format_batch(self.augment(images, self.rng))

    def __call__(
        self, real: Tensor, labels: Tensor | None = None, *, step: int | None = None
    ) -> dict[str, float]:
        """Train on one real batch; ``labels`` are its classes for a conditional pair.

        Args:
            real: The real images.
            labels: Their classes, for a conditional pair.
            step: This step's index in the run (0 for the first), which numbers its D
                updates for a lazily applied penalty (``d_update = step * d_steps + i``);
                the count of this object's calls when ``None``. The Trainer passes
                its ``state.step``, so a resumed run regularises on the same updates.

        Returns:
            The step's metrics, `METRIC_NAMES` first, then the loss's own.
        """
        step = self.steps_done if step is None else step
        self.steps_done = step + 1
        nets, runtime, loss, batch = self.networks, self.runtime, self.loss, real.shape[0]
        discriminator = self.gan.discriminator
        real = runtime.format_batch(real)
        real_cond = () if labels is None else (labels,)  # extra arguments of D on real images
        penalized_d: Callable[[Tensor], Tensor] = discriminator
        if labels is not None:  # interpolates and R1 points are scored with the real labels
            penalized_d = functools.partial(discriminator, labels=labels)
        if self.augment is not None:  # penalties see D(T(x)), differentiated in x
            plain_d = penalized_d
            penalized_d = lambda images: plain_d(self._seen(images))  # noqa: E731
        for d_step in range(self.d_steps):
            g_inputs = self.gan.generator_inputs(batch, runtime.device, self.rng)
            fake_cond = g_inputs[1:]  # the fakes' labels, if any
            with runtime.autocast():
                # Only the last D step's fakes are reused by G, so only they keep a graph.
                with torch.set_grad_enabled(d_step == self.d_steps - 1):
                    fake = nets.generator(*g_inputs)
                real_seen, fake_seen = self._seen(real), self._seen(fake)  # (no-ops when off)
                # Separate forward passes: BatchNorm never mixes real and fake.
                real_logits = nets.discriminator(real_seen, *real_cond)
                fake_logits = nets.discriminator(fake_seen.detach(), *fake_cond)
                loss_d = loss.discriminator_loss(real_logits, fake_logits)
                if loss.has_penalty:
                    # Penalties differentiate twice: the uncompiled network.
                    update = step * self.d_steps + d_step
                    extra = {"d_update": update} if loss.counts_updates else {}
                    penalty = loss.penalty(penalized_d, real, fake, self.rng, **extra)
                    if penalty is not None:
                        loss_d = loss_d + penalty
            self.updates.step(loss_d, self.d_optimizer, "discriminator")

        discriminator.requires_grad_(False)  # G's backward needs no grads for D's weights
        try:
            with runtime.autocast():
                after_logits = nets.discriminator_for_g(fake_seen, *fake_cond)
                if loss.reads_real_logits:
                    real_now = nets.discriminator_for_g(real_seen, *real_cond)
                    loss_g = loss.generator_loss(after_logits, real_logits=real_now)
                else:
                    loss_g = loss.generator_loss(after_logits)
            self.updates.step(loss_g, self.g_optimizer, "generator")
        finally:
            discriminator.requires_grad_(True)
        self.scaler.update()
        return self._metrics(loss_d, loss_g, real_logits, fake_logits, after_logits)

    @torch.no_grad()
    def _metrics(
        self, loss_d: Tensor, loss_g: Tensor, real: Tensor, fake: Tensor, after: Tensor
    ) -> dict[str, float]:
        reported = self.loss.pop_reported()
        if self.real_sign:  # (after the loss's own: the columns of a run without it stay put)
            boundary = self.loss.decision_boundary
            reported["d_real_sign"] = (real.detach().float() - boundary).sign().mean()
        if self.raw_scores:
            reported["d_real_raw"] = real.detach().float().mean()
            reported["d_fake_raw"] = fake.detach().float().mean()
        values = [
            loss_d.detach().float(),
            loss_g.detach().float(),
            self.loss.score(real.detach()).float().mean(),
            self.loss.score(fake.detach()).float().mean(),
            self.loss.score(after.detach()).float().mean(),
            *(value.to(loss_d.device) for value in reported.values()),
        ]
        numbers = self.reduce(torch.stack(values)).tolist()  # one device sync per step
        return dict(zip((*METRIC_NAMES, *reported), numbers, strict=True))

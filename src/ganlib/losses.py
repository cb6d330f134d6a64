"""Adversarial losses, in logit form.

A loss is any object with ``discriminator_loss(real_logits, fake_logits)`` and
``generator_loss(fake_logits)`` (the [`AdversarialLoss`][ganlib.losses.AdversarialLoss] protocol).
Optional
parts refine it:

- ``score(logits)`` maps logits to what the trainer logs as ``d_real``/``d_fake``
  (a probability for BCE-type losses, the raw score otherwise);
- ``penalty(discriminator, real, fake, generator)`` adds a regulariser to the
  discriminator's loss (WGAN-GP's gradient penalty, R1); a penalty with a
  ``d_update`` parameter also gets the index of the D update in the run (0, 1, ...),
  so it can regularise lazily, every k updates ([`R1Penalty`][ganlib.losses.R1Penalty]'s ``every``);
- ``generator_loss(fake_logits, real_logits)``: a generator loss with a
  ``real_logits`` parameter (relativistic losses) also gets D's logits on the
  real batch, scored by the discriminator G is trained against;
- a loss deriving from [`ReportsMetrics`][ganlib.losses.ReportsMetrics] logs named values of its own
  (``self.report("gp", value)``): they join the step's metrics, so they are in
  metrics.csv, the progress line and the loss curve.

Examples:
    >>> from ganlib.losses import get_loss
    >>> loss = get_loss("hinge", r1_gamma=10.0)
    >>> lazy = get_loss("bce", r1_gamma=10.0, r1_every=16)  # StyleGAN2's recipe
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Literal, Protocol, get_args, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import check_choice, check_int, check_positive_float

__all__ = [
    "AdversarialLoss",
    "BCELoss",
    "HingeLoss",
    "LSGANLoss",
    "LossName",
    "R1Penalty",
    "ReportsMetrics",
    "WGANGPLoss",
    "get_loss",
    "penalty_of",
    "reported_metrics",
    "score_of",
    "takes_update_index",
    "wants_real_logits",
]

LossName = Literal["bce", "hinge", "wgan-gp", "lsgan"]


@runtime_checkable
class AdversarialLoss(Protocol):
    """What the Trainer needs from a loss; ``score`` and ``penalty`` are optional."""

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor: ...

    def generator_loss(self, fake_logits: Tensor) -> Tensor: ...


class ReportsMetrics:
    """Mixin for a loss that logs values of its own beside the step's metrics.

    Call [`report`][ganlib.losses.ReportsMetrics.report] inside ``discriminator_loss``,
    ``generator_loss`` or
    ``penalty``; the step collects the values once per step (with its one device
    synchronisation) and logs them under their names. A name reported in one step
    should be reported in every step, so the logs keep one set of columns.
    """

    def report(self, name: str, value: Tensor) -> None:
        """Log ``value`` (a scalar tensor) as metric ``name`` for the current step."""
        if not hasattr(self, "_reported"):
            self._reported: dict[str, Tensor] = {}
        self._reported[name] = value.detach().float().reshape(())

    def pop_reported(self) -> dict[str, Tensor]:
        """The values reported since the last call, which are then forgotten."""
        reported = getattr(self, "_reported", {})
        self._reported = {}
        return reported


class BCELoss:
    """The recipe's loss: minimax BCE for D (real 1, fake 0, summed), non-saturating for G.

    Computed on logits with ``softplus``: the same maths as Sigmoid + BCELoss,
    numerically stable and safe under mixed precision.
    """

    name = "bce"

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # BCE(sigmoid(r), 1) = softplus(-r); BCE(sigmoid(f), 0) = softplus(f).
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return F.softplus(-fake_logits).mean()

    def score(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)


class HingeLoss:
    """Hinge loss (Lim & Ye 2017; SAGAN, BigGAN)."""

    name = "hinge"

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


class LSGANLoss:
    """Least-squares GAN (Mao et al. 2017): targets 1 for real, 0 for fake."""

    name = "lsgan"

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits**2).mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return 0.5 * ((fake_logits - 1.0) ** 2).mean()


def _input_gradients(discriminator: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """d D(x) / d x for each image, flattened to (B, C*H*W), with a graph for backprop."""
    images = images.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(images).sum(), images, create_graph=True)
    return grad.flatten(1)


class WGANGPLoss:
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017), lambda = 10 by default."""

    name = "wgan-gp"

    def __init__(self, penalty_weight: float = 10.0) -> None:
        self.penalty_weight = check_positive_float("penalty_weight", penalty_weight)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()

    def penalty(
        self,
        discriminator: Callable[[Tensor], Tensor],
        real: Tensor,
        fake: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """lambda * E[(||grad D(x_hat)|| - 1)^2] on random interpolates of real and fake."""
        alpha = torch.rand(
            real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator
        )
        mixed = alpha * real.detach() + (1.0 - alpha) * fake.detach()
        norms = _input_gradients(discriminator, mixed).norm(2, dim=1)
        return self.penalty_weight * ((norms - 1.0) ** 2).mean()


class R1Penalty(ReportsMetrics):
    """Wraps a loss and adds the R1 penalty (Mescheder et al. 2018): gamma/2 * E||grad D(real)||^2.

    With ``every=k`` the penalty is lazy (Karras et al. 2020, StyleGAN2): it is
    computed on every k-th D update only (updates 0, k, 2k, ... of the run, as the
    step numbers them through ``d_update``), scaled by k so that its average weight
    stays gamma/2. ``every=1`` is the plain penalty, computed exactly as before.
    Called without ``d_update`` (outside a training step) it always applies.

    Args:
        loss: The loss to regularise; its own penalty, if any, is added every update.
        gamma: Penalty weight, > 0.
        every: Regularise every ``every`` D updates, >= 1.
        report: Log the R1 term as metric ``r1``: what it added to D's loss in the
            step's last D update (k * gamma/2 * E||grad||^2 on a regularised update,
            0 on the others). Off by default, so the logged columns stay the loss's.
    """

    def __init__(
        self, loss: AdversarialLoss, gamma: float, *, every: int = 1, report: bool = False
    ) -> None:
        self.loss = loss
        self.gamma = check_positive_float("r1_gamma", gamma)
        self.every = check_int("r1_every", every, 1)
        self.reports_r1 = bool(report)
        self.name = f"{getattr(loss, 'name', type(loss).__name__)}+r1"
        self.needs_real_logits = wants_real_logits(loss)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return self.loss.discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if self.needs_real_logits:
            return self.loss.generator_loss(fake_logits, real_logits=real_logits)  # type: ignore[call-arg]
        return self.loss.generator_loss(fake_logits)

    def score(self, logits: Tensor) -> Tensor:
        return score_of(self.loss)(logits)

    def penalty(
        self,
        discriminator: Callable[[Tensor], Tensor],
        real: Tensor,
        fake: Tensor,
        generator: torch.Generator | None = None,
        d_update: int | None = None,
    ) -> Tensor:
        """gamma/2 * E||grad D(real)||^2 (times ``every``, on the updates it applies to),
        plus the inner loss's penalty."""
        r1: Tensor | None = None
        if d_update is None or d_update % self.every == 0:
            weight = 0.5 * self.gamma * self.every  # (exactly 0.5 * gamma for every=1)
            r1 = weight * _input_gradients(discriminator, real).pow(2).sum(1).mean()
        if self.reports_r1:
            self.report("r1", real.new_zeros(()) if r1 is None else r1)
        inner = penalty_of(self.loss)
        if inner is None:
            return real.new_zeros(()) if r1 is None else r1
        lazy = d_update is not None and takes_update_index(self.loss)
        extra = {"d_update": d_update} if lazy else {}
        value = inner(discriminator, real, fake, generator, **extra)
        return value if r1 is None else r1 + value

    def pop_reported(self) -> dict[str, Tensor]:
        return {**reported_metrics(self.loss), **super().pop_reported()}


_LOSSES: dict[str, Callable[[], AdversarialLoss]] = {
    "bce": BCELoss,
    "hinge": HingeLoss,
    "wgan-gp": WGANGPLoss,
    "lsgan": LSGANLoss,
}


def get_loss(
    name: LossName,
    *,
    r1_gamma: float | None = None,
    r1_every: int = 1,
    r1_report: bool = False,
) -> AdversarialLoss:
    """Build a loss by name, optionally with an R1 penalty.

    ``get_loss("bce", r1_gamma=10.0, r1_every=16)`` is StyleGAN2's recipe: the
    non-saturating loss with lazy R1 regularisation.

    Args:
        name: ``"bce"``, ``"hinge"``, ``"wgan-gp"`` or ``"lsgan"``.
        r1_gamma: Weight of an R1 penalty on real images; none when ``None``.
        r1_every: Compute R1 every this many D updates, scaled to match (see
            [`R1Penalty`][ganlib.losses.R1Penalty]).
        r1_report: Log the R1 term as metric ``r1``.

    Raises:
        ValueError: For an unknown name, a non-positive ``r1_gamma``, ``r1_every`` < 1,
            or ``r1_every``/``r1_report`` without ``r1_gamma``.
    """
    check_choice("loss", name, get_args(LossName))
    loss = _LOSSES[name]()
    if r1_gamma is None:
        if r1_every != 1 or r1_report:
            raise ValueError(
                "`r1_every` and `r1_report` configure the R1 penalty: give `r1_gamma` too, "
                f"got r1_gamma=None, r1_every={r1_every!r}, r1_report={r1_report!r}"
            )
        return loss
    return R1Penalty(loss, r1_gamma, every=r1_every, report=r1_report)


def score_of(loss: AdversarialLoss) -> Callable[[Tensor], Tensor]:
    """The loss's ``score`` method, or the identity when it has none."""
    score = getattr(loss, "score", None)
    return score if callable(score) else (lambda logits: logits)


def reported_metrics(loss: AdversarialLoss) -> dict[str, Tensor]:
    """The values ``loss`` reported this step (empty for a loss that reports none)."""
    return loss.pop_reported() if isinstance(loss, ReportsMetrics) else {}


def wants_real_logits(loss: AdversarialLoss) -> bool:
    """Whether ``loss.generator_loss`` takes ``real_logits`` (a relativistic loss); a
    wrapper says so for its inner loss with a boolean ``needs_real_logits``."""
    declared = getattr(loss, "needs_real_logits", None)
    if isinstance(declared, bool):
        return declared
    try:
        parameters = inspect.signature(loss.generator_loss).parameters
    except (TypeError, ValueError):
        return False
    return "real_logits" in parameters


def takes_update_index(loss: AdversarialLoss) -> bool:
    """Whether ``loss.penalty`` takes ``d_update``, the index of the D update in the run
    (a lazily applied penalty)."""
    penalty = penalty_of(loss)
    if penalty is None:
        return False
    try:
        parameters = inspect.signature(penalty).parameters
    except (TypeError, ValueError):
        return False
    return "d_update" in parameters


def penalty_of(loss: AdversarialLoss) -> Callable[..., Tensor] | None:
    """The loss's ``penalty`` method, called as ``(discriminator, real, fake, generator)``
    (plus ``d_update=`` where [`takes_update_index`][ganlib.losses.takes_update_index]), or
    ``None`` when it has none."""
    penalty = getattr(loss, "penalty", None)
    return penalty if callable(penalty) else None

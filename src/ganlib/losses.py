"""Adversarial losses, in logit form, as classes that declare what they can do.

A loss derives from [`Loss`][ganlib.losses.Loss] and implements
``discriminator_loss(real_logits, fake_logits)`` and ``generator_loss(fake_logits)``.
The rest has defaults, and the step reads nothing else:

- ``score(logits)`` maps logits to what the trainer logs as ``d_real``/``d_fake``
  (a probability for BCE-type losses; the raw score by default);
- ``penalty(discriminator, real, fake, generator)`` adds a regulariser to the
  discriminator's loss (WGAN-GP's gradient penalty, R1); overriding it is declaring it
  (``has_penalty``). A loss that declares ``counts_updates = True`` also gets
  ``d_update``, the index of the D update in the run (0, 1, ...), so it can regularise
  lazily, every k updates ([`R1Penalty`][ganlib.losses.R1Penalty]'s ``every``);
- a loss that declares ``reads_real_logits = True`` (relativistic losses) gets
  ``generator_loss(fake_logits, real_logits=...)``: D's logits on the real batch, scored
  by the discriminator G is trained against;
- ``self.report("gp", value)`` logs a named value of the loss's own: it joins the step's
  metrics, so it is in metrics.csv, the progress line and the loss curve.

An object that is not a ``Loss`` but has the two methods is still trained, adapted by
[`as_loss`][ganlib.losses.as_loss] with a ``DeprecationWarning``.

Examples:
    >>> from ganlib.losses import get_loss
    >>> loss = get_loss("hinge", r1_gamma=10.0)
    >>> lazy = get_loss("bce", r1_gamma=10.0, r1_every=16)  # StyleGAN2's recipe
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import FrameType
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import check_choice, check_int, check_positive_float

__all__ = [
    "BCELoss",
    "HingeLoss",
    "LSGANLoss",
    "Loss",
    "LossName",
    "R1Penalty",
    "ReportsMetrics",
    "WGANGPLoss",
    "as_loss",
    "get_loss",
]

LossName = Literal["bce", "hinge", "wgan-gp", "lsgan"]

Discriminator = Callable[[Tensor], Tensor]


class ReportsMetrics:
    """Logging values of a loss's own beside the step's metrics; part of every
    [`Loss`][ganlib.losses.Loss].

    Call [`report`][ganlib.losses.ReportsMetrics.report] inside ``discriminator_loss``,
    ``generator_loss`` or ``penalty``; the step collects the values once per step (with its
    one device synchronisation) and logs them under their names. A name reported in one
    step should be reported in every step, so the logs keep one set of columns.
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


class Loss(ReportsMetrics, ABC):
    """The base of every adversarial loss: two losses, and what else it can do, declared.

    Subclasses implement ``discriminator_loss`` and ``generator_loss``; the step calls
    each optional part only as declared, so a subclass that does not declare an argument
    may leave it out of its methods' signatures:

    Attributes:
        reads_real_logits: ``generator_loss`` gets ``real_logits=``: D's logits on the
            real batch, scored by the D G is trained against (relativistic losses).
        counts_updates: ``penalty`` gets ``d_update=``: the index of the D update in the
            run (0, 1, ...; a lazily applied penalty).
        has_penalty: The step adds ``penalty(...)`` to D's loss; ``True`` for a class that
            defines ``penalty``, unless it sets ``has_penalty`` itself.
        decision_boundary: D's raw output where it cannot tell real from fake: what
            adaptive augmentation counts the signs of D's outputs on real images around
            (0 for BCE and hinge; 0.5 for LSGAN's targets 0 and 1).

    A wrapper sets these on its instances ([`R1Penalty`][ganlib.losses.R1Penalty]
    follows its inner loss).
    """

    reads_real_logits: bool = False
    counts_updates: bool = False
    has_penalty: bool = False
    decision_boundary: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "penalty" in vars(cls) and "has_penalty" not in vars(cls):
            cls.has_penalty = True  # defining a penalty is declaring one

    @abstractmethod
    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """D's loss from its logits on a real batch and on a fake batch."""

    @abstractmethod
    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        """G's loss from D's logits on the fakes (and on the reals, where
        ``reads_real_logits``)."""

    def score(self, logits: Tensor) -> Tensor:
        """What ``d_real``/``d_fake`` log for these logits: the logits themselves."""
        return logits

    def penalty(
        self,
        discriminator: Discriminator,
        real: Tensor,
        fake: Tensor,
        generator: torch.Generator | None = None,
        d_update: int | None = None,
    ) -> Tensor | None:
        """A term added to D's loss, or ``None`` (none, the default).

        Args:
            discriminator: D as the penalty scores images (conditioned, augmented).
            real: The real batch.
            fake: The fake batch.
            generator: The step's random stream, for any random draws.
            d_update: The D update's index in the run, where ``counts_updates``
                (``None`` outside a step).
        """
        return None


class BCELoss(Loss):
    """The recipe's loss: minimax BCE for D (real 1, fake 0, summed), non-saturating for G.

    Computed on logits with ``softplus``: the same maths as Sigmoid + BCELoss,
    numerically stable and safe under mixed precision. Scores are probabilities.
    """

    name = "bce"

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # BCE(sigmoid(r), 1) = softplus(-r); BCE(sigmoid(f), 0) = softplus(f).
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return F.softplus(-fake_logits).mean()

    def score(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)


class HingeLoss(Loss):
    """Hinge loss (Lim & Ye 2017; SAGAN, BigGAN)."""

    name = "hinge"

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()


class LSGANLoss(Loss):
    """Least-squares GAN (Mao et al. 2017): targets 1 for real, 0 for fake."""

    decision_boundary = 0.5

    name = "lsgan"

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits**2).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return 0.5 * ((fake_logits - 1.0) ** 2).mean()


def _input_gradients(discriminator: Discriminator, images: Tensor) -> Tensor:
    """d D(x) / d x for each image, flattened to (B, C*H*W), with a graph for backprop."""
    images = images.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(images).sum(), images, create_graph=True)
    return grad.flatten(1)


class WGANGPLoss(Loss):
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017), lambda = 10 by default."""

    name = "wgan-gp"

    def __init__(self, penalty_weight: float = 10.0) -> None:
        self.penalty_weight = check_positive_float("penalty_weight", penalty_weight)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()

    def penalty(
        self,
        discriminator: Discriminator,
        real: Tensor,
        fake: Tensor,
        generator: torch.Generator | None = None,
        d_update: int | None = None,
    ) -> Tensor:
        """lambda * E[(||grad D(x_hat)|| - 1)^2] on random interpolates of real and fake,
        on every update."""
        alpha = torch.rand(
            real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator
        )
        mixed = alpha * real.detach() + (1.0 - alpha) * fake.detach()
        norms = _input_gradients(discriminator, mixed).norm(2, dim=1)
        return self.penalty_weight * ((norms - 1.0) ** 2).mean()


class _Wrapping(Loss):
    """A loss around another (``self.loss``), whose two losses it passes on as they are."""

    loss: Any

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return self.loss.discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if self.reads_real_logits:
            return self.loss.generator_loss(fake_logits, real_logits=real_logits)
        return self.loss.generator_loss(fake_logits)


class R1Penalty(_Wrapping):
    """Wraps a loss and adds the R1 penalty (Mescheder et al. 2018): gamma/2 * E||grad D(real)||^2.

    With ``every=k`` the penalty is lazy (Karras et al. 2020, StyleGAN2): it is
    computed on every k-th D update only (updates 0, k, 2k, ... of the run, as the
    step numbers them through ``d_update``), scaled by k so that its average weight
    stays gamma/2. ``every=1`` is the plain penalty, computed exactly as before.
    Called without ``d_update`` (outside a training step) it always applies.

    It counts updates and has a penalty; it reads real logits where the inner loss does,
    and passes on what the inner loss reports.

    Args:
        loss: The loss to regularise (a [`Loss`][ganlib.losses.Loss]); its own penalty,
            if any, is added every update.
        gamma: Penalty weight, > 0.
        every: Regularise every ``every`` D updates, >= 1.
        report: Log the R1 term as metric ``r1``: what it added to D's loss in the
            step's last D update (k * gamma/2 * E||grad||^2 on a regularised update,
            0 on the others). Off by default, so the logged columns stay the loss's.
    """

    counts_updates = True
    has_penalty = True

    def __init__(self, loss: Loss, gamma: float, *, every: int = 1, report: bool = False) -> None:
        self.loss = as_loss(loss)
        self.gamma = check_positive_float("r1_gamma", gamma)
        self.every = check_int("r1_every", every, 1)
        self.reports_r1 = bool(report)
        self.name = f"{getattr(self.loss, 'name', type(self.loss).__name__)}+r1"
        self.reads_real_logits = self.loss.reads_real_logits
        self.decision_boundary = self.loss.decision_boundary

    def score(self, logits: Tensor) -> Tensor:
        return self.loss.score(logits)

    def penalty(
        self,
        discriminator: Discriminator,
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
        inner = None
        if self.loss.has_penalty:
            lazy = d_update is not None and self.loss.counts_updates
            extra = {"d_update": d_update} if lazy else {}
            inner = self.loss.penalty(discriminator, real, fake, generator, **extra)
        if inner is None:
            return real.new_zeros(()) if r1 is None else r1
        return inner if r1 is None else r1 + inner

    def pop_reported(self) -> dict[str, Tensor]:
        return {**self.loss.pop_reported(), **super().pop_reported()}


_LOSSES: dict[str, Callable[[], Loss]] = {
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
) -> Loss:
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


def as_loss(loss: Any, argument: str = "loss") -> Loss:
    """``loss`` as a [`Loss`][ganlib.losses.Loss]: a name through
    [`get_loss`][ganlib.losses.get_loss], a ``Loss`` as it is.

    An object that is not a ``Loss`` but has ``discriminator_loss`` and ``generator_loss``
    (the contract before ``Loss``) is adapted, its optional parts found by inspecting its
    methods as before, with a ``DeprecationWarning`` that says how to write it.

    Args:
        loss: The loss.
        argument: The argument's name, for messages.

    Raises:
        TypeError: For anything else.
        ValueError: For an unknown name.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        check_choice(argument, loss, get_args(LossName))
        return get_loss(loss)  # type: ignore[arg-type]
    if isinstance(loss, type):
        raise TypeError(
            f"`{argument}` must be a loss object, got the class {loss.__name__}: "
            f"pass an instance, {loss.__name__}()"
        )
    if all(callable(getattr(loss, m, None)) for m in ("discriminator_loss", "generator_loss")):
        adapted = _DuckTypedLoss(loss)
        warnings.warn(adapted.deprecation(argument), DeprecationWarning, _outside_ganlib())
        return adapted
    raise TypeError(
        f"`{argument}` must be one of {list(get_args(LossName))} or an object with "
        "discriminator_loss and generator_loss methods (a ganlib.losses.Loss), "
        f"got {type(loss).__name__}"
    )


def _outside_ganlib() -> int:
    """The ``stacklevel`` that points a warning from the caller at the first frame
    outside ganlib: the user's line."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame: FrameType | None = sys._getframe(2)  # the caller's caller: stacklevel 2
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _takes(method: Callable[..., Any] | None, parameter: str) -> bool:
    """Whether ``method``'s signature names ``parameter``."""
    if method is None:
        return False
    try:
        return parameter in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class _DuckTypedLoss(_Wrapping):
    """A loss written before [`Loss`][ganlib.losses.Loss], seen through it (deprecated).

    Its capabilities are inferred once, as ganlib did before ``Loss`` declared them: a
    ``generator_loss`` with a ``real_logits`` parameter (or a boolean
    ``needs_real_logits``) reads real logits; a callable ``penalty`` is a penalty, given
    ``d_update`` if it has that parameter; a callable ``score`` scores; a
    ``ReportsMetrics`` reports.

    Attributes:
        loss: The object adapted.
    """

    def __init__(self, loss: Any) -> None:
        self.loss = loss
        declared = getattr(loss, "needs_real_logits", None)
        reads = declared if isinstance(declared, bool) else None
        self.reads_real_logits = (
            _takes(loss.generator_loss, "real_logits") if reads is None else reads
        )
        penalty, score = getattr(loss, "penalty", None), getattr(loss, "score", None)
        self._penalty = penalty if callable(penalty) else None
        self._score = score if callable(score) else None
        self.has_penalty = self._penalty is not None
        self.counts_updates = _takes(self._penalty, "d_update")

    def deprecation(self, argument: str) -> str:
        """The warning: what the loss is and how to write it against ``Loss``."""
        name = type(self.loss).__name__
        declare = [
            f"{attribute} = True"
            for attribute in ("reads_real_logits", "counts_updates")
            if getattr(self, attribute)
        ]
        how = f", declaring {' and '.join(declare)}" if declare else ""
        return (
            f"`{argument}`: {name} is not a ganlib.losses.Loss subclass; it trains as before, "
            "but losses recognised by their methods alone are deprecated. Derive it from "
            f"ganlib.losses.Loss, `class {name}(Loss)`{how} (see 'Your own loss' in "
            "docs/training.md)"
        )

    def score(self, logits: Tensor) -> Tensor:
        return logits if self._score is None else self._score(logits)

    def penalty(
        self,
        discriminator: Discriminator,
        real: Tensor,
        fake: Tensor,
        generator: torch.Generator | None = None,
        d_update: int | None = None,
    ) -> Tensor | None:
        if self._penalty is None:
            return None
        extra = {"d_update": d_update} if self.counts_updates and d_update is not None else {}
        return self._penalty(discriminator, real, fake, generator, **extra)

    def pop_reported(self) -> dict[str, Tensor]:
        return self.loss.pop_reported() if isinstance(self.loss, ReportsMetrics) else {}

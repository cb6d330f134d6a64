"""Adaptive discriminator augmentation (ADA; Karras et al., 2020, StyleGAN2-ADA).

With few images a discriminator memorises them: its scores on the training images drift
towards "real" while it stops generalising, and the generator's signal collapses.
Augmenting what D sees (real and fake alike) with probability ``p`` prevents that, but the
right ``p`` depends on the data and changes during training. ADA measures overfitting as

    r_t = E[sign(D(x_real))]

over the real images D scored since the last adjustment, the signs taken around the
loss's [`decision_boundary`][ganlib.losses.Loss] (0 for BCE and hinge, 0.5 for LSGAN; a
WGAN critic has none, so ADA does not suit it). 0 means D cannot tell the training images
from fakes; 1 means it is sure of every one of them. Every ``interval`` steps ``p`` moves
up by ``images / (kimg * 1000)`` when ``r_t`` is above ``target`` and down by as much
when below, so it can cross [0, 1] in ``kimg`` thousand images; it is kept in
``[0, max_p]``: below ADA's leak threshold (about 0.8) the augmentations never show in
the generated images.

[`AdaptiveAugment`][ganlib.ada.AdaptiveAugment] is an augmentation (a callable
``(images, generator) -> images``, an [`AugmentPipe`][ganlib.augment.AugmentPipe] at the
current ``p``) that also holds that controller. Pass it as ``augment`` to a
[`Trainer`][ganlib.Trainer] or an [`AdversarialTask`][ganlib.tasks.AdversarialTask]: the
step then reports ``d_real_sign`` (E[sign D(real)] of its batch), the task updates ``p``
after every step and logs it as ``aug_p``, and checkpoints keep the controller's state, so
a resumed run tunes ``p`` exactly as an uninterrupted one.

Given ``validation`` images (real images D never trains on: a folder run's held-out slice),
the controller reads ADA's other heuristic instead,

    r_v = (E[D(train)] - E[D(validation)]) / (E[D(train)] - E[D(generated)])

on D's raw outputs: 0 where D scores unseen real images as it scores the training ones, 1
where it scores them as fakes (0 too where D rates its fakes as high as the training
images: then it overfits nothing). On the step that ends each ``interval`` the task scores a
batch of validation images (drawn and augmented by seeds of the step number) with D as it
stands before that step, and the step's own real and fake batches give the other two means,
so all three come from one D: its outputs swing as a whole from step to step, and means
from different steps would measure the swing ([`overfitting_ratio`][ganlib.ada.overfitting_ratio]).
``p`` then moves as above, towards ``r_v = target``. ``r_t`` needs no held-out images but
reads D's outputs against a fixed boundary; on 900 MNIST digits it stayed below 0.6 (``p``
at 0) while ``r_v`` measured 0.8 to 1.2 (docs/results.md).

Examples:
    >>> import torch
    >>> ada = AdaptiveAugment(interval=1, kimg=1)
    >>> ada.update(real_sign=1.0, images=100)  # D sure of every real image: p goes up
    >>> ada.p
    0.1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ._validation import check_in_range, check_int, check_positive_float
from .augment import ADA_PIPELINE, AugmentPipe

__all__ = ["ADA_KIMG", "ADA_MAX_P", "ADA_TARGET", "AdaptiveAugment", "overfitting_ratio"]

# StyleGAN2-ADA's target for r_t.
ADA_TARGET = 0.6
# Thousands of images for p to cross [0, 1]: StyleGAN2-ADA's 500 suits its runs of 25,000
# kimg; ganlib's default runs are 600 kimg, so p moves five times faster (StyleGAN2-ADA's
# own choice for short runs, its transfer learning, is 100).
ADA_KIMG = 100.0
# The highest p: ADA measured its augmentations to leak into G above about 0.8.
ADA_MAX_P = 0.8


def overfitting_ratio(train: float, validation: float, generated: float) -> float:
    """ADA's ``r_v`` from D's mean raw outputs on training, validation and generated
    images: ``(train - validation) / (train - generated)``, or 0 where ``train`` is not
    above ``generated`` (D does not tell its training images from fakes: nothing to
    overfit).

    Examples:
        >>> overfitting_ratio(train=2.0, validation=1.0, generated=-2.0)
        0.25
    """
    gap = train - generated
    return (train - validation) / gap if gap > 0 else 0.0


class AdaptiveAugment:
    """ADA: an [`AugmentPipe`][ganlib.augment.AugmentPipe] whose probability ``p`` is tuned
    during training from D's overfitting signal (see the module docstring).

    Args:
        pipeline: The pipe's transformations (``ganlib.augment.PIPE_OPS``); by default
            ADA's ``bc`` group: flips, quarter turns, whole-pixel shifts, colour.
        target: The value of the signal (``r_t = E[sign(D(real))]``, or ``r_v`` with
            ``validation``) that ``p`` is tuned to hold, in (0, 1).
        interval: Steps between adjustments of ``p``.
        kimg: Thousands of real images over which ``p`` can move by 1 (its speed).
        max_p: The highest ``p``, in [0, 1]: below about 0.8 ADA's augmentations do not leak.
        p: The starting ``p``, in [0, ``max_p``].
        validation: Real images (N, C, H, W) in D's input range that D never trains on:
            ``p`` is then tuned from ``r_v`` (see the module docstring), not ``r_t``.

    Raises:
        TypeError, ValueError: For arguments out of range, naming the argument.
    """

    def __init__(
        self,
        pipeline: str = ADA_PIPELINE,
        *,
        target: float = ADA_TARGET,
        interval: int = 4,
        kimg: float = ADA_KIMG,
        max_p: float = ADA_MAX_P,
        p: float = 0.0,
        validation: Tensor | None = None,
    ) -> None:
        self.target = check_in_range("target", target, 0.0, 1.0, low_open=True, high_open=True)
        self.interval = check_int("interval", interval, 1)
        self.kimg = check_positive_float("kimg", kimg)
        self.max_p = check_in_range("max_p", max_p, 0.0, 1.0)
        start = check_in_range("p", p, 0.0, self.max_p)
        self.pipe = AugmentPipe(pipeline, start)
        # Since the last adjustment: the sum of sign(D(real)) over its images, the images, steps.
        self._signs, self._images, self._steps = 0.0, 0, 0
        self.last_rt: float | None = None  # r_t of the last adjustment
        if validation is not None and (
            not isinstance(validation, Tensor) or validation.dim() != 4 or len(validation) == 0
        ):
            shape = tuple(validation.shape) if isinstance(validation, Tensor) else validation
            raise ValueError(
                f"`validation` must be a (N, C, H, W) tensor of at least one image, got {shape!r}"
            )
        self.validation = validation
        self.last_rv: float | None = None  # r_v of the last adjustment (with validation)

    @property
    def p(self) -> float:
        """The current probability of each transformation for each image."""
        return self.pipe.p

    @property
    def pipeline(self) -> str:
        """The pipe's transformations, comma-separated."""
        return self.pipe.pipeline

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``images`` augmented at the current ``p`` (the step calls this where D reads them)."""
        return self.pipe(images, generator)

    @property
    def signal(self) -> str:
        """The overfitting signal ``p`` is tuned from: ``"r_v"`` (with ``validation``) or
        ``"r_t"``."""
        return "r_t" if self.validation is None else "r_v"

    @property
    def wants_validation_score(self) -> bool:
        """Whether the next [`update`][ganlib.ada.AdaptiveAugment.update] ends an interval
        of an ``r_v`` controller, and so needs ``r_v`` (D's validation score, taken before
        that step)."""
        return self.validation is not None and self._steps + 1 >= self.interval

    def update(self, real_sign: float, images: int, rv: float | None = None) -> None:
        """Take one step's signal: ``real_sign`` is E[sign(D(real))] over its ``images``
        real images; ``rv``, that step's ``r_v`` where
        [`wants_validation_score`][ganlib.ada.AdaptiveAugment.wants_validation_score] said
        so. Every ``interval`` calls ``p`` is adjusted: from the mean ``real_sign`` over
        them, or with ``validation`` from the last call's ``rv``.

        Raises:
            ValueError: Without ``rv`` where the interval of an ``r_v`` controller ends.
        """
        if not math.isfinite(real_sign):  # (a NaN step: the NaN guard stops the run)
            return
        self._signs += real_sign * images
        self._images += images
        self._steps += 1
        if self._steps < self.interval:
            return
        if self.validation is not None:
            if rv is None:
                raise ValueError(
                    "an adaptive augmentation tuned from r_v needs `rv` at the end of each "
                    f"interval (every {self.interval} steps), got None"
                )
            signal = self.last_rv = float(rv)
        else:
            signal = self.last_rt = self._signs / self._images
        direction = (signal > self.target) - (signal < self.target)  # np.sign, as ADA
        p = self.pipe.p + direction * self._images / (self.kimg * 1000)
        self.pipe.p = min(max(p, 0.0), self.max_p)
        self._signs, self._images, self._steps = 0.0, 0, 0

    def state_dict(self) -> dict[str, Any]:
        """``p`` and the signal gathered since the last adjustment (plain numbers)."""
        return {
            "p": self.pipe.p,
            "signs": self._signs,
            "images": self._images,
            "steps": self._steps,
            "last_rt": self.last_rt,
            "last_rv": self.last_rv,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what [`state_dict`][ganlib.ada.AdaptiveAugment.state_dict] returned.

        Raises:
            ValueError: For a state without ``p`` or with ``p`` out of [0, 1].
        """
        if "p" not in state:
            raise ValueError(
                f"an adaptive augmentation's state needs `p`, got keys {sorted(state)}"
            )
        self.pipe.p = float(state["p"])
        self._signs = float(state.get("signs", 0.0))
        self._images = int(state.get("images", 0))
        self._steps = int(state.get("steps", 0))
        last, last_rv = state.get("last_rt"), state.get("last_rv")
        self.last_rt = None if last is None else float(last)
        self.last_rv = None if last_rv is None else float(last_rv)

    def __repr__(self) -> str:
        validation = (
            "" if self.validation is None else f", validation={len(self.validation)} images"
        )
        return (
            f"AdaptiveAugment({self.pipeline!r}, target={self.target:g}, "
            f"interval={self.interval}, kimg={self.kimg:g}, max_p={self.max_p:g}, "
            f"p={self.p:.4g}{validation})"
        )

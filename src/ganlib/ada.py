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

__all__ = ["ADA_KIMG", "ADA_MAX_P", "ADA_TARGET", "AdaptiveAugment"]

# StyleGAN2-ADA's target for r_t.
ADA_TARGET = 0.6
# Thousands of images for p to cross [0, 1]: StyleGAN2-ADA's 500 suits its runs of 25,000
# kimg; ganlib's default runs are 600 kimg, so p moves five times faster (StyleGAN2-ADA's
# own choice for short runs, its transfer learning, is 100).
ADA_KIMG = 100.0
# The highest p: ADA measured its augmentations to leak into G above about 0.8.
ADA_MAX_P = 0.8


class AdaptiveAugment:
    """ADA: an [`AugmentPipe`][ganlib.augment.AugmentPipe] whose probability ``p`` is tuned
    during training from D's overfitting signal (see the module docstring).

    Args:
        pipeline: The pipe's transformations (``ganlib.augment.PIPE_OPS``); by default
            ADA's ``bc`` group: flips, quarter turns, whole-pixel shifts, colour.
        target: The value of ``r_t = E[sign(D(real))]`` that ``p`` is tuned to hold, in
            (0, 1).
        interval: Steps between adjustments of ``p``.
        kimg: Thousands of real images over which ``p`` can move by 1 (its speed).
        max_p: The highest ``p``, in [0, 1]: below about 0.8 ADA's augmentations do not leak.
        p: The starting ``p``, in [0, ``max_p``].

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

    def update(self, real_sign: float, images: int) -> None:
        """Take one step's signal: ``real_sign`` is E[sign(D(real))] over its ``images``
        real images. Every ``interval`` calls ``p`` is adjusted from the mean over them."""
        if not math.isfinite(real_sign):  # (a NaN step: the NaN guard stops the run)
            return
        self._signs += real_sign * images
        self._images += images
        self._steps += 1
        if self._steps < self.interval:
            return
        rt = self._signs / self._images
        direction = (rt > self.target) - (rt < self.target)  # np.sign, as ADA
        p = self.pipe.p + direction * self._images / (self.kimg * 1000)
        self.pipe.p = min(max(p, 0.0), self.max_p)
        self.last_rt = rt
        self._signs, self._images, self._steps = 0.0, 0, 0

    def state_dict(self) -> dict[str, Any]:
        """``p`` and the signal gathered since the last adjustment (plain numbers)."""
        return {
            "p": self.pipe.p,
            "signs": self._signs,
            "images": self._images,
            "steps": self._steps,
            "last_rt": self.last_rt,
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
        last = state.get("last_rt")
        self.last_rt = None if last is None else float(last)

    def __repr__(self) -> str:
        return (
            f"AdaptiveAugment({self.pipeline!r}, target={self.target:g}, "
            f"interval={self.interval}, kimg={self.kimg:g}, max_p={self.max_p:g}, p={self.p:.4g})"
        )

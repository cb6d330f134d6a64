"""Stacked MNIST: three MNIST digits as the R, G and B channels of one image, 1,000 modes.

The mode-collapse benchmark of VEEGAN (Srivastava et al., 2017) and PacGAN (Lin et al.,
2018): a generator that covers the data makes every one of the 1,000 digit triples.
[`ganlib.metrics.stacked_mnist_modes`][ganlib.metrics.stacked_mnist_modes] counts them.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
from torch import Tensor

from .._validation import check_int
from .mnist import load_mnist

__all__ = ["STACKED_MNIST_MODES", "load_stacked_mnist", "stack_mnist"]

STACKED_MNIST_MODES = 1000
"""Modes of Stacked MNIST: one per (red, green, blue) digit triple."""
# Weights of the (red, green, blue) digits in a mode label.
_PLACES = torch.tensor([100, 10, 1])


def stack_mnist(
    images: Tensor, labels: Tensor, num_samples: int = 60_000, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Stack three MNIST digits, drawn independently and uniformly with replacement, as the
    channels of each image.

    Args:
        images: MNIST images (N, 1, 28, 28) (any range; [-1, 1] from
            [`load_mnist`][ganlib.data.load_mnist]).
        labels: Their digits (N,), in 0..9.
        num_samples: Stacked images to make.
        seed: Seed of the draw: the same arguments give the same images.

    Returns:
        Images (num_samples, 3, 28, 28), digit ``i`` of a triple in channel ``i``, and
        their modes (num_samples,): ``100 * red + 10 * green + blue``, in 0..999.

    Raises:
        ValueError: For images not shaped (N, 1, 28, 28), labels that are not one digit
            0..9 per image, or ``num_samples`` below 1.
    """
    count = check_int("num_samples", num_samples, 1)
    if (
        not isinstance(images, Tensor)
        or images.dim() != 4
        or tuple(images.shape[1:]) != (1, 28, 28)
    ):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"`images` must be MNIST digits shaped (N, 1, 28, 28), got {shape}")
    if not isinstance(labels, Tensor) or tuple(labels.shape) != (len(images),):
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"`labels` must hold one digit per image, shaped ({len(images)},), got {shape}"
        )
    if (
        len(images) == 0
        or labels.is_floating_point()
        or int(labels.min()) < 0
        or int(labels.max()) > 9
    ):
        raise ValueError("`labels` must be integer digits in 0..9 (and `images` not empty)")
    rng = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(images), (count, 3), generator=rng)  # (num_samples, 3)
    stacked = images[picks.flatten(), 0].reshape(count, 3, 28, 28)
    modes = (labels[picks].long().cpu() * _PLACES).sum(1)
    return stacked, modes


def load_stacked_mnist(
    root: str | os.PathLike[str],
    split: Literal["train", "test"] = "train",
    *,
    num_samples: int = 60_000,
    seed: int = 0,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """Stacked MNIST from one MNIST split: images (num_samples, 3, 28, 28) in [-1, 1] and
    their modes (num_samples,) in 0..999.

    The default size, 60,000, is MNIST's training split's: an epoch has as many steps as
    an MNIST epoch. The digits come from ``split`` only, so the test split's stacks hold
    no training digit. See [`stack_mnist`][ganlib.data.stack_mnist] for the draw and
    [`load_mnist`][ganlib.data.load_mnist] for ``root``, ``download`` and the errors.
    """
    images, labels = load_mnist(root, split, download=download)
    return stack_mnist(images, labels, num_samples, seed)

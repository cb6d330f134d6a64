"""Differentiable augmentation (DiffAugment; Zhao et al., 2020) of every image D sees.

With few images a discriminator memorises them; augmenting only the real images
would teach the generator the augmentations. DiffAugment applies the same family
of random, differentiable transformations to real and fake images wherever D
reads them, so G's gradient passes through the augmentation back to G.

The transformations (the paper's, per image):

- ``"color"``: brightness + U(-0.5, 0.5); saturation (deviation from the channel
  mean) x U(0, 2); contrast (deviation from the image mean) x U(0.5, 1.5);
- ``"translation"``: an integer shift of up to 1/8 of each side in each direction,
  the uncovered border filled with 0;
- ``"cutout"``: a square of half each side set to 0, its centre anywhere in the image.

0 is mid-grey for images in [-1, 1]. Every random draw comes from the generator
passed in (in training, the step's seeded stream), so a run resumes exactly.

Examples:
    >>> import torch
    >>> augment = DiffAugment("translation,cutout,color")
    >>> augment(torch.zeros(4, 3, 32, 32), torch.Generator().manual_seed(0)).shape
    torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Augment",
    "AugmentName",
    "DiffAugment",
    "brightness",
    "contrast",
    "cutout",
    "resolve_augment",
    "saturation",
    "translation",
]

AugmentName = Literal["color", "translation", "cutout"]

# (images, random source) -> augmented images: what the step calls.
Augment = Callable[[Tensor, "torch.Generator | None"], Tensor]


def _uniform(images: Tensor, generator: torch.Generator | None) -> Tensor:
    """One U(0, 1) draw per image, shaped (B, 1, 1, 1) to broadcast."""
    draw = torch.rand(images.shape[0], 1, 1, 1, device=images.device, generator=generator)
    return draw.to(images.dtype)


def _integers(low: int, high: int, images: Tensor, generator: torch.Generator | None) -> Tensor:
    """One integer in ``[low, high)`` per image, shaped (B,)."""
    return torch.randint(low, high, (images.shape[0],), device=images.device, generator=generator)


def brightness(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add U(-0.5, 0.5) to each image."""
    return images + (_uniform(images, generator) - 0.5)


def saturation(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scale each pixel's deviation from its channel mean by U(0, 2)."""
    mean = images.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (images - mean) * (_uniform(images, generator) * 2) + mean


def contrast(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scale each image's deviation from its mean by U(0.5, 1.5)."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (images - mean) * (_uniform(images, generator) + 0.5) + mean


def translation(
    images: Tensor, generator: torch.Generator | None = None, ratio: float = 0.125
) -> Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of each side (rounded), zero-filled."""
    batch, channels, height, width = images.shape
    pad_y, pad_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = _integers(-pad_y, pad_y + 1, images, generator)  # (B,)
    shift_x = _integers(-pad_x, pad_x + 1, images, generator)
    padded = F.pad(images, (pad_x, pad_x, pad_y, pad_y))  # (B, C, H + 2 pad_y, W + 2 pad_x)
    # Output pixel (i, j) reads input pixel (i + shift_y, j + shift_x), or the zero border.
    rows = torch.arange(height, device=images.device)[None] + (pad_y + shift_y)[:, None]  # (B, H)
    cols = torch.arange(width, device=images.device)[None] + (pad_x + shift_x)[:, None]  # (B, W)
    index = rows[:, None, :, None].expand(batch, channels, height, padded.shape[3])
    picked = padded.gather(2, index)  # (B, C, H, W + 2 pad_x)
    index = cols[:, None, None, :].expand(batch, channels, height, width)
    return picked.gather(3, index)  # (B, C, H, W)


def cutout(images: Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> Tensor:
    """Zero a square (``ratio`` of each side) of each image, centred anywhere, edge-clipped."""
    _, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    # The square's top-left corner; an even-sized square may also hang off the far edge.
    top = _integers(0, height + (1 - size_y % 2), images, generator) - size_y // 2  # (B,)
    left = _integers(0, width + (1 - size_x % 2), images, generator) - size_x // 2
    rows = torch.arange(height, device=images.device)[None]  # (1, H)
    cols = torch.arange(width, device=images.device)[None]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size_y)  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size_x)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
    return images * keep[:, None].to(images.dtype)


_TRANSFORMS: dict[str, tuple[Augment, ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


class DiffAugment:
    """The DiffAugment policy ``policy``: its transformations in the order named.

    Args:
        policy: Comma-separated names from ``"color"``, ``"translation"`` and
            ``"cutout"``, e.g. ``"translation,cutout,color"`` (the paper's choice for
            its data-limited runs is all three).

    Raises:
        TypeError: If ``policy`` is not a string.
        ValueError: For an empty policy or an unknown name.
    """

    def __init__(self, policy: str = "color,translation,cutout") -> None:
        self.names = _parse(policy, "policy")
        self.policy = ",".join(self.names)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``images`` (B, C, H, W) augmented, each with its own random draws from ``generator``."""
        for name in self.names:
            for transform in _TRANSFORMS[name]:
                images = transform(images, generator)
        return images

    def __repr__(self) -> str:
        return f"DiffAugment({self.policy!r})"


def _parse(policy: object, argument: str) -> tuple[str, ...]:
    choices = list(get_args(AugmentName))
    if not isinstance(policy, str):
        raise TypeError(
            f"`{argument}` must be a comma-separated string of {choices}, "
            f"got {policy!r} ({type(policy).__name__})"
        )
    names = tuple(name.strip() for name in policy.split(","))
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise ValueError(
            f"`{argument}` must be a comma-separated list of {choices}, got {policy!r} "
            f"(unknown: {', '.join(repr(name) for name in unknown)})"
        )
    return names


def resolve_augment(augment: str | Augment | None) -> Augment | None:
    """What the ``augment`` argument of the Trainer and the step means.

    Args:
        augment: ``None`` (no augmentation); a DiffAugment policy string such as
            ``"translation,cutout,color"``; or a callable ``(images, generator) ->
            images`` that draws its randomness from ``generator`` and is differentiable.

    Returns:
        The augmentation to call, or ``None``.

    Raises:
        TypeError: For anything else.
        ValueError: For a bad policy string (naming the argument, the rule and the value).
    """
    if augment is None:
        return None
    if isinstance(augment, str):
        _parse(augment, "augment")  # (the error names the caller's argument)
        return DiffAugment(augment)
    if callable(augment):
        return augment
    raise TypeError(
        "`augment` must be None, a DiffAugment policy string such as "
        f"'translation,cutout,color', or a callable (images, generator) -> images; "
        f"got {augment!r} ({type(augment).__name__})"
    )

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

[`AugmentPipe`][ganlib.augment.AugmentPipe] is the other kind, StyleGAN2-ADA's (Karras et
al., 2020): each transformation is applied to each image *with probability* ``p`` (drawn
per image and per transformation), so a share ``1 - p`` of what D sees per
transformation is left as it was. Below ``p`` ≈ 0.8 its transformations do not leak into
the generator (the ADA paper's rule): G cannot learn them, since the untouched images
still dominate. [`ganlib.ada.AdaptiveAugment`][ganlib.ada.AdaptiveAugment] tunes ``p``
during training. Its transformations (ADA's ``bc`` group, our own code):

- ``"xflip"``: a chosen image is mirrored left-right or kept, at even odds;
- ``"rotate90"``: a chosen image is turned by 0, 90, 180 or 270 degrees;
- ``"xint"``: a whole-pixel shift of up to 1/8 of each side in each direction, the
  border filled by reflection (no grey bars that G could learn to draw);
- ``"brightness"`` (+ N(0, 0.2)), ``"contrast"`` (x 2^N(0, 0.5)), ``"lumaflip"`` (the
  luma axis mirrored), ``"hue"`` (a rotation about the grey axis, U(-180, 180) degrees)
  and ``"saturation"`` (x 2^N(0, 1) off the grey axis): one colour matrix per image,
  each part chosen separately; hue and saturation need RGB, and the colour parts leave
  images of 2 or 4 channels alone;
- ``"cutout"``: a square of half each side set to 0.

Every transformation is a differentiable function of the pixels (flips, rotations and
shifts move pixels; the colour parts are affine), so G's gradient passes through it.

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

from ._validation import check_in_range

__all__ = [
    "ADA_PIPELINE",
    "PIPE_OPS",
    "Augment",
    "AugmentName",
    "AugmentPipe",
    "DiffAugment",
    "brightness",
    "color_transform",
    "contrast",
    "cutout",
    "integer_translation",
    "resolve_augment",
    "rotate90",
    "saturation",
    "translation",
    "xflip",
]

AugmentName = Literal["color", "translation", "cutout"]

# AugmentPipe's transformations, in the order it applies them (ADA's), whatever the order named.
PIPE_OPS = (
    "xflip",
    "rotate90",
    "xint",
    "brightness",
    "contrast",
    "lumaflip",
    "hue",
    "saturation",
    "cutout",
)
_COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
# The default pipeline of adaptive augmentation: ADA's "bc" (pixel blitting and colour).
ADA_PIPELINE = "xflip,rotate90,xint,brightness,contrast,lumaflip,hue,saturation"

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


def _chosen(images: Tensor, generator: torch.Generator | None, p: float) -> Tensor:
    """Which images a transformation applies to: each with probability ``p``, shaped (B,)."""
    draw = torch.rand(images.shape[0], device=images.device, generator=generator)
    return draw < p


def _pick(chosen: Tensor, changed: Tensor, images: Tensor) -> Tensor:
    """``changed`` where ``chosen`` (B,), else ``images``; both differentiable."""
    return torch.where(chosen[:, None, None, None], changed, images)


def xflip(images: Tensor, generator: torch.Generator | None = None, p: float = 1.0) -> Tensor:
    """Mirror each image left-right with probability ``p / 2`` (ADA: a chosen image is
    mirrored or kept, at even odds)."""
    chosen = _chosen(images, generator, p)
    heads = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return _pick(chosen & heads, images.flip(3), images)


def rotate90(images: Tensor, generator: torch.Generator | None = None, p: float = 1.0) -> Tensor:
    """Turn each chosen image (probability ``p``) by 0, 90, 180 or 270 degrees, at even odds.

    Raises:
        ValueError: For images that are not square.
    """
    if images.shape[2] != images.shape[3]:
        raise ValueError(f"rotate90 needs square images, got shape {tuple(images.shape)}")
    chosen = _chosen(images, generator, p)
    quarter = _integers(0, 4, images, generator) * chosen  # (B,), 0 where not chosen
    turns = torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])  # (4, B, C, H, W)
    return turns[quarter, torch.arange(images.shape[0], device=images.device)]


def integer_translation(
    images: Tensor, generator: torch.Generator | None = None, p: float = 1.0, ratio: float = 0.125
) -> Tensor:
    """Shift each chosen image (probability ``p``) by whole pixels, ``round(U(-ratio, ratio)
    * side)`` in each direction, the uncovered border filled by reflection (ADA's ``xint``).
    """
    batch, channels, height, width = images.shape
    chosen = _chosen(images, generator, p)
    draw = torch.rand(batch, 2, device=images.device, generator=generator) * 2 - 1  # (B, 2)
    pad_y, pad_x = (
        min(int(height * ratio + 0.5), height - 1),
        min(int(width * ratio + 0.5), width - 1),
    )
    shift_y = (draw[:, 0] * height * ratio).round().long().clamp(-pad_y, pad_y) * chosen
    shift_x = (draw[:, 1] * width * ratio).round().long().clamp(-pad_x, pad_x) * chosen
    padded = F.pad(images, (pad_x, pad_x, pad_y, pad_y), mode="reflect")
    # Output pixel (i, j) reads padded pixel (i + pad_y - shift_y, j + pad_x - shift_x).
    rows = torch.arange(height, device=images.device)[None] + (pad_y - shift_y)[:, None]  # (B, H)
    cols = torch.arange(width, device=images.device)[None] + (pad_x - shift_x)[:, None]  # (B, W)
    index = rows[:, None, :, None].expand(batch, channels, height, padded.shape[3])
    picked = padded.gather(2, index)  # (B, C, H, W + 2 pad_x)
    index = cols[:, None, None, :].expand(batch, channels, height, width)
    return picked.gather(3, index)  # (B, C, H, W)


def _hue_rotation(theta: Tensor) -> Tensor:
    """(B, 4, 4) rotations of RGB by ``theta`` (B,) about the grey axis (Rodrigues' formula)."""
    c = 3**-0.5  # the grey axis (c, c, c)
    cross = theta.new_tensor([[0.0, -c, c], [c, 0.0, -c], [-c, c, 0.0]])  # its cross product
    outer = theta.new_full((3, 3), c * c)
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
    rotation = torch.eye(3, device=theta.device) * cos + cross * sin + outer * (1 - cos)
    out = torch.eye(4, device=theta.device).repeat(len(theta), 1, 1)
    out[:, :3, :3] = rotation  # (B, 3, 3)
    return out


def color_transform(
    images: Tensor,
    generator: torch.Generator | None = None,
    p: float = 1.0,
    parts: tuple[str, ...] = _COLOR_OPS,
) -> Tensor:
    """ADA's colour transformations as one affine map per image, each part chosen with
    probability ``p``: brightness + N(0, 0.2), contrast x 2^N(0, 0.5), a luma flip, a hue
    rotation about the grey axis by U(-pi, pi) and saturation x 2^N(0, 1) off it.

    Images of 1 channel get the map averaged over R, G and B (hue and saturation do
    nothing to them); images of 2 or 4 channels are returned as they are.
    """
    batch, channels = images.shape[:2]
    if channels not in (1, 3):
        return images
    device, dtype = images.device, torch.float32
    luma = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / 3**0.5  # the grey axis
    along = torch.outer(luma, luma)  # (4, 4): projection on it
    eye = torch.eye(4, device=device, dtype=dtype)
    matrix = eye.repeat(batch, 1, 1)  # (B, 4, 4): colour_out = matrix @ colour_in

    def draw_normal() -> Tensor:
        return torch.randn(batch, device=device, generator=generator)

    def draw_uniform() -> Tensor:
        return torch.rand(batch, device=device, generator=generator)

    for part in _COLOR_OPS:  # ADA's order; every draw is made, so the stream moves alike
        if part not in parts:
            continue
        chosen = _chosen(images, generator, p)
        if part == "brightness":
            shift = draw_normal() * 0.2 * chosen  # (B,)
            step = eye.repeat(batch, 1, 1)
            step[:, :3, 3] = shift[:, None]
        elif part == "contrast":
            step = eye.repeat(batch, 1, 1)
            step[:, :3, :3] *= torch.where(chosen, torch.exp2(draw_normal() * 0.5), 1.0)[
                :, None, None
            ]
        elif part == "lumaflip":
            flip = torch.floor(draw_uniform() * 2) * chosen  # (B,) 0 or 1
            step = eye - 2 * along * flip[:, None, None]  # a Householder reflection
        elif part == "hue":
            theta = (draw_uniform() * 2 - 1) * torch.pi * chosen
            step = _hue_rotation(theta) if channels == 3 else eye.repeat(batch, 1, 1)
        else:  # saturation
            scale = torch.where(chosen, torch.exp2(draw_normal()), 1.0)
            step = along + (eye - along) * scale[:, None, None]
            step = step if channels == 3 else eye.repeat(batch, 1, 1)
        matrix = step @ matrix
    matrix = matrix.to(images.dtype)
    flat = images.reshape(batch, channels, -1)  # (B, C, H*W)
    if channels == 3:
        out = matrix[:, :3, :3] @ flat + matrix[:, :3, 3:]
    else:  # grey: the map's mean over R, G and B, as ADA does
        mean = matrix[:, :3, :].mean(dim=1, keepdim=True)  # (B, 1, 4)
        out = flat * mean[:, :, :3].sum(dim=2, keepdim=True) + mean[:, :, 3:]
    return out.reshape(images.shape)


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


class AugmentPipe:
    """StyleGAN2-ADA's augmentation: each of ``pipeline``'s transformations applied to each
    image with probability ``p`` (see the module docstring).

    Args:
        pipeline: Comma-separated names from `PIPE_OPS` (applied in that order whatever
            the order named); by default ADA's ``bc`` group (`ADA_PIPELINE`).
        p: The probability of each transformation for each image, in [0, 1]; settable
            (``pipe.p = 0.3``). At 0 images pass untouched and no random draw is made.

    Raises:
        TypeError, ValueError: For a pipeline that is not a string of known names, or ``p``
            outside [0, 1].

    Examples:
        >>> import torch
        >>> pipe = AugmentPipe("xflip,xint,brightness,contrast", p=0.5)
        >>> pipe(torch.zeros(4, 3, 16, 16), torch.Generator().manual_seed(0)).shape
        torch.Size([4, 3, 16, 16])
    """

    def __init__(self, pipeline: str = ADA_PIPELINE, p: float = 0.0) -> None:
        names = _parse_names(pipeline, "pipeline", PIPE_OPS)
        self.names = tuple(name for name in PIPE_OPS if name in names)
        self.pipeline = ",".join(self.names)
        self.p = p

    @property
    def p(self) -> float:
        """The probability of each transformation for each image."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = check_in_range("p", value, 0.0, 1.0)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``images`` (B, C, H, W), each transformed with probability ``p`` per transformation."""
        p = self._p
        if p == 0.0:
            return images
        colors = tuple(name for name in self.names if name in _COLOR_OPS)
        for name in self.names:
            if name == "xflip":
                images = xflip(images, generator, p)
            elif name == "rotate90":
                images = rotate90(images, generator, p)
            elif name == "xint":
                images = integer_translation(images, generator, p)
            elif name == "cutout":
                chosen = _chosen(images, generator, p)
                images = _pick(chosen, cutout(images, generator), images)
            elif name == colors[0]:  # the colour parts, as one map per image
                images = color_transform(images, generator, p, colors)
        return images

    def __repr__(self) -> str:
        return f"AugmentPipe({self.pipeline!r}, p={self._p:g})"


def _parse_names(value: object, argument: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise TypeError(
            f"`{argument}` must be a comma-separated string of {list(choices)}, "
            f"got {value!r} ({type(value).__name__})"
        )
    names = tuple(name.strip() for name in value.split(","))
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise ValueError(
            f"`{argument}` must be a comma-separated list of {list(choices)}, got {value!r} "
            f"(unknown: {', '.join(repr(name) for name in unknown)})"
        )
    return names


def _parse(policy: object, argument: str) -> tuple[str, ...]:
    return _parse_names(policy, argument, tuple(get_args(AugmentName)))


def resolve_augment(augment: str | Augment | None) -> Augment | None:
    """What the ``augment`` argument of the Trainer and the step means.

    Args:
        augment: ``None`` (no augmentation); a DiffAugment policy string such as
            ``"translation,cutout,color"``; or a callable ``(images, generator) ->
            images`` that draws its randomness from ``generator`` and is differentiable
            (an [`AugmentPipe`][ganlib.augment.AugmentPipe], an
            [`AdaptiveAugment`][ganlib.ada.AdaptiveAugment], your own).

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

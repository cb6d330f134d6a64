"""Data for translation tasks: two MNIST-made translation problems, made reproducibly
offline, and readers for your own pairs and domains.

- [`mnist_edge_pairs`][ganlib.data.mnist_edge_pairs]: pix2pix's problem, edge maps of
  digits (Sobel, thresholded: deterministic) paired with the digits.
- [`mnist_style_domains`][ganlib.data.mnist_style_domains]: CycleGAN's problem, MNIST
  against another rendering of other MNIST digits ([`restyle_digits`][ganlib.data.restyle_digits]:
  thick, dark coloured strokes on a light striped paper), the two training domains drawn
  from disjoint halves of the train split.
- [`load_aligned_pairs`][ganlib.data.load_aligned_pairs] reads the reference's aligned
  data sets (each file A and B side by side),
  [`load_paired_folders`][ganlib.data.load_paired_folders] two folders of matching file
  names, [`load_unpaired_folders`][ganlib.data.load_unpaired_folders] two domains of any
  sizes.

Every function returns tensors in [-1, 1], ready for ``Trainer.fit((images_a, images_b))``.
"""

from __future__ import annotations

import math
import os
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .._validation import check_int
from .common import to_unit_range
from .folder import ImageFolder
from .mnist import load_mnist

__all__ = [
    "StyleDomains",
    "edge_map",
    "load_aligned_pairs",
    "load_paired_folders",
    "load_unpaired_folders",
    "match_lengths",
    "mnist_edge_pairs",
    "mnist_style_domains",
    "pad_to",
    "restyle_digits",
]

_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
# Gradient magnitude (intensities in [0, 1]) above which a pixel is an edge: a quarter of
# a full step's Sobel response (4).
EDGE_THRESHOLD = 1.0


def pad_to(images: Tensor, image_size: int) -> Tensor:
    """``images`` (N, C, H, W) centred on a background of -1, (N, C, image_size, image_size).

    Raises:
        ValueError: If ``image_size`` is smaller than the images.
    """
    height, width = images.shape[-2:]
    if image_size < max(height, width):
        raise ValueError(f"`image_size` must be >= {max(height, width)}, got {image_size}")
    top, left = (image_size - height) // 2, (image_size - width) // 2
    padding = (left, image_size - width - left, top, image_size - height - top)
    return F.pad(images, padding, value=-1.0)


def edge_map(images: Tensor, threshold: float = EDGE_THRESHOLD) -> Tensor:
    """White-on-black edge maps of grey images (N, 1, H, W) in [-1, 1]: Sobel gradient
    magnitude of the [0, 1] intensities, 1 where above ``threshold``, else -1.

    Raises:
        ValueError: For images that are not (N, 1, H, W).
    """
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"`images` must be shaped (N, 1, H, W), got {tuple(images.shape)}")
    intensity = (images.float() + 1) / 2
    kernels = torch.stack([_SOBEL, _SOBEL.t()])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    gradients = F.conv2d(F.pad(intensity, (1, 1, 1, 1), mode="replicate"), kernels)
    magnitude = gradients.square().sum(1, keepdim=True).sqrt()  # (N, 1, H, W)
    return torch.where(magnitude > threshold, 1.0, -1.0)


def mnist_edge_pairs(
    root: str | os.PathLike[str],
    split: Literal["train", "test"] = "train",
    *,
    image_size: int = 32,
    download: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """pix2pix's MNIST problem: edge maps of the digits (A) and the digits (B), centred on
    ``image_size`` (32: the U-Net halves five times to 1x1), with the digits' labels.

    Returns:
        ``(edges, digits, labels)``: (N, 1, S, S), (N, 1, S, S), (N,).
    """
    digits, labels = load_mnist(root, split, download=download)
    digits = pad_to(digits, check_int("image_size", image_size, 28))
    return edge_map(digits), digits, labels


def _hsv_to_rgb(hue: Tensor, saturation: float, value: float) -> Tensor:
    """(N,) hues in [0, 1) -> (N, 3) RGB in [0, 1]."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + hue[:, None] * 6) % 6
    return value - value * saturation * (torch.minimum(k, 4 - k).clamp(0, 1))


def restyle_digits(digits: Tensor, seed: int = 0) -> Tensor:
    """Another rendering of grey digits (N, 1, S, S) in [-1, 1]: strokes thickened by a
    pixel on each side, inked in a dark colour of random hue, on light paper with random
    stripes and blotches; (N, 3, S, S) in [-1, 1]. The same digits and seed give the same
    images; the classifier trained on MNIST cannot read them (inverted contrast, colour).

    Raises:
        ValueError: For images that are not (N, 1, S, S).
    """
    if digits.dim() != 4 or digits.shape[1] != 1:
        raise ValueError(f"`digits` must be shaped (N, 1, S, S), got {tuple(digits.shape)}")
    n, size = len(digits), digits.shape[-1]
    rng = torch.Generator().manual_seed(seed)
    ink = F.max_pool2d((digits.float() + 1) / 2, 3, stride=1, padding=1)  # (N, 1, S, S)
    stroke = _hsv_to_rgb(torch.rand(n, generator=rng), 0.9, 0.45)[:, :, None, None]
    # Paper: stripes of random angle, period and phase, blotches of coarse noise.
    angle = torch.rand(n, 1, 1, generator=rng) * math.pi
    period = 4 + 4 * torch.rand(n, 1, 1, generator=rng)
    phase = torch.rand(n, 1, 1, generator=rng) * 2 * math.pi
    y, x = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    wave = torch.sin(2 * math.pi * (x * angle.cos() + y * angle.sin()) / period + phase)
    blotches = F.interpolate(
        torch.rand(n, 1, 4, 4, generator=rng), size=(size, size), mode="bilinear"
    )[:, 0]
    shade = (0.85 + 0.08 * wave + 0.1 * (blotches - 0.5))[:, None]  # (N, 1, S, S)
    paper = torch.tensor([1.0, 0.92, 0.75])[None, :, None, None] * shade
    image = ink * stroke + (1 - ink) * paper
    return image.clamp(0, 1) * 2 - 1


class StyleDomains(NamedTuple):
    """Two domains of digits: MNIST (A, grey as RGB) and the other rendering (B).

    Attributes:
        a: Domain A images, (N_a, 3, S, S) in [-1, 1].
        labels_a: Their digits, (N_a,).
        b: Domain B images, (N_b, 3, S, S) in [-1, 1].
        labels_b: Their digits, (N_b,).
    """

    a: Tensor
    labels_a: Tensor
    b: Tensor
    labels_b: Tensor


def mnist_style_domains(
    root: str | os.PathLike[str],
    split: Literal["train", "test"] = "train",
    *,
    image_size: int = 32,
    seed: int = 0,
    download: bool = False,
) -> StyleDomains:
    """CycleGAN's MNIST problem: MNIST digits (A) and their other rendering (B,
    [`restyle_digits`][ganlib.data.restyle_digits]), centred on ``image_size``, both with
    three channels (A's grey repeated, so CycleGAN's identity loss applies).

    ``"train"``: A is the first half of the train split, B the other half restyled, so no
    digit image is in both (unpaired). ``"test"``: A and B are the same 10,000 test
    digits, B restyled, pair for pair (to score translations against their sources).
    """
    digits, labels = load_mnist(root, split, download=download)
    digits = pad_to(digits, check_int("image_size", image_size, 28))
    if split == "train":
        half = len(digits) // 2
        a, labels_a, source, labels_b = digits[:half], labels[:half], digits[half:], labels[half:]
    else:
        a, labels_a, source, labels_b = digits, labels, digits, labels
    return StyleDomains(
        a.expand(-1, 3, -1, -1).clone(), labels_a, restyle_digits(source, seed), labels_b
    )


# ---------------------------------------------------------------- your own data


def _folder(root: str | os.PathLike[str], size: int | None, channels: int | None) -> ImageFolder:
    """A folder's listing: its files, and its channels decided from every header."""
    if size is not None:
        check_int("image_size", size, 1)
    return ImageFolder(root, size, channels)


def load_aligned_pairs(
    root: str | os.PathLike[str],
    image_size: int | None = None,
    channels: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The reference's aligned data sets: every image under ``root`` holds A (left half)
    and B (right half) side by side; each half is resized to a square of ``image_size``
    (``None``: the files' median height).

    Args:
        root: The folder (searched recursively).
        image_size: Side of the square halves.
        channels: 1, 3 or 4, or ``None``: decided from every file (3 if any is in colour).

    Returns:
        ``(images_a, images_b)``, each (N, channels, S, S) in [-1, 1].

    Raises:
        DataNotFoundError: If ``root`` is missing or holds no images.
        ValueError: For an image narrower than 2 pixels, naming it.
    """
    from torchvision.transforms import functional as TF  # (torchvision: only when used)

    listing = _folder(root, image_size, channels)
    size = image_size or listing.median_size
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[listing.channels]
    images_a: list[Tensor] = []
    images_b: list[Tensor] = []
    for path in listing.files:
        with Image.open(path) as opened:
            image = opened.convert(mode)
        width, height = image.size
        if width < 2:
            raise ValueError(
                f"{path} is {width} pixel(s) wide: it cannot hold A and B side by side"
            )
        for half, images in ((0, images_a), (1, images_b)):
            box = (half * (width // 2), 0, (half + 1) * (width // 2), height)
            square = TF.resize(image.crop(box), [size, size], antialias=True)
            images.append(to_unit_range(TF.pil_to_tensor(square)))
    return torch.stack(images_a), torch.stack(images_b)


def load_paired_folders(
    root_a: str | os.PathLike[str],
    root_b: str | os.PathLike[str],
    image_size: int | None = None,
    channels_a: int | None = None,
    channels_b: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Pairs from two folders whose files match by name (the path under each folder,
    without its extension: ``a/cat.jpg`` pairs with ``b/cat.png``), read as
    [`ImageFolder`][ganlib.data.ImageFolder] reads a folder (shorter side resized to
    ``image_size``, centre-cropped; ``None``: A's median size), each folder's channels
    decided from its files unless given.

    Returns:
        ``(images_a, images_b)`` in the sorted order of the names, in [-1, 1].

    Raises:
        DataNotFoundError: If a folder is missing or holds no images.
        ValueError: If a name is in one folder only, naming how many and the first ones.
    """
    folder_a = _folder(root_a, image_size, channels_a)
    size = image_size or folder_a.median_size
    folder_b = _folder(root_b, size, channels_b)
    images_a, images_b = folder_a.load(), folder_b.load()  # (unreadable files left out)

    def by_name(folder: ImageFolder) -> dict[str, int]:
        return {
            str(p.relative_to(folder.root).with_suffix("")): i for i, p in enumerate(folder.files)
        }

    names_a, names_b = by_name(folder_a), by_name(folder_b)
    for mine, theirs, other in ((names_a, names_b, root_b), (names_b, names_a, root_a)):
        missing = sorted(set(mine) - set(theirs))
        if missing:
            raise ValueError(
                f"{len(missing)} image(s) have no match by name in {other}: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
    names = sorted(names_a)
    order_a = torch.tensor([names_a[n] for n in names])
    order_b = torch.tensor([names_b[n] for n in names])
    return images_a[order_a], images_b[order_b]


def match_lengths(images_a: Tensor, images_b: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two unpaired domains made equally long, so the Trainer can batch them together:
    the shorter is repeated in seeded random orders (every image once per pass) up to the
    longer's length; the longer is returned as it is."""
    if len(images_a) == 0 or len(images_b) == 0:
        raise ValueError(f"both domains need images, got {len(images_a)} and {len(images_b)}")
    rng = torch.Generator().manual_seed(seed)

    def stretched(images: Tensor, length: int) -> Tensor:
        passes = -(-length // len(images))
        order = torch.cat([torch.randperm(len(images), generator=rng) for _ in range(passes)])
        return images[order[:length]]

    length = max(len(images_a), len(images_b))
    if len(images_a) < length:
        return stretched(images_a, length), images_b
    if len(images_b) < length:
        return images_a, stretched(images_b, length)
    return images_a, images_b


def load_unpaired_folders(
    root_a: str | os.PathLike[str],
    root_b: str | os.PathLike[str],
    image_size: int | None = None,
    channels_a: int | None = None,
    channels_b: int | None = None,
    *,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Two unpaired domains from two folders (any files, any counts), read as
    [`ImageFolder`][ganlib.data.ImageFolder] reads a folder (``image_size`` ``None``: A's
    median size; channels decided per folder unless given), made equally long by
    [`match_lengths`][ganlib.data.match_lengths].

    Raises:
        DataNotFoundError: If a folder is missing or holds no images.
    """
    folder_a = _folder(root_a, image_size, channels_a)
    size = image_size or folder_a.median_size
    images_b = _folder(root_b, size, channels_b).load()
    return match_lengths(folder_a.load(), images_b, seed)

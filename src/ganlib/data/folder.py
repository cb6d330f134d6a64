"""A folder of your own pictures as a training set: resized, centre-cropped, in [-1, 1]."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from .._validation import check_int
from .common import DataNotFoundError, to_unit_range

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "load_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _find_images(root: Path, extensions: Iterable[str]) -> list[Path]:
    if not root.is_dir():
        raise DataNotFoundError(f"image folder {root} does not exist or is not a folder")
    suffixes = {e.lower() for e in extensions}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DataNotFoundError(
            f"image folder {root} holds no images (looked for {', '.join(sorted(suffixes))}, "
            "in subfolders too)"
        )
    return files


class ImageFolder(Dataset[Tensor]):
    """Every image under ``root`` (subfolders included), read lazily, as (C, S, S) in [-1, 1].

    Each image is converted to ``channels`` (1: grayscale, 3: RGB, 4: RGBA),
    its shorter side resized to ``image_size`` (antialiased), then centre-cropped
    to a square. Files are taken in sorted path order, so indices are stable.

    Args:
        root: The folder.
        image_size: Side of the square images produced.
        channels: 1, 3 or 4.
        extensions: File suffixes counted as images.

    Raises:
        DataNotFoundError: If the folder is missing or holds no images.
        ValueError: For a bad ``image_size`` or ``channels``, and (when read)
            for a file that is not a readable image, naming it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int,
        channels: int = 3,
        *,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.image_size = check_int("image_size", image_size, 1)
        if channels not in _PIL_MODES:
            raise ValueError(f"`channels` must be one of {sorted(_PIL_MODES)}, got {channels!r}")
        self.channels = channels
        self.root = Path(root)
        self.files = _find_images(self.root, extensions)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        path = self.files[index]
        try:
            with Image.open(path) as image:
                image = image.convert(_PIL_MODES[self.channels])
                image = TF.resize(image, self.image_size, antialias=True)
                image = TF.center_crop(image, [self.image_size, self.image_size])
                return to_unit_range(TF.pil_to_tensor(image))
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from exc


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int,
    channels: int = 3,
    *,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
) -> Tensor:
    """All images under ``root`` as one (N, channels, image_size, image_size) tensor in [-1, 1].

    Reads every file once, up front, so training does no per-step decoding;
    use :class:`ImageFolder` instead when the set does not fit in memory. See
    :class:`ImageFolder` for the arguments and errors.
    """
    dataset = ImageFolder(root, image_size, channels, extensions=extensions)
    return torch.stack([dataset[i] for i in range(len(dataset))])

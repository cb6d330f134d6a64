"""A folder of your own pictures as a training set: resized, centre-cropped, in [-1, 1].

[`ImageFolder`][ganlib.data.ImageFolder] shares torchvision's name, so it behaves like
torchvision's where a torchvision user relies on it: class subfolders give
``(image, class_index)`` items with ``classes`` and ``class_to_idx``, and ``transform=``
replaces the final conversion. A flat folder, which torchvision refuses, gives images alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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


def _to_unit_range(image: Image.Image) -> Tensor:
    """The default conversion: a PIL image to a (C, H, W) float tensor in [-1, 1]."""
    return to_unit_range(TF.pil_to_tensor(image))


class ImageFolder(Dataset[Any]):
    """Every image under ``root`` (subfolders included), read lazily, as (C, S, S) in [-1, 1].

    Each image is converted to ``channels`` (1: grayscale, 3: RGB, 4: RGBA), its
    shorter side resized to ``image_size`` (antialiased), then centre-cropped to a
    square, then passed to ``transform`` (by default: a tensor in [-1, 1], the pixels
    of torchvision's ``ToTensor()`` + ``Normalize(0.5, 0.5)``). Files are taken in a
    fixed order (sorted paths; for a folder of classes, torchvision's order), so
    indices are stable.

    As in torchvision's ``datasets.ImageFolder``, a folder whose images all lie in
    subfolders is a folder of classes: each subfolder of ``root`` is a class (sorted
    names, indices from 0, the same as torchvision's, and the same order of files),
    and items are
    ``(image, class_index)`` pairs, which [`Trainer.fit`][ganlib.Trainer.fit] takes as
    labelled data (a conditional model trains on the labels; others ignore them). A
    folder with images directly in it gives the images alone, and empty ``classes``.

    Args:
        root: The folder.
        image_size: Side of the square images produced; ``None`` keeps every image at
            its own size (then ``transform`` should make the sizes equal, as
            torchvision users do with ``Resize`` and ``CenterCrop``).
        channels: 1, 3 or 4.
        transform: Applied to the converted (and resized) PIL image; its result is
            the item's image. ``None``: the tensor in [-1, 1] described above.
        target_transform: Applied to the class index (folders of classes only).
        extensions: File suffixes counted as images.

    Attributes:
        files: The image files, in item order.
        classes: The class names (subfolder names), ``[]`` for a flat folder.
        class_to_idx: Each class name's index.
        samples: ``(path, class_index)`` for every file of a folder of classes, as
            torchvision's ``samples``; ``[]`` for a flat folder.
        targets: Every item's class index, as torchvision's ``targets``; ``[]`` for a flat
            folder.

    Raises:
        DataNotFoundError: If the folder is missing or holds no images, or one of its
            class subfolders holds none.
        ValueError: For a bad ``image_size`` or ``channels``, a ``target_transform``
            for a folder without classes, and (when read) for a file that is not a
            readable image, naming it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int | None = None,
        channels: int = 3,
        *,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.image_size = None if image_size is None else check_int("image_size", image_size, 1)
        if channels not in _PIL_MODES:
            raise ValueError(f"`channels` must be one of {sorted(_PIL_MODES)}, got {channels!r}")
        self.channels = channels
        self.transform = transform
        self.target_transform = target_transform
        self.root = Path(root)
        self.files = _find_images(self.root, extensions)
        self.classes: list[str] = []
        self.targets: list[int] = []
        self.samples: list[tuple[str, int]] = []
        if all(path.parent != self.root for path in self.files):
            # Every subfolder is a class, empty or not, so indices match torchvision's.
            self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        if self.classes:
            # torchvision's order: by class, then folder by folder, then by file name.
            def key(path: Path) -> tuple[int, str, str]:
                return (
                    self.class_to_idx[path.relative_to(self.root).parts[0]],
                    str(path.parent),
                    path.name,
                )

            self.files.sort(key=key)
            self.targets = [key(p)[0] for p in self.files]
            self.samples = [(str(p), t) for p, t in zip(self.files, self.targets, strict=True)]
            empty = sorted(set(self.classes) - {self.classes[t] for t in self.targets})
            if empty:
                raise DataNotFoundError(
                    f"image folder {self.root}: the class subfolders {empty} hold no images"
                )
        if target_transform is not None and not self.classes:
            raise ValueError(
                f"`target_transform` needs class subfolders, but {self.root} holds images "
                "directly, so its items have no class to transform"
            )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Any:
        """Item ``index``: ``(image, class_index)`` for a folder of classes, else the image."""
        image = self._image(index)
        if not self.classes:
            return image
        target: Any = self.targets[index]
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _image(self, index: int) -> Any:
        path = self.files[index]
        try:
            with Image.open(path) as opened:
                image = opened.convert(_PIL_MODES[self.channels])
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from exc
        if self.image_size is not None:
            image = TF.resize(image, self.image_size, antialias=True)
            image = TF.center_crop(image, [self.image_size, self.image_size])
        return (self.transform or _to_unit_range)(image)


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int,
    channels: int = 3,
    *,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
) -> Tensor:
    """All images under ``root`` as one (N, channels, image_size, image_size) tensor in [-1, 1].

    Reads every file once, up front, so training does no per-step decoding; use
    [`ImageFolder`][ganlib.data.ImageFolder] instead when the set does not fit in memory
    (or for the class labels of a folder of classes: this returns the images alone). See
    [`ImageFolder`][ganlib.data.ImageFolder] for the arguments and errors.
    """
    dataset = ImageFolder(
        root, check_int("image_size", image_size, 1), channels, extensions=extensions
    )
    return torch.stack([dataset._image(i) for i in range(len(dataset))])

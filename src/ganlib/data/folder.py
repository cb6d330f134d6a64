"""A folder of your own pictures as a training set: resized, centre-cropped, in [-1, 1].

[`ImageFolder`][ganlib.data.ImageFolder] shares torchvision's name, so it behaves like
torchvision's where a torchvision user relies on it: class subfolders give
``(image, class_index)`` items with ``classes`` and ``class_to_idx``, and ``transform=``
replaces the final conversion. A flat folder, which torchvision refuses, gives images alone.

A folder is read as a whole: every file's header (size, mode, palette; PIL decodes no pixels
to read it) is read when the folder is listed, so the channels and the size can be decided
from all of them, and files that cannot be read, or are too large to, are left out by name
before any pixel is decoded.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from .._logging import logger
from .._validation import check_int
from .common import DataNotFoundError, to_unit_range

__all__ = ["BACKGROUND", "IMAGE_EXTENSIONS", "MAX_FILE_BYTES", "ImageFolder", "load_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Transparent pixels are composited onto this colour (white, as an image viewer shows them)
# unless 4 channels are asked for.
BACKGROUND = (255, 255, 255)
# Files larger than this are refused unread: 1 GiB exceeds any image within PIL's pixel bound
# (Image.MAX_IMAGE_PIXELS, 89.5 million) stored uncompressed at 16 bits a channel with alpha.
MAX_FILE_BYTES = 1 << 30
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_GREY_MODES = {"1", "L", "LA", "La", "I", "F"}  # and "I;16", "I;16B", ... (16-bit grey)
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# What PIL raises on a damaged or foreign file: its plugins raise more than OSError.
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)
_NAMED = 10  # unreadable files named one by one; beyond that, counted


class _Unreadable(ValueError):
    """A file that cannot be read, or is refused; the message names it and says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path, self.reason = path, reason


@dataclass(frozen=True)
class _Header:
    """What a file's header says, read without decoding its pixels."""

    size: tuple[int, int]  # (width, height)
    colour: bool
    alpha: bool


def _reason(exc: BaseException, path: Path) -> str:
    """Why PIL could not read ``path``, without the path it repeats."""
    text = str(exc).replace(f" {str(path)!r}", "").replace(f" {path}", "").strip()
    return text or type(exc).__name__


def _is_sixteen_bit(mode: str) -> bool:
    return mode == "I" or mode.startswith("I;16")


def _is_colour(image: Image.Image) -> bool:
    if image.mode in ("P", "PA"):  # colour unless every palette entry is grey
        palette = image.palette
        if palette is None or palette.mode in ("L", "LA"):
            return palette is None
        raw, step = bytes(palette.palette), len(palette.mode)
        return not raw[0::step] == raw[1::step] == raw[2::step]
    return image.mode not in _GREY_MODES and not _is_sixteen_bit(image.mode)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def _open(path: Path) -> Image.Image:
    """``path`` opened lazily (its header read, no pixels decoded), refusing files over
    `MAX_FILE_BYTES` and images over PIL's ``Image.MAX_IMAGE_PIXELS``.

    Raises:
        _Unreadable: Naming the file and why.
    """
    try:
        nbytes = path.stat().st_size
    except OSError as exc:
        raise _Unreadable(path, exc.strerror or str(exc)) from exc
    if nbytes > MAX_FILE_BYTES:
        raise _Unreadable(
            path,
            f"refused, {nbytes:,} bytes is over ganlib.data.folder.MAX_FILE_BYTES "
            f"({MAX_FILE_BYTES:,})",
        )
    try:
        with warnings.catch_warnings():  # over PIL's bound: refused below, by name
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise _Unreadable(path, f"refused as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, *_READ_ERRORS) as exc:
        raise _Unreadable(path, _reason(exc, path)) from exc
    width, height = image.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        image.close()
        raise _Unreadable(
            path,
            f"refused, {width}x{height} = {width * height:,} pixels is over PIL's "
            f"Image.MAX_IMAGE_PIXELS ({limit:,}); raise it to read larger images",
        )
    return image


def _header(path: Path) -> _Header:
    with _open(path) as image:
        try:
            return _Header(image.size, _is_colour(image), _has_alpha(image))
        except _READ_ERRORS as exc:
            raise _Unreadable(path, _reason(exc, path)) from exc


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grey image scaled to 8 bits, ``round(v * 255 / 65535)`` (PIL's own
    ``convert`` clips at 255, which turns almost every pixel white)."""
    values = np.asarray(image).astype(np.int64).clip(0, 65535)
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))


def _convert(image: Image.Image, channels: int) -> Image.Image:
    """``image`` with ``channels`` channels: 16-bit grey scaled to 8 bits; transparency
    composited onto `BACKGROUND` unless ``channels`` is 4, which keeps it."""
    if _is_sixteen_bit(image.mode):
        image = _to_eight_bit(image)
    if channels != 4 and _has_alpha(image):
        flat = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        flat.alpha_composite(image.convert("RGBA"))
        image = flat
    return image.convert(_PIL_MODES[channels])


def _find_images(root: Path, extensions: Iterable[str]) -> tuple[list[Path], Counter[str]]:
    """The files under ``root`` with an image suffix, sorted, and the others' suffixes."""
    if not root.is_dir():
        raise DataNotFoundError(f"image folder {root} does not exist or is not a folder")
    suffixes = {e.lower() for e in extensions}
    files, others = [], Counter[str]()
    for path in root.rglob("*"):
        if path.is_file():
            suffix = path.suffix.lower()
            if suffix in suffixes:
                files.append(path)
            else:
                others[suffix or "(no suffix)"] += 1
    if not files:
        held = f"; it holds {_counted(others)}" if others else ""
        raise DataNotFoundError(
            f"image folder {root} holds no images (looked for {', '.join(sorted(suffixes))}, "
            f"in subfolders too){held}"
        )
    return sorted(files), others


def _counted(suffixes: Counter[str]) -> str:
    return ", ".join(f"{count} {suffix}" for suffix, count in suffixes.most_common())


def _to_unit_range(image: Image.Image) -> Tensor:
    """The default conversion: a PIL image to a (C, H, W) float tensor in [-1, 1]."""
    from torchvision.transforms.functional import pil_to_tensor  # (torchvision: only when used)

    return to_unit_range(pil_to_tensor(image))


def _resize_and_crop(image: Image.Image, size: int) -> Image.Image:
    """``image``'s shorter side resized to ``size`` (antialiased), then centre-cropped to a
    ``size`` square."""
    from torchvision.transforms import functional as TF  # (torchvision: only when used)

    image = TF.resize(image, size, antialias=True)
    return TF.center_crop(image, [size, size])


class ImageFolder(Dataset[Any]):
    """Every image under ``root`` (subfolders included), read lazily, as (C, S, S) in [-1, 1].

    Each image is converted to ``channels`` (1: grayscale, 3: RGB, 4: RGBA), its
    shorter side resized to ``image_size`` (antialiased), then centre-cropped to a
    square, then passed to ``transform`` (by default: a tensor in [-1, 1], the pixels
    of torchvision's ``ToTensor()`` + ``Normalize(0.5, 0.5)``). Files are taken in a
    fixed order (sorted paths; for a folder of classes, torchvision's order), so
    indices are stable.

    The folder is read as a whole when it is listed: every file's header, no pixels.

    - ``channels=None`` decides the channels from every file: 3 if any file is in colour
      (a palette file counts as grey when every palette entry is grey), else 1; never 4.
    - ``median_size`` is the median of the files' shorter sides (the lower median: one
      file's own), what [`load`][ganlib.data.ImageFolder.load] and
      [`load_image_folder`][ganlib.data.load_image_folder] resize to when not told a size.
    - 16-bit grey images are scaled to 8 bits (``round(v * 255 / 65535)``); PIL reads 16-bit
      colour files as 8-bit itself.
    - Transparent pixels are composited onto a white background
      (``ganlib.data.folder.BACKGROUND``), as an image viewer shows them, unless
      ``channels=4``, which keeps the alpha channel. (torchvision's ``ImageFolder`` drops the
      alpha instead, so a half-transparent dark area turns black there.)
    - Files without an image suffix (SVG, XPM, text, ...) are counted in one notice on the
      ``ganlib`` logger; a file that cannot be read is left out, named in a notice; so is a
      file over ``ganlib.data.folder.MAX_FILE_BYTES`` (1 GiB) or an image over PIL's
      ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb), refused before any pixel is decoded.

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
        channels: 1, 3 or 4, or ``None``: decided from the whole folder (see above).
        transform: Applied to the converted (and resized) PIL image; its result is
            the item's image. ``None``: the tensor in [-1, 1] described above.
        target_transform: Applied to the class index (folders of classes only).
        extensions: File suffixes counted as images.

    Attributes:
        files: The readable image files, in item order.
        channels: The channels of every item (decided from the folder for ``None``).
        median_size: The median of the files' shorter sides.
        classes: The class names (subfolder names), ``[]`` for a flat folder.
        class_to_idx: Each class name's index.
        samples: ``(path, class_index)`` for every file of a folder of classes, as
            torchvision's ``samples``; ``[]`` for a flat folder.
        targets: Every item's class index, as torchvision's ``targets``; ``[]`` for a flat
            folder.

    Raises:
        DataNotFoundError: If the folder is missing or holds no readable images, or one of
            its class subfolders holds none.
        ValueError: For a bad ``image_size`` or ``channels``, a ``target_transform``
            for a folder without classes, and (when read) for a file whose pixels cannot
            be decoded, naming it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int | None = None,
        channels: int | None = 3,
        *,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.image_size = None if image_size is None else check_int("image_size", image_size, 1)
        if channels is not None and channels not in _PIL_MODES:
            raise ValueError(
                f"`channels` must be one of {sorted(_PIL_MODES)} or None, got {channels!r}"
            )
        self.transform = transform
        self.target_transform = target_transform
        self.root = Path(root)
        listed, others = _find_images(self.root, extensions)
        headers = self._read_headers(listed, others)
        self.files = list(headers)
        self.channels = channels or (3 if any(h.colour for h in headers.values()) else 1)
        sides = sorted(min(h.size) for h in headers.values())
        self.median_size = sides[(len(sides) - 1) // 2]
        if self.channels != 4 and any(h.alpha for h in headers.values()):
            logger.info(
                f"image folder {self.root}: {sum(h.alpha for h in headers.values())} of "
                f"{len(headers)} images have transparency (an alpha channel or a transparent "
                "colour), composited onto a white background (4 channels keep it)"
            )
        self.classes: list[str] = []
        self.targets: list[int] = []
        self.samples: list[tuple[str, int]] = []
        if all(path.parent != self.root for path in self.files):
            # Every subfolder is a class, empty or not, so indices match torchvision's.
            self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        if self.classes:
            self.files.sort(key=self._class_order)
            self.targets = [self._class_order(p)[0] for p in self.files]
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

    def _read_headers(self, files: list[Path], others: Counter[str]) -> dict[Path, _Header]:
        """The readable files' headers, in order; what was left out, in notices."""
        if others:
            logger.info(
                f"image folder {self.root}: skipped {sum(others.values())} files that are not "
                f"images ({_counted(others)})"
            )
        headers, unreadable = {}, []
        for path in files:
            try:
                headers[path] = _header(path)
            except _Unreadable as exc:
                unreadable.append(exc)
        for refused in unreadable[:_NAMED]:
            logger.warning(f"image folder {self.root}: skipped {refused.path}: {refused.reason}")
        if len(unreadable) > _NAMED:
            logger.warning(
                f"image folder {self.root}: skipped {len(unreadable) - _NAMED} more unreadable "
                "files"
            )
        if not headers:
            raise DataNotFoundError(
                f"image folder {self.root} holds no readable images: none of its "
                f"{len(files)} image files can be read (the first: {unreadable[0]})"
            )
        return headers

    def _class_order(self, path: Path) -> tuple[int, str, str]:
        """torchvision's order: by class, then folder by folder, then by file name."""
        return (
            self.class_to_idx[path.relative_to(self.root).parts[0]],
            str(path.parent),
            path.name,
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

    def _image(self, index: int, image_size: int | None = None) -> Any:
        path = self.files[index]
        with _open(path) as opened:
            try:
                image = _convert(opened, self.channels)
            except _READ_ERRORS as exc:  # a header that reads, pixels that do not
                raise _Unreadable(path, _reason(exc, path)) from exc
        size = image_size or self.image_size
        if size is not None:
            image = _resize_and_crop(image, size)
        return (self.transform or _to_unit_range)(image)

    def load(self) -> Tensor:
        """Every image, decoded now, as one (N, channels, S, S) tensor, where S is
        ``image_size``, or ``median_size`` when that is ``None``.

        A file whose header reads but whose pixels do not (a truncated download) is left
        out with a notice naming it, and dropped from ``files``, ``targets`` and
        ``samples``, so they still describe the tensor's images one for one.

        Raises:
            DataNotFoundError: If no file decodes.
        """
        size = self.image_size or self.median_size
        images, kept = [], []
        for index, path in enumerate(self.files):
            try:
                images.append(self._image(index, size))
            except _Unreadable as exc:
                logger.warning(f"image folder {self.root}: skipped {path}: {exc.reason}")
                continue
            kept.append(index)
        if not images:
            raise DataNotFoundError(f"image folder {self.root}: none of its images decodes")
        if len(kept) < len(self.files):
            self.files = [self.files[i] for i in kept]
            if self.classes:
                self.targets = [self.targets[i] for i in kept]
                self.samples = [self.samples[i] for i in kept]
        return torch.stack(images)


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int | None = None,
    channels: int | None = 3,
    *,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
) -> Tensor:
    """All images under ``root`` as one (N, channels, image_size, image_size) tensor in [-1, 1].

    Reads every file once, up front, so training does no per-step decoding; use
    [`ImageFolder`][ganlib.data.ImageFolder] instead when the set does not fit in memory
    (or for the class labels of a folder of classes: this returns the images alone). See
    [`ImageFolder`][ganlib.data.ImageFolder] for the arguments, the notices and the errors;
    ``image_size=None`` resizes to the folder's median size and ``channels=None`` decides
    the channels from the whole folder. Files that cannot be read are left out, by name.
    """
    size = None if image_size is None else check_int("image_size", image_size, 1)
    return ImageFolder(root, size, channels, extensions=extensions).load()

"""The data of a run, named the way a command line names it: a folder of images, or
``mnist`` / ``fashion-mnist`` / ``stacked-mnist``; with its image size, channels, classes
and fingerprint."""

from __future__ import annotations

import dataclasses
import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .common import DataNotFoundError, to_unit_range
from .folder import ImageFolder
from .mnist import load_mnist
from .stacked import STACKED_MNIST_MODES, load_stacked_mnist

__all__ = [
    "FASHION_MNIST_DIRS",
    "NAMED_DATA",
    "RunData",
    "load_fashion_mnist",
    "load_run_data",
]

# The data sets a run names instead of a folder.
NAMED_DATA = ("mnist", "fashion-mnist", "stacked-mnist")

# Where Fashion-MNIST's idx files are looked for besides DATA_DIR/FashionMNIST/raw:
# Debian's dataset-fashion-mnist package.
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class RunData:
    """Training images in [-1, 1] (and labels), with what describes them; a translation
    run's data also holds ``pairs``, the B image of each (A) image, and a folder run's
    ``held_out``, the images kept out of training as its evaluation's reference."""

    images: Tensor
    labels: Tensor | None
    image_size: int
    channels: int
    num_classes: int | None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    pairs: Tensor | None = None
    held_out: Tensor | None = None

    def holding_out(self, count: int, seed: int) -> RunData:
        """This data with ``count`` images, chosen by ``seed``, moved out of the training
        images into ``held_out`` (each set in the folder's order)."""
        order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(seed))
        held, kept = order[:count].sort().values, order[count:].sort().values
        return dataclasses.replace(
            self,
            images=self.images[kept],
            labels=None if self.labels is None else self.labels[kept],
            pairs=None if self.pairs is None else self.pairs[kept],
            held_out=self.images[held],
        )

    def for_fit(self, conditional: bool) -> Tensor | tuple[Tensor, Tensor]:
        """What ``Trainer.fit`` takes: images, (images, labels) for a conditional run, or
        (images, pairs) for a translation run."""
        if self.pairs is not None:
            return self.images, self.pairs
        if conditional:
            if self.labels is None:
                raise ValueError("this data has no classes: a conditional run needs labels")
            return self.images, self.labels
        return self.images


def _read_idx(path: Path) -> Tensor:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        raw = handle.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(raw[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def load_fashion_mnist(root: str | os.PathLike[str], split: str = "train") -> tuple[Tensor, Tensor]:
    """Fashion-MNIST as images (N, 1, 28, 28) in [-1, 1] and labels (N,), from
    ``root/FashionMNIST/raw`` (torchvision's layout) or Debian's
    ``dataset-fashion-mnist`` package (plain or .gz idx files).

    Raises:
        DataNotFoundError: Naming the folders searched and how to get the files.
    """
    image_name, label_name = _FASHION_FILES[split]
    folders = [Path(root) / "FashionMNIST" / "raw", *FASHION_MNIST_DIRS]
    for folder in folders:
        for suffix in ("", ".gz"):
            images, labels = folder / (image_name + suffix), folder / (label_name + suffix)
            if images.is_file() and labels.is_file():
                pixels = _read_idx(images).unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
                return to_unit_range(pixels), _read_idx(labels).long()
    raise DataNotFoundError(
        f"Fashion-MNIST {split} split not found in {', '.join(str(f) for f in folders)}: "
        "install Debian's package (apt-get install dataset-fashion-mnist), or put "
        f"{image_name} and {label_name} in {folders[0]}"
    )


def load_run_data(
    data: str,
    *,
    data_dir: str | os.PathLike[str] = "./data",
    split: str = "train",
    download: bool = True,
    image_size: int | None = None,
    channels: int | None = None,
    conditional: bool = False,
) -> RunData:
    """Load ``data`` (a folder, ``mnist``, ``fashion-mnist`` or ``stacked-mnist``) into
    memory.

    ``stacked-mnist`` is [`load_stacked_mnist`][ganlib.data.load_stacked_mnist]'s 60,000
    images (seed 0) from the ``split``, 3x28x28; its labels are the 1,000 modes.

    Args:
        conditional: The run will be conditional on the data's classes; refused for
            ``stacked-mnist``.

    Raises:
        DataNotFoundError: A missing folder or data set, with where to put it.
        ValueError: A named data set at another size or channel count, or a
            conditional run on ``stacked-mnist``.
    """
    if data == "stacked-mnist":
        return _stacked_mnist(data_dir, split, download, image_size, channels, conditional)
    if data in ("mnist", "fashion-mnist"):
        if data == "mnist":
            images, labels = load_mnist(data_dir, split, download=download)  # type: ignore[arg-type]
        else:
            images, labels = load_fashion_mnist(data_dir, split)
        if image_size not in (None, 28) or channels not in (None, 1):
            raise ValueError(
                f"{data} is 28x28 grayscale: leave --image-size and --channels unset, "
                f"got image_size={image_size}, channels={channels}"
            )
        fingerprint = {"source": data, "split": split, "images": len(images), "size": 28}
        return RunData(images, labels, 28, 1, 10, fingerprint)
    root = Path(data)
    if not root.is_dir():
        raise DataNotFoundError(
            f"data {data!r} is neither a folder of images nor one of {', '.join(NAMED_DATA)}"
        )
    # The files, the classes of a folder of subfolders, and (where not given) the size and
    # channels every file's header says; files that do not decode are left out, by name.
    listing = ImageFolder(root, image_size, channels)
    images = listing.load()
    image_size, channels = images.shape[-1], listing.channels
    classes = listing.classes
    folder_labels = torch.tensor(listing.targets) if classes else None
    fingerprint = {
        "source": str(root.resolve()),
        "images": len(images),
        "size": image_size,
        "channels": channels,
        "classes": len(classes),
    }
    return RunData(images, folder_labels, image_size, channels, len(classes) or None, fingerprint)


def _stacked_mnist(
    data_dir: str | os.PathLike[str],
    split: str,
    download: bool,
    image_size: int | None,
    channels: int | None,
    conditional: bool,
) -> RunData:
    if conditional:
        # A conditional pair over 1,000 classes has 1,000-wide label embeddings, and its
        # sample grid would show every class: 8,000 images. The benchmark is unconditional.
        raise ValueError(
            "stacked-mnist is an unconditional benchmark: a conditional run over its "
            f"{STACKED_MNIST_MODES} modes is not supported; leave --conditional off"
        )
    if image_size not in (None, 28) or channels not in (None, 3):
        raise ValueError(
            "stacked-mnist is 28x28 with 3 channels: leave --image-size and --channels "
            f"unset, got image_size={image_size}, channels={channels}"
        )
    images, modes = load_stacked_mnist(data_dir, split, download=download)  # type: ignore[arg-type]
    fingerprint = {
        "source": "stacked-mnist",
        "split": split,
        "images": len(images),
        "size": 28,
        "channels": 3,
        "seed": 0,
    }
    return RunData(images, modes, 28, 3, STACKED_MNIST_MODES, fingerprint)

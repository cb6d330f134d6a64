"""MNIST as in-memory tensors scaled to [-1, 1], and a stand-in writer for tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from .._validation import check_choice
from .common import DataNotFoundError, to_unit_range

if TYPE_CHECKING:
    from torchvision.datasets import MNIST

__all__ = ["fake_mnist", "load_mnist", "mnist_dataset"]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def mnist_dataset(
    root: str | os.PathLike[str],
    split: Literal["train", "test"] = "train",
    *,
    download: bool = True,
    transform: Callable[[Any], Any] | None = None,
) -> MNIST:
    """torchvision's MNIST data set, with ganlib's message when the files are missing.

    Args:
        root: Folder holding ``MNIST/raw/*-ubyte`` (torchvision's layout).
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000, the recipe's).
        download: Let torchvision download the files when they are missing.
        transform: Applied to each PIL image (for example ``ToTensor`` and ``Normalize``).

    Raises:
        DataNotFoundError: When the files are missing and cannot be downloaded;
            the message says where to put them.
    """
    check_choice("split", split, ("train", "test"))
    from torchvision.datasets import MNIST  # (torchvision: only when used)

    root = Path(root)
    try:
        return MNIST(str(root), train=split == "train", download=download, transform=transform)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError...
        raw = root / "MNIST" / "raw"
        files = ", ".join(MNIST_FILES[split])
        how = "the download failed" if download else "downloading is off"
        raise DataNotFoundError(
            f"MNIST {split} split not found under {raw} and {how} ({type(exc).__name__}: "
            f"{exc}). Put {files} (uncompressed) in {raw}, or point --data-dir / "
            "$GANLIB_DATA at a folder that has them."
        ) from exc


def load_mnist(
    root: str | os.PathLike[str],
    split: Literal["train", "test"] = "train",
    *,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """MNIST as two tensors: images (N, 1, 28, 28) in [-1, 1] and labels (N,).

    Holding the whole split as one tensor skips the per-image PIL conversion a
    Dataset with transforms does on every step; the pixels are identical. See
    [`mnist_dataset`][ganlib.data.mnist_dataset] for the arguments and errors.
    """
    dataset = mnist_dataset(root, split, download=download)
    images = to_unit_range(dataset.data.unsqueeze(1))  # (N, 28, 28) -> (N, 1, 28, 28)
    return images, dataset.targets.clone()


def fake_mnist(root: str | os.PathLike[str], count: int = 100, seed: int = 0) -> Path:
    """Write a small stand-in MNIST (random digits-sized images) in the real file format.

    For tests and demos on machines without the real files: it only has MNIST's
    shape, not its digits.

    Returns:
        The ``MNIST/raw`` folder written.
    """
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = torch.Generator().manual_seed(seed)
    for image_file, label_file in MNIST_FILES.values():
        pixels = torch.randint(0, 256, (count, 28, 28), generator=rng, dtype=torch.uint8)
        labels = torch.randint(0, 10, (count,), generator=rng, dtype=torch.uint8)
        header = (2051).to_bytes(4, "big") + count.to_bytes(4, "big") + (28).to_bytes(4, "big")
        (raw / image_file).write_bytes(
            header + (28).to_bytes(4, "big") + bytes(pixels.flatten().tolist())
        )
        (raw / label_file).write_bytes(
            (2049).to_bytes(4, "big") + count.to_bytes(4, "big") + bytes(labels.tolist())
        )
    return raw

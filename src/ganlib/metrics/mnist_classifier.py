"""A small MNIST classifier shipped with ganlib, so MNIST samples can be scored offline.

``scripts/train_mnist_classifier.py`` trains it from real MNIST and writes the
weights this module loads (``weights/mnist_classifier.pt``, float16, a few
hundred KB). Its 128-dimensional pooled features are the space the MNIST
Fréchet distance is measured in.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["FEATURE_DIM", "MNISTClassifier", "load_mnist_classifier"]

FEATURE_DIM = 128
WEIGHTS_FILE = "mnist_classifier.pt"


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class MNISTClassifier(nn.Module):
    """Five 3x3 conv blocks, global average pooling, one linear layer (~140k parameters).

    Takes images (B, 1, 28, 28) in [-1, 1], as ganlib's MNIST loader and the
    DCGAN generator produce them.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_block(1, 32),  # (B, 32, 28, 28)
            *_conv_block(32, 32),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            *_conv_block(32, 64),
            *_conv_block(64, 64),
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
            *_conv_block(64, FEATURE_DIM),  # (B, 128, 7, 7)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (B, 128)
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def embed(self, images: Tensor) -> Tensor:
        """Pooled features (B, 128): the space MNIST Fréchet distances are measured in."""
        return self.features(images)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits (B, 10)."""
        return self.head(self.dropout(self.embed(images)))


def default_weights_path() -> Path:
    """Where the shipped weights live inside the installed package."""
    return Path(str(resources.files("ganlib.metrics") / "weights" / WEIGHTS_FILE))


def load_mnist_classifier(
    path: str | os.PathLike[str] | None = None, device: torch.device | str = "cpu"
) -> MNISTClassifier:
    """The trained classifier in eval mode, float32, on ``device``.

    Args:
        path: Weights written by ``scripts/train_mnist_classifier.py``; the
            shipped ones when ``None``.
        device: Where to put it.

    Raises:
        FileNotFoundError: If the weights file is missing (say, a source tree
            where the training script has not been run).
    """
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST classifier weights not found at {path}; "
            "train them with `python scripts/train_mnist_classifier.py`"
        )
    payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    model = MNISTClassifier()
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    model.load_state_dict(state)
    return model.eval().requires_grad_(False).to(device)

"""What every data loader shares: the missing-data error and the pixel scaling."""

from __future__ import annotations

from torch import Tensor

__all__ = ["DataNotFoundError", "to_unit_range"]


class DataNotFoundError(FileNotFoundError):
    """A data set is neither on disk nor downloadable."""


def to_unit_range(pixels: Tensor) -> Tensor:
    """uint8 pixels -> floats in [-1, 1], exactly as ``ToTensor()`` then ``Normalize(0.5, 0.5)``."""
    return pixels.float().div(255).sub(0.5).div(0.5)

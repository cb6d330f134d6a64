"""Argument types of the ``ganlib`` commands: each message names the rule and the value."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MAX_GRID_IMAGES",
    "SAMPLE_BATCH",
    "int_at_least",
    "non_negative_int",
    "png_path",
    "positive_int",
]

# ganlib sample draws at most this many images into one grid (a PNG of ~3,000 px a side at 28x28).
MAX_GRID_IMAGES = 10_000
# Images per generator call: large enough for train-mode BatchNorm statistics.
SAMPLE_BATCH = 1_000


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[minimum, maximum]``, with a message naming the rule."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            rule = "a positive integer" if minimum == 1 else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}, got {value:,}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def png_path(text: str) -> Path:
    """The grid file: a folder is refused, a name without a suffix gets ``.png``."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file such as grid.png")
    return path if path.suffix else path.with_suffix(".png")

"""Synthetic coloured shapes: an RGB image folder at any size, for demos and tests."""

from __future__ import annotations

import os
import random
from pathlib import Path

from PIL import Image, ImageDraw

from .._validation import check_int

__all__ = ["SHAPE_CLASSES", "make_shapes"]

SHAPE_CLASSES = ("circles", "squares", "triangles")


def make_shapes(
    root: str | os.PathLike[str], count: int = 60, image_size: int = 40, seed: int = 0
) -> Path:
    """Write ``count`` PNGs of one coloured shape on a dark background, spread over one
    subfolder per class (``circles``, ``squares``, ``triangles``), like a user's own data.

    Returns:
        ``root``.
    """
    check_int("count", count, 1)
    size = check_int("image_size", image_size, 5)
    rng = random.Random(seed)
    root = Path(root)
    for index in range(count):
        kind = SHAPE_CLASSES[index % len(SHAPE_CLASSES)]
        background = tuple(rng.randint(0, 60) for _ in range(3))
        image = Image.new("RGB", (size, size), background)  # type: ignore[arg-type]
        draw = ImageDraw.Draw(image)
        radius = rng.randint(size // 6, size // 3)
        x, y = rng.randint(radius, size - radius), rng.randint(radius, size - radius)
        colour = tuple(rng.randint(120, 255) for _ in range(3))
        box = (x - radius, y - radius, x + radius, y + radius)
        if kind == "circles":
            draw.ellipse(box, fill=colour)  # type: ignore[arg-type]
        elif kind == "squares":
            draw.rectangle(box, fill=colour)  # type: ignore[arg-type]
        else:
            points = [(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)]
            draw.polygon(points, fill=colour)  # type: ignore[arg-type]
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index:05d}.png")
    return root

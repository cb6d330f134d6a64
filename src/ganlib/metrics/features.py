"""Feed images to a feature extractor in batches, from a tensor or straight from a generator
([`ganlib.sampling.sample_images`][ganlib.sampling.sample_images])."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from .._validation import check_int

__all__ = ["embed"]


@torch.no_grad()
def embed(
    extractor: Callable[[Tensor], Tensor],
    images: Tensor | Iterable[Tensor],
    *,
    batch_size: int = 500,
    device: torch.device | str | None = None,
) -> Tensor:
    """Features of every image, (N, D) float64 on the CPU.

    Args:
        extractor: Maps an image batch to (B, D) features (or to anything
            that flattens to that), e.g. ``classifier.embed``.
        images: One (N, C, H, W) tensor, split into ``batch_size`` chunks, or
            an iterable of batches (such as `sample_images`).
        batch_size: Chunk size when ``images`` is a tensor.
        device: Where to run the extractor; the device of its first
            parameter (or the CPU) when ``None``.
    """
    if device is None:
        first = next(extractor.parameters(), None) if isinstance(extractor, nn.Module) else None
        device = first.device if first is not None else torch.device("cpu")
    batches = (
        images.split(check_int("batch_size", batch_size, 1))
        if isinstance(images, Tensor)
        else images
    )
    chunks = [extractor(batch.to(device)).flatten(1).double().cpu() for batch in batches]
    if not chunks:
        raise ValueError("`images` is empty")
    return torch.cat(chunks)

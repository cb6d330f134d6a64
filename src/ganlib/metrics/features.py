"""Feed images to a feature extractor in batches, from a tensor or straight from a generator."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from .._validation import check_int

__all__ = ["embed", "sample_images"]

NoiseFn = Callable[[int, torch.Generator], Tensor]


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
            an iterable of batches (such as :func:`sample_images`).
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


@torch.no_grad()
def sample_images(
    generator: nn.Module,
    num_samples: int,
    noise: int | NoiseFn,
    *,
    batch_size: int = 500,
    seed: int = 0,
    eval_mode: bool = False,
    labels: Tensor | None = None,
) -> Iterator[Tensor]:
    """Yield ``num_samples`` generated images in batches, reproducibly from ``seed``.

    Args:
        generator: Maps latents to images; left in the train/eval mode, and with
            the BatchNorm statistics, it had.
        num_samples: Total images.
        noise: The latent size (latents ~ N(0, I), shaped (B, noise)), or a
            function ``(n, torch_generator) -> latents``.
        batch_size: Images per batch. In train mode BatchNorm normalises by the
            batch's statistics, so keep it large (hundreds).
        seed: Seed of the latents.
        eval_mode: Sample with BatchNorm's running statistics.
        labels: For a conditional generator, the class of every image, shaped
            (num_samples,); image ``i`` is drawn for ``labels[i]``.

    Raises:
        ValueError: If ``labels`` does not hold one label per image.
    """
    check_int("num_samples", num_samples, 1)
    check_int("batch_size", batch_size, 1)
    if labels is not None and tuple(labels.shape) != (num_samples,):
        raise ValueError(
            f"`labels` must hold one class per image, shaped ({num_samples},), "
            f"got {tuple(labels.shape)}"
        )
    parameter = next(generator.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    rng = torch.Generator(device=device).manual_seed(seed)
    draw: NoiseFn
    if isinstance(noise, int):
        latent_dim = check_int("noise", noise, 1)

        def draw(n: int, source: torch.Generator) -> Tensor:
            return torch.randn(n, latent_dim, device=device, generator=source)

    else:
        draw = noise
    was_training = generator.training
    # Train-mode forwards update BatchNorm's running statistics: put them back after.
    saved = [(b, b.clone()) for b in generator.buffers()] if not eval_mode else []
    generator.train(not eval_mode)
    try:
        for start in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - start)
            batch_labels = () if labels is None else (labels[start : start + n].to(device),)
            yield generator(draw(n, rng), *batch_labels).float()
    finally:
        generator.train(was_training)
        for buffer, value in saved:
            buffer.copy_(value)

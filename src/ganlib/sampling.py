"""Drawing images from a generator: one place, seeded, batched, and BatchNorm-safe.

Every path that runs a generator outside training (sample grids, the EMA's
BatchNorm recompute, the metrics, ``ganlib sample``) goes through here. Each
leaves the generator exactly as it found it: train/eval mode and every buffer
(BatchNorm running statistics and ``num_batches_tracked``), so sampling never
changes what a checkpoint holds or what an eval-mode score reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._validation import check_int

__all__ = [
    "BATCHNORM_BATCHES",
    "BATCHNORM_BATCH_SIZE",
    "GENERATE_BATCH_SIZE",
    "MAX_GRID_PIXELS",
    "NoiseFn",
    "check_grid_pixels",
    "generate",
    "preserved_state",
    "recompute_batchnorm",
    "recompute_batchnorm_stats",
    "sample_images",
    "save_grid",
]

# (n, random source) -> latents.
NoiseFn = Callable[[int, torch.Generator], Tensor]
# The one set of defaults for measuring an averaged generator's BatchNorm statistics.
BATCHNORM_BATCHES = 10
BATCHNORM_BATCH_SIZE = 500
# Latents per generator call in `generate` (grids): large enough for train-mode BatchNorm.
GENERATE_BATCH_SIZE = 1000
# Most pixels of the images in one grid (and in the overview of grids): 64 images of
# 1024x1024, below PIL's decompression-bomb bound (Image.MAX_IMAGE_PIXELS), which the
# overview and the run report read the grids back through.
MAX_GRID_PIXELS = 64 * 1024 * 1024


@contextlib.contextmanager
def preserved_state(module: nn.Module) -> Iterator[None]:
    """Restore ``module``'s train/eval mode and every buffer on exit.

    A train-mode forward updates BatchNorm's running statistics and counters;
    inside this block that leaves no trace.
    """
    was_training = module.training
    saved = [(buffer, buffer.clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        module.train(was_training)
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _device_of(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def generate(
    generator: nn.Module,
    latents: Tensor,
    eval_mode: bool = False,
    labels: Tensor | None = None,
    *,
    batch_size: int = GENERATE_BATCH_SIZE,
) -> Tensor:
    """Images from ``latents`` (and ``labels``, for a conditional generator), float32,
    without gradients; ``eval_mode`` uses BatchNorm's running statistics, train mode
    the batch's own. The generator's mode and buffers are left as they were.

    The generator runs on ``batch_size`` latents at a time (so a large grid needs no more
    memory than one batch's activations); in train mode each batch is normalised by its
    own statistics, so up to ``batch_size`` images are drawn exactly as in one call."""
    check_int("batch_size", batch_size, 1)
    with preserved_state(generator):
        generator.train(not eval_mode)
        images = []
        for start in range(0, max(len(latents), 1), batch_size):
            chunk = slice(start, start + batch_size)
            extra = () if labels is None else (labels[chunk],)
            images.append(generator(latents[chunk], *extra).float())
        return images[0] if len(images) == 1 else torch.cat(images)


def check_grid_pixels(count: int, height: int, width: int, given: str, remedy: str) -> None:
    """Refuse a grid of ``count`` images of ``height`` x ``width`` over `MAX_GRID_PIXELS`,
    before anything is drawn.

    Args:
        count: The grid's images.
        height: One image's height in pixels.
        width: One image's width in pixels.
        given: What set ``count``, for the message (``"--num"``).
        remedy: What to change, for the message (``"lower --num"``).

    Raises:
        ValueError: Naming ``given``, the sizes, the pixels, the bound and ``remedy``.
    """
    pixels = count * height * width
    if pixels > MAX_GRID_PIXELS:
        raise ValueError(
            f"{given} {count:,} images of {height}x{width} make a grid of {pixels:,} pixels, "
            f"over the bound of {MAX_GRID_PIXELS:,} (ganlib.sampling.MAX_GRID_PIXELS): {remedy}"
        )


def save_grid(images: Tensor, path: str | Path, nrow: int) -> None:
    """Save images in [-1, 1] as one grid PNG, ``nrow`` per row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from torchvision.utils import save_image  # (torchvision loads its model zoo: only when used)

    save_image(images, path, nrow=nrow, normalize=True, value_range=(-1.0, 1.0), pad_value=1.0)


def _noise_fn(noise: Any, device: torch.device) -> NoiseFn:
    """A latent sampler from a latent size, a GAN (``sample_noise``) or a function."""
    if isinstance(noise, int) and not isinstance(noise, bool):
        latent_dim = check_int("noise", noise, 1)
        return lambda n, rng: torch.randn(n, latent_dim, device=device, generator=rng)
    sample_noise = getattr(noise, "sample_noise", None)
    if callable(sample_noise):
        return lambda n, rng: sample_noise(n, device, rng)
    if callable(noise):
        return noise  # type: ignore[no-any-return]
    raise TypeError(
        "`noise` must be a latent size, a GAN (with sample_noise) or a function "
        f"(n, torch.Generator) -> latents, got {type(noise).__name__}"
    )


@torch.no_grad()
def sample_images(
    generator: nn.Module,
    num_samples: int,
    noise: Any,
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
        noise: The latent size (latents ~ N(0, I), shaped (B, noise)), a GAN
            (its ``sample_noise``), or a function ``(n, torch_generator) -> latents``.
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
    device = _device_of(generator)
    draw = _noise_fn(noise, device)
    rng = torch.Generator(device=device).manual_seed(seed)
    with preserved_state(generator):
        generator.train(not eval_mode)
        for start in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - start)
            batch_labels = () if labels is None else (labels[start : start + n].to(device),)
            yield generator(draw(n, rng), *batch_labels).float()


@torch.no_grad()
def recompute_batchnorm_stats(
    module: nn.Module, inputs: Iterable[Tensor | tuple[Tensor, ...]]
) -> int:
    """Replace every BatchNorm's running mean and variance by their exact average
    over forward passes of ``inputs``, leaving the weights untouched.

    An EMA generator holds averaged weights but BatchNorm statistics copied from
    the live network, which do not match them; sampling it in eval mode needs
    statistics measured with the averaged weights themselves.

    Args:
        module: The network; its train/eval mode is restored afterwards.
        inputs: Batches to run (for a generator: latents), each a tensor or a
            tuple of the module's arguments (latents and labels).

    Returns:
        The number of batches run.

    Raises:
        ValueError: If ``inputs`` is empty (the statistics would be left reset).
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
    module.train()
    count = 0
    try:
        for batch in inputs:
            module(*batch) if isinstance(batch, tuple) else module(batch)
            count += 1
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        module.train(was_training)
    if count == 0:
        raise ValueError("`inputs` is empty: no batches to measure BatchNorm statistics on")
    return count


def recompute_batchnorm(
    generator: nn.Module,
    gan: Any,
    seed: int,
    *,
    num_batches: int = BATCHNORM_BATCHES,
    batch_size: int = BATCHNORM_BATCH_SIZE,
) -> nn.Module:
    """Measure ``generator``'s own BatchNorm statistics on ``num_batches`` batches of
    inputs drawn by ``gan.generator_inputs`` from ``seed``, and return it.

    The one routine behind the EMA callback and ``ganlib sample --ema --eval-mode``
    (seed: [`batchnorm_seed`][ganlib.seeding.batchnorm_seed] of the run's or the
    command's seed).

    Args:
        generator: The network to measure (an averaged copy, typically).
        gan: Provides ``generator_inputs(n, device, generator)`` (a [`ganlib.GAN`][ganlib.GAN]).
        seed: Seed of the inputs; nothing else's random state is touched.
        num_batches: Batches to average over.
        batch_size: Images per batch.
    """
    check_int("num_batches", num_batches, 1)
    check_int("batch_size", batch_size, 1)
    device = _device_of(generator)
    rng = torch.Generator(device=device).manual_seed(seed)
    inputs = (gan.generator_inputs(batch_size, device, rng) for _ in range(num_batches))
    recompute_batchnorm_stats(generator, inputs)
    return generator

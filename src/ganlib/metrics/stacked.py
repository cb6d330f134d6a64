"""Modes of Stacked MNIST images, counted as VEEGAN and PacGAN count them: each channel's
digit by a pretrained MNIST classifier (ganlib's shipped one), a triple's mode covered
when at least one image falls in it, and KL(mode histogram || uniform over 1,000)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn

from .._validation import check_int
from ..data.stacked import STACKED_MNIST_MODES
from .features import embed
from .mnist import _checked_batch, _kl_to_uniform
from .mnist_classifier import load_mnist_classifier

__all__ = ["stacked_mnist_modes"]

_PLACES = torch.tensor([100, 10, 1])


def _as_digits(batches: Iterable[Tensor]) -> Iterator[Tensor]:
    """Each (B, 3, 28, 28) batch as its 3B one-channel digits, checked."""
    for batch in batches:
        if (
            not isinstance(batch, Tensor)
            or batch.dim() != 4
            or tuple(batch.shape[1:]) != (3, 28, 28)
        ):
            shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"Stacked MNIST `images` must be shaped (N, 3, 28, 28), got {shape}")
        if len(batch) == 0:
            continue  # (an empty tensor is refused as a whole by embed)
        yield _checked_batch(batch.reshape(-1, 1, 28, 28))  # (3B, 1, 28, 28): r, g, b, r, ...


@torch.no_grad()
def stacked_mnist_modes(
    images: Tensor | Iterable[Tensor],
    classifier: nn.Module | None = None,
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> dict[str, float | int]:
    """Modes covered by Stacked MNIST images and the KL of their mode histogram to uniform.

    Each channel is classified on its own; a mode is ``100 * red + 10 * green + blue``.
    The benchmark's papers score 25,600 or more images. Real Stacked MNIST
    ([`load_stacked_mnist`][ganlib.data.load_stacked_mnist]) is the reference: KL is not
    0 even there (MNIST's digits are not equally frequent, and a finite sample is not
    flat); a generator that makes one mode only scores 1 mode and ln(1000) = 6.91.

    Args:
        images: (N, 3, 28, 28) images in [-1, 1], or an iterable of such batches (for
            example [`sample_images`][ganlib.sampling.sample_images] of a generator).
        classifier: Maps (B, 1, 28, 28) digits in [-1, 1] to (B, 10) logits; the
            shipped one ([`load_mnist_classifier`][ganlib.metrics.load_mnist_classifier])
            when ``None``. Put in eval mode.
        batch_size: Images per classifier call when ``images`` is one tensor.
        device: Where the classifier runs.

    Returns:
        ``modes`` (covered, of 1,000), ``kl_to_uniform`` (nats) and ``num_samples``.

    Raises:
        ValueError: For images not shaped (N, 3, 28, 28), not floating point, outside
            [-1, 1] or not finite, for no images, or ``batch_size`` below 1.
    """
    check_int("batch_size", batch_size, 1)
    model = classifier if classifier is not None else load_mnist_classifier()
    model = model.eval().to(device)
    batches = images.split(batch_size) if isinstance(images, Tensor) else images
    logits = embed(model, _as_digits(batches), device=device)  # (3N, 10)
    digits = logits.argmax(1).reshape(-1, 3)  # (N, 3): red, green, blue
    modes = (digits * _PLACES).sum(1)
    return {
        "modes": int(torch.unique(modes).numel()),
        "kl_to_uniform": _kl_to_uniform(modes, STACKED_MNIST_MODES),
        "num_samples": len(modes),
    }

"""A feature space for any folder of images that needs no download: a fixed, seeded,
randomly initialised convolutional network, and the memorisation check made in it.

[`RandomFeatures`][ganlib.metrics.random_features.RandomFeatures] maps images of any size
and 1 to 4 channels to 128 numbers: three 3x3 convolutions (32, 64 and 128 channels, He
initialisation drawn from a generator seeded with ``seed``, no bias), each followed by a
ReLU, the first two by 2x2 average pooling, then the mean over the positions. Its weights
depend only on ``(channels, seed)``: the same on every machine with the same PyTorch, so
scores compare across runs of one data set. What a random network measures (Naeem et al.
2020, "Reliable Fidelity and Diversity Metrics for Generative Models", use random
embeddings as a sanity baseline): colour, contrast, edges and local texture statistics,
not what the pictures show; an FD in this space falls as samples get the data's colours
and textures right and rises when they collapse, but it cannot tell a plausible object
from a pleasing smear, and its values compare only within one feature space (one image
size, channels and seed), never with FID.

[`memorisation`][ganlib.metrics.random_features.memorisation] asks whether a generator
copies its training images: for each sample, the distance to its nearest training image
over the distance to its nearest held-out image, both in that space, with as many training
images as held-out ones, so that a generator that learned the distribution and one that
copies differ: the ratio's median is about 1 for the first (a held-out image is as close
as a training one), well below 1 for the second.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_int

__all__ = ["FEATURES", "Memorisation", "RandomFeatures", "memorisation"]

FEATURES = 128  # the size of a RandomFeatures vector


class RandomFeatures(nn.Module):
    """A fixed random convolutional network as a feature extractor (see the module docstring).

    Args:
        channels: The images' channels, 1 to 4.
        seed: The seed of its weights.

    Examples:
        >>> import torch
        >>> RandomFeatures(3)(torch.zeros(2, 3, 48, 48)).shape
        torch.Size([2, 128])
    """

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        if check_int("channels", channels, 1) > 4:
            raise ValueError(f"`channels` must be 1 to 4, got {channels}")
        generator = torch.Generator().manual_seed(check_int("seed", seed, 0))
        widths = (channels, 32, 64, FEATURES)
        self.convs = nn.ModuleList()
        for inputs, outputs in itertools.pairwise(widths):
            conv = nn.Conv2d(inputs, outputs, 3, padding=1, bias=False)
            with torch.no_grad():  # He initialisation, from the seeded generator
                std = (2.0 / (inputs * 9)) ** 0.5
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
            self.convs.append(conv)
        self.requires_grad_(False).eval()

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) images in [-1, 1] -> (B, 128) features."""
        x = images
        for index, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if index < len(self.convs) - 1 and min(x.shape[-2:]) >= 2:
                x = F.avg_pool2d(x, 2)
        return x.mean(dim=(2, 3))


@dataclass(frozen=True)
class Memorisation:
    """The memorisation check's result.

    Attributes:
        ratio: Per sample, the distance to its nearest training image over that to its
            nearest held-out image (N,).
        nearest_train: Per sample, the index of its nearest training image (N,).
        nearest_held_out: Per sample, the index of its nearest held-out image (N,).
        median: The ratio's median: about 1 when the generator does not copy, below 1
            when samples sit on training images.
    """

    ratio: Tensor
    nearest_train: Tensor
    nearest_held_out: Tensor

    @property
    def median(self) -> float:
        return float(self.ratio.median())


def memorisation(samples: Tensor, train: Tensor, held_out: Tensor) -> Memorisation:
    """Compare each sample's nearest training and held-out neighbours (features, rows).

    Args:
        samples: (N, D) features of generated images.
        train: (M, D) features of training images; pass as many as ``held_out`` has
            (the nearest of more images is nearer by chance alone).
        held_out: (K, D) features of images the generator never saw.

    Raises:
        ValueError: For empty or mismatched feature sets.
    """
    for name, rows in (("samples", samples), ("train", train), ("held_out", held_out)):
        if rows.ndim != 2 or len(rows) == 0 or rows.shape[1] != samples.shape[-1]:
            raise ValueError(
                f"`{name}` must be (rows, {samples.shape[-1]}) features, got {tuple(rows.shape)}"
            )
    samples, train, held_out = (t.double() for t in (samples, train, held_out))
    to_train, nearest_train = torch.cdist(samples, train).min(dim=1)
    to_held, nearest_held = torch.cdist(samples, held_out).min(dim=1)
    ratio = to_train / to_held.clamp_min(1e-12)
    return Memorisation(ratio.float(), nearest_train, nearest_held)

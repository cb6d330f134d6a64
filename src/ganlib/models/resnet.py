"""A residual generator/discriminator pair (SNGAN/BigGAN style) for any square size >= 5.

The feature-map sizes follow DCGAN's size rule
([`ganlib.models.size_plan`][ganlib.models.size_plan]):
for 28 they are 3 -> 7 -> 14 -> 28, for 32 they are 4 -> 8 -> 16 -> 32. The
generator projects the latent with a linear layer to the first size, then each
residual up-block resamples to the next size with nearest-neighbour interpolation
to that exact size (2x for an even size, ``(n - 1) / 2 -> n`` for an odd one).
The discriminator walks the sizes back down with residual down-blocks that
average-pool to the exact size (adaptive pooling: an odd size loses no pixels),
then sums its last feature map over space and reads one logit from it.

- Generator up-block (Miyato et al., 2018; Brock et al., 2019):
  ``BN, ReLU, upsample, conv3x3, BN, ReLU, conv3x3`` plus a shortcut
  ``upsample, conv1x1``; then ``BN, ReLU, conv3x3, Tanh`` to the image.
- Discriminator down-block: ``ReLU, conv3x3, ReLU, conv3x3, pool`` plus a shortcut
  ``pool, conv1x1``; the first block reads the image without the leading ReLU.
  Every discriminator layer is spectrally normalised and there is no BatchNorm.

``depth`` blocks run at each size (the first resamples, the others keep the size).
With ``num_classes`` the pair is class-conditional: the generator's BatchNorms take
per-class scale and shift ([`ConditionalBatchNorm2d`][ganlib.models.layers.ConditionalBatchNorm2d]),
and the discriminator adds the projection term ``<embedding(label), h>`` (Miyato &
Koyama, 2018) to its logit, with ``h`` the spatially summed last feature map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_int
from ..gan import GAN, check_labels
from ..init import InitScheme, init_weights_
from .dcgan import size_plan, stage_widths
from .layers import ConditionalBatchNorm2d, check_network_size, spectral_norm_

__all__ = ["DownBlock", "ResNetDiscriminator", "ResNetGAN", "ResNetGenerator", "UpBlock"]


def _norm(features: int, num_classes: int | None) -> nn.Module:
    return (
        nn.BatchNorm2d(features)
        if num_classes is None
        else ConditionalBatchNorm2d(features, num_classes)
    )


def _normalize(norm: nn.Module, x: Tensor, labels: Tensor | None) -> Tensor:
    return norm(x) if labels is None else norm(x, labels)


class UpBlock(nn.Module):
    """Generator residual block: (B, in_channels, s, s) -> (B, out_channels, out_size, out_size).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        out_size: The side to upsample to (nearest neighbour), or ``None`` to keep it.
        num_classes: Use conditional BatchNorm for labels in ``[0, num_classes)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, out_size: int | None, num_classes: int | None
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.out_size = in_channels, out_channels, out_size
        self.norm1 = _norm(in_channels, num_classes)
        # No bias where a BatchNorm follows: it would be removed with the batch mean.
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = _norm(out_channels, num_classes)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        # A learned shortcut wherever the identity does not fit (SNGAN's rule).
        learned = in_channels != out_channels or out_size is not None
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if learned else None

    def _resample(self, x: Tensor) -> Tensor:
        if self.out_size is None:
            return x
        return F.interpolate(x, size=(self.out_size, self.out_size), mode="nearest")

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self._resample(F.relu(_normalize(self.norm1, x, labels)))  # (B, in, out_size, ...)
        h = self.conv1(h)  # (B, out, out_size, out_size)
        h = self.conv2(F.relu(_normalize(self.norm2, h, labels)))
        skip = self._resample(x)
        return h + (skip if self.shortcut is None else self.shortcut(skip))


class DownBlock(nn.Module):
    """Discriminator residual block: (B, in_channels, s, s) -> (B, out_channels, out_size, ...).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        out_size: The side to average-pool to, or ``None`` to keep it.
        first: The block that reads the image: no ReLU before its first convolution.
    """

    def __init__(
        self, in_channels: int, out_channels: int, out_size: int | None, first: bool = False
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.out_size = in_channels, out_channels, out_size
        self.first = first
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        learned = in_channels != out_channels or out_size is not None
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if learned else None

    def _resample(self, x: Tensor) -> Tensor:
        return x if self.out_size is None else F.adaptive_avg_pool2d(x, self.out_size)

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))  # (B, out, s, s)
        h = self._resample(h)  # (B, out, out_size, out_size)
        # Pooling and a 1x1 convolution commute; pooling first is cheaper.
        skip = self._resample(x)
        return h + (skip if self.shortcut is None else self.shortcut(skip))


class ResNetGenerator(nn.Module):
    """Residual generator: latents (B, latent_dim) or (B, latent_dim, 1, 1) -> images in [-1, 1].

    Built by [`ResNetGAN`][ganlib.ResNetGAN]. A conditional generator also takes labels (B,).
    """

    def __init__(
        self,
        sizes: list[int],
        widths: list[int],
        latent_dim: int,
        channels: int,
        depth: int = 1,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.image_shape = (channels, sizes[-1], sizes[-1])
        self.start = (widths[0], sizes[0], sizes[0])
        self.stem = nn.Linear(latent_dim, widths[0] * sizes[0] ** 2)
        blocks = []
        for index, size in enumerate(sizes[1:]):
            for repeat in range(depth):
                in_channels = widths[index] if repeat == 0 else widths[index + 1]
                out_size = size if repeat == 0 else None
                blocks.append(UpBlock(in_channels, widths[index + 1], out_size, num_classes))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(),
            nn.Conv2d(widths[-1], channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        flat = z.dim() == 2 and z.shape[1] == self.latent_dim
        if not flat and (z.dim() != 4 or z.shape[1:] != (self.latent_dim, 1, 1)):
            raise ValueError(
                f"generator input must be shaped (B, {self.latent_dim}) or "
                f"(B, {self.latent_dim}, 1, 1), got {tuple(z.shape)}"
            )
        labels = check_labels(labels, self.num_classes, z.shape[0])
        h = self.stem(z.flatten(1)).view(-1, *self.start)  # (B, widths[0], start, start)
        for block in self.blocks:
            h = block(h, labels)  # (B, widths[i], sizes[i], sizes[i])
        return self.head(h)  # (B, channels, image_size, image_size)


class ResNetDiscriminator(nn.Module):
    """Residual discriminator: images (B, C, H, W) -> raw logits (B,); spectrally
    normalised by [`ResNetGAN`][ganlib.ResNetGAN]. A conditional one also takes labels (B,)."""

    def __init__(
        self,
        sizes: list[int],
        widths: list[int],
        channels: int,
        depth: int = 1,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.image_shape = (channels, sizes[-1], sizes[-1])
        blocks = []
        in_channels = channels
        # Image side first: sizes[-1] -> sizes[-2] -> ... -> sizes[0].
        for index, size in enumerate(reversed(sizes[:-1])):
            out_channels = widths[len(widths) - 1 - index]
            for repeat in range(depth):
                out_size = size if repeat == 0 else None
                first = index == 0 and repeat == 0
                blocks.append(DownBlock(in_channels, out_channels, out_size, first))
                in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.linear = nn.Linear(in_channels, 1)
        if num_classes is not None:
            self.projection = nn.Embedding(num_classes, in_channels)

    def features(self, images: Tensor) -> Tensor:
        """The summed last feature map ``h`` the logit is read from, (B, widths[0])."""
        h = images
        for block in self.blocks:
            h = block(h)
        return F.relu(h).sum((2, 3))  # (B, widths[0], start, start) -> (B, widths[0])

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        labels = check_labels(labels, self.num_classes, images.shape[0])
        h = self.features(images)
        logits = self.linear(h).flatten()  # (B,)
        if labels is None:
            return logits
        return logits + (self.projection(labels).to(h.dtype) * h).sum(1)


class ResNetGAN(GAN):
    """A residual generator/discriminator pair (SNGAN/BigGAN style) for square images >= 5.

    Sizes follow DCGAN's rule (see the module docstring). The stage next to the image
    has ``width`` channels in the generator; each stage toward the latent doubles it
    (capped at ``max_width``). The discriminator's first block outputs ``width``
    channels and each following one doubles it, as BigGAN's does. Every discriminator
    layer is spectrally normalised; the generator uses BatchNorm.

    The weights are initialised with ``init`` (Glorot by default) before spectral
    normalisation is applied; ``init=None`` keeps PyTorch's defaults.

    Args:
        image_size: Side of the square images, >= 5; odd sizes included.
        channels: Image channels.
        latent_dim: Size of the latent vector.
        width: Generator channels at the image's size (see above).
        max_width: Optional cap on any stage's channels.
        depth: Residual blocks per size, >= 1 (the first of them resamples).
        num_classes: Make the pair class-conditional on labels in ``[0, num_classes)``:
            conditional BatchNorm in the generator, a (spectrally normalised)
            projection in the discriminator.
        init: Initialisation scheme for both networks, or ``None`` to skip.
        init_generator: Random source for a reproducible construction.

    Raises:
        TypeError: If a size argument is not an integer.
        ValueError: If a size argument is out of range, or the pair is over the size bound
            [`DCGAN`][ganlib.DCGAN] states (``ganlib.models.layers.MAX_PARAMETERS``,
            ``MAX_ACTIVATIONS``), counted on the meta device before anything is allocated.

    Examples:
        >>> gan = ResNetGAN(image_size=28, width=8)
        >>> gan.generator(gan.sample_noise(2)).shape
        torch.Size([2, 1, 28, 28])
        >>> gan.discriminator(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        latent_dim: int = 128,
        width: int = 64,
        *,
        max_width: int | None = None,
        depth: int = 1,
        num_classes: int | None = None,
        init: InitScheme | None = "xavier",
        init_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = [step.out_size for step in size_plan(image_size)]
        check_int("depth", depth, 1)
        self._record(image_size, channels, latent_dim, width, max_width, num_classes, depth=depth)

        def build() -> tuple[ResNetGenerator, ResNetDiscriminator]:
            return (
                ResNetGenerator(
                    sizes,
                    stage_widths(len(sizes), width, max_width),
                    latent_dim,
                    channels,
                    depth,
                    num_classes,
                ),
                ResNetDiscriminator(
                    sizes,
                    stage_widths(len(sizes) - 1, width, max_width),
                    channels,
                    depth,
                    num_classes,
                ),
            )

        described = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        check_network_size(build, image_size, latent_dim, num_classes, f"ResNetGAN({described})")
        self.generator, self.discriminator = build()
        if init is not None:  # (schemes leave embeddings alone)
            init_weights_(self, init, generator=init_generator)
        if num_classes is not None:
            nn.init.xavier_uniform_(self.discriminator.projection.weight, generator=init_generator)
        # After init: the power iteration starts from the initial weights.
        spectral_norm_(self.discriminator, generator=init_generator)

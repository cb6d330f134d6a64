"""DCGAN generator and discriminator for any square image size >= 5.

The size rule walks down from the image size: an even size ``n`` is reached
from ``n / 2`` by a (kernel 4, stride 2, padding 1) transposed convolution, an
odd size from ``(n - 1) / 2`` by (kernel 3, stride 2, padding 0); the walk
stops at the first size <= 4, which the first layer makes from a 1x1 latent
with a (kernel = that size, stride 1, padding 0) transposed convolution. The
discriminator mirrors the generator and ends in a (kernel = start size)
convolution to one logit. For 28 this gives 1 -> 3 -> 7 -> 14 -> 28, for 64
the DCGAN paper's 1 -> 4 -> 8 -> 16 -> 32 -> 64.

With ``num_classes`` the pair is class-conditional: the generator joins a
learned label embedding to the latent before its first layer, and the
discriminator adds a projection term (Miyato & Koyama, 2018) to its logit.

With ``spectral_norm=True`` every discriminator convolution is spectrally
normalised and the discriminator has no BatchNorm, as SNGAN's (Miyato et al.,
2018) has none: BatchNorm rescales each layer's output by the batch's statistics,
which undoes the per-layer Lipschitz bound spectral normalisation is there to keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._validation import check_int
from ..gan import GAN, check_labels
from ..init import InitScheme, init_weights_
from .layers import MinibatchStd, check_network_size, spectral_norm_

__all__ = [
    "DCGAN",
    "Discriminator",
    "Generator",
    "LayerStep",
    "size_plan",
    "stage_widths",
]

MIN_IMAGE_SIZE = 5


@dataclass(frozen=True)
class LayerStep:
    """One generator layer: a transposed convolution from ``in_size`` to ``out_size``.

    The discriminator runs the same step backwards with a plain convolution of
    the same kernel, stride and padding.
    """

    in_size: int
    out_size: int
    kernel: int
    stride: int
    padding: int


def size_plan(image_size: int) -> list[LayerStep]:
    """The generator's layer steps, from the 1x1 latent up to ``image_size``.

    Args:
        image_size: Side of the square image, >= 5.

    Returns:
        The steps in generator order; the first is the projection from 1x1.

    Raises:
        TypeError: If ``image_size`` is not an integer.
        ValueError: If ``image_size`` < 5.

    Examples:
        >>> [s.out_size for s in size_plan(28)]
        [3, 7, 14, 28]
    """
    size = check_int("image_size", image_size, MIN_IMAGE_SIZE)
    upsampling: list[LayerStep] = []
    while size > 4:
        if size % 2 == 0:
            upsampling.append(LayerStep(size // 2, size, kernel=4, stride=2, padding=1))
            size //= 2
        else:
            upsampling.append(LayerStep((size - 1) // 2, size, kernel=3, stride=2, padding=0))
            size = (size - 1) // 2
    first = LayerStep(1, size, kernel=size, stride=1, padding=0)
    return [first, *reversed(upsampling)]


def stage_widths(num_stages: int, width: int, max_width: int | None) -> list[int]:
    """Feature channels of each hidden stage, latent side first.

    The stage next to the image has ``width`` channels; each step toward the
    latent doubles it, capped at ``max_width``.
    """
    widths = [width * 2 ** (num_stages - 1 - i) for i in range(num_stages)]
    return [min(w, max_width) if max_width is not None else w for w in widths]


class Generator(nn.Module):
    """DCGAN generator: latent (B, latent_dim) or (B, latent_dim, 1, 1) -> images in [-1, 1].

    Built by [`DCGAN`][ganlib.DCGAN]; ReLU and BatchNorm after every layer but the
    last, which ends in Tanh. A conditional generator (``num_classes``) also
    takes labels (B,) and feeds ``[z, embedding(labels)]`` to its first layer.
    """

    def __init__(
        self,
        steps: list[LayerStep],
        widths: list[int],
        latent_dim: int,
        channels: int,
        bias: bool = True,
        num_classes: int | None = None,
        embedding_dim: int = 0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.image_shape = (channels, steps[-1].out_size, steps[-1].out_size)
        if num_classes is not None:
            # N(0, 1) rows (PyTorch's default): the label enters on the latent's scale.
            self.label_embedding = nn.Embedding(num_classes, embedding_dim)
        layers: list[nn.Module] = []
        in_channels = latent_dim + (embedding_dim if num_classes is not None else 0)
        for index, step in enumerate(steps):
            is_output = index == len(steps) - 1
            out_channels = channels if is_output else widths[index]
            # (B, in_channels, step.in_size, step.in_size) -> (B, out_channels, step.out_size, ...)
            layers.append(
                nn.ConvTranspose2d(
                    in_channels, out_channels, step.kernel, step.stride, step.padding, bias=bias
                )
            )
            if is_output:
                layers.append(nn.Tanh())
            else:
                layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            in_channels = out_channels
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        flat = z.dim() == 2 and z.shape[1] == self.latent_dim
        if not flat and (z.dim() != 4 or z.shape[1:] != (self.latent_dim, 1, 1)):
            raise ValueError(
                f"generator input must be shaped (B, {self.latent_dim}) or "
                f"(B, {self.latent_dim}, 1, 1), got {tuple(z.shape)}"
            )
        z = z[:, :, None, None] if flat else z  # (B, latent_dim, 1, 1)
        labels = check_labels(labels, self.num_classes, z.shape[0])
        if labels is not None:
            # (B, latent_dim + embedding_dim, 1, 1)
            z = torch.cat([z, self.label_embedding(labels)[:, :, None, None].to(z.dtype)], 1)
        return self.net(z)


class Discriminator(nn.Module):
    """DCGAN discriminator: images (B, C, H, W) -> raw logits (B,).

    The mirror of [`Generator`][ganlib.models.Generator]: LeakyReLU(0.2) throughout, BatchNorm on
    every hidden layer but the input one (on none with ``batchnorm=False``), no final
    Sigmoid (losses take logits).

    With ``minibatch_std`` (a group size), a [`MinibatchStd`][ganlib.models.MinibatchStd]
    layer before the final convolution gives it one more input channel: the spread of
    each small group of images.

    A conditional discriminator (``num_classes``) also takes labels (B,) and adds
    the projection term ``<embedding(label), h>`` to the logit, where ``h`` is the
    flattened last hidden feature map, the same vector the final convolution reads
    (Miyato & Koyama, 2018). The embedding starts at zero, so a new conditional D
    scores exactly as the unconditional one and learns the class term.
    """

    def __init__(
        self,
        steps: list[LayerStep],
        widths: list[int],
        channels: int,
        bias: bool = True,
        num_classes: int | None = None,
        batchnorm: bool = True,
        minibatch_std: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.image_shape = (channels, steps[-1].out_size, steps[-1].out_size)
        layers: list[nn.Module] = []
        in_channels = channels
        hidden = list(reversed(widths))  # image side first
        for index, step in enumerate(reversed(steps[1:])):
            # (B, in_channels, step.out_size, ...) -> (B, hidden[index], step.in_size, ...)
            layers.append(
                nn.Conv2d(
                    in_channels, hidden[index], step.kernel, step.stride, step.padding, bias=bias
                )
            )
            if index > 0 and batchnorm:
                layers.append(nn.BatchNorm2d(hidden[index]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_channels = hidden[index]
        if minibatch_std:
            # (B, widths[0], start, start) -> (B, widths[0] + 1, start, start)
            layers.append(MinibatchStd(minibatch_std))
            in_channels += 1
        # (B, in_channels, start, start) -> (B, 1, 1, 1)
        layers.append(nn.Conv2d(in_channels, 1, steps[0].kernel, 1, 0, bias=bias))
        self.net = nn.Sequential(*layers)
        if num_classes is not None:
            self.projection = nn.Embedding(num_classes, in_channels * steps[0].kernel ** 2)
            nn.init.zeros_(self.projection.weight)

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        # A shape check only (no value is read, so no device sync, and torch.compile turns
        # it into guards): another size would give more than one logit per image.
        if images.dim() != 4 or images.shape[1:] != self.image_shape:
            channels, height, width = self.image_shape
            raise ValueError(
                f"discriminator `images` must be shaped (B, {channels}, {height}, {width}) "
                f"(the pair's channels and image size), got {tuple(images.shape)}"
            )
        labels = check_labels(labels, self.num_classes, images.shape[0])
        if labels is None:
            return self.net(images).flatten()  # (B, 1, 1, 1) -> (B,)
        features = self.net[:-1](images)  # (B, in_channels, start, start)
        logits = self.net[-1](features).flatten()
        projection = self.projection(labels).to(features.dtype)  # (B, in_channels * start**2)
        return logits + (projection * features.flatten(1)).sum(1)


class DCGAN(GAN):
    """A DCGAN generator/discriminator pair for square images of any size >= 5.

    ``DCGAN()`` is the reference MNIST recipe's network: 28x28, one channel,
    latent 100, width 128 (2,169,473 generator and 1,713,025 discriminator
    parameters). ``DCGAN(image_size=64, channels=3, width=64)`` is the DCGAN
    paper's.

    The weights are initialised with the DCGAN scheme
    ([`ganlib.init.dcgan_init_`][ganlib.init.dcgan_init_])
    unless ``init`` says otherwise; ``init=None`` keeps PyTorch's defaults.

    Args:
        image_size: Side of the square images, >= 5; any integer, odd sizes included.
        channels: Image channels (1 for MNIST, 3 for RGB).
        latent_dim: Size of the latent vector.
        width: Feature channels of the hidden layer next to the image; each
            layer toward the latent doubles it.
        max_width: Optional cap on any layer's feature channels.
        bias: Whether convolutions keep their bias (the recipe keeps it).
        num_classes: Make the pair class-conditional on labels in
            ``[0, num_classes)``: ``generator(z, labels)``, ``discriminator(x, labels)``.
            ``None`` (the default) builds the unconditional pair, unchanged.
        embedding_dim: Size of the generator's label embedding, joined to the
            latent; ``num_classes`` by default (the first layer is linear in its
            input, so a larger embedding adds no expressiveness).
        spectral_norm: Spectrally normalise every discriminator convolution and drop
            the discriminator's BatchNorm (SNGAN's discriminator; see the module
            docstring). A conditional discriminator's projection embedding stays
            unnormalised: it starts at zero, whose spectral norm is zero. The
            generator is unchanged.
        minibatch_std: Group size of a minibatch standard deviation layer before the
            discriminator's final convolution
            ([`MinibatchStd`][ganlib.models.MinibatchStd]; StyleGAN's uses 4), or 0
            for none (the default; the DCGAN paper has none).
        init: Initialisation scheme for both networks, or ``None`` to skip.
        init_generator: Random source for a reproducible initialisation (and for
            spectral normalisation's start vectors).

    Attributes:
        generator: The [`Generator`][ganlib.models.Generator].
        discriminator: The [`Discriminator`][ganlib.models.Discriminator].
        num_classes: The classes of a conditional pair, else ``None``.

    Raises:
        TypeError: If a size argument is not an integer.
        ValueError: If a size argument is out of range, or the pair would have more
            parameters than ``ganlib.models.layers.MAX_PARAMETERS`` (2 billion) or hold
            more activations for one image than ``MAX_ACTIVATIONS`` (2**30), counted on the
            meta device before anything is allocated.

    Examples:
        >>> gan = DCGAN(image_size=28)
        >>> gan.generator(gan.sample_noise(2)).shape
        torch.Size([2, 1, 28, 28])
        >>> cgan = DCGAN(num_classes=10)
        >>> cgan.generator(cgan.sample_noise(2), torch.tensor([3, 7])).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        latent_dim: int = 100,
        width: int = 128,
        *,
        max_width: int | None = None,
        bias: bool = True,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        spectral_norm: bool = False,
        minibatch_std: int = 0,
        init: InitScheme | None = "dcgan",
        init_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        steps = size_plan(image_size)
        self._record(image_size, channels, latent_dim, width, max_width, num_classes, bias=bias)
        if num_classes is not None:
            embedding_dim = check_int(
                "embedding_dim", num_classes if embedding_dim is None else embedding_dim, 1
            )
            self.config["embedding_dim"] = embedding_dim  # (unconditional configs unchanged)
        elif embedding_dim is not None:
            raise ValueError("`embedding_dim` is for conditional models: give num_classes too")
        widths = stage_widths(len(steps) - 1, width, max_width)
        if not isinstance(spectral_norm, bool):
            raise TypeError(f"`spectral_norm` must be True or False, got {spectral_norm!r}")
        if spectral_norm:  # (recorded only when on: earlier configs stay as they were)
            self.config.update(spectral_norm=True)
        if check_int("minibatch_std", minibatch_std, 0):  # (likewise)
            self.config.update(minibatch_std=minibatch_std)

        def build() -> tuple[Generator, Discriminator]:
            return (
                Generator(
                    steps, widths, latent_dim, channels, bias, num_classes, embedding_dim or 0
                ),
                Discriminator(
                    steps,
                    widths,
                    channels,
                    bias,
                    num_classes,
                    batchnorm=not spectral_norm,
                    minibatch_std=minibatch_std,
                ),
            )

        described = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        check_network_size(build, image_size, latent_dim, num_classes, f"DCGAN({described})")
        self.generator, self.discriminator = build()
        if init is not None:  # (schemes leave embeddings alone)
            init_weights_(self, init, generator=init_generator, argument_name="init")
        if num_classes is not None and init_generator is not None:
            nn.init.normal_(self.generator.label_embedding.weight, generator=init_generator)
        if spectral_norm:  # after init: the power iteration starts from the initial weights
            projection = getattr(self.discriminator, "projection", None)
            spectral_norm_(
                self.discriminator,
                generator=init_generator,
                skip=() if projection is None else (projection,),
            )

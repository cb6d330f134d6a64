"""DCGAN generator and discriminator for any square image size >= 5.

The size rule walks down from the image size: an even size ``n`` is reached
from ``n / 2`` by a (kernel 4, stride 2, padding 1) transposed convolution, an
odd size from ``(n - 1) / 2`` by (kernel 3, stride 2, padding 0); the walk
stops at the first size <= 4, which the first layer makes from a 1x1 latent
with a (kernel = that size, stride 1, padding 0) transposed convolution. The
discriminator mirrors the generator and ends in a (kernel = start size)
convolution to one logit. For 28 this gives 1 -> 3 -> 7 -> 14 -> 28, for 64
the DCGAN paper's 1 -> 4 -> 8 -> 16 -> 32 -> 64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._validation import check_int
from ..init import InitScheme, init_weights_

__all__ = ["DCGAN", "Discriminator", "Generator", "LayerStep", "size_plan", "stage_widths"]

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

    Example:
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

    Built by :class:`DCGAN`; ReLU and BatchNorm after every layer but the
    last, which ends in Tanh.
    """

    def __init__(
        self,
        steps: list[LayerStep],
        widths: list[int],
        latent_dim: int,
        channels: int,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = (channels, steps[-1].out_size, steps[-1].out_size)
        layers: list[nn.Module] = []
        in_channels = latent_dim
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

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.dim() == 2 and z.shape[1] == self.latent_dim
        if not flat and (z.dim() != 4 or z.shape[1:] != (self.latent_dim, 1, 1)):
            raise ValueError(
                f"generator input must be shaped (B, {self.latent_dim}) or "
                f"(B, {self.latent_dim}, 1, 1), got {tuple(z.shape)}"
            )
        return self.net(z[:, :, None, None] if flat else z)  # (B, latent_dim, 1, 1) -> images


class Discriminator(nn.Module):
    """DCGAN discriminator: images (B, C, H, W) -> raw logits (B,).

    The mirror of :class:`Generator`: LeakyReLU(0.2) throughout, BatchNorm on
    every hidden layer but the input one, no final Sigmoid (losses take logits).
    """

    def __init__(
        self, steps: list[LayerStep], widths: list[int], channels: int, bias: bool = True
    ) -> None:
        super().__init__()
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
            if index > 0:
                layers.append(nn.BatchNorm2d(hidden[index]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_channels = hidden[index]
        # (B, widths[0], start, start) -> (B, 1, 1, 1)
        layers.append(nn.Conv2d(in_channels, 1, steps[0].kernel, 1, 0, bias=bias))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten()  # (B, 1, 1, 1) -> (B,)


class DCGAN(nn.Module):
    """A DCGAN generator/discriminator pair for square images of any size >= 5.

    ``DCGAN()`` is the reference MNIST recipe's network: 28x28, one channel,
    latent 100, width 128 (2,169,473 generator and 1,713,025 discriminator
    parameters). ``DCGAN(image_size=64, channels=3, width=64)`` is the DCGAN
    paper's.

    The weights are initialised with the DCGAN scheme (:func:`ganlib.init.dcgan_init_`)
    unless ``init`` says otherwise; ``init=None`` keeps PyTorch's defaults.

    Args:
        image_size: Side of the square images, >= 5; any integer, odd sizes included.
        channels: Image channels (1 for MNIST, 3 for RGB).
        latent_dim: Size of the latent vector.
        width: Feature channels of the hidden layer next to the image; each
            layer toward the latent doubles it.
        max_width: Optional cap on any layer's feature channels.
        bias: Whether convolutions keep their bias (the recipe keeps it).
        init: Initialisation scheme for both networks, or ``None`` to skip.
        init_generator: Random source for a reproducible initialisation.

    Attributes:
        generator: The :class:`Generator`.
        discriminator: The :class:`Discriminator`.

    Raises:
        TypeError: If a size argument is not an integer.
        ValueError: If a size argument is out of range.

    Example:
        >>> gan = DCGAN(image_size=28)
        >>> gan.generator(gan.sample_noise(2)).shape
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
        init: InitScheme | None = "dcgan",
        init_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        steps = size_plan(image_size)
        check_int("channels", channels, 1)
        check_int("latent_dim", latent_dim, 1)
        check_int("width", width, 1)
        if max_width is not None:
            check_int("max_width", max_width, 1)
        widths = stage_widths(len(steps) - 1, width, max_width)
        self.latent_dim = latent_dim
        self.image_shape = (channels, image_size, image_size)
        self.config: dict[str, Any] = dict(
            image_size=image_size,
            channels=channels,
            latent_dim=latent_dim,
            width=width,
            max_width=max_width,
            bias=bias,
        )
        self.generator = Generator(steps, widths, latent_dim, channels, bias)
        self.discriminator = Discriminator(steps, widths, channels, bias)
        if init is not None:
            init_weights_(self, init, generator=init_generator)

    def sample_noise(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` latents ~ N(0, I), shaped (n, latent_dim).

        Args:
            n: How many latents.
            device: Where to put them; the generator's device when ``None``.
            generator: Random source; must live on ``device``.
        """
        check_int("n", n, 1)
        if device is None:
            device = next(self.generator.parameters()).device
        return torch.randn(n, self.latent_dim, device=device, generator=generator)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.config.items())

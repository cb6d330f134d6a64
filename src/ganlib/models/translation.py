"""Image-to-image translation networks: the ResNet-blocks and U-Net generators and the
PatchGAN discriminator of pix2pix (Isola et al., 2017) and CycleGAN (Zhu et al., 2017).

With the same weights each equals, output for output, the network of the same name in
the authors' ``models/networks.py`` (junyanz/pytorch-CycleGAN-and-pix2pix; tested
against a transcription of it), for any image size its rule allows:

- [`ResNetTranslator`][ganlib.models.ResNetTranslator] (their ``ResnetGenerator``): two
  stride-2 halvings, ``blocks`` residual blocks, two doublings, so ``image_size`` must be
  a multiple of 4 (and >= 8, for the reflection padding of the 1/4-size blocks).
- [`UNetTranslator`][ganlib.models.UNetTranslator] (their ``UnetGenerator``):
  ``downsamplings`` (kernel 4, stride 2) halvings, each mirrored by a doubling that is
  joined to its twin, so ``image_size`` must be divisible by ``2 ** downsamplings``; by
  default as many halvings as divide it (32 -> 5 down to 1x1, their ``unet_256`` is 8).
- [`PatchGANDiscriminator`][ganlib.models.PatchGANDiscriminator] (their
  ``NLayerDiscriminator``): ``layers`` stride-2 convolutions and two stride-1 ones, one
  score per overlapping patch (70x70 at ``layers=3``); ``image_size // 2 ** layers``
  must be >= 3 so the map is at least 1x1.

Norms are theirs: ``"instance"`` (no affine, no running statistics; convolutions then keep
their bias) or ``"batch"`` (affine, running statistics; no bias before it). Weights start
as their ``init_weights(net, "normal", 0.02)`` does: N(0, 0.02) filters, BatchNorm scale
N(1, 0.02), zero biases ([`init_weights_`][ganlib.init.init_weights_]'s ``"dcgan"``).

The networks are registered by name (``"resnet"``, ``"unet"``, ``"patchgan"``) in the one
registry of translation networks, so a translation task's checkpoint rebuilds them
([`build_translation_network`][ganlib.models.build_translation_network]).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_int
from ..init import InitScheme, init_weights_

__all__ = [
    "NormName",
    "PatchGANDiscriminator",
    "ResNetTranslator",
    "UNetTranslator",
    "build_translation_network",
    "patch_receptive_field",
    "register_translation_network",
    "translation_networks",
]

NormName = Literal["instance", "batch"]


def _check_norm(norm: Any) -> NormName:
    if norm not in get_args(NormName):
        raise ValueError(f"`norm` must be one of {list(get_args(NormName))}, got {norm!r}")
    return norm  # type: ignore[no-any-return]


def _norm(norm: NormName, channels: int) -> nn.Module:
    """The reference's norm layers: InstanceNorm without affine or running statistics,
    BatchNorm with both."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.BatchNorm2d(channels)


class _TranslationNetwork(nn.Module):
    """What every registered translation network records: its registry name and config."""

    kind: ClassVar[str] = ""
    config: dict[str, Any]

    def _initialise(self, init: InitScheme | None, init_generator: torch.Generator | None) -> None:
        if init is not None:
            init_weights_(self, init, generator=init_generator, argument_name="init")

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.config.items())


# ------------------------------------------------------------------ ResNet blocks


class _ResidualBlock(nn.Module):
    """``x + [pad, conv3x3, norm, ReLU, (dropout), pad, conv3x3, norm](x)``, reflection
    padding: (B, C, s, s) -> (B, C, s, s)."""

    def __init__(self, channels: int, norm: NormName, dropout: bool) -> None:
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            _norm(norm, channels),
            nn.ReLU(),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias)]
        layers.append(_norm(norm, channels))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResNetTranslator(_TranslationNetwork):
    """The ResNet-blocks generator (Johnson et al.'s, as pix2pix and CycleGAN use it):
    images (B, in_channels, S, S) -> images (B, out_channels, S, S) in [-1, 1].

    ``pad 3, conv7x7, norm, ReLU``; two (kernel 3, stride 2) convolutions doubling the
    width; ``blocks`` residual blocks at S/4; two (kernel 3, stride 2, output padding 1)
    transposed convolutions; ``pad 3, conv7x7, Tanh``. CycleGAN's default is 9 blocks at
    width 64 with instance norm (their ``resnet_9blocks``).

    Args:
        image_size: Side of the square images; a multiple of 4, >= 8.
        in_channels: Input image channels.
        out_channels: Output image channels (``None``: as the input).
        width: Channels of the first layer (their ``ngf``); 2x and 4x after the halvings.
        blocks: Residual blocks (their ``n_blocks``), >= 0.
        norm: ``"instance"`` or ``"batch"``.
        dropout: Dropout(0.5) inside each residual block.
        init: Initialisation scheme, or ``None`` to keep PyTorch's defaults.
        init_generator: Random source for a reproducible initialisation.

    Raises:
        TypeError, ValueError: For a size the rule refuses or a bad argument, naming it.
    """

    def __init__(
        self,
        image_size: int = 256,
        in_channels: int = 3,
        out_channels: int | None = None,
        width: int = 64,
        blocks: int = 9,
        *,
        norm: NormName = "instance",
        dropout: bool = False,
        init: InitScheme | None = "dcgan",
        init_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        size = check_int("image_size", image_size, 1)
        if size % 4 or size < 8:
            raise ValueError(
                "`image_size` must be a multiple of 4 and >= 8 for the ResNet-blocks "
                "generator (two stride-2 halvings, undone by two doublings, and "
                f"reflection padding at 1/4 of the size), got {image_size}"
            )
        in_channels = check_int("in_channels", in_channels, 1)
        out_channels = in_channels if out_channels is None else out_channels
        out_channels = check_int("out_channels", out_channels, 1)
        width = check_int("width", width, 1)
        blocks = check_int("blocks", blocks, 0)
        norm = _check_norm(norm)
        self.config = dict(
            image_size=size,
            in_channels=in_channels,
            out_channels=out_channels,
            width=width,
            blocks=blocks,
            norm=norm,
            dropout=bool(dropout),
        )
        bias = norm == "instance"
        layers: list[nn.Module] = [  # (B, in_channels, S, S) -> (B, width, S, S)
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, width, 7, bias=bias),
            _norm(norm, width),
            nn.ReLU(),
        ]
        for scale in (1, 2):  # -> (B, 2 width, S/2, S/2) -> (B, 4 width, S/4, S/4)
            layers += [
                nn.Conv2d(width * scale, width * scale * 2, 3, stride=2, padding=1, bias=bias),
                _norm(norm, width * scale * 2),
                nn.ReLU(),
            ]
        layers += [_ResidualBlock(width * 4, norm, bool(dropout)) for _ in range(blocks)]
        for scale in (4, 2):  # -> (B, 2 width, S/2, S/2) -> (B, width, S, S)
            layers += [
                nn.ConvTranspose2d(
                    width * scale,
                    width * scale // 2,
                    3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=bias,
                ),
                _norm(norm, width * scale // 2),
                nn.ReLU(),
            ]
        # (B, width, S, S) -> (B, out_channels, S, S)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self._initialise(init, init_generator)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


# ------------------------------------------------------------------------- U-Net


class _UNetLevel(nn.Module):
    """One level of the U: ``down`` halves, ``inner`` (the deeper levels) runs at the
    half size, ``up`` doubles back; every level but the outermost joins its (activated)
    input to its output: (B, outer, s, s) -> (B, 2 outer, s, s).

    (The reference's in-place LeakyReLU makes its skip carry the activated input; the
    joined tensor only reaches the next ReLU, and ReLU(LeakyReLU(v)) = ReLU(v).)
    """

    def __init__(
        self,
        outer: int,
        inner: int,
        norm: NormName,
        *,
        in_channels: int | None = None,
        deeper: _UNetLevel | None = None,
        outermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        down: list[nn.Module] = [
            nn.Conv2d(in_channels or outer, inner, 4, stride=2, padding=1, bias=bias)
        ]
        if deeper is not None and not outermost:  # (the innermost halving has no norm)
            down.append(_norm(norm, inner))
        self.down = nn.Sequential(*down)
        self.deeper = deeper
        joined = inner if deeper is None else inner * 2  # the deeper level's skip doubles it
        up: list[nn.Module] = [
            nn.ReLU(),
            nn.ConvTranspose2d(joined, outer, 4, stride=2, padding=1, bias=bias or outermost),
            nn.Tanh() if outermost else _norm(norm, outer),
        ]
        if dropout:
            up.append(nn.Dropout(0.5))
        self.up = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        inner = self.down(x if self.outermost else F.leaky_relu(x, 0.2))  # (B, inner, s/2, s/2)
        if self.deeper is not None:
            inner = self.deeper(inner)  # (B, 2 inner, s/2, s/2)
        out = self.up(inner)  # (B, outer, s, s)
        return out if self.outermost else torch.cat([x, out], 1)


class UNetTranslator(_TranslationNetwork):
    """The U-Net generator of pix2pix: images (B, in_channels, S, S) -> images
    (B, out_channels, S, S) in [-1, 1].

    Level k (outermost first) halves with a (kernel 4, stride 2) convolution to
    ``width * min(2 ** (k - 1), 8)`` channels and doubles back with a transposed one,
    joined to its twin's input; LeakyReLU(0.2) down, ReLU up, a norm after each but the
    outermost halving and the innermost, Tanh out. Levels whose two widths are equal
    (the 8x-width middle) take Dropout(0.5) when ``dropout``, as the reference's do.

    Args:
        image_size: Side of the square images; divisible by ``2 ** downsamplings``.
        in_channels: Input image channels.
        out_channels: Output image channels (``None``: as the input).
        width: Channels of the outermost level (their ``ngf``).
        downsamplings: Levels of the U (their ``num_downs``: 8 for ``unet_256``);
            ``None``: as many as halve ``image_size`` evenly (5 for 32, 2 for 28).
        norm: ``"batch"`` (pix2pix's) or ``"instance"``.
        dropout: Dropout(0.5) in the 8x-width middle levels (pix2pix trains with it).
        init: Initialisation scheme, or ``None`` to keep PyTorch's defaults.
        init_generator: Random source for a reproducible initialisation.

    Raises:
        TypeError, ValueError: For a size the rule refuses or a bad argument, naming it.
    """

    def __init__(
        self,
        image_size: int = 256,
        in_channels: int = 3,
        out_channels: int | None = None,
        width: int = 64,
        downsamplings: int | None = None,
        *,
        norm: NormName = "batch",
        dropout: bool = False,
        init: InitScheme | None = "dcgan",
        init_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        size = check_int("image_size", image_size, 2)
        if downsamplings is None:
            downsamplings = (size & -size).bit_length() - 1  # the power of 2 dividing it
        depth = check_int("downsamplings", downsamplings, 1)
        if size % 2**depth:
            raise ValueError(
                f"`image_size` must be divisible by 2 ** downsamplings = {2**depth} for a "
                f"U-Net of {depth} levels (each halving is mirrored by a doubling joined to "
                f"it), got {image_size}"
            )
        in_channels = check_int("in_channels", in_channels, 1)
        out_channels = in_channels if out_channels is None else out_channels
        out_channels = check_int("out_channels", out_channels, 1)
        width = check_int("width", width, 1)
        norm = _check_norm(norm)
        self.config = dict(
            image_size=size,
            in_channels=in_channels,
            out_channels=out_channels,
            width=width,
            downsamplings=depth,
            norm=norm,
            dropout=bool(dropout),
        )
        widths = [width * min(2**k, 8) for k in range(depth)]  # inner width, outermost first
        level: _UNetLevel | None = None
        for k in reversed(range(1, depth)):  # innermost first: (widths[k-1] -> widths[k])
            outer, inner = widths[k - 1], widths[k]
            middle = level is not None and outer == inner
            level = _UNetLevel(outer, inner, norm, deeper=level, dropout=dropout and middle)
        self.net = _UNetLevel(
            out_channels, widths[0], norm, in_channels=in_channels, deeper=level, outermost=True
        )
        self._initialise(init, init_generator)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


# ----------------------------------------------------------------------- PatchGAN


def patch_receptive_field(layers: int) -> int:
    """The side of the input patch each score of a PatchGAN of ``layers`` layers sees
    (70 for 3, 34 for 2, 142 for 4)."""
    field = 1
    for _ in range(2):  # the two (kernel 4, stride 1) convolutions, output side first
        field += 3
    for _ in range(check_int("layers", layers, 1)):  # (kernel 4, stride 2) convolutions
        field = (field - 1) * 2 + 4
    return field


class PatchGANDiscriminator(_TranslationNetwork):
    """The PatchGAN discriminator: images (B, channels, S, S) -> scores (B, 1, s, s), one
    raw score per overlapping patch of ``patch_receptive_field(layers)`` pixels.

    A (kernel 4, stride 2) convolution and LeakyReLU(0.2); ``layers - 1`` more, each
    doubling the width (up to 8x) with a norm; one (kernel 4, stride 1) with a norm; a
    (kernel 4, stride 1) convolution to one channel. pix2pix feeds it the input and
    output images joined along the channels.

    Args:
        image_size: Side of the square images; ``image_size // 2 ** layers`` must be >= 3.
        channels: Input channels (pix2pix: input plus output channels).
        width: Channels of the first layer (their ``ndf``).
        layers: Stride-2 convolutions (their ``n_layers``); 3 sees 70x70 patches.
        norm: ``"batch"`` (pix2pix's) or ``"instance"`` (CycleGAN's).
        init: Initialisation scheme, or ``None`` to keep PyTorch's defaults.
        init_generator: Random source for a reproducible initialisation.

    Attributes:
        receptive_field: The side of the patch each score sees.

    Raises:
        TypeError, ValueError: For a size the rule refuses or a bad argument, naming it.
    """

    def __init__(
        self,
        image_size: int = 256,
        channels: int = 3,
        width: int = 64,
        layers: int = 3,
        *,
        norm: NormName = "batch",
        init: InitScheme | None = "dcgan",
        init_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        size = check_int("image_size", image_size, 1)
        layers = check_int("layers", layers, 1)
        if size // 2**layers < 3:
            raise ValueError(
                f"`image_size` must be >= {3 * 2**layers} for a PatchGAN of {layers} layers "
                f"(image_size // 2 ** layers >= 3 leaves a score map of at least 1x1), "
                f"got {image_size}"
            )
        channels = check_int("channels", channels, 1)
        width = check_int("width", width, 1)
        norm = _check_norm(norm)
        self.config = dict(
            image_size=size, channels=channels, width=width, layers=layers, norm=norm
        )
        self.receptive_field = patch_receptive_field(layers)
        bias = norm == "instance"
        # (B, channels, S, S) -> (B, width, S/2, S/2)
        sequence: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        previous = width
        for k in range(1, layers + 1):  # -> (B, width * min(2^k, 8), S/2^(k+1) or -1, ...)
            current = width * min(2**k, 8)
            stride = 2 if k < layers else 1
            sequence += [
                nn.Conv2d(previous, current, 4, stride=stride, padding=1, bias=bias),
                _norm(norm, current),
                nn.LeakyReLU(0.2),
            ]
            previous = current
        sequence.append(nn.Conv2d(previous, 1, 4, stride=1, padding=1))  # -> (B, 1, s, s)
        self.net = nn.Sequential(*sequence)
        self._initialise(init, init_generator)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


# ----------------------------------------------------------------------- registry

_NETWORKS: dict[str, type[_TranslationNetwork]] = {}


def register_translation_network(name: str, builder: type[nn.Module]) -> type[nn.Module]:
    """Make ``builder(**config)`` rebuildable by ``name`` from a translation task's
    checkpoint (the sibling of [`register_architecture`][ganlib.register_architecture]
    for networks that are not GAN pairs).

    Args:
        name: The network's name, e.g. ``"unet"``.
        builder: A network class whose instances record ``config`` (the keyword
            arguments that rebuild them); its ``kind`` is set to ``name``.

    Returns:
        ``builder``.

    Raises:
        ValueError: If ``name`` is empty or taken by another builder.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string, got {name!r}")
    if _NETWORKS.get(name, builder) is not builder:
        raise ValueError(f"translation network {name!r} is already registered")
    _NETWORKS[name] = builder  # type: ignore[assignment]
    builder.kind = name  # type: ignore[attr-defined]
    return builder


def translation_networks() -> list[str]:
    """The registered translation network names."""
    return sorted(_NETWORKS)


def build_translation_network(name: str, config: dict[str, Any]) -> nn.Module:
    """A new network of the registered ``name`` built from ``config`` (weights initialised
    as the builder does; a checkpoint's weights are loaded over them).

    Raises:
        ValueError: If ``name`` is not registered, or ``config`` names a setting it lacks.
    """
    if name not in _NETWORKS:
        raise ValueError(
            f"unknown translation network {name!r}; registered: {translation_networks()}"
        )
    builder = _NETWORKS[name]
    accepted = set(inspect.signature(builder).parameters)
    unknown = sorted(set(config) - accepted)
    if unknown:
        raise ValueError(
            f"translation network {name!r} has no setting {', '.join(map(repr, unknown))}; "
            f"it takes {sorted(accepted)}"
        )
    return builder(**config)

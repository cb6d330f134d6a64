"""What the architecture families share: spectral normalisation, conditional BatchNorm, and
the size bound every builder checks before it allocates a network.

Spectral normalisation (Miyato et al., 2018) divides a weight by an estimate of its
largest singular value, kept by one power iteration per training forward; it is
PyTorch's ``torch.nn.utils.parametrizations.spectral_norm``, applied here to every
layer of a network at once, with its random start vectors drawn reproducibly. A weight
whose matrix is one row or one column (a 1x1 convolution of a grayscale image, a linear
layer to one logit) has its norm as its only singular value: it is divided by that,
exactly, with no power iteration. (PyTorch's power iteration on a one-element vector
also breaks ``torch.compile``'s backward when a network runs twice before it, as a
discriminator on real and fake images does.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from .._validation import check_int

__all__ = [
    "MAX_ACTIVATIONS",
    "MAX_PARAMETERS",
    "ConditionalBatchNorm2d",
    "MinibatchStd",
    "check_network_size",
    "spectral_norm_",
]

# A builder refuses a pair with more parameters than this (generator and discriminator
# together: 8 GB of float32 weights, 24 GB with Adam's two moments), the same bound as
# ``checkpoint.MAX_LOAD_PARAMETERS``.
MAX_PARAMETERS = 2_000_000_000
# ... or whose layers' outputs hold more elements than this for one image through the
# generator and then the discriminator (4 GiB in float32, before the backward pass's).
MAX_ACTIVATIONS = 2**30


def check_network_size(
    build: Callable[[], tuple[nn.Module, nn.Module]],
    image_size: int,
    latent_dim: int,
    num_classes: int | None,
    described: str,
) -> None:
    """Refuse a pair too large to train, before allocating it: ``build()`` runs on the meta
    device (no memory, no random draws) and its parameters are counted; where the layers'
    outputs could exceed `MAX_ACTIVATIONS`, one image goes through its generator and
    discriminator there, counting every layer's output.

    Args:
        build: Builds the generator and the discriminator, as the real build will.
        image_size: The side of the pair's square images.
        latent_dim: The generator's latent size.
        num_classes: The classes of a conditional pair, else ``None``.
        described: The builder's call, for the message (``"DCGAN(image_size=4096, ...)"``).

    Raises:
        ValueError: Over `MAX_PARAMETERS` or `MAX_ACTIVATIONS`, naming the count, the bound
            and the arguments that set them.
    """
    with torch.device("meta"):
        generator, discriminator = build()
    networks = (generator, discriminator)
    parameters = sum(p.numel() for network in networks for p in network.parameters())
    if parameters > MAX_PARAMETERS:
        raise ValueError(
            f"{described} would have {parameters:,} parameters, over the bound of "
            f"{MAX_PARAMETERS:,} (ganlib.models.layers.MAX_PARAMETERS): lower `width`, cap "
            "it with `max_width`, or lower `image_size`"
        )
    # No layer's output holds more channels than the widest weight dimension, nor more
    # positions than the image: where that ceiling is under the bound (every ordinary
    # network), the exact count, a forward pass on the meta device (tens of ms), is skipped.
    leaves = [m for network in networks for m in network.modules() if not any(m.children())]
    widest = max((max(p.shape, default=1) for n in networks for p in n.parameters()), default=1)
    if len(leaves) * widest * image_size**2 <= MAX_ACTIVATIONS:
        return
    elements = [0]

    def count(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, Tensor):
            elements[0] += output.numel()

    handles = [leaf.register_forward_hook(count) for leaf in leaves]
    labels = () if num_classes is None else (torch.zeros(1, dtype=torch.long, device="meta"),)
    try:
        with torch.no_grad():
            discriminator(generator(torch.zeros(1, latent_dim, device="meta"), *labels), *labels)
    finally:
        for handle in handles:
            handle.remove()
    if elements[0] > MAX_ACTIVATIONS:
        raise ValueError(
            f"{described} would hold {elements[0]:,} activations for one image through its "
            f"generator and discriminator, over the bound of {MAX_ACTIVATIONS:,} "
            "(ganlib.models.layers.MAX_ACTIVATIONS): lower `image_size` or `width`"
        )


# The layers spectral normalisation applies to: each has a 2-D-or-more ``weight``.
_NORMALISED = (nn.Conv2d, nn.Linear, nn.Embedding)


def spectral_norm_(
    module: nn.Module,
    *,
    generator: torch.Generator | None = None,
    skip: Collection[nn.Module] = (),
) -> nn.Module:
    """Spectrally normalise every convolution, linear and embedding layer of ``module``.

    Call it after the weights are initialised: the power iteration starts from them.

    Args:
        module: The network, changed in place.
        generator: Random source of the power iteration's start vectors (a seed drawn
            from it seeds them, leaving the global random state as it was); the
            global CPU generator when ``None``.
        skip: Layers to leave as they are.

    Returns:
        ``module`` itself.
    """
    forked: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    seed = None
    if generator is not None:
        seed = int(torch.randint(2**62, (1,), generator=generator))
        forked = torch.random.fork_rng(devices=[])
    with forked:
        if seed is not None:
            torch.default_generator.manual_seed(seed)  # the CPU generator only
        for layer in list(module.modules()):
            if isinstance(layer, _NORMALISED) and not any(layer is s for s in skip):
                if min(layer.weight.shape[0], layer.weight[0].numel()) == 1:
                    parametrize.register_parametrization(layer, "weight", _VectorNorm())
                else:
                    spectral_norm(layer)
    return module


class _VectorNorm(nn.Module):
    """Divides a weight by its norm: the exact spectral normalisation of a weight whose
    matrix (``weight.flatten(1)``) is one row or one column."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, weight: Tensor) -> Tensor:
        return weight / torch.linalg.vector_norm(weight).clamp_min(self.eps)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al., 2017),
    as SNGAN's and BigGAN's conditional generators use.

    Normalises without affine parameters, then applies ``scale[label]`` and
    ``shift[label]``; they start at 1 and 0, so a new layer is a plain BatchNorm.

    Args:
        features: Channels of the input.
        num_classes: Classes of the labels.
    """

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(features, affine=False)
        self.scale = nn.Embedding(num_classes, features)
        self.shift = nn.Embedding(num_classes, features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        scale = self.scale(labels)[:, :, None, None].to(x.dtype)  # (B, C, 1, 1)
        shift = self.shift(labels)[:, :, None, None].to(x.dtype)
        return self.norm(x) * scale + shift


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al., 2018; StyleGAN2-ADA's
    ``MinibatchStdLayer``): one more channel holding how much the images of a small group
    differ, so that D can tell a batch of near-copies (a collapsing G) from real variety.

    The batch is split into groups of ``group_size`` images (strided, as StyleGAN's: image
    ``i`` joins group ``i % (B // group_size)``), or of the largest size under it that
    divides the batch (a batch of 50 in groups of 4 makes groups of 2). Each group's
    per-feature standard deviation, averaged over channels and positions, fills the new
    channel of its images. A group of one image has no spread: its channel holds 1e-4,
    the square root of the 1e-8 added under it for a finite gradient.

    Args:
        group_size: Images per group, >= 1.

    Raises:
        TypeError: If ``group_size`` is not an integer.
        ValueError: If ``group_size`` is under 1.

    Examples:
        >>> MinibatchStd(4)(torch.zeros(8, 3, 5, 5)).shape
        torch.Size([8, 4, 5, 5])
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = check_int("group_size", group_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        group = next(g for g in range(min(self.group_size, batch), 0, -1) if batch % g == 0)
        y = x.float().reshape(group, -1, channels, height, width)  # (G, B/G, C, H, W)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # (B/G, C, H, W): spread
        y = y.mean((1, 2, 3)).to(x.dtype)  # (B/G,)
        y = y.reshape(-1, 1, 1, 1).repeat(group, 1, height, width)  # (B, 1, H, W)
        return torch.cat([x, y], 1)  # (B, C + 1, H, W)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"

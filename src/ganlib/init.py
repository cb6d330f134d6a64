"""Weight-initialisation utilities.

Every scheme picks the layers it touches with ``isinstance`` (never by class
name), so subclasses of ``nn.Conv2d`` or ``nn.BatchNorm2d`` are covered too,
and every scheme takes an optional ``torch.Generator`` so an initialisation
can be repeated exactly without touching the global random state.

Examples:
    >>> import torch
    >>> from ganlib import DCGAN
    >>> from ganlib.init import init_weights_
    >>> gan = DCGAN(image_size=28, init=None)
    >>> _ = init_weights_(gan, "orthogonal", generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["InitScheme", "dcgan_init_", "init_weights_"]

InitScheme = Literal["dcgan", "xavier", "kaiming", "orthogonal"]

# Layers whose weight is a learned filter or projection.
_WEIGHT_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
# Normalisation layers with an affine scale (BatchNorm, GroupNorm, InstanceNorm, LayerNorm).
_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _init_filter(
    weight: torch.Tensor,
    scheme: InitScheme,
    generator: torch.Generator | None,
) -> None:
    if scheme == "dcgan":
        nn.init.normal_(weight, 0.0, 0.02, generator=generator)
    elif scheme == "xavier":
        nn.init.xavier_normal_(weight, generator=generator)
    elif scheme == "kaiming":
        # LeakyReLU(0.2) is what DCGAN-style networks use between layers.
        nn.init.kaiming_normal_(weight, a=0.2, nonlinearity="leaky_relu", generator=generator)
    else:
        nn.init.orthogonal_(weight, generator=generator)


def _stored_weight(layer: nn.Module) -> torch.Tensor:
    """The tensor a layer stores its weight in: under a parametrization (spectral norm),
    ``layer.weight`` is recomputed on every access, so writing into it would change nothing."""
    if parametrize.is_parametrized(layer, "weight"):
        return getattr(layer.parametrizations, "weight").original  # noqa: B009
    return getattr(layer, "weight")  # noqa: B009


@torch.no_grad()
def init_weights_(
    module: nn.Module,
    scheme: InitScheme = "dcgan",
    *,
    generator: torch.Generator | None = None,
    argument_name: str = "scheme",
) -> nn.Module:
    """Initialise every convolution, linear and normalisation layer of ``module`` in place.

    Schemes:
        - ``"dcgan"``: weights ~ N(0, 0.02) (the DCGAN paper).
        - ``"xavier"``: Glorot normal.
        - ``"kaiming"``: He normal for LeakyReLU(0.2).
        - ``"orthogonal"``: orthogonal matrices (Saxe et al.).

    In every scheme biases are set to 0, and normalisation layers get scale
    ~ N(1, 0.02) and shift 0, as the DCGAN paper does for BatchNorm. A spectrally
    normalised layer gets its stored (unnormalised) weight initialised; its
    spectral-norm estimate catches up by one power iteration per training forward.

    Args:
        module: The network to initialise; all its submodules are visited.
        scheme: One of the schemes above.
        generator: Random source for reproducible initialisation; the global
            torch generator when ``None``.
        argument_name: The name an unknown ``scheme`` is reported under: a builder
            that takes the scheme as its own argument passes that argument's name
            (``DCGAN(init=...)`` passes ``"init"``), so the message names what its
            caller wrote.

    Returns:
        ``module`` itself, so the call can be chained.

    Raises:
        ValueError: If ``scheme`` is not one of the names above (named as
            ``argument_name`` says).
        TypeError: If ``module`` is not an ``nn.Module``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {type(module).__name__}")
    if scheme not in get_args(InitScheme):
        raise ValueError(
            f"`{argument_name}` must be one of {list(get_args(InitScheme))}, got {scheme!r}"
        )
    for layer in module.modules():
        if isinstance(layer, _WEIGHT_LAYERS):
            _init_filter(_stored_weight(layer), scheme, generator)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, _NORM_LAYERS):
            weight = getattr(layer, "weight", None)
            bias = getattr(layer, "bias", None)
            if isinstance(weight, torch.Tensor):
                nn.init.normal_(weight, 1.0, 0.02, generator=generator)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)
    return module


def dcgan_init_(module: nn.Module, *, generator: torch.Generator | None = None) -> nn.Module:
    """The DCGAN paper's initialisation, in place.

    Convolution and transposed-convolution weights ~ N(0, 0.02), BatchNorm
    weights ~ N(1, 0.02), all biases 0. Shorthand for
    ``init_weights_(module, "dcgan", generator=generator)``.

    Args:
        module: The network to initialise.
        generator: Random source for reproducible initialisation.

    Returns:
        ``module`` itself.
    """
    return init_weights_(module, "dcgan", generator=generator)

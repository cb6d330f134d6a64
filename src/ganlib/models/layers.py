"""Layers shared by the architecture families: spectral normalisation, conditional BatchNorm.

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
from collections.abc import Collection

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ConditionalBatchNorm2d", "spectral_norm_"]

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

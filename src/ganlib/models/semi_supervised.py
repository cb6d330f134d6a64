"""The semi-supervised GAN's MNIST networks (Salimans et al., 2016, feature matching).

The pair of ``openai/improved-gan``'s ``train_mnist_feature_matching.py``, configurable:

- **Discriminator**: an MLP of weight-normalised dense layers (784-1000-500-250-250-250-K)
  with Gaussian noise added before each of them (sigma 0.3 on the input, 0.5 after each
  hidden layer) and ReLU between. It returns ``K`` class logits (the fake class's logit is
  fixed at 0, see ``ganlib.tasks.semi_supervised``) and the last hidden layer, whose mean
  feature matching compares. The hidden layers' scales are set by a data-dependent pass
  ([`initialise_from_batch`][ganlib.models.semi_supervised.initialise_from_batch]) and then
  stay fixed, as the reference's ``train_scale=False``; the logit layer's scale trains.
- **Generator**: latent (100) -> 500 -> 500 (dense, batch norm with a shift and no scale,
  softplus) -> a weight-normalised dense layer to the pixels and a sigmoid.

Pixel range: the reference works in [0, 1]; ganlib's images are in [-1, 1]. The generator
returns ``2 * sigmoid(a) - 1`` and the discriminator first maps its input back by
``(x + 1) / 2``, so the discriminator sees the reference's [0, 1] pixels (and its input
noise keeps the reference's scale) whichever side an image came from.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_int, check_positive_float

__all__ = [
    "GaussianNoise",
    "SemiSupervisedDiscriminator",
    "SemiSupervisedGenerator",
    "SemiSupervisedOutput",
    "WeightNormLinear",
    "initialise_from_batch",
]


class WeightNormLinear(nn.Module):
    """A dense layer with weight normalisation (Salimans & Kingma, 2016).

    ``weight = scale * direction / ||direction||`` (each output unit's row normalised), so
    the scale ``g`` alone sets each unit's gain. While ``initialising`` is set, a forward
    pass instead sets ``scale`` and ``bias`` so that this batch's pre-activations have zero
    mean and unit variance per unit (the reference's data-dependent initialisation).

    Args:
        in_features: Inputs per example.
        out_features: Outputs per example.
        train_scale: Whether ``scale`` is trained (the reference trains only the logit
            layer's and the generator's output layer's).
        init_std: Standard deviation of the initial ``direction`` (the reference's 0.1);
            it matters though the norm divides it out: Adam's step is relative to it.
    """

    def __init__(
        self, in_features: int, out_features: int, *, train_scale: bool, init_std: float = 0.1
    ) -> None:
        super().__init__()
        self.direction = nn.Parameter(torch.randn(out_features, in_features) * init_std)
        self.scale = nn.Parameter(torch.ones(out_features), requires_grad=train_scale)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.initialising = False

    @property
    def weight(self) -> Tensor:
        """The effective weight, (out_features, in_features)."""
        norm = torch.linalg.vector_norm(self.direction, dim=1, keepdim=True)
        return self.direction * (self.scale.unsqueeze(1) / norm)

    def forward(self, x: Tensor) -> Tensor:
        if not self.initialising:
            return F.linear(x, self.weight, self.bias)
        with torch.no_grad():
            out = F.linear(x, self.weight)  # (B, out), before the bias
            mean = out.mean(dim=0)
            std = (out - mean).square().mean(dim=0).sqrt()  # the population std, as the reference
            self.scale.div_(std)
            self.bias.copy_(-mean / std)
            return (out - mean) / std

    def extra_repr(self) -> str:
        out_features, in_features = self.direction.shape
        return f"{in_features}, {out_features}, train_scale={self.scale.requires_grad}"


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise in training mode; the identity in eval mode.

    The noise comes from ``generator`` when one is set (a task sets its run's step stream,
    so the noise follows the run's seed and resumes with it), else from the global
    random generator of the input's device.
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = check_positive_float("sigma", sigma, allow_zero=True)
        self.generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0.0:
            return x
        if self.generator is None:
            return x + self.sigma * torch.randn_like(x)
        noise = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return x + self.sigma * noise

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class SemiSupervisedOutput(NamedTuple):
    """What the discriminator returns."""

    logits: Tensor
    """(B, num_classes): the real classes' logits; the fake class's is 0."""
    features: Tensor
    """(B, widths[-1]): the last hidden layer (after its ReLU), for feature matching."""


class SemiSupervisedDiscriminator(nn.Module):
    """The reference's MNIST classifier-discriminator: noisy, weight-normalised MLP.

    Args:
        image_shape: (C, H, W) of the images, in [-1, 1].
        num_classes: Real classes ``K``; the logits are (B, K).
        widths: Hidden layer widths, input side first (the reference's 1000-500-250-250-250).
        input_noise: Standard deviation of the noise on the [0, 1] input pixels.
        hidden_noise: Standard deviation of the noise after each hidden layer.

    Raises:
        ValueError: For an empty ``widths``, a size below 1 or a negative noise.
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        widths: Sequence[int] = (1000, 500, 250, 250, 250),
        *,
        input_noise: float = 0.3,
        hidden_noise: float = 0.5,
    ) -> None:
        super().__init__()
        self.image_shape = _check_shape(image_shape)
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.widths = _check_widths(widths)
        sizes = [math.prod(self.image_shape), *self.widths]
        self.noise = nn.ModuleList(
            GaussianNoise(input_noise if i == 0 else hidden_noise) for i in range(len(sizes))
        )
        self.hidden = nn.ModuleList(
            WeightNormLinear(n_in, n_out, train_scale=False)
            for n_in, n_out in itertools.pairwise(sizes)
        )
        self.logit_layer = WeightNormLinear(sizes[-1], self.num_classes, train_scale=True)

    def forward(self, images: Tensor) -> SemiSupervisedOutput:
        """Class logits and last-hidden-layer features of ``images`` (B, C, H, W) in [-1, 1]."""
        h = (images.flatten(1) + 1) * 0.5  # (B, C*H*W) in the reference's [0, 1]
        for noise, layer in zip(self.noise[:-1], self.hidden, strict=True):
            h = F.relu(layer(noise(h)))  # (B, width)
        features = h  # (B, widths[-1]): before the last noise layer, as the reference
        logits = self.logit_layer(self.noise[-1](h))  # (B, K)
        return SemiSupervisedOutput(logits, features)

    def draw_noise_from(self, generator: torch.Generator | None) -> None:
        """Draw every noise layer's noise from ``generator`` (``None``: the global one)."""
        for layer in self.noise.children():
            if isinstance(layer, GaussianNoise):
                layer.generator = generator

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments (plain values): ``SemiSupervisedDiscriminator(**config)``
        rebuilds this network's shape."""
        return {
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "widths": list(self.widths),
            "input_noise": self.noise[0].sigma,
            "hidden_noise": self.noise[1].sigma,
        }

    @torch.no_grad()
    def classifier(self) -> nn.Sequential:
        """A plain copy for inference: ``nn.Sequential(Flatten, Linear, ReLU, ..., Linear)``
        mapping images (B, C, H, W) in [-1, 1] to the ``K`` class logits as this network
        does in eval mode (no noise), in float32 on this network's device.

        Each weight-normalised layer becomes an ``nn.Linear`` holding its effective weight;
        the first also takes in the ``(x + 1) / 2`` pixel mapping (``W (x + 1) / 2 + b =
        (W / 2) x + (b + W 1 / 2)``), so the copy needs nothing of ganlib to run.
        """
        layers: list[nn.Module] = [nn.Flatten()]
        weighted = [*self.hidden, self.logit_layer]
        for index, layer in enumerate(weighted):
            weight, bias = layer.weight.float(), layer.bias.float()
            if index == 0:  # the input mapping to [0, 1], folded in
                bias, weight = bias + 0.5 * weight.sum(dim=1), 0.5 * weight
            linear = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device)
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
            layers.append(linear)
            if index < len(weighted) - 1:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers).eval()


class SemiSupervisedGenerator(nn.Module):
    """The reference's MNIST generator: an MLP with batch norm and a sigmoid output.

    Args:
        image_shape: (C, H, W) of the images it makes, in [-1, 1].
        latent_dim: Size of the latent; the reference draws it uniform on [0, 1)
            (``sample_latents``).
        widths: Hidden layer widths (the reference's 500-500).

    Raises:
        ValueError: For an empty ``widths`` or a size below 1.
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 100,
        widths: Sequence[int] = (500, 500),
    ) -> None:
        super().__init__()
        self.image_shape = _check_shape(image_shape)
        self.latent_dim = check_int("latent_dim", latent_dim, 1)
        self.widths = _check_widths(widths)
        sizes = [self.latent_dim, *self.widths]
        # The batch norm's shift is the layer's bias (the reference's nn.batch_norm, g=None).
        self.hidden = nn.ModuleList(
            nn.Linear(n_in, n_out, bias=False) for n_in, n_out in itertools.pairwise(sizes)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(n, eps=1e-6, affine=False) for n in self.widths)
        self.shifts = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in self.widths)
        self.output_layer = WeightNormLinear(
            sizes[-1], math.prod(self.image_shape), train_scale=True
        )
        # Lasagne's default (Glorot-uniform) weights, as the reference's dense layers.
        for layer in self.hidden.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
        nn.init.xavier_uniform_(self.output_layer.direction)

    def sample_latents(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``n`` latents uniform on [0, 1), (n, latent_dim), as the reference draws them."""
        check_int("n", n, 1)
        if device is None:
            device = self.shifts[0].device
        return torch.rand(n, self.latent_dim, device=device, generator=generator)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments (plain values)."""
        return {
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "widths": list(self.widths),
        }

    def forward(self, latents: Tensor) -> Tensor:
        """Images (B, C, H, W) in (-1, 1) from ``latents`` (B, latent_dim)."""
        h = latents
        for layer, norm, shift in zip(self.hidden, self.norms, self.shifts, strict=True):
            h = F.softplus(norm(layer(h)) + shift)  # (B, width)
        pixels = torch.sigmoid(self.output_layer(h))  # (B, C*H*W) in the reference's (0, 1)
        return (pixels * 2 - 1).view(-1, *self.image_shape)  # (B, C, H, W) in ganlib's (-1, 1)


@torch.no_grad()
def initialise_from_batch(module: nn.Module, batch: Tensor) -> None:
    """Data-dependent initialisation of every ``WeightNormLinear`` layer in ``module``.

    Runs ``module(batch)`` once in training mode (noise on, as the reference's init pass),
    each weight-normalised layer in turn rescaling itself so that its pre-activations on
    this batch have zero mean and unit variance per unit. The module's mode is restored.

    Args:
        module: A network holding weight-normalised layers, changed in place.
        batch: Inputs to ``module`` (the reference uses 500 training images).

    Raises:
        ValueError: If ``batch`` has fewer than 2 examples (no variance to measure).
    """
    if batch.shape[0] < 2:
        raise ValueError(f"`batch` must hold >= 2 examples, got {batch.shape[0]}")
    layers = [m for m in module.modules() if isinstance(m, WeightNormLinear)]
    was_training = module.training
    module.train()
    for layer in layers:
        layer.initialising = True
    try:
        module(batch)
    finally:
        for layer in layers:
            layer.initialising = False
        module.train(was_training)


def _check_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(image_shape)
    if len(shape) != 3:
        raise ValueError(f"`image_shape` must be (C, H, W), got {shape}")
    for value in shape:
        check_int("image_shape", value, 1)
    return shape


def _check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    values = tuple(widths)
    if not values:
        raise ValueError("`widths` must name at least one hidden layer, got ()")
    for value in values:
        check_int("widths", value, 1)
    return values

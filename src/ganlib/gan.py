"""The GAN-pair contract: what every generator/discriminator pair provides, written once.

A [`GAN`][ganlib.GAN] holds the two networks and says how to feed the generator:
``latent_dim``, ``num_classes`` (``None`` for an unconditional pair), the image
shape, and the ``config`` and architecture name that rebuild it from a
checkpoint. Latent and label sampling and the label checks live here, so every
architecture, the Trainer, sampling, the metrics and the CLI draw inputs the
same way.

Architectures are registered by name ([`register_architecture`][ganlib.register_architecture]); a
checkpoint records the name, and [`build_gan`][ganlib.gan.build_gan] rebuilds any registered
architecture from it. A plain ``(generator, discriminator, latent_dim)`` tuple,
or any object with ``generator``, ``discriminator`` and ``sample_noise``, is
adapted to the contract by [`as_gan`][ganlib.gan.as_gan].
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._validation import check_int

__all__ = [
    "GAN",
    "NoiseSampler",
    "architectures",
    "as_gan",
    "build_gan",
    "check_labels",
    "register_architecture",
]

# (n, device, random source) -> latents, the signature of GAN.sample_noise.
NoiseSampler = Callable[[int, torch.device, "torch.Generator | None"], Tensor]


def check_labels(labels: Any, num_classes: int | None, batch: int | None = None) -> Tensor | None:
    """Class labels checked for a model with ``num_classes`` classes (``None``: unconditional).

    Args:
        labels: Integer class indices shaped (B,), or ``None``.
        num_classes: The model's classes; ``None`` for an unconditional model.
        batch: The batch size the labels must match, when known.

    Returns:
        The labels as int64 (``None`` for an unconditional model).

    Raises:
        ValueError: Labels missing for a conditional model, given to an
            unconditional one, of the wrong shape, or out of ``[0, num_classes)``.
        TypeError: Labels that are not an integer tensor.

    The range check reads the values, so it runs only where that costs no device
    synchronisation: on CPU tensors, outside ``torch.compile``. The Trainer checks
    a data set's labels once before training, on any device.
    """
    if num_classes is None:
        if labels is not None:
            raise ValueError(
                "`labels` given to an unconditional model; build the pair with "
                "num_classes=K (DCGAN(num_classes=K), ResNetGAN(num_classes=K)) to condition "
                "on classes"
            )
        return None
    if labels is None:
        raise ValueError(
            f"`labels` are required: the model is conditional (num_classes={num_classes}); "
            "train on (images, labels) batches and pass labels when sampling"
        )
    if not isinstance(labels, Tensor):
        raise TypeError(f"`labels` must be a tensor of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(
            f"`labels` must be integer class indices in [0, {num_classes}) (not one-hot or "
            f"scores), got dtype {labels.dtype}"
        )
    if labels.dim() != 1 or (batch is not None and labels.shape[0] != batch):
        expected = f"({batch},)" if batch is not None else "(B,)"
        raise ValueError(f"`labels` must be shaped {expected}, got {tuple(labels.shape)}")
    if labels.device.type == "cpu" and not torch.compiler.is_compiling() and labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"`labels` must lie in [0, {num_classes}), got values from {low} to {high}"
            )
    return labels.long()


class GAN(nn.Module):
    """Base class of a generator/discriminator pair.

    A subclass builds ``generator`` and ``discriminator`` and sets ``latent_dim``,
    ``image_shape``, ``num_classes`` and ``config`` (the keyword arguments that
    rebuild it); its class attribute ``arch`` is its registry name. The generator
    is called as ``generator(z)`` or, conditional, ``generator(z, labels)``; the
    discriminator as ``discriminator(images)`` / ``discriminator(images, labels)``,
    returning one raw logit per image.

    Attributes:
        arch: The architecture's registry name (``""``: not rebuildable by name).
        generator: Latents (and labels) -> images in [-1, 1].
        discriminator: Images (and labels) -> logits (B,).
        latent_dim: Size of the latent vector.
        num_classes: Classes of a conditional pair, else ``None``.
        image_shape: (C, H, W) of the generator's output.
        config: Keyword arguments of the builder that make this pair again.
    """

    arch: ClassVar[str] = ""
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    num_classes: int | None
    image_shape: tuple[int, ...]
    config: dict[str, Any]

    def _record(
        self,
        image_size: int,
        channels: int,
        latent_dim: int,
        width: int,
        max_width: int | None,
        num_classes: int | None,
        **extra: Any,
    ) -> None:
        """Check the sizes every builder takes and record the pair's shape and ``config``
        (``num_classes`` joins it only for a conditional pair, as earlier configs had it)."""
        for name, value in (("channels", channels), ("latent_dim", latent_dim), ("width", width)):
            check_int(name, value, 1)
        if max_width is not None:
            check_int("max_width", max_width, 1)
        if num_classes is not None:
            check_int("num_classes", num_classes, 1)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.image_shape = (channels, image_size, image_size)
        self.config = dict(
            image_size=image_size,
            channels=channels,
            latent_dim=latent_dim,
            width=width,
            max_width=max_width,
            **extra,
        )
        if num_classes is not None:
            self.config["num_classes"] = num_classes

    def _device(self, device: torch.device | str | None) -> torch.device:
        if device is not None:
            return torch.device(device)
        first = next(self.generator.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def sample_noise(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``n`` latents ~ N(0, I), shaped (n, latent_dim).

        Args:
            n: How many latents.
            device: Where to put them; the generator's device when ``None``.
            generator: Random source; must live on ``device``.
        """
        check_int("n", n, 1)
        return self._draw_latents(n, self._device(device), generator)

    def _draw_latents(self, n: int, device: torch.device, rng: torch.Generator | None) -> Tensor:
        return torch.randn(n, self.latent_dim, device=device, generator=rng)

    def sample_labels(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``n`` class labels uniformly from ``[0, num_classes)``.

        Raises:
            ValueError: For an unconditional model.
        """
        check_int("n", n, 1)
        if self.num_classes is None:
            raise ValueError("sample_labels needs a conditional pair (built with num_classes=K)")
        return torch.randint(
            self.num_classes, (n,), device=self._device(device), generator=generator
        )

    def generator_inputs(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, ...]:
        """What the generator takes for ``n`` images: ``(latents,)``, or ``(latents,
        labels)`` with uniform labels for a conditional pair."""
        z = self.sample_noise(n, device, generator)
        if self.num_classes is None:
            return (z,)
        return z, self.sample_labels(n, z.device, generator)

    def extra_repr(self) -> str:
        config = self.config if isinstance(self.config, dict) else {}
        return ", ".join(f"{key}={value}" for key, value in config.items())


class _AdaptedPair(GAN):
    """A tuple pair or a duck-typed object seen through the [`GAN`][ganlib.GAN] contract."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        sampler: NoiseSampler,
        num_classes: int | None,
        config: Any = None,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self._sampler = sampler
        self.num_classes = num_classes
        self.config = config
        with torch.no_grad():  # the latent size, from one draw
            self.latent_dim = int(sampler(1, self._device(None), None).shape[1])
        self.image_shape = self._probe_image_shape()

    def _probe_image_shape(self) -> tuple[int, ...]:
        shape = getattr(self.generator, "image_shape", None)
        if shape is not None:
            return tuple(shape)
        was_training = self.generator.training
        self.generator.eval()
        try:
            with torch.no_grad():
                inputs = self.generator_inputs(2)
                return tuple(self.generator(*inputs).shape[1:])
        finally:
            self.generator.train(was_training)

    def _draw_latents(self, n: int, device: torch.device, rng: torch.Generator | None) -> Tensor:
        return self._sampler(n, device, rng)


def as_gan(gan: Any) -> GAN:
    """``gan`` seen through the [`GAN`][ganlib.GAN] contract.

    Args:
        gan: A [`GAN`][ganlib.GAN] (returned as it is); an object with ``.generator``,
            ``.discriminator`` and ``.sample_noise(n, device, generator)`` (and
            optionally ``num_classes`` and ``config``); or a tuple ``(generator,
            discriminator, latent_dim or sampler)``.

    Raises:
        TypeError: For anything else.
    """
    if isinstance(gan, GAN):
        return gan
    num_classes = getattr(gan, "num_classes", None)
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, 1)
    if all(hasattr(gan, name) for name in ("generator", "discriminator", "sample_noise")):
        return _AdaptedPair(
            gan.generator,
            gan.discriminator,
            gan.sample_noise,
            num_classes,
            getattr(gan, "config", None),
        )
    if isinstance(gan, (tuple, list)) and len(gan) == 3:
        generator, discriminator, latent = gan
        if isinstance(generator, nn.Module) and isinstance(discriminator, nn.Module):
            if callable(latent):
                return _AdaptedPair(generator, discriminator, latent, None)
            dim = check_int("latent_dim (third item of `gan`)", latent, 1)

            def gaussian(n: int, device: torch.device, rng: torch.Generator | None) -> Tensor:
                return torch.randn(n, dim, device=device, generator=rng)

            return _AdaptedPair(generator, discriminator, gaussian, None)
    raise TypeError(
        "`gan` must provide .generator, .discriminator and .sample_noise (like ganlib.DCGAN), "
        f"or be a (generator, discriminator, latent_dim or sampler) tuple; got {type(gan).__name__}"
    )


# ---------------------------------------------------------------- the registry

_ARCHITECTURES: dict[str, Callable[..., GAN]] = {}


def register_architecture(name: str, builder: Callable[..., GAN]) -> Callable[..., GAN]:
    """Make ``builder(**config)`` rebuildable by ``name`` from checkpoints.

    Checkpoints record ``gan.arch`` and ``gan.config``; [`build_gan`][ganlib.gan.build_gan],
    [`ganlib.checkpoint.load_gan`][ganlib.load_gan] and ``ganlib sample`` call the builder
    registered under that name. A class builder gets ``arch = name`` set.

    Args:
        name: The architecture's name, e.g. ``"dcgan"``.
        builder: A [`GAN`][ganlib.GAN] subclass or a function returning one.

    Returns:
        ``builder``, so this works as a decorator's body too.

    Raises:
        ValueError: If ``name`` is empty or taken by another builder.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string, got {name!r}")
    if _ARCHITECTURES.get(name, builder) is not builder:
        raise ValueError(f"architecture {name!r} is already registered")
    _ARCHITECTURES[name] = builder
    if isinstance(builder, type) and issubclass(builder, GAN):
        builder.arch = name
    return builder


def architectures() -> list[str]:
    """The registered architecture names."""
    return sorted(_ARCHITECTURES)


def build_gan(arch: str, config: dict[str, Any]) -> GAN:
    """A new pair of the registered architecture ``arch`` built from ``config``.

    Raises:
        ValueError: If ``arch`` is not registered, or ``config`` names a setting it lacks.
    """
    if arch not in _ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {arch!r}; registered: {architectures()} "
            "(import the module that registers it first)"
        )
    builder = _ARCHITECTURES[arch]
    accepted = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(config) - set(accepted))
    if unknown and not takes_any:
        raise ValueError(
            f"architecture {arch!r} has no setting {', '.join(map(repr, unknown))}; "
            f"it takes {sorted(n for n in accepted if n != 'self')}"
        )
    return builder(**config)

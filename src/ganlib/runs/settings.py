"""A run's settings: one definition for the ``ganlib train`` flags, ``config.toml`` keys,
presets and checks.

Each field of [`RunSettings`][ganlib.runs.RunSettings] is a setting: its type and default
come from the annotation, its help from the class docstring, and its rule (a range, a set
of choices) from the field's `Rule`. ``ganlib train`` makes one flag per field, a config
file sets the same names, and [`RunSettings.validate`][ganlib.runs.RunSettings.validate]
checks every value the same way wherever it came from.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, get_args

from ..augment import AugmentName, resolve_augment

__all__ = [
    "CLASSIC_RECIPE",
    "DEFAULT_WIDTHS",
    "SMALL_COLOUR",
    "SMALL_DATA",
    "SMALL_IMAGE",
    "SNGAN_RECIPE",
    "SNGAN_RECIPE_RESNET",
    "Rule",
    "RunSettings",
    "flag_name",
]

# The network a run gets when it names none: for small grayscale images (one channel, at
# most SMALL_IMAGE pixels a side: MNIST, Fashion-MNIST) the residual family, which
# docs/results.md measured best at the full MNIST budget; DCGAN for the rest, and for
# conditional runs (where DCGAN measured better on MNIST). A width not given is the
# architecture's entry here (a user's architecture: its builder's default).
SMALL_IMAGE = 32
DEFAULT_WIDTHS = {"dcgan": 64, "resnet": 32}
# A GAN pair on fewer images than this trains with adaptive augmentation (``augment =
# "ada"``) unless ``augment`` is given. Provisional: ADA leaves ``p`` at 0 where D does not
# overfit, so the bound mostly saves its bookkeeping on large data (issue 30 measures it).
ADA_BELOW_IMAGES = 20_000
# A data set of fewer images than this is small: small grayscale images then train
# ResNetGAN with SNGAN's loss and Adam betas (`SNGAN_RECIPE_RESNET`), which on 900 MNIST
# digits reached 12.2x and 10.3x the floor at 600 kimg where the classic recipe collapsed
# in one seed of two (docs/results.md); at MNIST's 60,000 the classic recipe stays (8.1x,
# two seeds).
SMALL_DATA = ADA_BELOW_IMAGES
# How D is trained where ``loss``, ``spectral_norm``, ``beta1`` and ``beta2`` are all left
# to the run: DCGAN on colour images of SMALL_COLOUR pixels a side gets SNGAN's recipe
# (hinge loss, a spectrally normalised D, Adam betas (0, 0.9); Miyato et al. 2018), which
# beat the classic one on the 2,247 icons at 48 px in both seeds (docs/results.md); every
# other run the classic DCGAN recipe. A setting given keeps its value; the recipe is taken
# whole or not at all.
SMALL_COLOUR = (32, 64)
SNGAN_RECIPE: dict[str, Any] = {"loss": "hinge", "spectral_norm": True, "beta1": 0.0, "beta2": 0.9}
# The same for ResNetGAN, whose D is spectrally normalised whatever ``spectral_norm`` says.
SNGAN_RECIPE_RESNET: dict[str, Any] = {**SNGAN_RECIPE, "spectral_norm": False}
CLASSIC_RECIPE: dict[str, Any] = {
    "loss": "bce",
    "spectral_norm": False,
    "beta1": 0.5,
    "beta2": 0.999,
}

# Most images one grid, one evaluation or one final scoring draws (memory and time bounds).
MAX_SAMPLES = 100_000


def flag_name(name: str) -> str:
    """The command-line flag of setting ``name`` (``lr_g`` -> ``--lr-g``)."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Rule:
    """What values a setting takes beyond its type: bounds and choices.

    Attributes:
        low: The smallest value allowed.
        high: The largest value allowed.
        above: Values must be greater than this.
        below: Values must be less than this.
        choices: The values allowed, for a string setting.
    """

    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        """The rule in words: ``a positive integer``, ``in [0, 1)``, ``one of a, b``."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.above is not None and self.below is not None:
            return f"in ({self.above:g}, {self.below:g})"
        if self.low is not None and self.below is not None:
            return f"in [{self.low:g}, {self.below:g})"
        if self.low is not None and self.high is not None:
            return f"in [{self.low:,g}, {self.high:,g}]"
        if self.above is not None:
            return f"> {self.above:g}"
        if self.low is not None:
            return f">= {self.low:g}"
        return "any value"

    def allows(self, value: Any) -> bool:
        """Whether ``value`` (of the setting's type) keeps the rule."""
        if self.choices is not None:
            return value in self.choices
        checks = (
            (self.low, lambda v, b: v >= b),
            (self.high, lambda v, b: v <= b),
            (self.above, lambda v, b: v > b),
            (self.below, lambda v, b: v < b),
        )
        return all(bound is None or ok(value, bound) for bound, ok in checks)


def _setting(default: Any = None, rule: Rule | None = None, **kwargs: Any) -> Any:
    """A settings field with its rule (``factory`` for defaults computed at creation)."""
    factory = kwargs.pop("factory", None)
    metadata = {"rule": rule}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


POSITIVE = Rule(low=1)
NON_NEGATIVE = Rule(low=0)
RATE = Rule(above=0.0)
FRACTION = Rule(low=0.0, below=1.0)


@dataclass
class RunSettings:
    """Every setting of a run; ``None`` means "from the data" or "not used".

    Attributes:
        data: A folder of images (searched recursively; subfolders are the classes of
            a conditional run), or ``mnist`` / ``fashion-mnist`` / ``stacked-mnist``.
        task: What is trained: ``adversarial`` (a GAN pair), or another registered run
            task (``ganlib.runs.run_tasks()``): ``pix2pix``, ``cyclegan``.
        data_b: A second folder: domain B of ``--task cyclegan``, or the B images of
            ``--task pix2pix`` pairs (matched to DATA's by file name); ``None``: pix2pix
            reads DATA's images as A and B side by side.
        out: The run folder.
        data_dir: Where named data sets are read (and downloaded, where online).
        split: ``train`` or ``test`` for named data sets.
        download: Allow downloading named data sets that are missing.
        image_size: Side of the square images; the data's when ``None``.
        channels: Image channels; the data's when ``None``.
        arch: A registered architecture (``ganlib.gan.architectures()``), or ``None``:
            ``resnet`` for grayscale images up to 32 pixels a side, ``dcgan`` otherwise
            (and with ``spectral_norm``, ``conditional`` or ``minibatch_std``).
        latent_dim: Latent size.
        width: Feature channels next to the image, or ``None``: 32 for ``resnet``, 64 for
            ``dcgan``.
        spectral_norm: Spectral normalisation in D (DCGAN; ResNetGAN's D always has it),
            or ``None``: chosen with ``loss`` and Adam's betas (see ``loss``).
        conditional: Train on the data's classes (folder subfolders, digits).
        minibatch_std: Group size of a minibatch standard deviation layer at the end of
            DCGAN's D (StyleGAN's uses 4), or 0: none.
        loss: ``bce``, ``hinge``, ``wgan-gp`` or ``lsgan``, or ``None``: where this,
            ``spectral_norm``, ``beta1`` and ``beta2`` are all ``None``, DCGAN on colour
            images of 32 to 64 pixels, or on fewer than 20,000 grayscale images of up to
            32, trains with SNGAN's recipe (hinge, a spectral-norm D, betas 0 and 0.9),
            ResNetGAN on such grayscale images with its loss and betas, every other run
            with bce, no spectral norm, 0.5 and 0.999.
        r1_gamma: Weight of an R1 penalty, or ``None``.
        r1_every: Compute R1 every this many D updates, scaled to match (lazy R1).
        augment: What D sees augmented: a DiffAugment policy (``translation,cutout,color``),
            ``ada`` (adaptive augmentation: its probability tuned from D's overfitting,
            logged as aug_p), ``none``, or ``None``: ``ada`` for a GAN pair on fewer than
            20,000 images, none otherwise.
        ada_signal: What ``ada`` tunes its probability from: ``sign`` (ADA's ``r_t``, D's
            sign on the training images) or ``held-out`` (ADA's ``r_v``, D's scores on the
            folder's held-out images against the training and generated ones; an
            unconditional folder run that holds images out).
        lr_g: Generator learning rate.
        lr_d: Discriminator learning rate.
        beta1: Adam's first beta, or ``None``: chosen with ``loss`` (0.5 or 0).
        beta2: Adam's second beta, or ``None``: chosen with ``loss`` (0.999 or 0.9).
        batch_size: Images per step.
        kimg: Thousands of images to show (``ceil(kimg * 1000 / batch_size)`` steps). With
            ``max_steps`` or ``epochs`` too, the first limit reached ends the run; with none
            of the three, a GAN pair trains 10 epochs or 200 kimg, whichever is more
            (``ganlib.runs.budget``), other tasks 10 epochs.
        epochs: Epochs to train, or ``None`` (see ``kimg``).
        max_steps: Steps to train, or ``None`` (see ``kimg``). Given alone, it alone decides.
        d_steps: D updates per G update.
        shuffle: Reshuffle the data every epoch.
        ema: Keep an EMA of G (grids and ``ganlib sample --ema`` use it).
        ema_decay: The EMA's decay.
        ema_warmup: Ramp the EMA's decay up early in training.
        fast: The Trainer's fast path; ``None``: on where it is measured to keep quality
            (CUDA, and CPUs with native bf16), off elsewhere. ``--no-fast``: plain fp32.
        precision: ``32``, ``bf16``, ``16``, or ``None`` (decided by ``fast``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        seed: Seed of the initialisation, data order and latents.
        num_workers: DataLoader workers (0: data held in memory).
        grid_every: Steps between sample grids (``None``: every epoch, or every few
            epochs where an epoch is under 200 steps: ``ganlib.runs.snapshot_epochs``).
        checkpoint_every: Steps between checkpoints (``None``: as ``grid_every``'s).
        keep_checkpoints: Step checkpoints kept.
        grid_samples: Images per grid.
        grid_nrow: Images per grid row.
        progress_every: Steps between progress lines when output is not a terminal.
        report: Keep ``report.html`` (settings, curves, grids, state) in the run folder.
        tensorboard: Also log to TensorBoard in ``OUT/tensorboard`` (needs tensorboard).
        eval_every: Steps between evaluations (FD of a fixed sample, diversity, classes
            covered; also at the last step) where features are at hand (``eval_features``);
            0: none.
        eval_samples: Images scored at each evaluation.
        eval_features: ``auto`` (the shipped MNIST classifier for mnist, random features
            for a folder, no evaluation otherwise), ``mnist``, ``random`` (a fixed random
            network: any images, no download; docs/metrics.md), ``none``, or a weights file
            of the MNIST classifier's architecture trained on the data (a Fashion-MNIST
            one, say).
        holdout: A folder run's share of its images kept out of training as the reference
            of its evaluation and memorisation check (at most 2,000 images; none from
            folders of fewer than 200); 0: all train, no evaluation.
        early_stop: Stop after this many evaluations without a better FD (``None``: never).
        labels: A semi-supervised run (``--task semi-supervised``): how many training
            images keep their labels, balanced per class (a multiple of the classes).
        label_seed: Seed of the labelled choice (``None``: ``seed``).
        unlabelled_weight: A semi-supervised run's weight of the unsupervised loss in D's
            loss; 0 trains the supervised-only baseline (D on the labels alone).
        generator_loss: A semi-supervised run's generator loss: ``feature-matching`` or
            ``gan``.
        average_decay: Decay of a semi-supervised run's averaged discriminator (the
            classifier it reports).
    """

    data: str
    task: str = "adversarial"
    data_b: str | None = None
    out: str = "runs/gan"
    data_dir: str = _setting(factory=lambda: os.environ.get("GANLIB_DATA", "./data"))
    split: str = _setting("train", Rule(choices=("train", "test")))
    download: bool = True
    image_size: int | None = _setting(None, Rule(low=5, high=4096))
    channels: int | None = _setting(None, Rule(choices=None, low=1, high=4))
    arch: str | None = None
    latent_dim: int = _setting(100, Rule(low=1, high=100_000))
    width: int | None = _setting(None, Rule(low=1, high=100_000))
    spectral_norm: bool | None = None
    conditional: bool = False
    minibatch_std: int = _setting(0, Rule(low=0, high=1024))
    loss: str | None = _setting(None, Rule(choices=("bce", "hinge", "wgan-gp", "lsgan")))
    r1_gamma: float | None = _setting(None, RATE)
    r1_every: int = _setting(1, POSITIVE)
    augment: str | None = None
    ada_signal: str = _setting("sign", Rule(choices=("sign", "held-out")))
    lr_g: float = _setting(2e-4, RATE)
    lr_d: float = _setting(2e-4, RATE)
    beta1: float | None = _setting(None, FRACTION)
    beta2: float | None = _setting(None, FRACTION)
    batch_size: int = _setting(50, Rule(low=1, high=1_000_000))
    kimg: float | None = _setting(None, RATE)
    epochs: int | None = _setting(None, POSITIVE)
    max_steps: int | None = _setting(None, POSITIVE)
    d_steps: int = _setting(1, Rule(low=1, high=1000))
    shuffle: bool = True
    ema: bool = True
    ema_decay: float = _setting(0.999, FRACTION)
    ema_warmup: bool = True
    fast: bool | None = None
    precision: str | None = _setting(
        None, Rule(choices=("32", "bf16", "16", "32-true", "bf16-mixed", "16-mixed"))
    )
    device: str = "auto"
    seed: int = _setting(0, Rule(low=0, high=2**63 - 1))
    num_workers: int = _setting(0, Rule(low=0, high=1024))
    grid_every: int | None = _setting(None, POSITIVE)
    checkpoint_every: int | None = _setting(None, POSITIVE)
    keep_checkpoints: int = _setting(2, POSITIVE)
    grid_samples: int = _setting(64, Rule(low=1, high=10_000))
    grid_nrow: int = _setting(8, Rule(low=1, high=10_000))
    progress_every: int = _setting(100, POSITIVE)
    report: bool = True
    tensorboard: bool = False
    eval_every: int = _setting(1000, NON_NEGATIVE)
    eval_samples: int = _setting(2000, Rule(low=2, high=MAX_SAMPLES))
    eval_features: str = "auto"
    holdout: float = _setting(0.1, Rule(low=0.0, below=0.5))
    early_stop: int | None = _setting(None, POSITIVE)
    labels: int | None = _setting(None, POSITIVE)
    label_seed: int | None = _setting(None, Rule(low=0, high=2**63 - 1))
    unlabelled_weight: float = _setting(1.0, Rule(low=0.0))
    generator_loss: str = _setting("feature-matching", Rule(choices=("feature-matching", "gan")))
    average_decay: float = _setting(0.9999, FRACTION)

    # ------------------------------------------------------------ checks

    @classmethod
    def names(cls) -> list[str]:
        """The setting names, in order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def rule(cls, name: str) -> Rule | None:
        """The rule of setting ``name`` (``None``: its type alone)."""
        return _fields()[name].metadata.get("rule")

    @classmethod
    def kind(cls, name: str) -> type:
        """The type of setting ``name`` (``X`` of an ``X | None`` annotation)."""
        return _setting_kinds()[name]

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of setting ``name``, from the class docstring."""
        return _setting_help().get(name, "")

    def validate(self, source: str | Mapping[str, str] = "flags") -> RunSettings:
        """Check every value against its type and rule, and the settings against each
        other; returns ``self``.

        Args:
            source: Where the values came from, for messages (``flags``, a config path),
                or that by setting name.

        Raises:
            ValueError: Naming the setting (as a flag), the rule and the value received.
        """
        for name in self.names():
            value = getattr(self, name)
            kind = self.kind(name)
            if value is None:
                continue
            ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value, ok = float(value), True
                setattr(self, name, value)
            if not ok:
                raise ValueError(
                    f"{_named(source, name)} must be {kind.__name__}, got {value!r}"
                    + _from(source, name)
                )
            rule = self.rule(name)
            if rule is not None and not rule.allows(value):
                shown = f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else value
                raise ValueError(
                    f"{_named(source, name)} must be {rule.describe()}, got {shown!r}"[:300]
                    + _from(source, name)
                )
        if not self.data:
            raise ValueError(
                "DATA must name a folder of images, mnist, fashion-mnist or stacked-mnist"
            )
        if not str(self.out).strip():
            raise ValueError(f"--out must name a folder, got {self.out!r}" + _from(source, "out"))
        if self.augment not in (None, "ada", "none"):
            try:
                resolve_augment(self.augment)
            except ValueError as error:
                raise ValueError(
                    f"--augment must be ada, none or a DiffAugment policy of "
                    f"{', '.join(get_args(AugmentName))} joined by commas, got "
                    f"{self.augment!r}" + _from(source, "augment")
                ) from error
        if self.ada_signal != "sign" and self.augment not in (None, "ada"):
            raise ValueError(
                f"--ada-signal tunes adaptive augmentation (--augment ada), got augment="
                f"{self.augment!r}" + _from(source, "ada_signal")
            )
        if self.minibatch_std and (self.arch not in (None, "dcgan") or self.task != "adversarial"):
            raise ValueError(
                "--minibatch-std is an option of DCGAN's discriminator in a GAN pair "
                f"(--arch dcgan, --task adversarial), got arch={self.arch!r}, "
                f"task={self.task!r}" + _from(source, "minibatch_std")
            )
        if self.r1_gamma is None and self.r1_every != 1:
            raise ValueError(
                f"--r1-every configures the R1 penalty: give --r1-gamma too, got r1_every="
                f"{self.r1_every}" + _from(source, "r1_every")
            )
        return self

    def choose_network(self, data_images: int | None = None) -> str:
        """Fill in ``arch`` and ``width`` where they are ``None``, for the data's
        ``image_size``, ``channels`` and number of images, then how D trains
        (`choose_recipe`) (in place; given values are kept).

        Args:
            data_images: The images the run trains on; ``None`` where not known (taken as
                a large data set).

        Returns:
            The choice and its reason, in a few words (``config.toml``'s ``[chosen]``).

        Raises:
            ValueError: If ``image_size`` or ``channels`` is still unresolved.
        """
        if self.image_size is None or self.channels is None:
            raise ValueError("choose_network needs image_size and channels (the data's)")
        reason = "as given"
        if self.arch is None:
            small_gray = self._small_grayscale()
            plain = not (self.spectral_norm or self.conditional or self.minibatch_std)
            self.arch = "resnet" if small_gray and plain else "dcgan"
            if self.arch == "resnet":
                reason = (
                    f"grayscale images of at most {SMALL_IMAGE} pixels, where ResNetGAN "
                    "measured best, on all of MNIST and on 900 of its digits (docs/results.md)"
                )
            else:
                reason = (
                    "DCGAN for colour, larger, conditional, spectral-norm or minibatch-std "
                    "runs (on colour icons it beat ResNetGAN in half the time, docs/results.md)"
                )
        if self.width is None:
            self.width = DEFAULT_WIDTHS.get(self.arch)
        return f"{self.arch}, width {self.width}: {reason}; {self.choose_recipe(data_images)}"

    def _small_grayscale(self) -> bool:
        """Whether the images are grayscale of at most `SMALL_IMAGE` pixels a side."""
        return self.channels == 1 and (self.image_size or 0) <= SMALL_IMAGE

    def choose_recipe(self, data_images: int | None = None) -> str:
        """Fill in ``loss``, ``spectral_norm``, ``beta1`` and ``beta2`` where they are
        ``None``: where all four are ``None`` and the pair is unconditional, SNGAN's recipe
        (`SNGAN_RECIPE`) for DCGAN on colour images of 32 to 64 pixels (`SMALL_COLOUR`) or
        on fewer than `SMALL_DATA` grayscale images of at most `SMALL_IMAGE` pixels, and its
        loss and Adam betas (`SNGAN_RECIPE_RESNET`) for ResNetGAN on such grayscale images;
        the classic one (`CLASSIC_RECIPE`) otherwise (in place; given values are kept).

        Args:
            data_images: The images the run trains on; ``None`` where not known.

        Returns:
            The recipe and its reason, in a few words.
        """
        names = tuple(CLASSIC_RECIPE)
        left = all(getattr(self, name) is None for name in names)
        low, high = SMALL_COLOUR
        size, channels = self.image_size or 0, self.channels or 0
        small_colour = channels >= 3 and low <= size <= high
        small_gray = self._small_grayscale() and _few(data_images)
        if left and not self.conditional and self.arch == "dcgan" and (small_colour or small_gray):
            where = (
                f"colour images of {low}-{high} pixels, measured best on colour icons"
                if small_colour
                else f"fewer than {SMALL_DATA:,} small grayscale images, measured on MNIST digits"
            )
            recipe, reason = SNGAN_RECIPE, f"SNGAN's recipe for DCGAN on {where} (docs/results.md)"
        elif left and not self.conditional and self.arch == "resnet" and small_gray:
            recipe, reason = (
                SNGAN_RECIPE_RESNET,
                (
                    f"SNGAN's loss and Adam betas for ResNetGAN on fewer than {SMALL_DATA:,} small "
                    "grayscale images: 12.2x and 10.3x the floor on 900 MNIST digits at 600 kimg, "
                    "where the classic recipe collapsed in one seed of two (docs/results.md)"
                ),
            )
        else:
            recipe, reason = CLASSIC_RECIPE, "the classic recipe" if left else "as given"
        for name in names:
            if getattr(self, name) is None:
                setattr(self, name, recipe[name])
        return (
            f"loss {self.loss}, spectral norm {'on' if self.spectral_norm else 'off'}"
            + (" (ResNetGAN's D has its own)" if self.arch == "resnet" else "")
            + ", Adam "
            f"betas ({self.beta1:g}, {self.beta2:g}): {reason}"
        )

    def choose_augment(self, data_images: int) -> str:
        """Fill in ``augment`` where it is ``None``: ``ada`` for data of fewer than
        `ADA_BELOW_IMAGES` images (unless the loss is WGAN-GP's), else none (in place; a
        given value is kept).

        Returns:
            The choice and its reason, in a few words (``config.toml``'s ``[chosen]``).
        """
        signal = (
            ", tuned from D's scores on the held-out images (r_v)"
            if self.ada_signal == "held-out"
            else ""
        )
        if self.augment is not None:
            return f"{self.augment}: as given{signal if self.augment == 'ada' else ''}"
        if self.loss == "wgan-gp":
            return "none: a WGAN critic has no decision boundary for adaptive augmentation's signal"
        if data_images < ADA_BELOW_IMAGES:
            self.augment = "ada"
            return (
                f"ada: adaptive augmentation for data of fewer than {ADA_BELOW_IMAGES:,} "
                f"images ({data_images:,}){signal}; --augment none to turn it off"
            )
        return (
            f"none: {data_images:,} images; adaptive augmentation is the default below "
            f"{ADA_BELOW_IMAGES:,}"
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | Mapping[str, str]) -> RunSettings:
        """Settings from a mapping (a config file's ``[run]`` table), validated.

        Raises:
            ValueError: For unknown names or values that break their rule, naming ``source``.
        """
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            where = _from(source, unknown[0]).strip(" ()").removeprefix("in ") or "flags"
            raise ValueError(f"{where}: unknown settings {unknown}; known: {cls.names()}")
        if "data" not in values:
            raise ValueError(
                "`data` is required (a folder, mnist, fashion-mnist or stacked-mnist)"
                + _from(source, "data")
            )
        settings = cls(data=str(values["data"]))
        for name, value in values.items():
            setattr(settings, name, value)
        return settings.validate(source)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain values, by name."""
        return dataclasses.asdict(self)


def _few(data_images: int | None) -> bool:
    """Whether a run's data are a small data set (`SMALL_DATA`); unknown (``None``, 0): no."""
    return data_images is not None and 0 < data_images < SMALL_DATA


def _named(source: str | Mapping[str, str], name: str) -> str:
    """A setting as its source names it: ``--lr-g`` for a flag, ```lr_g``` in a file."""
    where = source if isinstance(source, str) else source.get(name, "flags")
    return flag_name(name) if where == "flags" else f"`{name}`"


def _from(source: str | Mapping[str, str], name: str) -> str:
    where = source if isinstance(source, str) else source.get(name, "flags")
    return "" if where == "flags" else f" (in {where})"


@functools.cache
def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in fields(RunSettings)}


@functools.cache
def _setting_kinds() -> dict[str, type]:
    """Each setting's type, ``X`` of an ``X | None`` annotation."""
    kinds = {}
    for name, hint in typing.get_type_hints(RunSettings).items():
        kinds[name] = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    return kinds


@functools.cache
def _setting_help() -> dict[str, str]:
    """Each setting's help text, read from RunSettings' docstring (written once)."""
    doc = RunSettings.__doc__ or ""
    helps: dict[str, str] = {}
    name = None
    for line in doc.split("Attributes:", 1)[-1].splitlines():
        match = re.match(r"\s{8}(\w+): (.*)", line)
        if match:
            name, text = match.groups()
            helps[name] = text
        elif name and line.strip():
            helps[name] += " " + line.strip()
    return {k: v.replace("``", "") for k, v in helps.items()}

"""A training run from its settings: the data, the pair, the callbacks, ``config.toml``.

What ``ganlib train`` runs, and what ``examples/mnist.py`` builds its run with. A run
folder holds everything: ``config.toml`` (the resolved settings, the ganlib and torch
versions and the data's fingerprint), grids, ``metrics.csv``, ``loss_curve.png`` and
``checkpoints/``; ``ganlib train --resume FOLDER`` continues it from the folder alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ._logging import logger
from ._version import __version__
from .callbacks import (
    EMA,
    Callback,
    Evaluation,
    LossCurve,
    MetricsLogger,
    ModelCheckpoint,
    ProgressBar,
    RunReport,
    SampleGrid,
    TensorBoardLogger,
)
from .data.common import DataNotFoundError
from .data.sources import RunData, load_run_data
from .gan import build_gan
from .losses import get_loss
from .trainer import Trainer

__all__ = [
    "CONFIG_NAME",
    "RunSettings",
    "build_trainer",
    "callbacks_for",
    "evaluation_for",
    "read_config",
    "save_summary",
    "write_config",
]

CONFIG_NAME = "config.toml"

# The network a run gets when it names none: for small grayscale images (one channel, at
# most SMALL_IMAGE pixels a side: MNIST, Fashion-MNIST) the residual family, which
# docs/results.md measured best at the full MNIST budget; DCGAN for the rest, and for
# conditional runs (where DCGAN measured better on MNIST). A width not given is the
# architecture's entry here (a user's architecture: its builder's default).
SMALL_IMAGE = 32
DEFAULT_WIDTHS = {"dcgan": 64, "resnet": 32}


@dataclass
class RunSettings:
    """Every setting of a run; ``None`` means "from the data" or "not used".

    Attributes:
        data: A folder of images (searched recursively; subfolders are the classes of
            a conditional run), or ``mnist`` / ``fashion-mnist`` / ``stacked-mnist``.
        out: The run folder.
        data_dir: Where named data sets are read (and downloaded, where online).
        split: ``train`` or ``test`` for named data sets.
        download: Allow downloading named data sets that are missing.
        image_size: Side of the square images; the data's when ``None``.
        channels: Image channels; the data's when ``None``.
        arch: A registered architecture (``ganlib.gan.architectures()``), or ``None``:
            ``resnet`` for grayscale images up to 32 pixels a side, ``dcgan`` otherwise
            (and with ``spectral_norm`` or ``conditional``).
        latent_dim: Latent size.
        width: Feature channels next to the image, or ``None``: 32 for ``resnet``, 64 for
            ``dcgan``.
        spectral_norm: Spectral normalisation in D (DCGAN; ResNetGAN's D always has it).
        conditional: Train on the data's classes (folder subfolders, digits).
        loss: ``bce``, ``hinge``, ``wgan-gp`` or ``lsgan``.
        r1_gamma: Weight of an R1 penalty, or ``None``.
        r1_every: Compute R1 every this many D updates, scaled to match (lazy R1).
        augment: A DiffAugment policy on all D sees (``translation,cutout,color``), or
            ``None``.
        lr_g: Generator learning rate.
        lr_d: Discriminator learning rate.
        beta1: Adam's first beta.
        beta2: Adam's second beta.
        batch_size: Images per step.
        epochs: Epochs to train.
        max_steps: Stop after this many steps, or ``None``.
        d_steps: D updates per G update.
        shuffle: Reshuffle the data every epoch.
        ema: Keep an EMA of G (grids and ``ganlib sample --ema`` use it).
        ema_decay: The EMA's decay.
        ema_warmup: Ramp the EMA's decay up early in training.
        fast: The Trainer's fast path.
        precision: ``32``, ``bf16``, ``16``, or ``None`` (decided by ``fast``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        seed: Seed of the initialisation, data order and latents.
        num_workers: DataLoader workers (0: data held in memory).
        grid_every: Steps between sample grids (``None``: every epoch).
        checkpoint_every: Steps between checkpoints (``None``: every epoch).
        keep_checkpoints: Step checkpoints kept.
        grid_samples: Images per grid.
        grid_nrow: Images per grid row.
        progress_every: Steps between progress lines when output is not a terminal.
        report: Keep ``report.html`` (settings, curves, grids, state) in the run folder.
        tensorboard: Also log to TensorBoard in ``OUT/tensorboard`` (needs tensorboard).
        eval_every: Steps between evaluations (FD of a fixed sample, diversity, classes
            covered; also at the last step) where features are at hand (``eval_features``).
        eval_samples: Images scored at each evaluation.
        eval_features: ``auto`` (the shipped MNIST classifier for mnist, no evaluation
            otherwise), ``mnist``, ``none``, or a weights file of the MNIST classifier's
            architecture trained on the data (a Fashion-MNIST one, say).
        early_stop: Stop after this many evaluations without a better FD (``None``: never).
    """

    data: str
    out: str = "runs/gan"
    data_dir: str = field(default_factory=lambda: os.environ.get("GANLIB_DATA", "./data"))
    split: str = "train"
    download: bool = True
    image_size: int | None = None
    channels: int | None = None
    arch: str | None = None
    latent_dim: int = 100
    width: int | None = None
    spectral_norm: bool = False
    conditional: bool = False
    loss: str = "bce"
    r1_gamma: float | None = None
    r1_every: int = 1
    augment: str | None = None
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 50
    epochs: int = 10
    max_steps: int | None = None
    d_steps: int = 1
    shuffle: bool = True
    ema: bool = True
    ema_decay: float = 0.999
    ema_warmup: bool = True
    fast: bool = False
    precision: str | None = None
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    grid_every: int | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    grid_samples: int = 64
    grid_nrow: int = 8
    progress_every: int = 100
    report: bool = True
    tensorboard: bool = False
    eval_every: int = 1000
    eval_samples: int = 2000
    eval_features: str = "auto"
    early_stop: int | None = None

    def choose_network(self) -> None:
        """Fill in ``arch`` and ``width`` where they are ``None``, for the data's
        ``image_size`` and ``channels`` (in place; given values are kept).

        Raises:
            ValueError: If ``image_size`` or ``channels`` is still unresolved.
        """
        if self.image_size is None or self.channels is None:
            raise ValueError("choose_network needs image_size and channels (the data's)")
        if self.arch is None:
            small_gray = self.channels == 1 and self.image_size <= SMALL_IMAGE
            plain = not (self.spectral_norm or self.conditional)
            self.arch = "resnet" if small_gray and plain else "dcgan"
        if self.width is None:
            self.width = DEFAULT_WIDTHS.get(self.arch)

    @classmethod
    def names(cls) -> list[str]:
        """The setting names, in order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> RunSettings:
        """Settings from a mapping (a config file's ``[run]`` table).

        Raises:
            ValueError: For unknown names or values of the wrong type, naming ``source``.
        """
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"{source}: unknown settings {unknown}; known: {cls.names()}")
        if "data" not in values:
            raise ValueError(
                f"{source}: `data` is required (a folder, mnist, fashion-mnist or stacked-mnist)"
            )
        settings = cls(data=str(values["data"]))
        kinds = _setting_kinds()
        for name, value in values.items():
            kind = kinds[name]
            ok = value is None or isinstance(value, kind)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value, ok = float(value), True
            if not ok or (isinstance(value, bool) and kind is not bool):
                raise ValueError(f"{source}: `{name}` must be {kind.__name__}, got {value!r}")
            setattr(settings, name, value)
        return settings


@functools.cache
def _setting_kinds() -> dict[str, type]:
    """Each setting's type, ``X`` of an ``X | None`` annotation."""
    kinds = {}
    for name, hint in typing.get_type_hints(RunSettings).items():
        kinds[name] = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    return kinds


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string (JSON's escapes are TOML's)


def write_config(settings: RunSettings, data: RunData, path: Path) -> None:
    """Write the fully resolved settings, versions and data fingerprint as TOML."""
    lines = ["# Written by ganlib train; `ganlib train --config` reads it back.", "[run]"]
    for name, value in dataclasses.asdict(settings).items():
        if value is not None:  # (TOML has no null: a missing key means None)
            lines.append(f"{name} = {_toml_value(value)}")
    lines += ["", "[data_fingerprint]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.fingerprint.items()]
    lines += ["", "[versions]", f"ganlib = {_toml_value(__version__)}"]
    lines += [f"torch = {_toml_value(torch.__version__)}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


def read_config(path: Path) -> dict[str, Any]:
    """The ``[run]`` table of a config file.

    Raises:
        ValueError: If the file is missing, not TOML, or has no ``[run]`` table.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found, no-redef]
        except ImportError as exc:
            raise ValueError(f"reading {path} needs Python >= 3.11 or `pip install tomli`") from exc
    try:
        document = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read config {str(path)!r}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config {str(path)!r} is not valid TOML: {exc}") from exc
    table = document.get("run", document)
    if not isinstance(table, dict):
        raise ValueError(f"config {str(path)!r} has no [run] table")
    return table


def callbacks_for(settings: RunSettings) -> list[Callback]:
    """The run folder's writers: grids, metrics, loss curve, EMA, evaluation, checkpoints."""
    out = Path(settings.out)
    grid_epochs = None if settings.grid_every else 1
    shown = {k: v for k, v in dataclasses.asdict(settings).items() if v is not None}
    report_every = settings.grid_every or settings.progress_every
    evaluation = evaluation_for(settings)
    return [
        ProgressBar(every_n_steps=settings.progress_every),
        *([EMA(settings.ema_decay, warmup=settings.ema_warmup)] if settings.ema else []),
        *([evaluation] if evaluation is not None else []),
        SampleGrid(
            out,
            num_samples=settings.grid_samples,
            nrow=settings.grid_nrow,
            every_n_epochs=grid_epochs,
            every_n_steps=settings.grid_every,
        ),
        # (after SampleGrid: they show its newest grid)
        *([RunReport(out, settings=shown, every_n_steps=report_every)] if settings.report else []),
        *([TensorBoardLogger(out / "tensorboard", hparams=shown)] if settings.tensorboard else []),
        MetricsLogger(out / "metrics.csv"),
        LossCurve(out / "loss_curve.png"),
        ModelCheckpoint(
            out / "checkpoints",
            every_n_steps=settings.checkpoint_every,
            keep_last=settings.keep_checkpoints,
            monitor="fd" if evaluation is not None else None,  # best.ckpt: the best FD's step
        ),
    ]


def build_trainer(
    settings: RunSettings,
    *,
    num_classes: int | None = None,
    overwrite: bool = False,
    **trainer_args: Any,
) -> Trainer:
    """The pair (seeded by ``settings.seed``), its optimizers and the run's Trainer.

    Args:
        settings: The run's settings, with ``image_size`` and ``channels`` resolved;
            ``arch`` and ``width`` left ``None`` are chosen for them, in place
            ([`RunSettings.choose_network`][ganlib.runs.RunSettings.choose_network]).
        num_classes: The data's classes, for a conditional run.
        overwrite: Let a fresh run replace an earlier run's files.
        trainer_args: More [`Trainer`][ganlib.Trainer] arguments.

    Raises:
        ValueError: For a conditional run without classes, or unresolved image sizes.
    """
    if settings.image_size is None or settings.channels is None:
        raise ValueError("build_trainer needs settings.image_size and settings.channels")
    settings.choose_network()
    assert settings.arch is not None  # (chosen)
    torch.manual_seed(settings.seed)  # the networks' initialisation
    config: dict[str, Any] = dict(
        image_size=settings.image_size, channels=settings.channels, latent_dim=settings.latent_dim
    )
    if settings.width is not None:  # (None: a user architecture's own default)
        config["width"] = settings.width
    if settings.conditional:
        if num_classes is None:
            raise ValueError("a conditional run needs data with classes (subfolders, digits)")
        config["num_classes"] = num_classes
    if settings.spectral_norm:
        config["spectral_norm"] = True
    gan = build_gan(settings.arch, config)
    return Trainer(
        gan,
        loss=get_loss(
            settings.loss,  # type: ignore[arg-type]
            r1_gamma=settings.r1_gamma,
            r1_every=settings.r1_every,
        ),
        augment=settings.augment,
        # Adam's settings, not Adam: the Trainer picks the kernel (fused on the fast path)
        g_optimizer={"lr": settings.lr_g, "betas": (settings.beta1, settings.beta2)},
        d_optimizer={"lr": settings.lr_d, "betas": (settings.beta1, settings.beta2)},
        d_steps=settings.d_steps,
        device=settings.device,
        precision=settings.precision,  # type: ignore[arg-type]
        fast=settings.fast,
        max_epochs=settings.epochs,
        max_steps=settings.max_steps,
        seed=settings.seed,
        callbacks=callbacks_for(settings),
        overwrite=overwrite,
        **trainer_args,
    )


def save_summary(path: Path, summary: dict[str, Any]) -> None:
    """A run's end summary as JSON (atomic)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)


def evaluation_for(settings: RunSettings) -> Evaluation | None:
    """The run's [`Evaluation`][ganlib.callbacks.Evaluation] (``eval_*`` and ``early_stop``
    settings), or ``None`` where no feature extractor is at hand: the shipped MNIST
    classifier (or one of its architecture, by its weights file) scores mnist or
    fashion-mnist against their test split (their train split where the test split is
    missing). For a folder of images, set one up in Python (docs/metrics.md).

    Raises:
        ValueError: For ``eval_features`` that do not fit the data, or a missing weights file.
    """
    choice = settings.eval_features
    if choice == "none" or (choice == "auto" and settings.data != "mnist"):
        return None
    if settings.data not in ("mnist", "fashion-mnist"):
        raise ValueError(
            f"`eval_features` {choice!r} scores 28x28 grayscale mnist or fashion-mnist, got "
            f"data {settings.data!r}; for a folder of images use 'none' here and set up "
            "ganlib.callbacks.Evaluation from Python (docs/metrics.md)"
        )
    weights = None if choice in ("auto", "mnist") else Path(choice)
    if weights is not None and not weights.is_file():
        raise ValueError(
            "`eval_features` must be auto, mnist, none or a classifier weights file, "
            f"got {choice!r}, which is no file"
        )
    return Evaluation.mnist(
        _reference_images(settings),
        weights=weights,
        every_n_steps=settings.eval_every,
        num_samples=settings.eval_samples,
        patience=settings.early_stop,
    )


def _reference_images(settings: RunSettings) -> torch.Tensor:
    """The named data set's test split, or its train split where the test split is missing."""
    load = functools.partial(
        load_run_data, settings.data, data_dir=settings.data_dir, download=settings.download
    )
    try:
        return load(split="test").images
    except DataNotFoundError:
        logger.info(
            f"evaluation: no {settings.data} test split in {settings.data_dir}; "
            "scoring against the train split"
        )
        return load(split="train").images

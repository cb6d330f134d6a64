"""A run's Trainer from its settings: its task (a GAN pair, or a registered run task),
the Trainer's switches and the run folder's callbacks."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from .._logging import logger
from ..ada import AdaptiveAugment
from ..callbacks import (
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
from ..data.common import DataNotFoundError
from ..data.sources import NAMED_DATA, RunData, load_run_data
from ..device import resolve_device
from ..gan import build_gan
from ..losses import get_loss
from ..metrics.random_features import RandomFeatures
from ..runtime import fast_by_default
from ..tasks import AdversarialTask, Task
from ..trainer import Trainer
from .budget import MIN_KIMG, Budget, training_budget
from .folder import RunFolder, resume_command
from .settings import RunSettings

__all__ = [
    "RunTask",
    "budget_for",
    "build_adversarial",
    "build_trainer",
    "callbacks_for",
    "evaluation_for",
    "held_out_count",
    "memorisation_images",
    "register_run_task",
    "run_tasks",
    "snapshot_epochs",
]


def callbacks_for(
    settings: RunSettings,
    monitor: tuple[str, Literal["min", "max"]] | None = None,
    data: RunData | None = None,
) -> list[Callback]:
    """The run folder's writers: grids, metrics, loss curve, EMA, evaluation, checkpoints.

    Args:
        settings: The run's settings.
        monitor: The score ``best.ckpt`` follows and which way is better (a run task's);
            ``None``: the FD of the run's evaluation, where it has one.
        data: The run's data (a folder run's held-out images are its evaluation's reference).
    """
    out = Path(settings.out)
    every_epochs = snapshot_epochs(settings, len(data.images)) if data is not None else 1
    grid_epochs = None if settings.grid_every else every_epochs
    shown = {k: v for k, v in settings.as_dict().items() if v is not None}
    report_every = settings.grid_every or settings.progress_every
    evaluation = evaluation_for(settings, data)
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
        *(
            [RunReport(out, settings=shown, every_n_steps=report_every, resume=resume_command(out))]
            if settings.report
            else []
        ),
        *([TensorBoardLogger(out / "tensorboard", hparams=shown)] if settings.tensorboard else []),
        MetricsLogger(out / "metrics.csv"),
        LossCurve(out / "loss_curve.png"),
        ModelCheckpoint(
            RunFolder(out).checkpoints,
            every_n_steps=settings.checkpoint_every,
            every_n_epochs=None if settings.checkpoint_every else every_epochs,
            keep_last=settings.keep_checkpoints,
            # best.ckpt: the best step by the run task's score, else by FD
            monitor=monitor[0] if monitor else "fd" if evaluation is not None else None,
            mode=monitor[1] if monitor else "min",
        ),
    ]


# Grids and checkpoints left to their default come every epoch, or, where an epoch is
# shorter than this many steps (a small folder's), every few epochs at least this far
# apart: 2,000 icons at batch 50 give a grid every 5 epochs, not 100 grids in a run.
MIN_SNAPSHOT_STEPS = 200


def snapshot_epochs(settings: RunSettings, data_images: int) -> int:
    """Epochs between a run's default grids and checkpoints (``--grid-every`` and
    ``--checkpoint-every`` left unset): 1, or where an epoch of ``data_images`` is shorter
    than `MIN_SNAPSHOT_STEPS` steps, the fewest epochs that make that many (1 where the
    data are not known yet: ``data_images`` 0)."""
    if data_images < 1:
        return 1
    batches = math.ceil(data_images / settings.batch_size)
    return max(math.ceil(MIN_SNAPSHOT_STEPS / batches), 1)


@dataclass(frozen=True)
class RunTask:
    """How a run builds its task from its settings (``--task NAME``).

    Attributes:
        build: ``(settings, data) -> Task``; ``settings`` has ``image_size`` and
            ``channels`` resolved, ``data`` is the run's (its classes, its images).
        callbacks: ``(settings, task) -> callbacks`` the task adds to the run folder's.
        monitor: The score one of those callbacks logs that ``best.ckpt`` follows, and
            which way is better (``("error_avg", "min")``); ``None``: the FD evaluation's.
        load_data: ``settings -> RunData``, for a task that reads its data its own way
            (image pairs); ``None``: ``settings.data`` as a folder or a named data set.
        min_kimg: The least its default budget shows, in thousands of images
            ([`training_budget`][ganlib.runs.budget.training_budget]); ``None``: 10 epochs.
    """

    build: Callable[[RunSettings, RunData], Task]
    callbacks: Callable[[RunSettings, Task], list[Callback]] = lambda settings, task: []
    monitor: tuple[str, Literal["min", "max"]] | None = None
    load_data: Callable[[RunSettings], RunData] | None = None
    min_kimg: float | None = None


_RUN_TASKS: dict[str, RunTask] = {}

# A folder run's held-out reference: at most this many images, and only from folders of
# at least MIN_HOLDOUT_FOLDER (fewer leave too little to train on and to compare with).
MAX_HELD_OUT = 2000
MIN_HOLDOUT_FOLDER = 200


def register_run_task(name: str, run_task: RunTask) -> None:
    """Make ``ganlib train --task NAME`` (and ``RunSettings(task=NAME)``) build this task.

    Raises:
        ValueError: If ``name`` is taken by another task.
    """
    if _RUN_TASKS.get(name, run_task) is not run_task:
        raise ValueError(f"run task {name!r} is already registered")
    _RUN_TASKS[name] = run_task


def run_tasks() -> list[str]:
    """The names ``--task`` takes."""
    return sorted(_RUN_TASKS)


def run_task(name: str) -> RunTask:
    """The run task registered as ``name``.

    Raises:
        ValueError: For a name no task is registered under.
    """
    if name not in _RUN_TASKS:
        raise ValueError(f"--task must be one of {', '.join(run_tasks())}, got {name!r}")
    return _RUN_TASKS[name]


def build_adversarial(settings: RunSettings, data: RunData) -> Task:
    """The GAN pair the settings name (seeded by ``settings.seed``), as an adversarial task.

    ``arch`` and ``width`` left ``None`` are chosen for the data, in place
    ([`RunSettings.choose_network`][ganlib.runs.RunSettings.choose_network]).

    Raises:
        ValueError: For a conditional run on data without classes.
    """
    settings.choose_network(len(data.images))
    assert settings.arch is not None  # (chosen)
    torch.manual_seed(settings.seed)  # the networks' initialisation
    config: dict[str, Any] = dict(
        image_size=settings.image_size, channels=settings.channels, latent_dim=settings.latent_dim
    )
    if settings.width is not None:  # (None: a user architecture's own default)
        config["width"] = settings.width
    if settings.conditional:
        if data.num_classes is None:
            raise ValueError("a conditional run needs data with classes (subfolders, digits)")
        config["num_classes"] = data.num_classes
    if settings.spectral_norm:
        config["spectral_norm"] = True
    if settings.minibatch_std:
        config["minibatch_std"] = settings.minibatch_std
    return AdversarialTask(
        build_gan(settings.arch, config),
        loss=get_loss(
            settings.loss,  # type: ignore[arg-type]
            r1_gamma=settings.r1_gamma,
            r1_every=settings.r1_every,
        ),
        augment=_augment(settings, data),
        # Adam's settings, not Adam: the Trainer picks the kernel (fused on the fast path)
        g_optimizer={"lr": settings.lr_g, "betas": (settings.beta1, settings.beta2)},
        d_optimizer={"lr": settings.lr_d, "betas": (settings.beta1, settings.beta2)},
        d_steps=settings.d_steps,
    )


register_run_task("adversarial", RunTask(build_adversarial, min_kimg=MIN_KIMG))


def _augment(settings: RunSettings, data: RunData) -> str | AdaptiveAugment | None:
    """The pair's ``augment``: ``settings.augment``, with ``ada_signal`` ``held-out`` an
    [`AdaptiveAugment`][ganlib.ada.AdaptiveAugment] tuned from the held-out images.

    Raises:
        ValueError: For ``ada_signal`` ``held-out`` on data that hold nothing out.
    """
    if settings.augment != "ada" or settings.ada_signal == "sign":
        return None if settings.augment == "none" else settings.augment
    if data.held_out is None:
        raise ValueError(
            "--ada-signal held-out reads the folder's held-out images, and this run holds "
            f"none out (data {settings.data!r}: a folder of at least {MIN_HOLDOUT_FOLDER} "
            "images, --holdout above 0 and an evaluation are needed)"
        )
    return AdaptiveAugment(validation=data.held_out)


def budget_for(settings: RunSettings, data: RunData) -> Budget:
    """The run's limits ([`training_budget`][ganlib.runs.budget.training_budget]) on its data,
    with its task's floor."""
    floor = _RUN_TASKS[settings.task].min_kimg if settings.task in _RUN_TASKS else None
    return training_budget(settings, max(len(data.images), 1), floor)


def resolved_fast(settings: RunSettings) -> bool:
    """``settings.fast``, or where it is ``None`` the device's default
    ([`fast_by_default`][ganlib.runtime.fast_by_default])."""
    if settings.fast is not None:
        return settings.fast
    return fast_by_default(resolve_device(settings.device))


def build_trainer(
    settings: RunSettings,
    *,
    num_classes: int | None = None,
    data: RunData | None = None,
    overwrite: bool = False,
    extra_callbacks: Iterable[Callback] = (),
    **trainer_args: Any,
) -> Trainer:
    """The run's task (``settings.task``), its optimizers and the run's Trainer.

    Args:
        settings: The run's settings, with ``image_size`` and ``channels`` resolved.
        num_classes: The data's classes, for a conditional run (when ``data`` is not given).
        data: The run's data ([`load_data`][ganlib.runs.load_data]).
        overwrite: Let a fresh run replace an earlier run's files.
        extra_callbacks: Callbacks after the run folder's own
            ([`callbacks_for`][ganlib.runs.callbacks_for]).
        trainer_args: More [`Trainer`][ganlib.Trainer] arguments.

    Raises:
        ValueError: For an unknown task, a conditional run without classes, or
            unresolved image sizes.
    """
    if settings.image_size is None or settings.channels is None:
        raise ValueError("build_trainer needs settings.image_size and settings.channels")
    if settings.task not in _RUN_TASKS:
        raise ValueError(f"--task must be one of {', '.join(run_tasks())}, got {settings.task!r}")
    if data is None:
        data = RunData(torch.empty(0), None, settings.image_size, settings.channels, num_classes)
    run_task = _RUN_TASKS[settings.task]
    task = run_task.build(settings, data)
    budget = budget_for(settings, data)
    return Trainer(
        task,
        device=settings.device,
        precision=settings.precision,  # type: ignore[arg-type]
        fast=resolved_fast(settings),
        max_epochs=budget.max_epochs,
        max_steps=budget.max_steps,
        seed=settings.seed,
        callbacks=[
            *callbacks_for(settings, run_task.monitor, data),
            *run_task.callbacks(settings, task),
            *extra_callbacks,
        ],
        overwrite=overwrite,
        **trainer_args,
    )


def held_out_count(settings: RunSettings, images: int) -> int:
    """How many of a folder's ``images`` a GAN pair's run keeps out of training as its
    evaluation's reference: ``holdout`` of them, at most `MAX_HELD_OUT`; none from
    folders of fewer than `MIN_HOLDOUT_FOLDER` images, from named data sets (their test
    split is the reference), or when the run does not evaluate."""
    folder = settings.data not in NAMED_DATA and settings.task == "adversarial"
    evaluates = settings.eval_every > 0 and settings.eval_features in ("auto", "random")
    if not (folder and evaluates) or images < MIN_HOLDOUT_FOLDER:
        return 0
    return min(round(images * settings.holdout), MAX_HELD_OUT)


def memorisation_images(settings: RunSettings, data: RunData) -> torch.Tensor:
    """The training images a folder run's memorisation check compares samples with: as
    many as ``data.held_out``, chosen by the run's seed + 1 (in the folder's order), so
    the check weighs both sides equally and a later scoring chooses the same ones.

    Raises:
        ValueError: If ``data`` holds nothing out.
    """
    if data.held_out is None:
        raise ValueError("memorisation_images needs data with held-out images (RunData.held_out)")
    chosen = torch.randperm(
        len(data.images), generator=torch.Generator().manual_seed(settings.seed + 1)
    )[: len(data.held_out)]
    return data.images[chosen.sort().values]


def evaluation_for(settings: RunSettings, data: RunData | None = None) -> Evaluation | None:
    """The run's [`Evaluation`][ganlib.callbacks.Evaluation] (``eval_*`` and ``early_stop``
    settings), or ``None`` where no feature extractor is at hand: the shipped MNIST
    classifier (or one of its architecture, by its weights file) scores mnist or
    fashion-mnist against their test split (their train split where the test split is
    missing); a folder run with ``held_out`` images is scored against them in
    [`RandomFeatures`][ganlib.metrics.random_features.RandomFeatures], with the
    memorisation check against as many training images.

    Raises:
        ValueError: For ``eval_features`` that do not fit the data, or a missing weights file.
    """
    choice = settings.eval_features
    off = settings.eval_every == 0 or choice == "none"
    held_out = None if data is None else data.held_out
    if not off and choice in ("auto", "random") and held_out is not None:
        assert data is not None
        return Evaluation(
            RandomFeatures(data.channels),
            held_out,
            train=memorisation_images(settings, data),
            every_n_steps=settings.eval_every,
            num_samples=settings.eval_samples,
            patience=settings.early_stop,
        )
    if choice == "random":
        raise ValueError(
            "`eval_features` 'random' scores a folder run against its held-out images; "
            f"data {settings.data!r} has none (--holdout 0, or fewer than "
            f"{MIN_HOLDOUT_FOLDER} images)"
        )
    if off or (choice == "auto" and settings.data != "mnist"):
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

"""The semi-supervised run task: ``ganlib train DATA --task semi-supervised --labels N``.

DATA is ``mnist``, ``fashion-mnist`` or a folder with one subfolder per class. The run
trains [`SemiSupervisedTask`][ganlib.tasks.SemiSupervisedTask] with the reference's
networks for the data's shape, tracks the classifier's test error (the named data sets'
test split; a folder's held-back images) as the scores ``error`` and ``error_avg``, and
keeps ``best.ckpt`` at the lowest ``error_avg``. ``config.toml`` records the labelled
indices' fingerprint in its ``[data_fingerprint]`` table.

Settings a semi-supervised run reads besides the common ones: ``labels``, ``label_seed``,
``unlabelled_weight``, ``generator_loss``, ``average_decay``, ``latent_dim``, and the Adam
and batch settings. Where these hold ganlib's GAN defaults, the run takes the reference's
instead (written to ``config.toml``, so it records what ran): batch 100 (a 600-step MNIST
epoch), Adam lr 3e-3 for both networks, the test error every epoch, float32 under
``--fast``, and no FD evaluation of the generator (this run's score is the error).
"""

from __future__ import annotations

import math
from dataclasses import fields

import torch

from ..callbacks import Callback, ClassificationError
from ..data.folder import ImageFolder
from ..data.labels import choose_labelled, fingerprint
from ..data.sources import NAMED_DATA, RunData, load_run_data
from ..models.semi_supervised import SemiSupervisedDiscriminator, SemiSupervisedGenerator
from ..tasks import Task
from ..tasks.semi_supervised import REFERENCE_ADAM, SemiSupervisedTask
from .build import RunTask, register_run_task
from .settings import RunSettings

__all__ = ["FASHION_MNIST_CLASSES", "build_semi_supervised", "semi_supervised_callbacks"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# The reference's batch: 600 steps an epoch over MNIST's 60,000 images.
REFERENCE_BATCH = 100


def _default(name: str) -> object:
    """The value ``RunSettings`` gives setting ``name`` when it is not set."""
    field = next(f for f in fields(RunSettings) if f.name == name)
    return field.default


def _take_reference_defaults(settings: RunSettings, images: int) -> None:
    """Where ``settings`` hold ganlib's GAN defaults, put the reference's (in place)."""
    if settings.batch_size == _default("batch_size"):
        settings.batch_size = REFERENCE_BATCH
    for name in ("lr_g", "lr_d"):
        if getattr(settings, name) == _default(name):
            setattr(settings, name, REFERENCE_ADAM["lr"])
    if settings.eval_every == _default("eval_every"):  # every epoch
        settings.eval_every = math.ceil(images / settings.batch_size)
    if settings.precision is None and settings.fast:  # bf16 breaks the game (the task says)
        settings.precision = "32"
    if settings.eval_features == "auto":
        settings.eval_features = "none"
    elif settings.eval_features != "none":
        raise ValueError(
            f"--eval-features {settings.eval_features!r} scores a GAN pair's generator; a "
            "semi-supervised run scores its classifier (error, error_avg): give none"
        )


def _class_names(settings: RunSettings, classes: int) -> list[str]:
    if settings.data == "mnist":
        return [str(k) for k in range(classes)]
    if settings.data == "fashion-mnist":
        return list(FASHION_MNIST_CLASSES)
    return list(ImageFolder(settings.data, channels=settings.channels).classes)


def build_semi_supervised(settings: RunSettings, data: RunData) -> Task:
    """The semi-supervised task the settings name, on ``data`` (seeded by ``settings.seed``).

    Chooses the labelled set (``labels`` per class-balanced, by ``label_seed``), records its
    fingerprint in ``data.fingerprint`` (``config.toml``'s ``[data_fingerprint]``), and
    puts the reference's settings where ``settings`` hold ganlib's GAN defaults.

    Raises:
        ValueError: Without ``--labels``, for data without classes, or a count the
            classes cannot fill.
    """
    if settings.labels is None:
        raise ValueError(
            "--task semi-supervised needs --labels N: how many training images keep their "
            "labels (balanced per class)"
        )
    if data.labels is None or data.num_classes is None:
        raise ValueError(
            f"--task semi-supervised needs data with classes (mnist, fashion-mnist or a folder "
            f"with one subfolder per class), got {settings.data!r} without"
        )
    _take_reference_defaults(settings, len(data.images))
    label_seed = settings.seed if settings.label_seed is None else settings.label_seed
    chosen = choose_labelled(data.labels, settings.labels, label_seed, num_classes=data.num_classes)
    data.fingerprint["labelled"] = fingerprint(chosen)
    data.fingerprint["labelled_count"] = len(chosen)
    data.fingerprint["label_seed"] = label_seed
    assert settings.image_size is not None and settings.channels is not None
    shape = (settings.channels, settings.image_size, settings.image_size)
    torch.manual_seed(settings.seed)  # the networks' initialisation
    settings.choose_recipe()  # (the classic one: no DCGAN here)
    adam = {**REFERENCE_ADAM, "betas": (settings.beta1, settings.beta2)}
    return SemiSupervisedTask(
        SemiSupervisedDiscriminator(shape, data.num_classes),
        SemiSupervisedGenerator(shape, settings.latent_dim),
        labelled=chosen,
        label_seed=label_seed,
        seed=settings.seed,
        generator_loss=settings.generator_loss,  # type: ignore[arg-type]
        unlabelled_weight=settings.unlabelled_weight,
        d_optimizer={**adam, "lr": settings.lr_d},
        g_optimizer={**adam, "lr": settings.lr_g},
        average_decay=settings.average_decay,
        class_names=_class_names(settings, data.num_classes),
        labels=data.labels,  # (the run feeds the Trainer the images alone)
    )


def semi_supervised_callbacks(settings: RunSettings, task: Task) -> list[Callback]:
    """The test error every ``eval_every`` steps (none for 0): on the named data set's
    other split (test, for a run on train), or on a folder's held-back images."""
    if settings.eval_every == 0:
        return []
    every = settings.eval_every
    if settings.data not in NAMED_DATA:
        return [ClassificationError(every_n_steps=every)]  # the held-back images
    other = "test" if settings.split == "train" else "train"
    held_out = load_run_data(
        settings.data, data_dir=settings.data_dir, split=other, download=settings.download
    )
    assert held_out.labels is not None
    return [ClassificationError(held_out.images, held_out.labels, every_n_steps=every)]


register_run_task(
    "semi-supervised",
    RunTask(build_semi_supervised, semi_supervised_callbacks, monitor=("error_avg", "min")),
)

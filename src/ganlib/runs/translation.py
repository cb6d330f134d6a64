"""Translation runs: ``ganlib train --task pix2pix DIR`` (the reference's aligned A|B
images, or ``DIR B_DIR``: two folders of matching names) and ``ganlib train --task
cyclegan A_DIR B_DIR`` (two unpaired domains), registered as run tasks.

A translation run takes the reference's networks for its image size
([`Pix2PixTask.build`][ganlib.tasks.Pix2PixTask.build],
[`CycleGANTask.build`][ganlib.tasks.CycleGANTask.build]; ``--width`` for both networks,
64 by default), Adam with ``--lr-g``/``--lr-d`` and ``--beta1``/``--beta2`` (the
reference's 2e-4 and (0.5, 0.999) by default), 3 PatchGAN layers where the images are
large enough (`patch_layers`), and the reference's learning-rate policy
over the run's length: constant for the first half of its steps, then linearly to 0
([`LinearDecay.halves`][ganlib.tasks.LinearDecay.halves]). Its images' size and channels
come from the data unless ``--image-size``/``--channels`` are given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..callbacks import EMA, Callback
from ..data import load_aligned_pairs, load_paired_folders, load_unpaired_folders
from ..data.common import DataNotFoundError
from ..data.sources import RunData
from ..tasks import CycleGANTask, LinearDecay, Pix2PixTask, Task
from .build import RunTask, budget_for, register_run_task
from .settings import RunSettings

__all__ = [
    "build_cyclegan",
    "build_pix2pix",
    "cyclegan_callbacks",
    "load_cyclegan_data",
    "load_pix2pix_data",
    "patch_layers",
]

# The reference's widths (its ngf and ndf), for a run that gives no --width.
DEFAULT_WIDTH = 64


def _folder(path: str | None, what: str) -> Path:
    if path is None or not Path(path).is_dir():
        raise DataNotFoundError(f"{what} must be a folder of images, got {path!r}")
    return Path(path)


def _run_data(settings: RunSettings, images_a: torch.Tensor, images_b: torch.Tensor) -> RunData:
    fingerprint = {
        "source": str(Path(settings.data).resolve()),
        "source_b": None if settings.data_b is None else str(Path(settings.data_b).resolve()),
        "images": len(images_a),
        "size": images_a.shape[-1],
        "channels": images_a.shape[1],
        "channels_b": images_b.shape[1],
    }
    return RunData(
        images_a, None, images_a.shape[-1], images_a.shape[1], None, fingerprint, images_b
    )


def load_pix2pix_data(settings: RunSettings) -> RunData:
    """pix2pix's pairs: DATA's aligned A|B images, or DATA and ``data_b`` matched by name.

    Raises:
        DataNotFoundError, ValueError: For a missing folder or unmatched names.
    """
    root = _folder(settings.data, "DATA")
    if settings.data_b is None:
        a, b = load_aligned_pairs(root, settings.image_size, settings.channels)
    else:
        root_b = _folder(settings.data_b, "DATA_B")
        a, b = load_paired_folders(root, root_b, settings.image_size, settings.channels)
    return _run_data(settings, a, b)


def load_cyclegan_data(settings: RunSettings) -> RunData:
    """CycleGAN's two domains, DATA (A) and ``data_b`` (B), made equally long (seeded).

    Raises:
        DataNotFoundError: For a missing folder, or no second one.
    """
    root_a = _folder(settings.data, "DATA (domain A)")
    root_b = _folder(settings.data_b, "DATA_B (domain B; ganlib train --task cyclegan A B)")
    channels = settings.channels
    a, b = load_unpaired_folders(root_a, root_b, settings.image_size, channels, channels)
    return _run_data(settings, a, b)


def patch_layers(image_size: int) -> int:
    """The reference's 3 PatchGAN layers (70x70 patches) where ``image_size`` allows them
    (>= 24), fewer for smaller images (the most that leave a score map)."""
    layers = 3
    while layers > 1 and image_size // 2**layers < 3:
        layers -= 1
    return layers


def _common(settings: RunSettings, data: RunData) -> dict[str, Any]:
    """What both tasks take from the run's settings: widths, Adam, the schedule."""
    width = settings.width or DEFAULT_WIDTH
    steps = budget_for(settings, data).steps
    settings.choose_recipe()  # (the classic one: no DCGAN here)
    betas = (settings.beta1, settings.beta2)
    torch.manual_seed(settings.seed)  # the networks' initialisation
    return dict(
        width=width,
        discriminator_width=width,
        layers=patch_layers(data.image_size),
        g_optimizer={"lr": settings.lr_g, "betas": betas},
        d_optimizer={"lr": settings.lr_d, "betas": betas},
        lr_schedule=None if not steps else LinearDecay.halves(steps),
    )


def build_pix2pix(settings: RunSettings, data: RunData) -> Task:
    """The reference's pix2pix for the run's image size and channels."""
    assert data.pairs is not None, "load_pix2pix_data reads pairs"
    channels_b = data.pairs.shape[1]
    return Pix2PixTask.build(data.image_size, data.channels, channels_b, **_common(settings, data))


def build_cyclegan(settings: RunSettings, data: RunData) -> Task:
    """The reference's CycleGAN for the run's image size and channels (its identity loss
    only where the two domains have one channel count)."""
    assert data.pairs is not None, "load_cyclegan_data reads two domains"
    channels_b = data.pairs.shape[1]
    return CycleGANTask.build(
        data.image_size,
        data.channels,
        channels_b,
        identity_weight=0.5 if channels_b == data.channels else 0.0,
        **_common(settings, data),
    )


def cyclegan_callbacks(settings: RunSettings, task: Task) -> list[Callback]:
    """With ``--ema``, an average of ``g_ba`` too (the run's own EMA averages ``g_ab``), so
    ``ganlib translate --ema`` translates either way."""
    if not settings.ema:
        return []
    return [EMA(settings.ema_decay, warmup=settings.ema_warmup, network="g_ba")]


register_run_task("pix2pix", RunTask(build_pix2pix, load_data=load_pix2pix_data))
register_run_task(
    "cyclegan", RunTask(build_cyclegan, cyclegan_callbacks, load_data=load_cyclegan_data)
)

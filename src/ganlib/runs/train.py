"""``train(settings)``: a run from its settings, to the end, with nothing lost or bent.

The order is the guarantee: every setting is checked and the data read before anything is
written; a resumed run is compared with what it resumes (its settings and its data); the
Trainer then locks the run folder, refuses an earlier run's files unless told, loads the
checkpoint, and only then is ``config.toml`` written — so it always says what ran.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import TensorDataset
from typing_extensions import override

from .._logging import logger
from ..callbacks import Callback, Evaluation
from ..callbacks.base import FileWriter
from ..data.sources import RunData, load_run_data
from ..device import resolve_device
from ..distributed import is_elastic_restart
from ..runfolder import refuse_clobbering
from ..trainer import Trainer, TrainerState
from .build import build_trainer, resolved_fast, run_task
from .config import read_config, save_json, write_config
from .folder import RunFolder
from .settings import RunSettings, flag_name

__all__ = ["FIXED_ON_RESUME", "RunConfig", "RunResult", "load_data", "resume_command", "train"]

# Settings a resumed run cannot change: they define its networks, its data or its data order.
FIXED_ON_RESUME = (
    "data",
    "task",
    "split",
    "image_size",
    "channels",
    "arch",
    "latent_dim",
    "width",
    "spectral_norm",
    "conditional",
    "batch_size",
    "shuffle",
    "seed",
    "ema",
)


@dataclass
class RunResult:
    """How a run ended.

    Attributes:
        trainer: The run's Trainer (its networks, callbacks and state).
        state: Where training stopped.
        seconds: Wall time of ``fit``.
        folder: The run folder.
        data: The data it trained on.
    """

    trainer: Trainer
    state: TrainerState
    seconds: float
    folder: RunFolder
    data: RunData


class RunConfig(FileWriter):
    """Writes ``config.toml`` when training starts: after every check, with the run
    folder locked and any checkpoint loaded. A fresh run refuses a folder whose
    ``config.toml`` belongs to an earlier run (unless ``overwrite``)."""

    def __init__(self, settings: RunSettings, fingerprint: dict[str, Any], path: Path) -> None:
        self.settings, self.fingerprint, self.path = settings, fingerprint, path

    @property
    @override
    def state_key(self) -> str:
        return f"RunConfig[{self.path}]"

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        write_config(self.settings, self.fingerprint, self.path)


def load_data(settings: RunSettings) -> RunData:
    """The run's data (its image size and channels fill in ``settings`` where unset), with
    a ``content`` hash of the images in its fingerprint.

    Raises:
        DataNotFoundError, ValueError: For data that cannot be read.
    """
    reader = run_task(settings.task).load_data
    if reader is not None:  # (a task that reads its own data: image pairs)
        data = reader(settings)
    else:
        data = load_run_data(
            settings.data,
            data_dir=settings.data_dir,
            split=settings.split,
            download=settings.download,
            image_size=settings.image_size,
            channels=settings.channels,
            conditional=settings.conditional,
        )
    settings.image_size, settings.channels = data.image_size, data.channels
    digest = hashlib.sha256(data.images.contiguous().numpy().tobytes())
    if data.pairs is not None:
        digest.update(data.pairs.contiguous().numpy().tobytes())
    data.fingerprint["content"] = digest.hexdigest()[:16]
    return data


def resume_command(folder: RunFolder) -> str:
    """The command that continues the run in ``folder``, quoted for a shell."""
    return f"ganlib train --resume {shlex.quote(str(folder.path))}"


def _check_resume(settings: RunSettings, folder: RunFolder, data: RunData) -> None:
    """Refuse a resume that would change the run's networks, data or data order; say
    what other settings change.

    Raises:
        ValueError: Naming the setting (or the data's property), the run's value and
            the one given.
    """
    stored = RunSettings.from_dict(read_config(folder.config), str(folder.config))
    if stored.image_size and stored.channels and stored.task == "adversarial":
        stored.choose_network()  # (a GAN pair's network; other tasks build their own)
    changes = []
    for name in RunSettings.names():
        old, new = getattr(stored, name), getattr(settings, name)
        if name == "out" or old == new or (old is None and name in ("arch", "width")):
            continue
        if name in FIXED_ON_RESUME:
            raise ValueError(
                f"{flag_name(name)} {new!r} differs from the run's {old!r} ({folder.config}): a "
                "resumed run keeps its networks, data and data order; start a new run "
                "(another --out) to change it"
            )
        changes.append(f"{name} {old!r} -> {new!r}")
    recorded = read_config(folder.config, "data_fingerprint")
    for key, value in data.fingerprint.items():
        if key in recorded and recorded[key] != value:
            raise ValueError(
                f"the data differs from what the run in {folder.path} trained on: its {key} "
                f"was {recorded[key]!r}, now {value!r} ({settings.data}); resume on the same "
                "data, or start a new run"
            )
    if changes:
        logger.warning(
            f"ganlib: resuming {folder.path} with changed settings: {'; '.join(changes)}"
        )


def train(
    settings: RunSettings,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Iterable[Callback] = (),
    data: RunData | None = None,
) -> RunResult:
    """Train the run ``settings`` describe, in the folder ``settings.out``.

    Args:
        settings: The run's settings (validated here; ``image_size``, ``channels``,
            ``arch`` and ``width`` left ``None`` are filled in from the data).
        resume: Continue the run in ``settings.out`` from its newest intact checkpoint;
            its networks, data and data order must stay as they were.
        overwrite: Let a fresh run replace an earlier run's files in ``settings.out``.
        callbacks: More callbacks, after the run folder's own.
        data: The data, when already loaded (by [`load_data`][ganlib.runs.load_data]).

    Returns:
        The [`RunResult`][ganlib.runs.RunResult]; ``summary.json`` is written too.

    Raises:
        ValueError: A setting that breaks its rule, a resume that would change the run.
        CheckpointError: ``resume`` without a readable checkpoint.
        RunFolderError: A folder that is locked, unwritable, or holds an earlier run.
        TrainingInterrupted: Ctrl-C or SIGTERM, after the step was saved.
    """
    settings.validate()
    resolve_device(settings.device)  # (a missing GPU is named before any data is read)
    settings.fast = resolved_fast(settings)  # (config.toml says what ran)
    folder = RunFolder(Path(settings.out))
    if folder.path.exists() and not folder.path.is_dir():
        raise ValueError(f"--out must be a folder, got {settings.out!r}, which is a file")
    if resume and overwrite:
        raise ValueError("--resume continues a run and --overwrite replaces it: give one")
    checkpoint = None
    if resume:
        if not folder.is_run():
            raise ValueError(f"--resume {str(folder.path)!r} is not a run folder: no config.toml")
        checkpoint = folder.checkpoint()
    data = data if data is not None else load_data(settings)
    if resume:
        _check_resume(settings, folder, data)
    trainer = build_trainer(
        settings,
        data=data,
        overwrite=overwrite,
        extra_callbacks=[RunConfig(settings, data.fingerprint, folder.config), *callbacks],
    )
    fresh = not (resume or overwrite or is_elastic_restart())
    if fresh:  # in the command's terms, before anything is written
        out = shlex.quote(str(folder.path))
        refuse_clobbering(
            trainer.callbacks.active,
            remedy=f"continue it with --resume {out}, replace it with --overwrite, or choose "
            "another --out",
        )
    if trainer.is_main_process:
        images = data.fingerprint.get("images")
        print(
            f"training {settings.arch or settings.task} on {images} images ({data.channels}x"
            f"{data.image_size}x{data.image_size}) from {settings.data} -> {folder.path}",
            flush=True,
        )
    training_data: Any = data.for_fit(settings.conditional)
    if settings.num_workers > 0:  # through a DataLoader with workers, as a Dataset
        parts = training_data if isinstance(training_data, tuple) else (training_data,)
        training_data = TensorDataset(*parts)
    started = time.perf_counter()
    state = trainer.fit(
        training_data,
        str(checkpoint) if checkpoint is not None else None,
        batch_size=settings.batch_size,
        shuffle=settings.shuffle,
        num_workers=settings.num_workers,
    )
    seconds = time.perf_counter() - started
    if trainer.is_main_process:
        summary: dict[str, Any] = {
            "steps": state.step,
            "epochs": state.epoch,
            "seconds": round(seconds, 2),
            "device": str(trainer.device),
            "world_size": trainer.world.world_size,
            "final_metrics": state.metrics,
        }
        evaluation = trainer.callback(Evaluation)
        if isinstance(evaluation, Evaluation) and evaluation.best is not None:
            summary["best"] = {"fd": evaluation.best, "step": evaluation.best_step}
        save_json(folder.summary, summary)
    return RunResult(trainer, state, seconds, folder, data)

"""``train(settings)``: a run from its settings, to the end, with nothing lost or bent.

The order is the guarantee: every setting is checked and the data read before anything is
written; a resumed run is compared with what it resumes (its settings and its data); the
Trainer then locks the run folder, refuses an earlier run's files unless told, loads the
checkpoint, and only then is ``config.toml`` written — so it always says what ran.

``overwrite`` replaces a run, it does not mix two: with the folder locked, the earlier
run's files are moved into ``RUN/.replaced-STAMP/``; they are deleted once the new run has
written its first checkpoint, and put back if it fails before that.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import time
from collections.abc import Iterable, Mapping
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
from ..runfolder import hold_locks, output_folders, refuse_clobbering
from ..trainer import Trainer, TrainerState
from .build import build_trainer, resolved_fast
from .config import read_config, save_json, write_config
from .folder import RunFolder
from .settings import RunSettings, flag_name

__all__ = [
    "FIXED_ON_RESUME",
    "ReplacedRun",
    "RunConfig",
    "RunResult",
    "load_data",
    "resume_command",
    "train",
]

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


class ReplacedRun(Callback):
    """Deletes the earlier run that ``--overwrite`` set aside (``RUN/.replaced-STAMP``) as
    soon as the new run has a checkpoint, saying which. Listed after the run's
    ModelCheckpoint, so it sees each save (an exception's too) as it happens."""

    main_process_only = True
    runs_last = True

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.pending = False  # set by train() once the earlier run was set aside

    @property
    @override
    def state_key(self) -> str:
        return f"ReplacedRun[{self.folder.path}]"

    def _check(self) -> None:
        if not self.pending or not self.folder.last.is_file():
            return
        gone = self.folder.remove_replaced()
        self.pending = False
        if gone:
            logger.info(
                f"ganlib: --overwrite: this run wrote its first checkpoint, so the run it "
                f"replaced is deleted ({', '.join(str(g) for g in gone)})"
            )

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self._check()

    @override
    def on_epoch_end(self, trainer: Trainer) -> None:
        self._check()

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        self._check()

    @override
    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self._check()


def load_data(settings: RunSettings) -> RunData:
    """The run's data (its image size and channels fill in ``settings`` where unset), with
    a ``content`` hash of the images in its fingerprint.

    Raises:
        DataNotFoundError, ValueError: For data that cannot be read.
    """
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
    if stored.image_size and stored.channels:
        stored.choose_network()
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


def _put_back(folder: RunFolder, aside: Path) -> None:
    """Restore the earlier run after a replacement that failed before its first checkpoint,
    saying so (or where it is kept, if it cannot be moved back)."""
    try:
        folder.put_back(aside)
    except OSError as exc:
        logger.warning(
            f"ganlib: --overwrite: this run ended before its first checkpoint; the run it "
            f"was replacing is kept in {aside} (putting it back failed: {exc})"
        )
    else:
        logger.warning(
            f"ganlib: --overwrite: this run ended before its first checkpoint, so the run it "
            f"was replacing is back in {folder.path}, as it was"
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
        overwrite: Replace an earlier run in ``settings.out``: its files (`RUN_FILES`
            and the callbacks' earlier outputs there) are moved into
            ``RUN/.replaced-STAMP/`` when training starts, deleted once this run has a
            checkpoint, and put back if it fails before that. (``Trainer(overwrite=True)``
            alone replaces each file as it is written.)
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
    replaced = ReplacedRun(folder)
    trainer = build_trainer(
        settings,
        data=data,
        overwrite=overwrite,
        extra_callbacks=[
            RunConfig(settings, data.fingerprint, folder.config),
            *callbacks,
            replaced,  # (after the run's ModelCheckpoint)
        ],
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
            f"training {settings.arch} on {images} images ({data.channels}x{data.image_size}x"
            f"{data.image_size}) from {settings.data} -> {folder.path}",
            flush=True,
        )
    training_data: Any = data.for_fit(settings.conditional)
    if settings.num_workers > 0:  # through a DataLoader with workers, as a Dataset
        parts = training_data if isinstance(training_data, tuple) else (training_data,)
        training_data = TensorDataset(*parts)
    started = time.perf_counter()
    with contextlib.ExitStack() as held:
        aside = None
        if overwrite and trainer.is_main_process and not is_elastic_restart():
            active = trainer.callbacks.active
            held.enter_context(hold_locks(output_folders(active)))  # (fit takes them again)
            extra = [p for c in active for p in c.earlier_outputs()]
            aside = folder.set_aside(extra)
            replaced.pending = aside is not None
            if aside is not None:
                logger.info(
                    f"ganlib: --overwrite: moved the earlier run's files in {folder.path} to "
                    f"{aside}; they are deleted once this run writes its first checkpoint"
                )
        try:
            state = trainer.fit(
                training_data,
                str(checkpoint) if checkpoint is not None else None,
                batch_size=settings.batch_size,
                shuffle=settings.shuffle,
                num_workers=settings.num_workers,
            )
        except BaseException:
            if aside is not None and aside.exists():  # no checkpoint yet: keep the earlier run
                _put_back(folder, aside)
            raise
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

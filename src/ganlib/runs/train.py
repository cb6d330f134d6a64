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
import os
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
from ..data.folder import IMAGE_EXTENSIONS
from ..data.sources import NAMED_DATA, RunData, load_run_data
from ..device import resolve_device
from ..distributed import is_elastic_restart
from ..runfolder import hold_locks, output_folders, refuse_clobbering
from ..sampling import check_grid_pixels
from ..trainer import Trainer, TrainerState
from .build import MAX_HELD_OUT, budget_for, build_trainer, held_out_count, resolved_fast, run_task
from .config import read_config, save_json, write_config
from .folder import ReplacedRun, RunFolder, resume_command
from .settings import RunSettings, flag_name

__all__ = [
    "FIXED_ON_RESUME",
    "RunConfig",
    "RunResult",
    "load_data",
    "load_trained_data",
    "resume_command",
    "train",
]

# The most of this machine's memory a run's images may take in memory (float32), read as
# a whole: the rest is for the networks, their optimizers and the grids.
MAX_DATA_MEMORY_FRACTION = 0.5

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
    "minibatch_std",
    "conditional",
    "batch_size",
    "shuffle",
    "seed",
    "ema",
    "holdout",
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
        first_step: The step it started from (0, or where a resumed run went on).
    """

    trainer: Trainer
    state: TrainerState
    seconds: float
    folder: RunFolder
    data: RunData
    first_step: int = 0


class RunConfig(FileWriter):
    """Writes ``config.toml`` when training starts: after every check, with the run
    folder locked and any checkpoint loaded. A fresh run refuses a folder whose
    ``config.toml`` belongs to an earlier run (unless ``overwrite``)."""

    def __init__(
        self,
        settings: RunSettings,
        fingerprint: dict[str, Any],
        path: Path,
        chosen: dict[str, str] | None = None,
    ) -> None:
        self.settings, self.fingerprint, self.path = settings, fingerprint, path
        self.chosen = chosen or {}
        self.first_step = 0  # where training started (a resumed run's checkpoint step)

    @property
    @override
    def state_key(self) -> str:
        return f"RunConfig[{self.path}]"

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        self.first_step = trainer.state.step
        write_config(self.settings, self.fingerprint, self.path, self.chosen)


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


def _memory_bytes() -> int | None:
    """This machine's physical memory, or ``None`` where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _amount(nbytes: float) -> str:
    """Bytes in words: ``1.2 GiB``, ``3.0 MiB``."""
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.1f} MiB"


def _check_grid(settings: RunSettings, num_classes: int | None) -> None:
    """Refuse a sample grid over `ganlib.sampling.MAX_GRID_PIXELS` (a conditional run's
    grid has a row of ``grid_nrow`` per class).

    Raises:
        ValueError: Naming the settings, the pixels and the bound.
    """
    size = settings.image_size
    if size is None:
        return
    if settings.conditional and num_classes is not None:
        count, given = num_classes * settings.grid_nrow, f"{num_classes} classes x --grid-nrow"
    else:
        count, given = settings.grid_samples, "--grid-samples"
    check_grid_pixels(
        count, size, size, given, "lower --grid-samples or --grid-nrow, or --image-size"
    )


def check_sizes(settings: RunSettings) -> None:
    """Refuse sizes that cannot fit, before the data is read: a folder's images at
    ``image_size`` over `MAX_DATA_MEMORY_FRACTION` of this machine's memory (counting
    its image files, up to ``channels`` or 3 channels of float32), and a sample grid over
    `ganlib.sampling.MAX_GRID_PIXELS`. (The networks' sizes are bounded where they are built.)

    Raises:
        ValueError: Naming the setting, the sizes and the bound.
    """
    size = settings.image_size
    if size is None or settings.data in NAMED_DATA or not Path(settings.data).is_dir():
        return
    if not settings.conditional:
        _check_grid(settings, None)
    memory = _memory_bytes()
    if memory is None:
        return
    suffixes = set(IMAGE_EXTENSIONS)
    files = sum(1 for p in Path(settings.data).rglob("*") if p.suffix.lower() in suffixes)
    channels = settings.channels or 3
    needed = files * channels * size * size * 4
    if needed > MAX_DATA_MEMORY_FRACTION * memory:
        raise ValueError(
            f"--image-size {size}: the {files:,} image files of {settings.data} would take "
            f"{_amount(needed)} in memory ({channels}x{size}x{size} float32 each), over "
            f"{MAX_DATA_MEMORY_FRACTION:.0%} of this machine's {_amount(memory)}: lower "
            "--image-size"
        )


# Settings newer than some runs' config.toml, with the value those runs trained with.
_BEFORE_THEY_EXISTED: dict[str, Any] = {"holdout": 0.0}  # (a run trained on every image)


def _migrate_resumed(settings: RunSettings, folder: RunFolder) -> dict[str, Any]:
    """The resumed run's recorded settings (its config.toml's ``[run]``), brought up to
    date: a setting its ganlib predated takes the value the run trained with
    (`_BEFORE_THEY_EXISTED`), in the recorded settings and in ``settings`` alike (a run
    from before the hold-out resumes on all its images)."""
    values = read_config(folder.config)
    for name, value in _BEFORE_THEY_EXISTED.items():
        if name not in values:
            values[name] = value
            setattr(settings, name, value)
    return values


def load_trained_data(run: str | os.PathLike[str]) -> tuple[RunSettings, RunData]:
    """A run folder's settings (its ``config.toml``, brought up to date as a resume brings
    them) and its data as it trained on them: the images it held out in ``held_out``, the
    rest in ``images``; for scripts that study a finished run.

    Raises:
        ValueError, OSError: For a folder without a readable config.toml.
        DataNotFoundError: For data that are no longer where the run read them.
    """
    folder = RunFolder(Path(run))
    values = read_config(folder.config)
    for name, value in _BEFORE_THEY_EXISTED.items():
        values.setdefault(name, value)
    settings = RunSettings.from_dict({**values, "download": False}, str(folder.config))
    data = load_data(settings)
    held_out = held_out_count(settings, len(data.images))
    return settings, data.holding_out(held_out, settings.seed) if held_out else data


def _check_resume(
    settings: RunSettings, recorded: dict[str, Any], folder: RunFolder, data: RunData
) -> None:
    """Refuse a resume that would change the run's networks, data or data order (against
    its ``recorded`` settings); say what other settings change.

    Raises:
        ValueError: Naming the setting (or the data's property), the run's value and
            the one given.
    """
    stored = RunSettings.from_dict(recorded, str(folder.config))
    if stored.image_size and stored.channels and stored.task == "adversarial":
        stored.choose_network()  # (a GAN pair's network; other run tasks choose none)
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
    fingerprint = read_config(folder.config, "data_fingerprint")
    for key, value in data.fingerprint.items():
        if key in fingerprint and fingerprint[key] != value:
            raise ValueError(
                f"the data differs from what the run in {folder.path} trained on: its {key} "
                f"was {fingerprint[key]!r}, now {value!r} ({settings.data}); resume on the same "
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
    if data is None:
        check_sizes(settings)
        data = load_data(settings)
    rule = RunSettings.rule("image_size")
    if rule is not None and not rule.allows(data.image_size):  # a folder's own median size
        raise ValueError(
            f"the images of {settings.data} are {data.image_size} pixels a side (their "
            f"median), over --image-size's rule ({rule.describe()}): give --image-size"
        )
    _check_grid(settings, data.num_classes)
    if resume:
        _check_resume(settings, _migrate_resumed(settings, folder), folder, data)
    replaced = ReplacedRun(folder)
    held_out = held_out_count(settings, len(data.images))
    if held_out:
        data = data.holding_out(held_out, settings.seed)
    chosen = {}
    if settings.task == "adversarial":  # (what a GAN pair leaves to the data)
        chosen["network"] = settings.choose_network(len(data.images))
        if not resume:  # (a resumed run keeps what its config.toml says)
            chosen["augment"] = settings.choose_augment(len(data.images))
    budget = budget_for(settings, data).describe(max(len(data.images), 1))
    chosen["budget"] = budget.removeprefix("budget: ")
    if held_out:
        chosen["evaluation"] = (
            f"FD in random features against {held_out:,} held-out images ({settings.holdout:g} "
            f"of the folder, at most {MAX_HELD_OUT:,}), with the memorisation check; "
            "--holdout 0 to train on all"
        )
    trainer = build_trainer(
        settings,
        data=data,
        overwrite=overwrite,
        extra_callbacks=[
            RunConfig(settings, data.fingerprint, folder.config, chosen),
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
        images = len(data.images) if held_out else data.fingerprint.get("images")
        kept_out = f", {held_out} more held out" if held_out else ""
        print(
            f"training {settings.arch or settings.task} on {images} images ({data.channels}x"
            f"{data.image_size}x{data.image_size}{kept_out}) from {settings.data} -> "
            f"{folder.path}\n{budget}",
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
                folder.restore_replaced(aside)
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
    config = trainer.callback(RunConfig)
    first_step = config.first_step if isinstance(config, RunConfig) else 0
    return RunResult(trainer, state, seconds, folder, data, first_step)

"""A training run: its settings, its folder, and ``train(settings)``.

One owner for everything a run is: [`RunSettings`][ganlib.runs.RunSettings] (one
definition: ``ganlib train``'s flags, ``config.toml``'s keys, presets and checks),
[`RunFolder`][ganlib.runs.RunFolder] (one rule for a run's checkpoint and files), and
[`train`][ganlib.runs.train] (check everything, lock, then write; resume what was run).
``ganlib train``, ``examples/mnist.py`` and the benchmarks all go through it.
"""

from . import semi_supervised  # noqa: F401  (registers --task semi-supervised)
from .budget import MIN_KIMG, Budget, training_budget
from .build import (
    RunTask,
    budget_for,
    build_adversarial,
    build_trainer,
    callbacks_for,
    evaluation_for,
    held_out_count,
    memorisation_images,
    register_run_task,
    run_tasks,
    snapshot_epochs,
)
from .config import read_config, save_json, write_config
from .folder import CONFIG_NAME, RunFolder
from .presets import load_preset, presets
from .settings import DEFAULT_WIDTHS, SMALL_IMAGE, Rule, RunSettings, flag_name
from .train import (
    FIXED_ON_RESUME,
    RunConfig,
    RunResult,
    load_data,
    load_trained_data,
    resume_command,
    train,
)
from .translation import load_cyclegan_data, load_pix2pix_data  # (registers pix2pix, cyclegan)

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_WIDTHS",
    "FIXED_ON_RESUME",
    "MIN_KIMG",
    "SMALL_IMAGE",
    "Budget",
    "Rule",
    "RunConfig",
    "RunFolder",
    "RunResult",
    "RunSettings",
    "RunTask",
    "budget_for",
    "build_adversarial",
    "build_trainer",
    "callbacks_for",
    "evaluation_for",
    "flag_name",
    "held_out_count",
    "load_cyclegan_data",
    "load_data",
    "load_pix2pix_data",
    "load_preset",
    "load_trained_data",
    "memorisation_images",
    "presets",
    "read_config",
    "register_run_task",
    "resume_command",
    "run_tasks",
    "save_json",
    "snapshot_epochs",
    "train",
    "training_budget",
    "write_config",
]

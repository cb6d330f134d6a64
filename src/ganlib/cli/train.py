"""``ganlib train DATA --out runs/NAME``: a GAN on a folder of images (or mnist,
fashion-mnist, stacked-mnist) from one command; ``--config run.toml`` gives the same
settings from a file (flags win); ``--resume runs/NAME`` continues a run from its folder
alone."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from ..callbacks import Evaluation
from ..data.sources import load_run_data
from ..gan import architectures
from ..runfolder import RunFolderError, refuse_clobbering
from ..runs import CONFIG_NAME, RunSettings, build_trainer, read_config, save_summary, write_config
from ..step import METRIC_NAMES
from .args import int_at_least, non_negative_int, positive_int

__all__ = ["add_parser", "settings_from", "train_command"]

# Flags whose values have a rule beyond their type.
_TYPES: dict[str, Any] = {
    "image_size": int_at_least(5),
    "channels": positive_int,
    "latent_dim": positive_int,
    "width": positive_int,
    "batch_size": positive_int,
    "epochs": positive_int,
    "max_steps": positive_int,
    "d_steps": positive_int,
    "r1_every": positive_int,
    "seed": non_negative_int,
    "num_workers": non_negative_int,
    "grid_every": positive_int,
    "checkpoint_every": positive_int,
    "keep_checkpoints": positive_int,
    "grid_samples": positive_int,
    "grid_nrow": positive_int,
    "progress_every": positive_int,
    "eval_every": positive_int,
    "eval_samples": int_at_least(2),
    "early_stop": positive_int,
}
_CHOICES = {
    "loss": ("bce", "hinge", "wgan-gp", "lsgan"),
    "precision": ("32", "bf16", "16", "32-true", "bf16-mixed", "16-mixed"),
    "split": ("train", "test"),
}


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
    return {k: v.replace("``", "").replace("%", "%%") for k, v in helps.items()}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``train`` subcommand: one flag per [`RunSettings`][ganlib.runs.RunSettings] field."""
    defaults = RunSettings(data="")
    train = commands.add_parser(
        "train",
        help="train a GAN on a folder of images, mnist, fashion-mnist or stacked-mnist",
        description="Train a GAN and write a run folder: config.toml, sample grids, "
        "metrics.csv, loss_curve.png, checkpoints/. A new run refuses a folder that holds "
        "another run's files: --resume it, --overwrite it, or choose another --out.",
    )
    train.add_argument(
        "data",
        nargs="?",
        default=None,
        help="a folder of images, mnist, fashion-mnist or stacked-mnist",
    )
    train.add_argument("--config", type=Path, help="a TOML file of settings ([run] table)")
    train.add_argument("--resume", type=Path, help="a run folder to continue (its config.toml)")
    train.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run's files in --out"
    )
    helps = _setting_help()
    choices = {**_CHOICES, "arch": tuple(architectures())}
    for name in RunSettings.names():
        if name == "data":
            continue
        default = getattr(defaults, name)
        flag = "--" + name.replace("_", "-")
        text = f"{helps.get(name, '')} (default: {default})"
        if isinstance(default, bool):
            train.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        kind = _TYPES.get(name) or (float if isinstance(default, float) else str)
        if name in ("lr_g", "lr_d", "r1_gamma", "ema_decay", "beta1", "beta2"):
            kind = float
        train.add_argument(
            flag, type=kind, default=None, choices=choices.get(name), help=text, metavar=None
        )
    train.set_defaults(run=train_command)


def settings_from(args: argparse.Namespace) -> tuple[RunSettings, bool]:
    """The run's settings: a resumed run's config.toml or --config, then the flags.

    Returns:
        The settings, and whether the run resumes.

    Raises:
        ValueError: For a missing DATA, an unreadable config, or a folder that is not a run.
    """
    base: dict[str, Any] = {}
    source = "flags"
    if args.resume is not None:
        config = args.resume / CONFIG_NAME
        if not config.is_file():
            raise ValueError(f"--resume {str(args.resume)!r} is not a run folder: no {CONFIG_NAME}")
        base, source = {**read_config(config), "out": str(args.resume)}, str(config)
    elif args.config is not None:
        base, source = read_config(args.config), str(args.config)
    given = {n: getattr(args, n) for n in RunSettings.names() if getattr(args, n, None) is not None}
    if args.data is not None:
        given["data"] = args.data
    values = {**base, **given}
    if "data" not in values:
        raise ValueError(
            "DATA is required: a folder of images, mnist, fashion-mnist or stacked-mnist"
        )
    settings = RunSettings.from_dict(values, source)
    if not 0.0 <= settings.ema_decay < 1.0:
        raise ValueError(f"--ema-decay must be in [0, 1), got {settings.ema_decay}")
    for name in ("lr_g", "lr_d"):
        if not getattr(settings, name) > 0:
            raise ValueError(
                f"--{name.replace('_', '-')} must be > 0, got {getattr(settings, name)}"
            )
    return settings, args.resume is not None


def train_command(args: argparse.Namespace) -> int:
    settings, resuming = settings_from(args)
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, got {settings.out!r}, which is a file")
    checkpoint = out / "checkpoints" / "last.ckpt"
    if resuming and not checkpoint.is_file():
        raise ValueError(f"--resume {settings.out!r} has no checkpoint yet ({checkpoint})")
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
    trainer = build_trainer(settings, num_classes=data.num_classes, overwrite=args.overwrite)
    if not resuming and not args.overwrite:
        try:  # before anything is written: config.toml too belongs to the earlier run
            earlier = [out / CONFIG_NAME] if (out / CONFIG_NAME).exists() else []
            if earlier:
                raise RunFolderError(f"{out} holds an earlier run ({earlier[0]})")
            refuse_clobbering(trainer.callbacks.active, remedy="")
        except RunFolderError as exc:
            raise RunFolderError(
                f"{exc}; continue it with --resume {out}, replace it with --overwrite, or "
                "choose another --out"
            ) from None
    write_config(settings, data, out / CONFIG_NAME)
    print(
        f"training {settings.arch} on {data.fingerprint.get('images')} images "
        f"({data.channels}x{data.image_size}x{data.image_size}) from {settings.data} -> {out}",
        flush=True,
    )
    started = time.perf_counter()
    state = trainer.fit(
        data.for_fit(settings.conditional),
        str(checkpoint) if resuming else None,
        batch_size=settings.batch_size,
        shuffle=settings.shuffle,
        num_workers=settings.num_workers,
    )
    seconds = time.perf_counter() - started
    save_summary(
        out / "summary.json",
        {
            "steps": state.step,
            "epochs": state.epoch,
            "seconds": round(seconds, 2),
            "device": str(trainer.device),
            "final_metrics": state.metrics,
        },
    )
    shown = {k: round(v, 4) for k, v in state.metrics.items() if k in METRIC_NAMES}
    evaluation = trainer.callback(Evaluation)
    best = ""
    if isinstance(evaluation, Evaluation) and evaluation.best is not None:
        best = f"; best fd {evaluation.best:.4g} at step {evaluation.best_step} (best.ckpt)"
    print(
        f"done: {state.step} steps in {seconds:.1f}s; {shown}{best}; sample it with: "
        f"ganlib sample {out}{' --ema' if settings.ema else ''}"
    )
    return 0

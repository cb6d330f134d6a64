"""``ganlib train DATA --out runs/NAME``: a GAN on a folder of images (or mnist,
fashion-mnist, stacked-mnist) from one command; ``--config run.toml`` gives the same
settings from a file (flags win); ``--resume runs/NAME`` continues a run from its folder
alone. The flags are [`RunSettings`][ganlib.runs.RunSettings]' fields, one each."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..callbacks import EMA, Evaluation, NonFiniteLossError
from ..checkpoint import CheckpointError
from ..gan import architectures
from ..runs import (
    CONFIG_NAME,
    RunFolder,
    RunResult,
    RunSettings,
    flag_name,
    read_config,
    resume_command,
    run_tasks,
    train,
)
from ..signals import TrainingInterrupted
from ..tasks import SemiSupervisedTask, TranslationTask
from .args import int_at_least

__all__ = ["add_parser", "add_setting_flags", "given_settings", "settings_from", "train_command"]


def _int_type(name: str) -> Any:
    rule = RunSettings.rule(name)
    if rule is None or rule.low is None:
        return int
    return int_at_least(int(rule.low), None if rule.high is None else int(rule.high))


def add_setting_flags(
    parser: argparse.ArgumentParser, defaults: RunSettings, skip: tuple[str, ...] = ("data",)
) -> None:
    """One flag per [`RunSettings`][ganlib.runs.RunSettings] field (``--lr-g``, ``--ema``/
    ``--no-ema``), typed and ruled by the field, helped by its docstring, defaulting to
    ``None`` so that only the flags given are taken
    ([`given_settings`][ganlib.cli.train.given_settings])."""
    choices: dict[str, Any] = {"arch": tuple(architectures()), "task": tuple(run_tasks())}
    for name in RunSettings.names():
        if name in skip:
            continue
        default = getattr(defaults, name)
        text = f"{RunSettings.help(name)} (default: {default})".replace("%", "%%")
        kind = RunSettings.kind(name)
        if kind is bool:
            parser.add_argument(
                flag_name(name), action=argparse.BooleanOptionalAction, default=None, help=text
            )
            continue
        rule = RunSettings.rule(name)
        parser.add_argument(
            flag_name(name),
            type=_int_type(name) if kind is int else kind,
            default=None,
            choices=rule.choices if rule is not None and rule.choices else choices.get(name),
            help=text,
        )


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings whose flags were given (those left ``None`` were not)."""
    return {n: getattr(args, n) for n in RunSettings.names() if getattr(args, n, None) is not None}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``train`` subcommand: one flag per [`RunSettings`][ganlib.runs.RunSettings] field."""
    train_parser = commands.add_parser(
        "train",
        help="train a GAN on a folder of images, mnist, fashion-mnist or stacked-mnist",
        description="Train a GAN and write a run folder: config.toml, sample grids, "
        "metrics.csv, loss_curve.png, report.html, checkpoints/. A new run refuses a folder "
        "that holds another run's files: --resume it, --overwrite it, or choose another --out.",
    )
    train_parser.add_argument(
        "data",
        nargs="?",
        default=None,
        help="a folder of images, mnist, fashion-mnist or stacked-mnist (--task pix2pix: "
        "aligned A|B images; --task cyclegan: domain A)",
    )
    train_parser.add_argument(
        "data_b",
        nargs="?",
        default=None,
        metavar="DATA_B",
        help="--task cyclegan: domain B's folder; --task pix2pix: B images named as DATA's",
    )
    train_parser.add_argument("--config", type=Path, help="a TOML file of settings ([run] table)")
    train_parser.add_argument(
        "--resume", type=Path, help="a run folder to continue (its config.toml and checkpoints)"
    )
    train_parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run's files in --out"
    )
    add_setting_flags(train_parser, RunSettings(data=""), skip=("data", "data_b"))
    train_parser.set_defaults(run=train_command)


def settings_from(args: argparse.Namespace) -> tuple[RunSettings, bool]:
    """The run's settings: a resumed run's config.toml or --config, then the flags.

    Returns:
        The settings, and whether the run resumes.

    Raises:
        ValueError: For a missing DATA, an unreadable config, a folder that is not a run,
            or a value that breaks its setting's rule.
    """
    base: dict[str, Any] = {}
    source = "flags"
    given = given_settings(args)
    if args.data is not None:
        given["data"] = args.data
    if args.data_b is not None:
        given["data_b"] = args.data_b
    if args.resume is not None:
        folder = RunFolder(args.resume)
        if not folder.is_run():
            raise ValueError(f"--resume {str(args.resume)!r} is not a run folder: no {CONFIG_NAME}")
        if args.config is not None:
            raise ValueError("--resume takes the run's own config.toml: drop --config")
        if "out" in given and Path(given["out"]).resolve() != folder.path.resolve():
            raise ValueError(
                f"--out {given['out']!r} differs from the resumed run's folder "
                f"{str(args.resume)!r}: a run continues in its own folder"
            )
        base, source = {**read_config(folder.config), "out": str(args.resume)}, str(folder.config)
    elif args.config is not None:
        base, source = read_config(args.config), str(args.config)
    values = {**base, **given}
    if "data" not in values:
        raise ValueError(
            "DATA is required: a folder of images, mnist, fashion-mnist or stacked-mnist"
        )
    sources = {name: "flags" if name in given else source for name in values}
    return RunSettings.from_dict(values, sources), args.resume is not None


def done_line(result: RunResult) -> str:
    """The last line of a run: steps, time, the step's losses, the best score, what next."""
    state = result.state
    shown = "  ".join(f"{k} {v:.4g}" for k, v in state.metrics.items())
    best = ""
    evaluation = result.trainer.callback(Evaluation)
    if isinstance(evaluation, Evaluation) and evaluation.best is not None:
        best = f"; best fd {evaluation.best:.4g} at step {evaluation.best_step} (best.ckpt)"
    ema = " --ema" if result.trainer.callback(EMA) is not None else ""
    run = shlex.quote(str(result.folder.path))
    took = f"{state.step} steps in {result.seconds:.1f}s"
    if result.first_step:  # a resumed run: this process trained the rest
        trained = state.step - result.first_step
        took = (
            f"step {state.step} ({trained} from step {result.first_step}) in {result.seconds:.1f}s"
        )
    if isinstance(result.trainer.task, TranslationTask):
        translate = f"ganlib translate {run} IMAGES... --out DIR{ema}"
        return f"done: {took}; {shown}; translate with: {translate}"
    if isinstance(result.trainer.task, SemiSupervisedTask):  # its product: the classifier
        return f"done: {took}; {shown}; classify with: ganlib classify {run} IMAGES..."
    sample = f"ganlib sample {run}{ema}"
    return f"done: {took}; {shown}{best}; sample it with: {sample}"


def train_command(args: argparse.Namespace) -> int:
    settings, resuming = settings_from(args)
    try:
        result = train(settings, resume=resuming, overwrite=args.overwrite)
    except TrainingInterrupted as exc:  # the step finished and was saved
        folder = RunFolder(Path(settings.out))
        print(f"stopped: {exc}; resume with: {resume_command(folder)}", file=sys.stderr)
        return exc.exit_code
    except NonFiniteLossError as exc:  # the last good checkpoint was kept
        try:
            kept = f"; the newest good checkpoint: {RunFolder(Path(settings.out)).checkpoint()}"
        except CheckpointError:
            kept = "; no checkpoint was written before it"
        print(f"error: {exc}{kept}", file=sys.stderr)
        return 2
    if result.trainer.is_main_process:
        print(done_line(result), flush=True)
    return 0

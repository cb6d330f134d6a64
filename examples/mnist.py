"""Train a GAN on MNIST with ganlib and score what it learned.

    python examples/mnist.py --device cuda              # ganlib's recommended settings
    python examples/mnist.py --recipe                   # the reference recipe, exactly
    python examples/mnist.py --data-dir ../shared/data --max-steps 200   # a quick check
    python examples/mnist.py --conditional              # choose the digit: row k = digit k
    python examples/mnist.py --resume runs/mnist        # continue (or: ganlib train --resume)

The presets are TOML files shipped with ganlib (ganlib/runs/presets/): ``recipe`` is
../shared/SEED_RECIPE.md to the letter (the 28x28 DCGAN at width 128, the 10k test split
in file order, BCE, Adam 2e-4, samples from the live generator); ``recommended`` (the
default) changes what docs/results.md measured to help (ResNetGAN width 32, the 60k train
split reshuffled, a warmed-up EMA generator); ``conditional`` trains on (image, digit)
pairs with one grid row per digit. Every flag of ``ganlib train`` overrides the preset.

The run goes through ganlib.runs.train, like ``ganlib train``: its folder (--out,
runs/mnist) gets config.toml, grids, metrics.csv (with the FD of a fixed sample every
--eval-every steps), loss_curve.png, report.html, checkpoints/ (best.ckpt: the best FD's
step) and summary.json; then this script scores --score-samples samples of every way of
sampling the run offers with the shipped MNIST classifier, into metrics.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ganlib import CheckpointError, RunFolderError, metrics, runs
from ganlib.callbacks import EMA
from ganlib.callbacks.progress import format_metrics
from ganlib.cli.args import non_negative_int
from ganlib.cli.train import add_setting_flags, given_settings
from ganlib.data import DataNotFoundError, load_mnist
from ganlib.device import resolve_device
from ganlib.signals import TrainingInterrupted


def eval_count(text: str) -> int:
    value = non_negative_int(text)
    if value == 1:
        raise argparse.ArgumentTypeError("must be 0 (skip scoring) or >= 2, got 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a GAN on MNIST with ganlib and score it with the shipped MNIST "
        "classifier. Flags left out take the preset's value (recommended, --recipe, or "
        "--conditional's): see ganlib/runs/presets/*.toml."
    )
    parser.add_argument("--recipe", action="store_true", help="the reference recipe's preset")
    parser.add_argument("--resume", type=Path, help="a run folder to continue")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    parser.add_argument(
        "--score-samples",
        type=eval_count,
        default=10_000,
        help="generated images scored at the end (0: skip scoring; else >= 2) (default: 10000)",
    )
    add_setting_flags(parser, runs.RunSettings(**runs.load_preset("recommended")))
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> tuple[str, runs.RunSettings]:
    """The preset's settings, then the flags given (checked as ganlib train checks them)."""
    preset = "recipe" if args.recipe else "conditional" if args.conditional else "recommended"
    given = given_settings(args)
    values: dict[str, Any] = {**runs.load_preset(preset), **given}
    if args.resume is not None:
        values["out"] = str(args.resume)
    sources = {name: "flags" if name in given else f"preset {preset}" for name in values}
    return preset, runs.RunSettings.from_dict(values, sources)


def quality_report(result: runs.RunResult, samples: int, data_dir: str) -> dict[str, Any]:
    """Scores of every way of sampling the run offers, and the real-data floor."""
    trainer, gan = result.trainer, result.trainer.gan
    test, _ = load_mnist(data_dir, "test", download=False)
    train, _ = load_mnist(data_dir, "train", download=False)
    samplers: dict[str, tuple[nn.Module, bool]] = {
        "generator": (gan.generator, False),  # batch statistics, as the recipe samples
        "generator_eval": (gan.generator, True),  # BatchNorm running statistics
    }
    ema = trainer.callback(EMA)
    if isinstance(ema, EMA) and ema.module is not None:
        # Train mode ignores the stored statistics; eval mode needs the average's own.
        samplers["ema"] = (ema.module, False)
        samplers["ema_eval"] = (ema.recompute_batchnorm(trainer), True)
    print(f"scoring {samples} samples from each of {', '.join(samplers)}...", flush=True)
    evaluator = metrics.MNISTEvaluator(test, device=trainer.device)
    conditional = gan.num_classes is not None
    report = metrics.quality_report(
        evaluator, train, samplers, gan, samples, conditional=conditional
    )
    return {**report, "classifier": "ganlib.metrics.load_mnist_classifier() (shipped weights)"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        preset, settings = settings_of(args)
        resolve_device(settings.device)
        if args.score_samples:  # read before training: a missing file cannot lose the scores
            for split in ("train", "test"):
                load_mnist(settings.data_dir, split, download=settings.download)
        result = runs.train(settings, resume=args.resume is not None, overwrite=args.overwrite)
    except (ValueError, DataNotFoundError, CheckpointError, RunFolderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:  # Ctrl-C or SIGTERM: the step finished and was saved
        folder = runs.RunFolder(Path(settings.out))
        print(f"stopped: {exc}; resume with: {runs.resume_command(folder)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C
        print("aborted", file=sys.stderr)
        return 130
    if not result.trainer.is_main_process:  # under torchrun: rank 0 scores and writes
        return 0
    state = result.state
    print(f"trained: {state.step} steps in {result.seconds:.1f}s; {format_metrics(state.metrics)}")
    if not args.score_samples:
        return 0
    report = quality_report(result, args.score_samples, settings.data_dir)
    summary = json.loads(result.folder.summary.read_text())
    runs.save_json(
        result.folder.path / "metrics.json",
        {"preset": preset, "settings": settings.as_dict(), **summary, **report},
    )
    best = report["samples"][report["headline"]]
    accuracy = best["conditional_accuracy"]
    print(
        f"quality ({report['headline']}, {best['num_samples']} samples): FD {best['fd']:.2f} = "
        f"{report['fd_over_floor'][report['headline']]:.1f}x the real-data floor "
        f"{report['floor']['fd']:.2f}; {best['classes_covered']}/10 classes; KL to uniform "
        f"{best['kl_to_uniform']:.4f}; confidence {best['mean_confidence']:.3f}"
        + (f"; conditional accuracy {accuracy:.1%}" if accuracy is not None else "")
        + f"; images in {result.folder.path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

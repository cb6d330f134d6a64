"""Stacked MNIST, the mode-collapse benchmark: train ganlib's default DCGAN, count its modes.

    python benchmarks/stacked_mnist.py --data-dir ../shared/data --out runs/stacked \\
        --max-steps 6000 --batch-size 64 --fast
    python benchmarks/stacked_mnist.py --score-only runs/stacked

Trains the default 3-channel 28x28 DCGAN (`ganlib train stacked-mnist`, with the EMA of
the default run) for --max-steps, then draws --samples images (26,000 by default, as
VEEGAN and PacGAN count over 25,600+) from the EMA generator and from the live one
(train-mode BatchNorm, seed 0) and counts their modes with
`ganlib.metrics.stacked_mnist_modes`: each channel's digit by ganlib's shipped MNIST
classifier, a mode covered when at least one image falls in it, KL(mode histogram ||
uniform over 1,000). As a floor, --floor-samples real Stacked MNIST images (the test
split's digits, stacked with seed 1) are scored the same way. Prints a Markdown table
beside the published figures and writes RUN/stacked_mnist.json and a grid of EMA samples,
RUN/stacked_samples.png. --score-only RUN scores an existing run folder (or checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from torch import nn

from ganlib.checkpoint import CheckpointError, load_checkpoint, load_gan
from ganlib.cli import main as ganlib_main
from ganlib.data import load_stacked_mnist
from ganlib.metrics import load_mnist_classifier, stacked_mnist_modes
from ganlib.sampling import sample_images, save_grid

SCORED_BY = "benchmarks/stacked_mnist.py"
# Quoted from issue 17, which quotes PacGAN's table (VEEGAN's setup: 25,600+ samples,
# a pretrained MNIST classifier per channel); see docs/results.md.
PUBLISHED = {
    "DCGAN (VEEGAN/PacGAN setup, reduced D)": {"modes": 99, "kl_to_uniform": 3.40},
    "PacGAN2": {"modes": 1000, "kl_to_uniform": 0.06},
}


def train(args: argparse.Namespace) -> Path:
    """`ganlib train stacked-mnist` at the benchmark's budget; returns the run folder."""
    command = ["train", "stacked-mnist", "--out", str(args.out), "--data-dir", args.data_dir]
    command += ["--no-download", "--batch-size", str(args.batch_size)]
    command += ["--max-steps", str(args.max_steps), "--epochs", "100000"]
    command += ["--seed", str(args.seed), "--device", args.device, "--width", str(args.width)]
    command += ["--progress-every", str(args.progress_every)]
    command += ["--checkpoint-every", str(min(1000, args.max_steps))]
    command += ["--fast" if args.fast else "--no-fast"]
    if args.overwrite:
        command.append("--overwrite")
    print("ganlib " + " ".join(command), flush=True)
    code = ganlib_main(command)
    if code != 0:
        raise SystemExit(f"ganlib train failed with exit code {code}")
    return args.out


def find_checkpoint(run: Path) -> Path:
    """The checkpoint a run folder ends with, or ``run`` itself when it is a file."""
    if run.is_file():
        return run
    for candidate in (run / "checkpoints" / "last.ckpt", run / "last.ckpt"):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{str(run)!r} is neither a checkpoint nor a run folder with one")


def score(run: Path, args: argparse.Namespace) -> dict[str, Any]:
    checkpoint = find_checkpoint(run)
    parent = checkpoint.parent
    folder = parent.parent if parent.name == "checkpoints" else parent
    state = load_checkpoint(checkpoint).get("state", {})
    gan = load_gan(checkpoint)
    if gan.image_shape != (3, 28, 28):
        raise ValueError(f"{checkpoint} holds a {gan.image_shape} generator, not a 3x28x28 one")
    samplers: dict[str, nn.Module] = {}
    try:
        samplers["ema"] = load_gan(checkpoint, ema=True).generator
    except CheckpointError:
        print("no EMA generator in this checkpoint: scoring the live one only", flush=True)
    samplers["generator"] = gan.generator
    classifier = load_mnist_classifier(device=args.device)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name, generator in samplers.items():
        generator.to(args.device)
        batches = sample_images(generator, args.samples, gan, seed=0, eval_mode=False)
        results[name] = stacked_mnist_modes(batches, classifier, device=args.device)
        print(f"{name}: {results[name]}", flush=True)
    shown = next(iter(samplers))  # the EMA, where the run kept one
    grid = next(sample_images(samplers[shown], 64, gan, batch_size=64, seed=0))
    save_grid(grid, folder / "stacked_samples.png", nrow=8)
    floor = None
    if args.floor_samples:
        real, _ = load_stacked_mnist(
            args.data_dir, "test", num_samples=args.floor_samples, seed=1, download=False
        )
        floor = stacked_mnist_modes(real, classifier, device=args.device)
        print(f"real: {floor}", flush=True)
    return {
        "scored_by": SCORED_BY,
        "run": str(folder),
        "checkpoint": str(checkpoint),
        "step": state.get("step"),
        "epoch": state.get("epoch"),
        "samples": results,
        "floor": floor,
        "published": PUBLISHED,
        "seconds": round(time.perf_counter() - started, 2),
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        "| model | sampler | modes (of 1,000) | KL to uniform | samples |",
        "|---|---|---|---|---|",
    ]
    for name, result in report["samples"].items():
        lines.append(
            f"| ganlib DCGAN, step {report['step']} | {name} | {result['modes']} "
            f"| {result['kl_to_uniform']:.4f} | {result['num_samples']} |"
        )
    if report["floor"] is not None:
        floor = report["floor"]
        lines.append(
            f"| real Stacked MNIST (test digits) | | {floor['modes']} "
            f"| {floor['kl_to_uniform']:.4f} | {floor['num_samples']} |"
        )
    for name, figures in report["published"].items():
        lines.append(
            f"| {name} (published) | | {figures['modes']} | {figures['kl_to_uniform']:.2f} | |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--out", type=Path, default=Path("runs/stacked_mnist"))
    parser.add_argument("--score-only", type=Path, metavar="RUN", help="score this run only")
    parser.add_argument("--max-steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64, help="the DCGAN's width (default 64)")
    parser.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--progress-every", type=int, default=200)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run")
    parser.add_argument("--samples", type=int, default=26_000, help="generated images scored")
    parser.add_argument("--floor-samples", type=int, default=26_000, help="0: no real floor")
    parser.add_argument(
        "--json", type=Path, help="where to write the scores (RUN/stacked_mnist.json)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    run = args.score_only if args.score_only is not None else train(args)
    trained = None if args.score_only is not None else round(time.perf_counter() - started, 1)
    report = {**score(run, args), "train_seconds": trained}
    path = args.json or Path(report["run"]) / "stacked_mnist.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"scores: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

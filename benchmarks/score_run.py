"""Score a finished run's generators as examples/mnist.py scores its own runs.

    python benchmarks/score_run.py runs/mnist --dataset mnist --data-dir ../shared/data
    python benchmarks/score_run.py /work/studies/fashion --dataset fashion-mnist \\
        --weights benchmarks/weights/fashion_mnist_classifier.pt

Takes a run folder (its checkpoints/last.ckpt) or a checkpoint, such as `ganlib train`
writes, and scores its EMA generator (when the run kept one) and its live generator
with ganlib.metrics.quality_report: 10,000 samples from each, in train-mode BatchNorm,
against the data set's test split in the classifier's feature space, read against the
floor of 10,000 real training images. MNIST runs use the shipped classifier unless
--weights names another; Fashion-MNIST runs need one trained for it
(scripts/train_mnist_classifier.py --dataset fashion-mnist). Prints a Markdown table
and writes the scores to RUN/metrics.json (--json elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganlib.checkpoint import CheckpointError, load_checkpoint, load_gan
from ganlib.data import DataNotFoundError
from ganlib.data.sources import load_run_data
from ganlib.metrics import MNISTEvaluator, load_mnist_classifier, quality_report
from ganlib.runs import RunFolder, read_config

SCORED_BY = "benchmarks/score_run.py"
DATASETS = ("mnist", "fashion-mnist")


def find_checkpoint(run: Path) -> Path:
    """The checkpoint a run folder ends with, or ``run`` itself when it is a file."""
    return RunFolder.of(run).checkpoint(run)


def run_folder(checkpoint: Path) -> Path:
    """The run folder a checkpoint belongs to (``RUN/checkpoints/x.ckpt`` -> ``RUN``)."""
    return RunFolder.of(checkpoint).path


def check_dataset(folder: Path, dataset: str) -> None:
    """Refuse to score a run against a data set other than the one its config names."""
    config = folder / "config.toml"
    if config.is_file():
        trained_on = read_config(config).get("data")
        if trained_on in DATASETS and trained_on != dataset:
            raise ValueError(
                f"--dataset is {dataset}, but {config} says the run trained on {trained_on}"
            )


def score(args: argparse.Namespace) -> dict[str, Any]:
    if args.weights is None and args.dataset != "mnist":
        raise ValueError(f"--weights is required for {args.dataset} (ganlib ships MNIST's only)")
    checkpoint = find_checkpoint(args.run)
    folder = run_folder(checkpoint)
    check_dataset(folder, args.dataset)
    # Read everything that can fail before the slow part.
    state = load_checkpoint(checkpoint).get("state", {})
    gan = load_gan(checkpoint)
    samplers: dict[str, tuple[nn.Module, bool]] = {"generator": (gan.generator, False)}
    try:
        samplers["ema"] = (load_gan(checkpoint, ema=True).generator, False)
    except CheckpointError:
        print("no EMA generator in this checkpoint: scoring the live one only", flush=True)
    for module, _ in samplers.values():
        module.to(args.device)
    classifier = load_mnist_classifier(args.weights, device=args.device)
    test = load_run_data(args.dataset, data_dir=args.data_dir, split="test", download=False)
    train = load_run_data(args.dataset, data_dir=args.data_dir, split="train", download=False)

    print(
        f"scoring {args.samples} samples from each of {', '.join(samplers)} of {checkpoint} "
        f"(step {state.get('step')}) against {args.dataset}'s test split...",
        flush=True,
    )
    started = time.perf_counter()
    evaluator = MNISTEvaluator(test.images, classifier, device=args.device)
    report = quality_report(
        evaluator,
        train.images,
        samplers,
        gan,
        args.samples,
        floor_samples=args.floor_samples,
        conditional=gan.num_classes is not None,
    )
    weights = Path(args.weights) if args.weights is not None else None
    meta = torch.load(weights, weights_only=True) if weights is not None else {}
    return {
        "scored_by": SCORED_BY,
        "checkpoint": str(checkpoint),
        "step": state.get("step"),
        "epoch": state.get("epoch"),
        "dataset": args.dataset,
        "reference": f"{args.dataset} test split ({len(test.images)} images)",
        **report,
        "classifier": {
            "weights": str(weights) if weights is not None else "shipped MNIST classifier",
            "test_accuracy": meta.get("test_accuracy"),
        },
        "seconds": round(time.perf_counter() - started, 2),
    }


def table(report: dict[str, Any]) -> str:
    """The scores as a Markdown table, one row per generator."""
    floor = report["floor"]
    rows = [
        "| sampler | FD | floor | FD / floor | classes covered | KL to uniform | confidence |",
        "|---|---|---|---|---|---|---|",
    ]
    names = sorted(report["samples"], key=lambda name: name != report["headline"])
    for name in names:
        s = report["samples"][name]
        rows.append(
            f"| {name} | {s['fd']:.4g} | {floor['fd']:.4g} | {report['fd_over_floor'][name]:.1f} "
            f"| {s['classes_covered']}/10 | {s['kl_to_uniform']:.4f} | {s['mean_confidence']:.3f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder, or a checkpoint file")
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument(
        "--weights",
        help="classifier weights (scripts/train_mnist_classifier.py); "
        "default for mnist: the shipped ones",
    )
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--samples", type=int, default=10_000, help="images per generator")
    parser.add_argument("--floor-samples", type=int, default=10_000, help="real images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="where to write the scores (RUN/metrics.json)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a metrics.json this script did not write (such as examples/mnist.py's)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        out = args.json or RunFolder.of(args.run).path / "metrics.json"
        if out.is_file() and not args.overwrite:
            previous = json.loads(out.read_text())
            if previous.get("scored_by") != SCORED_BY:
                raise ValueError(f"{out} holds other scores: pass --overwrite or --json PATH")
        report = score(args)
    except (ValueError, CheckpointError, DataNotFoundError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"wrote {out} ({report['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

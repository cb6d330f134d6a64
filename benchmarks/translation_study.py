"""Translation on MNIST, offline: pix2pix from edge maps to digits, CycleGAN between MNIST
and another rendering of other digits; trained through the Trainer, scored on the test
split with the shipped MNIST classifier.

    python benchmarks/translation_study.py pix2pix --data-dir ../shared/data --out runs/p2p
    python benchmarks/translation_study.py cyclegan --data-dir ../shared/data --out runs/cyc

Each run writes under ``--out``: ``metrics.csv``, ``loss_curve.png``, ``report.html``, the
training grids (``grids/``), checkpoints (``ckpt/``; ``--resume`` continues from the last),
``grid.png`` (ten test inputs, their translations, and the true outputs or the cycle's
reconstructions) and ``scores.json``:

- pix2pix: held-out L1 (in [-1, 1] pixel units) and PSNR (dB, pixels in [0, 1]) of the
  translated test edge maps against the true digits, and the share of the translations
  the classifier reads as the true digit, with its FD to the test digits.
- cyclegan: the share of restyled test digits translated back to MNIST (B -> A) that the
  classifier reads as their source's digit, their FD to the MNIST test digits (the target
  domain) against the real-data floor, and the cycle's reconstruction errors (L1) both ways.

Images are 32x32 (MNIST centred on a black border): the U-Net then halves five times to
1x1, and the ResNet-blocks generator runs its blocks at 8x8. Training uses the fast path
(``fast=True``: bf16 where native, channels_last, fused Adam), with the learning rate
constant for the first half of the steps and decaying linearly to 0 over the second, as
the reference does over its 100 + 100 epochs.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganlib import Trainer
from ganlib.callbacks import (
    Callback,
    LossCurve,
    MetricsLogger,
    ModelCheckpoint,
    RunReport,
    SampleGrid,
)
from ganlib.data import load_mnist, mnist_edge_pairs, mnist_style_domains
from ganlib.metrics import MNISTEvaluator, load_mnist_classifier
from ganlib.sampling import save_grid
from ganlib.tasks import CycleGANTask, LinearDecay, Pix2PixTask, TranslationTask

DEFAULTS = {  # per task: steps, batch size, generator width, discriminator width, blocks
    "pix2pix": {"steps": 4000, "batch_size": 64, "width": 32, "discriminator_width": 32},
    "cyclegan": {
        "steps": 4000,
        "batch_size": 16,
        "width": 16,
        "discriminator_width": 16,
        "blocks": 6,
    },
}
IMAGE_SIZE = 32
HELD_OUT = 500  # test images scored during training


def digits_28(images: Tensor) -> Tensor:
    """32x32 outputs (any channels) as the classifier's grey 28x28 digits."""
    return images.float().mean(1, keepdim=True)[..., 2:30, 2:30].clamp(-1, 1)


class HeldOutAccuracy(Callback):
    """Every ``every_n_steps``, the classifier's accuracy on translations of a fixed held-out
    sample, logged as ``heldout_accuracy`` (eval mode: no randomness drawn, nothing changed)."""

    order = -10

    def __init__(self, inputs: Tensor, labels: Tensor, direction: str, every_n_steps: int) -> None:
        self.inputs, self.labels, self.direction = inputs, labels, direction
        self.every_n_steps = every_n_steps
        self.classifier = load_mnist_classifier().eval()

    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if trainer.state.step % self.every_n_steps:
            return
        task = trainer.task
        assert isinstance(task, TranslationTask)
        outputs = task.translate(self.inputs, self.direction)  # type: ignore[arg-type]
        with torch.no_grad():
            predicted = self.classifier(digits_28(outputs)).argmax(1)
        accuracy = float((predicted == self.labels).float().mean())
        trainer.state.metrics["heldout_accuracy"] = accuracy


class StepCounter(Callback):
    """Counts the steps this process trains (a resumed run trains only the rest)."""

    def __init__(self) -> None:
        self.steps = 0

    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self.steps += 1


def build(
    args: argparse.Namespace,
) -> tuple[TranslationTask, tuple[Tensor, Tensor], dict[str, Any]]:
    """The task, its training pairs and its test data."""
    schedule = LinearDecay.halves(args.steps)
    torch.manual_seed(args.seed)  # the networks' initial weights
    if args.task == "pix2pix":
        edges, digits, _ = mnist_edge_pairs(args.data_dir, "train", image_size=IMAGE_SIZE)
        test_edges, test_digits, test_labels = mnist_edge_pairs(
            args.data_dir, "test", image_size=IMAGE_SIZE
        )
        task: TranslationTask = Pix2PixTask.build(
            IMAGE_SIZE, 1, 1, width=args.width, discriminator_width=args.discriminator_width,
            lr_schedule=schedule,
        )  # fmt: skip
        test = {
            "inputs": test_edges,
            "targets": test_digits,
            "labels": test_labels,
            "direction": "a2b",
        }
        return task, (edges, digits), test
    train = mnist_style_domains(args.data_dir, "train", image_size=IMAGE_SIZE)
    held = mnist_style_domains(args.data_dir, "test", image_size=IMAGE_SIZE)
    task = CycleGANTask.build(
        IMAGE_SIZE, 3, 3, width=args.width, blocks=args.blocks,
        discriminator_width=args.discriminator_width, lr_schedule=schedule,
    )  # fmt: skip
    test = {"inputs": held.b, "targets": held.a, "labels": held.labels_b, "direction": "b2a"}
    return task, (train.a, train.b), test


def score(task: TranslationTask, test: Mapping[str, Any], data_dir: str) -> dict[str, Any]:
    """The issue's scores on the 10,000 test images (eval mode)."""
    test_digits = digits_28(test["targets"])
    evaluator = MNISTEvaluator(test_digits)
    train_digits = load_mnist(data_dir, "train", download=False)[0]
    floor = evaluator.floor(train_digits, num_samples=min(10_000, len(test_digits))).fd
    outputs = task.translate(test["inputs"], test["direction"])
    scores = evaluator.score(digits_28(outputs), requested=test["labels"])
    untranslated = evaluator.score(digits_28(test["inputs"]), requested=test["labels"])
    result: dict[str, Any] = {
        "accuracy": scores.conditional_accuracy,
        "fd": scores.fd,
        "fd_floor": floor,
        "fd_over_floor": scores.fd / floor,
        "classes_covered": scores.classes_covered,
        "untranslated_accuracy": untranslated.conditional_accuracy,
        "test_images": len(outputs),
        "untranslated_fd": untranslated.fd,
    }
    if isinstance(task, Pix2PixTask):
        error = outputs - test["targets"]
        mse01 = (error / 2).square().flatten(1).mean(1)  # pixels in [0, 1]
        result["l1"] = float(error.abs().mean())
        result["psnr_db"] = float((10 * torch.log10(1 / mse01.clamp_min(1e-10))).mean())
    else:
        a, b = test["targets"], test["inputs"]
        back_a = task.translate(task.translate(a, "a2b"), "b2a")
        back_b = task.translate(outputs, "a2b")
        result["cycle_l1_a"] = float((back_a - a).abs().mean())
        result["cycle_l1_b"] = float((back_b - b).abs().mean())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=sorted(DEFAULTS))
    parser.add_argument("--data-dir", required=True, help="folder holding MNIST/raw/*-ubyte")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--discriminator-width", type=int)
    parser.add_argument("--blocks", type=int, help="cyclegan: residual blocks per generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-images", type=int, help="train on the first N pairs only")
    parser.add_argument("--test-images", type=int, default=10_000, help="score on N test images")
    parser.add_argument(
        "--no-fast", action="store_true", help="train in fp32 without the fast path"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from --out's last checkpoint"
    )
    args = parser.parse_args()
    for key, value in DEFAULTS[args.task].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)

    torch.set_num_threads(1)
    task, pairs, test = build(args)
    pairs = (pairs[0][: args.train_images], pairs[1][: args.train_images])
    test = {k: v[: args.test_images] if isinstance(v, Tensor) else v for k, v in test.items()}
    out: Path = args.out
    shown = slice(0, 10)
    every = max(1, args.steps // 8)
    counter = StepCounter()
    trainer = Trainer(
        task,
        max_steps=args.steps,
        seed=args.seed,
        device="cpu",
        fast=not args.no_fast,
        callbacks=[
            counter,
            HeldOutAccuracy(
                test["inputs"][:HELD_OUT], test["labels"][:HELD_OUT], test["direction"], every
            ),
            SampleGrid(out / "grids", nrow=10, every_n_steps=every, every_n_epochs=None),
            MetricsLogger(out / "metrics.csv"),
            LossCurve(out / "loss_curve.png"),
            RunReport(out, settings={**vars(args), "image_size": IMAGE_SIZE}),
            ModelCheckpoint(out / "ckpt", every_n_steps=every, every_n_epochs=None, keep_last=2),
        ],
        overwrite=not args.resume,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(pairs, ckpt_path="last" if args.resume else None, batch_size=args.batch_size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    result = {
        "task": args.task,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "describe": task.describe(),
        "runtime": trainer.runtime.describe(),
        "steps_trained_here": counter.steps,  # (fewer than ``steps`` when resumed)
        "train_minutes_wall": wall / 60,
        "train_minutes_cpu": cpu / 60,
        "seconds_per_step_cpu": cpu / max(1, counter.steps),
        "scores": score(task, test, args.data_dir),
    }
    inputs = test["inputs"][shown]
    if isinstance(task, Pix2PixTask):
        rows = [inputs, task.translate(inputs), test["targets"][shown]]
    else:
        fake_a = task.translate(inputs, "b2a")
        rows = [inputs, fake_a, task.translate(fake_a, "a2b")]
    channels = max(r.shape[1] for r in rows)
    save_grid(torch.cat([r.expand(-1, channels, -1, -1) for r in rows]), out / "grid.png", 10)
    (out / "scores.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    assert all(math.isfinite(v) for v in result["scores"].values() if isinstance(v, float))


if __name__ == "__main__":
    main()

"""The semi-supervised task's test-error curve, plain or ``--fast``.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/semi_supervised_fast_check.py \
        --data-dir ../shared/data --epochs 10 --seed 0          # and again with --fast

Trains ``SemiSupervisedTask`` (the reference MNIST networks, 100 labels, batch 100, 600
steps an epoch) through the Trainer with a
[`ClassificationError`][ganlib.callbacks.ClassificationError] callback on the 10,000
test images after every epoch, and prints per epoch: the live and averaged D's test
error, the epoch's mean losses, and its CPU and wall seconds. Two runs of one seed, one
plain and one ``--fast``, printed side by side, are the check.

``--fast`` is the fast path in float32 (data on the device, fused Adam). At commit
9387c65 it was bf16 autocast, and this check showed bf16 breaking the game
(docs/results.md): the task has refused bf16 since.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Mapping

import torch

from ganlib import Trainer
from ganlib.callbacks import Callback, ClassificationError
from ganlib.data import load_mnist
from ganlib.models.semi_supervised import SemiSupervisedDiscriminator, SemiSupervisedGenerator
from ganlib.tasks import SemiSupervisedTask


class EpochLine(Callback):
    """One line per epoch: errors, mean losses, CPU and wall seconds."""

    order = 10  # after ClassificationError has added the scores

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.clock = (time.process_time(), time.perf_counter())

    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        for name in ("loss_lab", "loss_unl", "loss_g"):
            self.sums[name] = self.sums.get(name, 0.0) + metrics[name]
        self.count += 1
        if trainer.num_batches and trainer.state.batch_in_epoch == trainer.num_batches:
            cpu, wall = time.process_time(), time.perf_counter()
            means = {k: v / self.count for k, v in self.sums.items()}
            errors = metrics["error"], metrics["error_avg"]
            print(
                f"{trainer.state.epoch + 1:5d} {errors[0]:8.2f}% {errors[1]:8.2f}% "
                f"{means['loss_lab']:9.4f} {means['loss_unl']:9.4f} {means['loss_g']:9.4f} "
                f"{cpu - self.clock[0]:7.1f} {wall - self.clock[1]:7.1f}",
                flush=True,
            )
            self.sums, self.count, self.clock = {}, 0, (cpu, wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args(argv)
    images, labels = load_mnist(args.data_dir, "train", download=False)
    test_images, test_labels = load_mnist(args.data_dir, "test", download=False)
    torch.manual_seed(args.seed)
    task = SemiSupervisedTask(
        SemiSupervisedDiscriminator(),
        SemiSupervisedGenerator(),
        labelled=100,
        label_seed=args.seed,
        seed=args.seed,
    )
    epoch_steps = math.ceil(len(images) / 100)  # (600 for MNIST)
    error = ClassificationError(test_images, test_labels, every_n_steps=epoch_steps, at_end=False)
    trainer = Trainer(
        task,
        max_epochs=args.epochs,
        seed=args.seed,
        device="cpu",
        fast=args.fast,
        precision="32",  # (the task trains in float32: bf16 broke its game)
        progress=False,
        callbacks=[error, EpochLine()],
    )
    print(f"# {'fast' if args.fast else 'plain'}: seed {args.seed}, {trainer.runtime.describe()}")
    print("epoch  err_live  err_avg  loss_lab  loss_unl    loss_g   cpu_s  wall_s", flush=True)
    trainer.fit((images, labels), batch_size=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())

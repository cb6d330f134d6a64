"""The semi-supervised task's step time through the Trainer, plain against ``--fast``.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/semi_supervised_step_time.py \\
        --data-dir ../shared/data --steps 120 --rounds 2

Trains ``SemiSupervisedTask`` (the reference MNIST networks, 100 labels, batch 100) on
MNIST's 60,000 training images for ``--steps`` steps per variant, the variants taking
turns for ``--rounds`` rounds (so a change in the machine's load hits both alike), and
prints each round's CPU seconds and wall seconds per step after ``--warmup`` steps, and
the CPU seconds a 600-step epoch costs at the median. CPU time is the process's
(``time.process_time``): on a shared core it is what the run itself spent.

``--fast`` is the fast path in float32 (data on the device, fused Adam): the task refuses
bf16, which broke its game (docs/results.md). The bf16 figures there (1.24x) were measured
at commit 9387c65, before the refusal, with this script's variant in bf16.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Mapping

import torch

from ganlib import Trainer
from ganlib.callbacks import Callback
from ganlib.data import load_mnist
from ganlib.models.semi_supervised import SemiSupervisedDiscriminator, SemiSupervisedGenerator
from ganlib.tasks import SemiSupervisedTask


class StepClock(Callback):
    """CPU and wall seconds of the steps after the first ``warmup``."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: tuple[float, float] | None = None
        self.end: tuple[float, float] = (0.0, 0.0)
        self.counted = 0

    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        now = time.process_time(), time.perf_counter()
        if trainer.state.step == self.warmup:
            self.start = now
        elif self.start is not None:
            self.end, self.counted = now, trainer.state.step - self.warmup


def measure(
    images: torch.Tensor, labels: torch.Tensor, fast: bool, args: argparse.Namespace
) -> tuple[float, float]:
    torch.manual_seed(args.seed)
    task = SemiSupervisedTask(
        SemiSupervisedDiscriminator(), SemiSupervisedGenerator(), labelled=100, seed=args.seed
    )
    clock = StepClock(args.warmup)
    trainer = Trainer(
        task,
        max_steps=args.warmup + args.steps,
        seed=args.seed,
        device="cpu",
        fast=fast,
        precision="32",  # (the task trains in float32: bf16 broke its game)
        progress=False,
        callbacks=[clock],
    )
    trainer.fit((images, labels), batch_size=100)
    assert clock.start is not None
    cpu = (clock.end[0] - clock.start[0]) / clock.counted
    wall = (clock.end[1] - clock.start[1]) / clock.counted
    return cpu, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--steps", type=int, default=120, help="timed steps per variant and round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    images, labels = load_mnist(args.data_dir, "train", download=False)
    print(
        f"# torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{args.steps} timed steps after {args.warmup}, {args.rounds} rounds",
        flush=True,
    )
    print("round  variant  cpu_ms_per_step  wall_ms_per_step", flush=True)
    cpu: dict[str, list[float]] = {"plain": [], "fast": []}
    for round_index in range(1, args.rounds + 1):
        for name in cpu:
            c, w = measure(images, labels, name == "fast", args)
            cpu[name].append(c)
            print(f"{round_index:5d}  {name:7s}  {1000 * c:15.1f}  {1000 * w:16.1f}", flush=True)
    plain, fast = (statistics.median(cpu[name]) for name in ("plain", "fast"))
    print(
        f"# median CPU s per 600-step epoch: plain {600 * plain:.1f}, fast {600 * fast:.1f} "
        f"({plain / fast:.2f}x)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Trains the CycleGAN-shaped TinyCycleTask, as a subprocess of tests/test_tasks.py.

    python task_worker.py OUT --steps N [--resume CKPT] [--slow SECONDS]
    torchrun --nproc_per_node 2 task_worker.py OUT --steps N

Runs the usual callbacks (EMA of two named networks, grids, metrics, checkpoints every 2
steps) and leaves each rank's final networks, EMA averages and pools in OUT/final{R}.pt.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from cycle_task import TinyCycleTask, domain_pair
from ganlib import Trainer
from ganlib.callbacks import EMA, Callback, MetricsLogger, ModelCheckpoint, SampleGrid


class Slow(Callback):
    """Makes steps slow enough for a signal to land mid-run, and says where it is."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        time.sleep(self.seconds)
        print(f"step {trainer.state.step}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--slow", type=float, default=0.0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    task = TinyCycleTask()
    trainer = Trainer(
        task,
        max_steps=args.steps,
        seed=7,
        device="cpu",
        progress=False,
        callbacks=[
            Slow(args.slow),
            EMA(decay=0.9),
            EMA(decay=0.8, network="g_ba"),
            SampleGrid(args.out / "samples", num_samples=4, nrow=4),
            MetricsLogger(args.out / "metrics.csv"),
            ModelCheckpoint(args.out / "ckpt", every_n_steps=2, every_n_epochs=None, keep_last=2),
        ],
    )
    trainer.fit(domain_pair(), ckpt_path=args.resume, batch_size=4)
    emas = [c for c in trainer.callbacks if isinstance(c, EMA)]
    torch.save(
        {
            "networks": {n: m.state_dict() for n, m in task.networks.items()},
            "emas": {e.state_key: e.module.state_dict() for e in emas if e.module is not None},
            "pools": task.pools,
            "step": trainer.state.step,
            "world_size": trainer.world.world_size,
        },
        args.out / f"final{rank}.pt",
    )


if __name__ == "__main__":
    main()
    from worker_exit import leave_without_teardown  # (issue 31 A.7: why)

    leave_without_teardown()

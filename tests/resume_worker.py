"""A small training run for the resume tests, run as a subprocess.

    python resume_worker.py OUT_DIR --steps N [--resume CKPT] [--slow SECONDS] [--augment POLICY]

Trains a tiny DCGAN on synthetic data from a shuffling DataLoader with EMA,
sample grids, a metrics log and checkpoints every 2 steps, then saves the
final generator, discriminator and EMA weights to OUT_DIR/final.pt.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from ganlib import DCGAN, Trainer
from ganlib.ada import AdaptiveAugment
from ganlib.callbacks import EMA, Callback, MetricsLogger, ModelCheckpoint, SampleGrid


class Slow(Callback):
    """Makes steps slow enough for a signal to land mid-run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        time.sleep(self.seconds)
        print(f"step {trainer.state.step}", flush=True)


def fast_ada(validation: torch.Tensor | None = None) -> AdaptiveAugment:
    """ADA whose p starts mid-way and moves fast (0.32 every 2 steps): a resume must carry it.
    With ``validation`` images it is tuned from r_v (D scores them every other step)."""
    return AdaptiveAugment(interval=2, kimg=0.05, p=0.4, validation=validation)


def augment(name: str | None) -> str | AdaptiveAugment | None:
    """``--augment``: ada and ada-held-out are fast controllers (the latter tuned from r_v on
    ten images D never trains on), anything else a DiffAugment policy."""
    if name == "ada":
        return fast_ada()
    if name == "ada-held-out":
        return fast_ada(
            torch.rand(10, 1, 12, 12, generator=torch.Generator().manual_seed(2)) * 2 - 1
        )
    return name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--augment", default=None, help="a DiffAugment policy, ada or ada-held-out")
    args = parser.parse_args()

    torch.set_num_threads(1)
    gan = DCGAN(
        image_size=12,
        channels=1,
        latent_dim=8,
        width=4,
        init_generator=torch.Generator().manual_seed(0),
    )
    images = torch.rand(28, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.arange(28) % 10
    loader = DataLoader(
        TensorDataset(images, labels), batch_size=8, shuffle=True, num_workers=args.workers
    )
    trainer = Trainer(
        gan,
        max_steps=args.steps,
        seed=123,
        augment=augment(args.augment),
        device="cpu",
        progress=False,
        callbacks=[
            Slow(args.slow),
            EMA(decay=0.9),
            SampleGrid(args.out / "samples", num_samples=4, nrow=2),
            MetricsLogger(args.out / "metrics.csv"),
            ModelCheckpoint(args.out / "ckpt", every_n_steps=2, every_n_epochs=None, keep_last=2),
        ],
    )
    trainer.fit(loader, ckpt_path=args.resume)
    ema = trainer.callback(EMA)
    assert isinstance(ema, EMA) and ema.module is not None
    torch.save(
        {
            "generator": gan.generator.state_dict(),
            "discriminator": gan.discriminator.state_dict(),
            "ema": ema.module.state_dict(),
            "step": trainer.state.step,
        },
        args.out / "final.pt",
    )


if __name__ == "__main__":
    main()

"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node 2``.

Trains a tiny DCGAN with the usual file-writing callbacks, resuming from the
checkpoint given, and leaves what each rank ended with in PROBE/rank{R}.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ganlib import DCGAN, Trainer
from ganlib.callbacks import Callback, Evaluation, MetricsLogger, ModelCheckpoint, SampleGrid


class SeenImages(Callback):
    """Records which images (identified by their constant pixel value) each step got."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_batch_start(self, trainer: Trainer, images: torch.Tensor) -> None:
        self.seen += images[:, 0, 0, 0].tolist()


def identifiable_images(n: int = 48) -> torch.Tensor:
    """Image i is filled with one value of its own."""
    return torch.linspace(-1, 1, n)[:, None, None, None].expand(n, 1, 12, 12).contiguous()


def tiny_gan() -> DCGAN:
    return DCGAN(image_size=12, width=4, latent_dim=8)


def main() -> None:
    out, probe, resume, epochs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    rank = int(os.environ["RANK"])
    torch.manual_seed(rank)  # each rank starts from other weights: DDP must align them
    gan = tiny_gan()
    seen = SeenImages()
    trainer = Trainer(
        gan,
        max_epochs=int(epochs),
        seed=0,
        loss=os.environ.get("DDP_WORKER_LOSS", "bce"),
        callbacks=[
            seen,
            # Every rank evaluates (the same weights and latents): the same scores on each.
            Evaluation(
                lambda images: torch.nn.functional.avg_pool2d(images, 3).flatten(1),
                identifiable_images(),
                every_n_steps=2,
                num_samples=8,
            ),
            SampleGrid(out),
            MetricsLogger(out / "metrics.csv"),
            ModelCheckpoint(out / "checkpoints", every_n_epochs=1),
        ],
    )
    try:
        state = trainer.fit(identifiable_images(), resume, batch_size=6)
        torch.save(
            {
                "parameters": {k: v.detach().clone() for k, v in gan.named_parameters()},
                "seen": seen.seen,
                "metrics": state.metrics,
                "step": state.step,
                "world_size": trainer.world.world_size,
                "main": trainer.is_main_process,
            },
            probe / f"rank{rank}.pt",
        )
        if dist.is_initialized():
            dist.barrier()  # leave together: the other rank may still be writing
    finally:
        # Take the process group down before the interpreter does, on failure too: a gloo
        # group torn down by interpreter finalisation can abort ("terminate called
        # without an active exception").
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
    from worker_exit import leave_without_teardown  # (issue 31 A.7: why)

    leave_without_teardown()

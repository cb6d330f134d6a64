"""Run by tests/test_launchers.py in each of two processes, however they are launched.

    launch_worker.py OUT PROBE [--kill-rank R --kill-at STEP] [--own-group PORT RANK]
        [--accelerate]

Trains a tiny DCGAN from scratch for a few steps (checkpoints every 2 steps) and leaves
what this rank ended with in PROBE/rank{R}.pt. Under ``torchrun`` the Trainer makes the
process group; with ``--own-group`` the script initialises a gloo group itself first
(rank from the command line, no torchrun variables), with ``--accelerate`` accelerate's
``Accelerator`` does; the Trainer must join those groups and leave them alive.
``--kill-rank``/``--kill-at``: on the first attempt of an elastic job, that rank kills
itself (SIGKILL) after that step.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch
import torch.distributed as dist

from ganlib import DCGAN, Trainer
from ganlib.callbacks import Callback, MetricsLogger, ModelCheckpoint

STEPS = 6  # 32 images, 4 per rank and step: an epoch is 4 steps, so this crosses one


def images() -> torch.Tensor:
    return torch.linspace(-1, 1, 32)[:, None, None, None].expand(32, 1, 8, 8).contiguous()


class Probe(Callback):
    """Records the step each fit started from, and kills this rank when told to."""

    def __init__(self, kill_rank: int | None, kill_at: int | None) -> None:
        self.kill_rank, self.kill_at = kill_rank, kill_at
        self.started_at: int | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.started_at = trainer.state.step

    def on_batch_end(self, trainer: Trainer, metrics: object) -> None:
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if (
            first_attempt
            and trainer.world.rank == self.kill_rank
            and trainer.state.step == self.kill_at
        ):
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("probe", type=Path)
    parser.add_argument("--kill-rank", type=int)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--own-group", type=int, nargs=2, metavar=("PORT", "RANK"))
    parser.add_argument("--accelerate", action="store_true")
    args = parser.parse_args()
    accelerator = None
    if args.own_group:
        port, rank = args.own_group
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
        )
    elif args.accelerate:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
    group = dist.group.WORLD if dist.is_initialized() else None
    # Each process starts from other weights (DDP copies rank 0's); seed 0 on rank 0.
    torch.manual_seed(int(os.environ.get("RANK", dist.get_rank() if group else 0)))
    gan = DCGAN(image_size=8, width=4, latent_dim=4)
    probe = Probe(args.kill_rank, args.kill_at)
    trainer = Trainer(
        gan,
        max_steps=STEPS,
        seed=0,
        progress=False,
        callbacks=[
            probe,
            MetricsLogger(args.out / "metrics.csv"),
            ModelCheckpoint(args.out / "checkpoints", every_n_steps=2, save_on_exception=False),
        ],
    )
    state = trainer.fit(images(), batch_size=4)
    result = {
        "parameters": {k: v.detach().clone() for k, v in gan.named_parameters()},
        "step": state.step,
        "started_at": probe.started_at,
        "rank": trainer.world.rank,
        "world_size": trainer.world.world_size,
        "restart_count": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "-1")),
    }
    if group is not None:
        # The group the script made is still the one in use, and still works.
        value = torch.ones(1)
        dist.all_reduce(value)
        result["group_kept"] = dist.group.WORLD is group and value.item() == 2.0
        result["backend"] = dist.get_backend()
    torch.save(result, args.probe / f"rank{trainer.world.rank}.pt")
    if args.own_group:
        dist.destroy_process_group()  # the script's group: the script takes it down
    if accelerator is not None:
        accelerator.end_training()


if __name__ == "__main__":
    main()
    from worker_exit import leave_without_teardown  # (issue 31 A.7: why)

    leave_without_teardown()

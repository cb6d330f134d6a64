"""A short DistributedDataParallel run, for the machines the test suite cannot reach:

    torchrun --standalone --nproc_per_node N benchmarks/ddp_smoke.py --device cuda --sync-batchnorm

Trains the recipe's network (28x28 DCGAN, width 128, batch 50 per process) on random
images for a few steps with ``strategy="ddp"`` (NCCL on CUDA, gloo on CPU), then
checks that every process ends with the same weights and the same logged metrics and
prints one line per process. Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.distributed as dist

from ganlib import DCGAN, Trainer


def fingerprint(trainer: Trainer) -> torch.Tensor:
    """One number per network that changes with any weight (sum of |w| and of w)."""
    values = []
    for network in (trainer.generator, trainer.discriminator):
        params = torch.cat([p.detach().float().flatten() for p in network.parameters()])
        values += [params.abs().sum(), params.sum()]
    return torch.stack(values).double()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sync-batchnorm", action="store_true")
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)  # the same initial weights in every process
    images = torch.rand(4000, 1, 28, 28) * 2 - 1
    trainer = Trainer(
        DCGAN(),
        device=args.device,
        strategy="ddp",
        sync_batchnorm=args.sync_batchnorm,
        fast=args.fast,
        max_steps=args.steps,
        seed=0,
        progress=False,
    )
    started = time.perf_counter()
    state = trainer.fit(images, batch_size=50)
    seconds = time.perf_counter() - started
    world = trainer.world
    mine = torch.cat([fingerprint(trainer), torch.tensor(list(state.metrics.values()))])
    mine = mine.double().to(trainer.device)
    everyone = [torch.empty_like(mine) for _ in range(world.world_size)]
    dist.all_gather(everyone, mine)
    same = all(torch.equal(other, everyone[0]) for other in everyone)
    print(
        f"rank {world.rank}/{world.world_size} on {trainer.device} "
        f"({dist.get_backend()}): {state.step} steps in {seconds:.1f} s, "
        f"metrics { ({k: round(v, 4) for k, v in state.metrics.items()}) }, "
        f"weights and metrics identical across ranks: {same}",
        flush=True,
    )
    dist.destroy_process_group()
    finite = all(v == v and abs(v) != float("inf") for v in state.metrics.values())
    return 0 if same and finite and state.step == args.steps else 1


if __name__ == "__main__":
    sys.exit(main())

"""Does ``destroy_process_group`` take a gloo group down? Threads of a process, counted.

    python benchmarks/gloo_teardown.py

For each case, two processes on this machine make a gloo group (``tcp://``), do some
work in it, call ``torch.distributed.destroy_process_group()`` and count their threads
(``/proc/self/task``) before the group, with it, and after its destruction. A group that
is taken down leaves the threads the process had before it; one that stays alive keeps
its gloo threads until the interpreter exits, where their teardown runs during
finalisation (the path of the "terminate called without an active exception" abort,
pytorch/pytorch#179291, issue 31 A.7). Cases: ``collective`` (one all_reduce),
``ddp`` (a Linear wrapped in DistributedDataParallel, one step), ``ddp-deleted`` (the
same, the wrapper and the Linear deleted and garbage-collected before the destruction),
``trainer`` (a ganlib Trainer fitting a tiny DCGAN for 3 steps in the group).
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time

CASES = ("collective", "ddp", "ddp-deleted", "trainer")


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def worker(case: str, port: int, rank: int) -> None:
    import torch
    import torch.distributed as dist

    before = threads()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    if case == "collective":
        dist.all_reduce(torch.ones(1))
    elif case.startswith("ddp"):
        from torch.nn.parallel import DistributedDataParallel

        linear = torch.nn.Linear(3, 3)
        wrapped = DistributedDataParallel(linear)
        wrapped(torch.ones(2, 3)).sum().backward()
        if case == "ddp-deleted":
            del wrapped, linear
            gc.collect()
    else:
        from ganlib import DCGAN, Trainer

        torch.manual_seed(0)
        trainer = Trainer(DCGAN(image_size=8, width=4, latent_dim=4), max_steps=3, progress=False)
        trainer.fit(torch.zeros(32, 1, 8, 8), batch_size=4)
    during = threads()
    dist.destroy_process_group()
    gc.collect()
    time.sleep(0.5)  # (threads a destructor joins are gone by now)
    if rank == 0:
        print(f"{case:12s} {before:>7d} {during:>10d} {threads():>14d}", flush=True)


def main() -> None:
    print(f"{'case':12s} {'before':>7s} {'with group':>10s} {'after destroy':>14s}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for case in CASES:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, __file__, "--worker", case, str(port)]
        processes = [subprocess.Popen([*command, str(rank)], env=env) for rank in (0, 1)]
        for process in processes:
            process.wait(timeout=300)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()

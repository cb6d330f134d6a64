"""What torch.compile costs and saves the fast path, and after how many steps it pays back.

    python benchmarks/compile_cost.py                      # widths 128 and 64, batch 50
    python benchmarks/compile_cost.py --widths 128 --rounds 7
    python benchmarks/compile_cost.py --device cuda        # the figure CUDA still lacks

For the MNIST DCGAN (28x28) at each width, with ``Trainer(fast=True)`` compiled
(``compile=True``) and not (``compile=False``), everything else as the fast path picks:

1. the wait for the first ``--first-steps`` steps, from building the Trainer to the end of
   its fit (wall clock, and CPU time with inductor's compile workers), each in a fresh
   process: eager; compiled with an empty inductor cache (a
   user's first run: ``cold``); compiled again with the cache the cold run left (later
   runs of the same model: ``warm``);
2. the steady step time of both (wall and CPU), in one process, alternating round by
   round so that machine noise hits both alike;
3. the break-even run length: ``k + (compiled first k - eager first k) / (eager step -
   compiled step)`` steps, after which a compiled run has caught up with an eager one.
   Shorter runs lose time to compiling; ``ganlib.runtime.COMPILE_PAYBACK_STEPS`` holds the
   figure the fast path uses (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_seconds() -> float:
    """CPU time of this process and all its descendants, the finished ones included
    (inductor's compile workers and their compilers), read from Linux's /proc."""
    parents, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            # ppid; utime, stime, and the same of its waited-for children
            parents[int(entry)] = int(fields[1])
            ticks[int(entry)] = sum(int(value) for value in fields[11:15])
    tree, total = [os.getpid()], 0
    while tree:
        pid = tree.pop()
        total += ticks.get(pid, 0)
        tree += [child for child, parent in parents.items() if parent == pid]
    return total / os.sysconf("SC_CLK_TCK")


def first_steps(
    device: str, width: int, compile: bool, steps: int, batch_size: int
) -> dict[str, float]:
    """Seconds (wall and CPU) from building a fast Trainer to the end of its first
    ``steps`` steps."""
    import torch

    from ganlib import DCGAN, Trainer

    torch.manual_seed(0)
    gan = DCGAN(width=width)
    images = torch.rand(steps * batch_size, 1, 28, 28) * 2 - 1
    started, cpu_started = time.perf_counter(), cpu_seconds()
    trainer = Trainer(
        gan, device=device, fast=True, compile=compile, max_steps=steps, seed=0, progress=False
    )
    trainer.fit(images, batch_size=batch_size, shuffle=False)
    return {"wall": time.perf_counter() - started, "cpu": cpu_seconds() - cpu_started}


def steady(device: str, width: int, batch_size: int, rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per step (wall, and CPU as ``*_cpu``) of the eager and the compiled
    fast path, alternating."""
    import copy

    import torch

    from ganlib import DCGAN, Trainer

    torch.manual_seed(0)
    template = DCGAN(width=width)
    images = torch.rand(4 * batch_size, 1, 28, 28) * 2 - 1
    trainers = {}
    for name, compile in (("eager", False), ("compiled", True)):
        trainer = Trainer(
            copy.deepcopy(template), device=device, fast=True, compile=compile, seed=0,
            max_steps=3, progress=False,
        )  # fmt: skip
        trainer.fit(images, batch_size=batch_size, shuffle=False)  # compile, warm up
        trainers[name] = trainer
    eager = trainers["eager"]
    batch = eager.runtime.format_batch(images[:batch_size].to(eager.device))
    times: dict[str, list[float]] = {name: [] for name in [*trainers, "eager_cpu", "compiled_cpu"]}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(steps):
                trainer.train_step(batch)
            times[name].append((time.perf_counter() - started) / steps)
            times[f"{name}_cpu"].append((time.process_time() - cpu_started) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def child(args: argparse.Namespace) -> None:
    if args.child == "first":
        first = first_steps(
            args.device, args.width, args.compile, args.first_steps, args.batch_size
        )
        print(json.dumps(first))
    else:
        print(json.dumps(steady(args.device, args.width, args.batch_size, args.rounds, args.steps)))


def run_child(args: argparse.Namespace, cache: str, *extra: str) -> dict[str, Any]:
    """One measurement in a fresh process whose inductor cache is ``cache``."""
    command = [sys.executable, os.path.join(HERE, "compile_cost.py"), *extra]
    command += ["--batch-size", str(args.batch_size), "--first-steps", str(args.first_steps)]
    command += ["--rounds", str(args.rounds), "--steps", str(args.steps), "--device", args.device]
    env = dict(
        os.environ, TORCHINDUCTOR_CACHE_DIR=cache, TRITON_CACHE_DIR=os.path.join(cache, "triton")
    )
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(extra)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def break_even(first_steps: int, extra_wait: float, saved: float) -> str:
    """The run length (steps) from which compiling wins: ``k + extra / saved``."""
    if saved <= 0:
        return "never (compiled steps are no faster)"
    return f"{first_steps + extra_wait / saved:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--widths", default="128,64", help="DCGAN widths, comma-separated")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--first-steps", type=int, default=3, help="k: the first steps timed")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (steady)")
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    parser.add_argument("--child", choices=["first", "steady"], help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    import torch

    print(
        f"{args.device}: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch_size}"
    )
    print(
        f"| width | clock | eager, first {args.first_steps} steps (s) | compiled, cold cache (s) "
        "| compiled, warm cache (s) | eager step (ms) | compiled step (ms) | saved per step "
        "| break-even, cold (steps) | break-even, warm (steps) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for width in (int(w) for w in args.widths.split(",")):
        with tempfile.TemporaryDirectory(prefix="inductor-cold-") as cache:
            width_args = ["--width", str(width)]
            eager = run_child(args, cache, "--child", "first", *width_args)
            cold = run_child(args, cache, "--child", "first", "--compile", *width_args)
            warm = run_child(args, cache, "--child", "first", "--compile", *width_args)
            step = run_child(args, cache, "--child", "steady", *width_args)
        # Wall time is the user's wait; CPU time (own + compile workers) is what a shared
        # machine's scheduling does not stretch.
        for clock, suffix in (("wall", ""), ("cpu", "_cpu")):
            eager_step, compiled_step = step[f"eager{suffix}"], step[f"compiled{suffix}"]
            saved = eager_step - compiled_step
            cold_even, warm_even = (
                break_even(args.first_steps, first[clock] - eager[clock], saved)
                for first in (cold, warm)
            )
            print(
                f"| {width} | {clock} | {eager[clock]:.1f} | {cold[clock]:.1f} "
                f"| {warm[clock]:.1f} | {eager_step * 1e3:.1f} | {compiled_step * 1e3:.1f} "
                f"| {saved * 1e3:.1f} ms ({eager_step / compiled_step:.3f}x) | {cold_even} "
                f"| {warm_even} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the recipe's training step spends its time on this CPU, and two probes of what
else could speed it up.

    python benchmarks/cpu_step_profile.py

Prints (1) the share of the step's CPU time per operator (torch.profiler, the Trainer's
step at the recipe's configuration, channels_last), (2) D's two passes of the D step
(real and fake, as the recipe runs them) against one merged pass over both batches
(what ghost BatchNorm would allow), and (3) steps with flush-to-zero of denormal floats
off and on. Probes (2) and (3) alternate round by round in one process; their ratios
are what count on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from ganlib import DCGAN, Trainer


def alternate(
    variants: dict[str, Callable[[], None]], rounds: int, repeat: int
) -> dict[str, float]:
    """Median seconds per call of each variant, timed in alternating rounds."""
    for run in variants.values():  # warm up
        run()
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            for _ in range(repeat):
                run()
            times[name].append((time.perf_counter() - start) / repeat)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5, help="steps (or passes) per round")
    args = parser.parse_args()
    torch.manual_seed(0)
    real = torch.rand(100, 1, 28, 28) * 2 - 1
    trainer = Trainer(DCGAN(), seed=0, progress=False, device="cpu", channels_last=True)
    batch = real[:50]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    for _ in range(3):
        trainer._train_step(batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            trainer._train_step(batch)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print("(1) share of the step's CPU time")
    for event in events[:6]:
        print(f"    {event.key:<40} {100 * event.self_cpu_time_total / total:5.1f}%")

    discriminator = trainer.discriminator
    images = real.contiguous(memory_format=torch.channels_last)

    def separate() -> None:
        discriminator.zero_grad()
        (discriminator(images[:50]).sum() + discriminator(images[50:]).sum()).backward()

    def merged() -> None:
        discriminator.zero_grad()
        discriminator(images).sum().backward()

    passes = alternate({"separate": separate, "merged": merged}, args.rounds, args.steps)
    print("\n(2) D step's forward+backward, two batches of 50")
    print(
        f"    separate passes {1e3 * passes['separate']:.1f} ms, one merged pass "
        f"{1e3 * passes['merged']:.1f} ms: merged is {passes['separate'] / passes['merged']:.2f}x"
    )

    def step(flush: bool) -> Callable[[], None]:
        def run() -> None:
            torch.set_flush_denormal(flush)
            trainer._train_step(batch)

        return run

    flush = alternate({"off": step(False), "on": step(True)}, args.rounds, args.steps)
    torch.set_flush_denormal(False)
    print("\n(3) whole training step, denormals flushed to zero or not")
    print(
        f"    off {1e3 * flush['off']:.1f} ms, on {1e3 * flush['on']:.1f} ms: "
        f"on is {flush['off'] / flush['on']:.2f}x"
    )


if __name__ == "__main__":
    main()

"""Training-step throughput: the recipe's hand-written loop vs the ganlib Trainer vs its fast path.

    python benchmarks/throughput.py --pieces             # CPU
    python benchmarks/throughput.py --device cuda --pieces --full-run

In one process, alternating round by round so that machine noise hits all three
alike: (a) the recipe's loop written out by hand (same networks, same data held in
memory as one tensor), (b) ``Trainer`` with its defaults, (c) ``Trainer(fast=True)``.
The Trainers are built for a run of --planned-steps (the recipe's 2,000 by default), which
decides, as in real use, whether the fast path compiles (a shorter run would not).
--pieces adds each piece of the fast path alone (bf16 autocast, channels_last,
torch.compile), as fast+compile the fast path with compile forced on (on a CPU in fp32 the
fast path does not compile), as fast-fp32 the fast path in fp32 (what it does on a CPU
without native bf16, such as an AVX2-only one), and as fast-eager the fast path never
compiled (what it does for a run too short to pay compiling back).

Prints, per variant: the median step time, images/s, peak memory, the ratio of its
throughput to (a), its arithmetic (FLOPs of one step, counted by torch.utils.flop_counter)
against the machine's measured fp32 matmul peak, this process's CPU time per step and
its ratio to (a) (all threads together; the steadier figure where other work shares the
machine, since it counts only the time this process ran), and what it ran with (for the
Trainers, the ``Runtime`` fit settled: precision, compile, channels_last, fused Adam, data
on the device). Then the fp32 ceiling: the most any fp32 fast path could beat (a) by at
the machine's fp32 matmul peak (or why there is none: where its BLAS is below what the
convolutions reach), and where bf16 is native the same at the bf16 matmul peak. On CPU it
also profiles (c)'s steps and prints the share of the step its convolutions take, and so
what (c) could reach if all else were free.
--full-run also times the recipe's whole run (2,000 steps of 50) with the fast path.
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode
from typing_extensions import override

from ganlib import DCGAN, Callback, Trainer
from ganlib.device import resolve_device
from ganlib.runtime import native_bf16


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class RecipeLoop:
    """(a) The recipe's training step, as its script writes it (D not frozen during G's
    backward, three ``.item()`` reads per step, batches in file order)."""

    def __init__(self, gan: DCGAN, images: torch.Tensor, device: torch.device) -> None:
        self.G = gan.generator.to(device)
        self.D = gan.discriminator.to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.images, self.device, self.position = images, device, 0
        self.latent_dim = gan.latent_dim

    def run(self, steps: int, batch_size: int) -> list[float]:
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            start = self.position % (len(self.images) - batch_size + 1)
            real = self.images[start : start + batch_size].to(self.device)
            self.position += batch_size
            self.D.zero_grad()
            output = self.D(real)
            err_real = F.binary_cross_entropy_with_logits(output, torch.ones_like(output))
            err_real.backward()
            d_x = output.sigmoid().mean().item()
            noise = torch.randn(batch_size, self.latent_dim, device=self.device)
            fake = self.G(noise)
            output = self.D(fake.detach())
            err_fake = F.binary_cross_entropy_with_logits(output, torch.zeros_like(output))
            err_fake.backward()
            d_g_z1 = output.sigmoid().mean().item()
            self.opt_d.step()
            self.G.zero_grad()
            output = self.D(fake)
            err_g = F.binary_cross_entropy_with_logits(output, torch.ones_like(output))
            err_g.backward()
            d_g_z2 = output.sigmoid().mean().item()
            self.opt_g.step()
            del d_x, d_g_z1, d_g_z2  # read every step, as the recipe's log line does
            synchronize(self.device)
            times.append(time.perf_counter() - started)
        return times

    def describe(self) -> str:
        return "precision 32, compile off, channels_last off (the recipe's script)"


class StepTimer(Callback):
    """Seconds per step, measured from one step's end to the next (data included)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last = 0.0

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        self._last = time.perf_counter()

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Any) -> None:
        now = time.perf_counter()  # the metrics' .tolist() already synchronised the device
        self.times.append(now - self._last)
        self._last = now


class StopAfter(Callback):
    """Stops a fit after ``left`` more steps (the Trainer itself plans a longer run)."""

    def __init__(self, left: int = 0) -> None:
        self.left = left

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Any) -> None:
        self.left -= 1
        if self.left <= 0:
            trainer.should_stop = True


class TrainerRun:
    """(b), (c) and the pieces: a Trainer built for a run of ``planned_steps`` (which
    decides, as in real use, whether the fast path compiles), fitted a few steps at a
    time and resumed in place each round."""

    def __init__(
        self,
        gan: DCGAN,
        images: torch.Tensor,
        device: torch.device,
        planned_steps: int,
        **options: Any,
    ) -> None:
        self.timer, self.stop = StepTimer(), StopAfter()
        self.trainer = Trainer(
            gan,
            device=device,
            callbacks=[self.timer, self.stop],
            progress=False,
            seed=0,
            max_steps=planned_steps,
            **options,
        )
        self.images = images

    def run(self, steps: int, batch_size: int) -> list[float]:
        self.timer.times = []
        self.stop.left, self.trainer.should_stop = steps, False
        self.trainer.fit(self.images, batch_size=batch_size, shuffle=False)
        return self.timer.times

    def describe(self) -> str:
        """What the Trainer's last fit ran with (its ``Runtime``, as fit settled it)."""
        return self.trainer.runtime.summary()


def measure(
    runners: dict[str, Any], args: argparse.Namespace, device: torch.device
) -> dict[str, dict[str, Any]]:
    for name, runner in runners.items():  # compile, cudnn autotune, allocator warm-up
        print(f"warming up {name} ({args.warmup} steps)...", flush=True)
        runner.run(args.warmup, args.batch_size)
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    peak: dict[str, float] = dict.fromkeys(runners, float("nan"))
    for round_index in range(args.rounds):
        for name, runner in runners.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            cpu_started = time.process_time()
            times[name] += runner.run(args.steps, args.batch_size)
            cpu[name].append((time.process_time() - cpu_started) / args.steps)
            if device.type == "cuda":
                used = torch.cuda.max_memory_allocated(device) / 2**20
                peak[name] = max(used, 0 if peak[name] != peak[name] else peak[name])
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    return {
        name: {
            "median_ms": statistics.median(values) * 1e3,
            "images_per_s": args.batch_size / statistics.median(values),
            "peak_mib": peak[name],
            "cpu_ms": statistics.median(cpu[name]) * 1e3,
        }
        for name, values in times.items()
    }


def matmul_peak(
    device: torch.device,
    size: int = 2048,
    repeat: int = 10,
    dtype: torch.dtype = torch.float32,
) -> float:
    """The machine's practical peak in FLOP/s for ``dtype``: the best of ``repeat`` timed
    ``size``-cubed matrix products (what MKL / oneDNN / cuBLAS reach on a large, easy
    shape)."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeat):
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def step_flops(runner: Any, batch_size: int) -> int:
    """FLOPs of one more training step of ``runner`` (convolutions and matrix products,
    forward and backward, as torch.utils.flop_counter counts them)."""
    with warnings.catch_warnings():  # compile warns about the counter's global hooks
        warnings.simplefilter("ignore")
        with FlopCounterMode(display=False) as counter:
            runner.run(1, batch_size)
    return counter.get_total_flops()


def convolution_share(runner: Any, batch_size: int, steps: int = 3) -> float:
    """The share of ``runner``'s CPU time that its convolutions (forward and backward)
    take, from torch.profiler's self times (a share, so a busy machine inflates both)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        runner.run(steps, batch_size)
    events = prof.key_averages()
    convolutions = sum(e.self_cpu_time_total for e in events if "conv" in e.key)
    return convolutions / sum(e.self_cpu_time_total for e in events)


def full_run(gan: DCGAN, images: torch.Tensor, device: torch.device) -> float:
    """Seconds of training for the recipe's 2,000 steps of 50 with the fast path
    (after a 20-step warm-up, which also compiles where the fast path compiles)."""
    stop = StopAfter(20)
    trainer = Trainer(
        gan, device=device, fast=True, callbacks=[stop], progress=False, seed=0, max_steps=2020
    )
    trainer.fit(images, batch_size=50, shuffle=False)
    stop.left, trainer.should_stop = 2000, False
    synchronize(device)
    started = time.perf_counter()
    trainer.fit(images, batch_size=50, shuffle=False)
    synchronize(device)
    return time.perf_counter() - started


def report(
    device: torch.device,
    results: dict[str, dict[str, Any]],
    peak: float,
    bf16_peak: float | None = None,
) -> str:
    base = results["a_recipe_loop"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [
        f"device: {device} ({name}, {torch.get_num_threads()} threads), torch {torch.__version__}",
        f"fp32 matmul peak (best 2048^3 product): {peak / 1e9:.0f} GFLOP/s",
        "| variant | median step (ms) | images/s | peak memory (MiB) | ratio to (a) "
        "| GFLOP/step | % of fp32 matmul peak | CPU time (ms/step) | CPU-time ratio | ran with |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        achieved = r["flops"] / (r["median_ms"] / 1e3)
        lines.append(
            f"| {name} | {r['median_ms']:.1f} | {r['images_per_s']:.0f} | "
            f"{r['peak_mib']:.0f} | {r['images_per_s'] / base['images_per_s']:.3f} | "
            f"{r['flops'] / 1e9:.1f} | {100 * achieved / peak:.0f}% | {r['cpu_ms']:.1f} | "
            f"{base['cpu_ms'] / r['cpu_ms']:.3f} | {r['ran_with']} |"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines.append(f"process peak RSS: {rss:.0f} MiB (CPU memory is not split per variant)")
    fast = results.get("c_trainer_fast")
    fastest = max(r["flops"] / (r["median_ms"] / 1e3) for r in results.values())
    if fast is not None and fastest > peak:
        lines.append(
            f"fp32 ceiling: none from the matmul: the step's convolutions run at up to "
            f"{fastest / 1e9:.0f} GFLOP/s here, above the {peak / 1e9:.0f} GFLOP/s of the "
            "2048^3 fp32 product (its BLAS is not at this CPU's peak)"
        )
    elif fast is not None:
        floor_ms = fast["flops"] / peak * 1e3
        lines.append(
            f"fp32 ceiling: (c)'s {fast['flops'] / 1e9:.1f} GFLOP per step take at least "
            f"{floor_ms:.0f} ms at the fp32 matmul peak, so no fp32 fast path beats (a) by "
            f"more than {base['median_ms'] / floor_ms:.2f}x here (c reaches "
            f"{base['median_ms'] / fast['median_ms']:.2f}x)"
        )
    if fast is not None and bf16_peak is not None:
        floor_ms = fast["flops"] / bf16_peak * 1e3
        lines.append(
            f"bf16 ceiling: {bf16_peak / 1e9:.0f} GFLOP/s for a 2048^3 bf16 product, so (c)'s "
            f"{fast['flops'] / 1e9:.1f} GFLOP take at least {floor_ms:.0f} ms in bf16: no "
            f"bf16 fast path beats (a) by more than {base['median_ms'] / floor_ms:.2f}x here"
        )
    if fast is not None and "conv_share" in fast:
        conv_ms = fast["conv_share"] * fast["median_ms"]
        lines.append(
            f"convolutions alone: {100 * fast['conv_share']:.0f}% of (c)'s step (profiled), "
            f"{conv_ms:.0f} ms, so with everything else free (c) would reach "
            f"{base['median_ms'] / conv_ms:.2f}x"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--full-run", action="store_true", help="time 2,000 fast-path steps")
    parser.add_argument(
        "--planned-steps",
        type=int,
        default=2000,
        help="the run the Trainer variants are built for (the recipe's 2,000 steps); "
        "whether the fast path compiles depends on it",
    )
    parser.add_argument(
        "--pieces",
        nargs="?",
        const="bf16,channels_last,compile,fast+compile,fast-fp32,fast-eager",
        default="",
        help="also time pieces of the fast path alone (comma list; all when bare)",
    )
    parser.add_argument("--variants", default="abcp", help="which of a, b, c, p(ieces) to run")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    template = DCGAN()  # the recipe's networks, DCGAN init
    images = torch.rand(10_000, 1, 28, 28) * 2 - 1  # the test split's size, in memory

    # The Trainers plan --planned-steps beyond all the steps this benchmark runs.
    planned = args.planned_steps + args.warmup + args.rounds * args.steps + 10

    def trainer(**options: Any) -> Callable[[], TrainerRun]:
        return lambda: TrainerRun(copy.deepcopy(template), images, device, planned, **options)

    makers: dict[str, Callable[[], Any]] = {
        "a_recipe_loop": lambda: RecipeLoop(copy.deepcopy(template), images, device),
        "b_trainer": trainer(),
        "c_trainer_fast": trainer(fast=True),
    }
    pieces = {
        "bf16": {"precision": "bf16"},
        "channels_last": {"channels_last": True},
        "compile": {"compile": True},
        "fast+compile": {"fast": True, "compile": True},  # compile on top, where not default
        "fast-fp32": {"fast": True, "precision": "32"},  # the fast path where bf16 is not native
        "fast-eager": {"fast": True, "compile": False},  # the fast path, never compiled
    }
    for piece in args.pieces.split(",") if args.pieces else []:  # each piece alone
        makers[f"p_{piece}"] = trainer(**pieces[piece])
    runners = {name: make() for name, make in makers.items() if name[0] in args.variants}
    results = measure(runners, args, device)
    for name, runner in runners.items():
        results[name]["flops"] = step_flops(runner, args.batch_size)
        results[name]["ran_with"] = runner.describe()
    if device.type == "cpu" and "c_trainer_fast" in runners:
        results["c_trainer_fast"]["conv_share"] = convolution_share(
            runners["c_trainer_fast"], args.batch_size
        )
    peak = matmul_peak(device)
    bf16_peak = matmul_peak(device, dtype=torch.bfloat16) if native_bf16(device) else None
    if bf16_peak is not None:
        print(f"bf16 matmul peak (best 2048^3 product): {bf16_peak / 1e9:.0f} GFLOP/s")
    print(report(device, results, peak, bf16_peak) if "a_recipe_loop" in results else results)
    if args.full_run:
        seconds = full_run(copy.deepcopy(template), images, device)
        print(f"full run, fast path: 2000 steps of 50 in {seconds:.2f} s of training")
    return 0


if __name__ == "__main__":
    sys.exit(main())

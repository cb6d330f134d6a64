"""Training speed of the architecture variants, with and without DiffAugment, side by side.

    python benchmarks/variants_speed.py                       # 1 thread, MNIST size, batch 50
    python benchmarks/variants_speed.py --threads 2 --resnet-widths 48
    python benchmarks/variants_speed.py --resnet-widths 32 --no-augment --compare-fast

Variants (28x28, one channel, the BCE loss, fp32 unless --fast): DCGAN() (the recipe's
network), DCGAN(spectral_norm=True), and ResNetGAN(width=w) for each of --resnet-widths:
by default 32, about DCGAN()'s FLOPs per step, and 64, about its parameter count; each
plain and with
``augment="translation,cutout,color"``. Each variant trains through the Trainer's step
(``trainer.train_step``) on a batch held in memory, in rounds that take every variant
in turn, so that machine noise hits all of them alike. Prints a table: parameters,
FLOPs of one step (torch.utils.flop_counter), images/s and the median step time, and
each variant's throughput relative to DCGAN. With ``--compare-fast`` every variant runs
twice, plain (fp32) and ``Trainer(fast=True)``, in the same rounds: the table adds the CPU
milliseconds per image, the GFLOP/s each achieves (its FLOPs over its median step: set it
against the machine's matrix-product peaks, which ``benchmarks/throughput.py`` prints) and
the fast path's speed-up over the plain one.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ganlib import DCGAN, GAN, ResNetGAN, Trainer

AUGMENT = "translation,cutout,color"


def cpu_line() -> str:
    """The CPU's model name and whether it has AVX512-BF16 (Linux), else the platform."""
    info = Path("/proc/cpuinfo")
    if not info.exists():
        return platform.processor() or platform.machine()
    text = info.read_text()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    bf16 = "AVX512-BF16" if "avx512_bf16" in flags.split() else "no AVX512-BF16"
    return f"{model} ({bf16})"


def variants(resnet_widths: list[int]) -> dict[str, Callable[[], GAN]]:
    def seed() -> torch.Generator:
        return torch.Generator().manual_seed(0)

    def resnet(width: int) -> Callable[[], GAN]:
        return lambda: ResNetGAN(width=width, init_generator=seed())

    builders: dict[str, Callable[[], GAN]] = {
        "dcgan": lambda: DCGAN(init_generator=seed()),
        "dcgan_sn": lambda: DCGAN(spectral_norm=True, init_generator=seed()),
    }
    builders.update({f"resnet_w{width}": resnet(width) for width in resnet_widths})
    return builders


class Runner:
    """One variant: its Trainer (for the step it builds) and a batch in memory."""

    def __init__(self, gan: GAN, augment: str | None, batch_size: int, fast: bool) -> None:
        self.gan = gan
        self.trainer = Trainer(
            gan, augment=augment, device="cpu", fast=fast, seed=0, progress=False
        )
        self.images = torch.rand(
            batch_size, *gan.image_shape, generator=torch.Generator().manual_seed(1)
        )
        self.images = self.images * 2 - 1
        self.steps = 0

    def step(self) -> None:
        self.trainer.train_step(self.images, step=self.steps)
        self.steps += 1

    def timed(self, steps: int) -> list[float]:
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - start)
        return times

    def flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.step()
        return counter.get_total_flops()


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resnet-widths", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--fast", action="store_true", help="Trainer(fast=True) for every variant")
    parser.add_argument(
        "--compare-fast", action="store_true", help="each variant plain and fast, side by side"
    )
    parser.add_argument("--no-augment", action="store_true", help="leave out the DiffAugment runs")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(f"cpu: {cpu_line()}; torch {torch.__version__}; {torch.get_num_threads()} thread(s)")
    print(
        f"batch {args.batch_size}, {args.warmup} warm-up + {args.rounds} rounds x "
        f"{args.steps} timed steps per variant, fast={args.fast}, DiffAugment policy {AUGMENT!r}"
    )
    paths = [False, True] if args.compare_fast else [args.fast]
    augments = [None] if args.no_augment else [None, AUGMENT]
    runners: dict[str, Runner] = {}
    for name, build in variants(args.resnet_widths).items():
        for augment in augments:
            for fast in paths:
                label = name + ("" if augment is None else "+diffaug")
                label += " fast" if fast and args.compare_fast else ""
                runners[label] = Runner(build(), augment, args.batch_size, fast)
    flops = {label: runner.flops() for label, runner in runners.items()}
    for runner in runners.values():
        runner.timed(args.warmup)
    times: dict[str, list[float]] = {label: [] for label in runners}
    cpu: dict[str, float] = dict.fromkeys(runners, 0.0)
    for _ in range(args.rounds):
        for label, runner in runners.items():
            started = time.process_time()
            times[label] += runner.timed(args.steps)
            cpu[label] += time.process_time() - started
    rate = {label: args.batch_size / statistics.median(t) for label, t in times.items()}
    images = args.rounds * args.steps * args.batch_size
    print()
    print(
        "| variant | G params | D params | GFLOP/step | images/s | median step s | vs dcgan "
        "| CPU ms/image | GFLOP/s | fast vs plain |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, runner in runners.items():
        median = statistics.median(times[label])
        plain = label.removesuffix(" fast")
        speedup = f"{rate[label] / rate[plain]:.2f}x" if label != plain else ""
        print(
            f"| {label} | {count(runner.gan.generator):,} | {count(runner.gan.discriminator):,} "
            f"| {flops[label] / 1e9:.2f} | {rate[label]:.1f} | {median:.3f} "
            f"| {rate[label] / rate['dcgan']:.2f} | {1000 * cpu[label] / images:.2f} "
            f"| {flops[label] / 1e9 / median:.0f} | {speedup} |"
        )


if __name__ == "__main__":
    main()

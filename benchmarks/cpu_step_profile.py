"""Where the recipe's training step spends its time on this CPU, and two probes of what
else could speed it up.

    python benchmarks/cpu_step_profile.py

Prints (1) the share of the step's CPU time per operator (torch.profiler, the Trainer's
step at the recipe's configuration, channels_last), (2) D's two passes of the D step
(real and fake, as the recipe runs them) against one merged pass over both batches
(what ghost BatchNorm would allow), and (3) steps with flush-to-zero of denormal floats
off and on, and (4) steps with the two convolutions whose feature maps are 3x3
(D's Conv 256->512 k3 s2 and G's ConvT 512->256 k3 s2, where oneDNN's backward runs
furthest below the matmul peak) computed as im2col + one MKL matrix product instead of
by oneDNN. Probes (2) to (4) alternate round by round in one process; their ratios
are what count on a shared machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
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


class GemmConv2d(nn.Conv2d):
    """A Conv2d (groups 1, dilation 1) computed as im2col + one matrix product."""

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        (ph, pw), (sh, sw) = self.padding, self.stride
        out_c, in_c, kh, kw = weight.shape
        x = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)  # NHWC
        patches = x.unfold(1, kh, sh).unfold(2, kw, sw)  # (B, OH, OW, C, kh, kw)
        b, oh, ow = patches.shape[:3]
        cols = patches.reshape(b * oh * ow, in_c * kh * kw)
        out = cols @ weight.reshape(out_c, -1).t()
        out = out if bias is None else out + bias
        return out.view(b, oh, ow, out_c).permute(0, 3, 1, 2)


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """A ConvTranspose2d (groups 1, dilation 1) computed as one matrix product + col2im."""

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        (ph, pw), (sh, sw) = self.padding, self.stride
        in_c, _, kh, kw = self.weight.shape
        b, _, h, w = x.shape
        cols = x.permute(0, 2, 3, 1).reshape(b * h * w, in_c) @ self.weight.reshape(in_c, -1)
        full = (
            (h - 1) * sh + kh + self.output_padding[0],
            (w - 1) * sw + kw + self.output_padding[1],
        )
        cols = cols.view(b, h * w, -1).transpose(1, 2)
        out = F.fold(cols, full, (kh, kw), stride=(sh, sw))[
            :, :, ph : full[0] - ph, pw : full[1] - pw
        ]
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def lower_small_map_convolutions(gan: DCGAN) -> DCGAN:
    """Swap the convolutions that read or write 3x3 maps for their im2col + GEMM twins
    (same parameters, same state_dict)."""
    for network, kind, twin in (
        (gan.discriminator, nn.Conv2d, GemmConv2d),
        (gan.generator, nn.ConvTranspose2d, GemmConvTranspose2d),
    ):
        for module in network.modules():
            if type(module) is kind and module.kernel_size == (3, 3) and module.stride == (2, 2):
                module.__class__ = twin
    return gan


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
        trainer.train_step(batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            trainer.train_step(batch)
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
            trainer.train_step(batch)

        return run

    flush = alternate({"off": step(False), "on": step(True)}, args.rounds, args.steps)
    torch.set_flush_denormal(False)
    print("\n(3) whole training step, denormals flushed to zero or not")
    print(
        f"    off {1e3 * flush['off']:.1f} ms, on {1e3 * flush['on']:.1f} ms: "
        f"on is {flush['off'] / flush['on']:.2f}x"
    )

    reference = DCGAN()
    lowered_gan = lower_small_map_convolutions(copy.deepcopy(reference))
    with torch.no_grad():  # same function, up to rounding
        noise = reference.sample_noise(50, torch.device("cpu"))
        difference = max(
            (lowered_gan.generator(noise) - reference.generator(noise)).abs().max().item(),
            (lowered_gan.discriminator(images) - reference.discriminator(images))
            .abs()
            .max()
            .item(),
        )
    assert difference < 1e-4, difference
    lowered = Trainer(lowered_gan, seed=0, progress=False, device="cpu", channels_last=True)
    gemm = alternate(
        {"onednn": lambda: trainer.train_step(batch), "gemm": lambda: lowered.train_step(batch)},
        args.rounds,
        args.steps,
    )
    print("\n(4) whole training step, the 3x3-map convolutions by oneDNN or im2col + GEMM")
    print(
        f"    oneDNN {1e3 * gemm['onednn']:.1f} ms, im2col + GEMM {1e3 * gemm['gemm']:.1f} ms: "
        f"GEMM is {gemm['onednn'] / gemm['gemm']:.2f}x"
    )


if __name__ == "__main__":
    main()

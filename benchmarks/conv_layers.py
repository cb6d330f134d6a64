"""Each convolution of the recipe's DCGAN alone: the fp32 NCHW the hand-written loop runs
against the bf16 channels_last of the CPU fast path, and what they add up to per step.

    python benchmarks/conv_layers.py
    python benchmarks/conv_layers.py --width 64 --rounds 9

For every convolution of the 28x28 DCGAN (batch 50) it times, alternating round by round,
the forward pass, the input gradient and the weight gradient, as oneDNN computes them
through ``torch.ops.aten.convolution_backward``, and prints milliseconds and GFLOP/s.
Then it adds them up as one training step uses them: D runs forward three times (real,
fake, and once more for G's loss), its input gradients are needed in those passes beyond
the first layer on data (all layers in G's pass), its weight gradients twice in the
ganlib step (D frozen during G's backward) and three times in the recipe's loop (which
is not frozen); G runs each once. The two sums are the convolution floors of (a) and (c)
in ``benchmarks/throughput.py``: whatever else the fast path removes, its step cannot be
shorter than its convolutions, so ``(a)'s whole step / (c)'s convolutions`` caps the
ratio it can reach.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

# name -> (input shape without batch, weight shape, stride, padding, transposed)
Layer = tuple[tuple[int, int, int], tuple[int, int, int, int], int, int, bool]


def layers(width: int, latent_dim: int = 100) -> dict[str, Layer]:
    """The recipe's DCGAN convolutions at 28x28 (``DCGAN(width=width)``)."""
    w1, w2, w4 = width, 2 * width, 4 * width
    return {
        "D1 conv 1->w 28->14": ((1, 28, 28), (w1, 1, 4, 4), 2, 1, False),
        "D2 conv w->2w 14->7": ((w1, 14, 14), (w2, w1, 4, 4), 2, 1, False),
        "D3 conv 2w->4w 7->3": ((w2, 7, 7), (w4, w2, 3, 3), 2, 0, False),
        "D4 conv 4w->1 3->1": ((w4, 3, 3), (1, w4, 3, 3), 1, 0, False),
        "G1 convT z->4w 1->3": ((latent_dim, 1, 1), (latent_dim, w4, 3, 3), 1, 0, True),
        "G2 convT 4w->2w 3->7": ((w4, 3, 3), (w4, w2, 3, 3), 2, 0, True),
        "G3 convT 2w->w 7->14": ((w2, 7, 7), (w2, w1, 4, 4), 2, 1, True),
        "G4 convT w->1 14->28": ((w1, 14, 14), (w1, 1, 4, 4), 2, 1, True),
    }


# How often one step uses each part: (forward, input gradient, weight gradient) for D's
# layers after the first, D's first layer, and G's layers (G's first has latents as input).
USES = {
    "ganlib": {"D": (3, 3, 2), "D1": (3, 1, 2), "G": (1, 1, 1), "G1": (1, 0, 1)},
    "recipe": {"D": (3, 3, 3), "D1": (3, 1, 3), "G": (1, 1, 1), "G1": (1, 0, 1)},
}


def parts(
    layer: Layer, batch: int, dtype: torch.dtype, channels_last: bool
) -> tuple[dict[str, Callable[[], object]], float]:
    """The forward, input-gradient and weight-gradient calls of one layer, and its GFLOP
    (of each of the three: a convolution's two gradients cost what its forward does)."""
    (channels, height, width), weight_shape, stride, padding, transposed = layer
    x = torch.randn(batch, channels, height, width, dtype=dtype)
    w = torch.randn(weight_shape, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    conv = F.conv_transpose2d if transposed else F.conv2d
    y = conv(x, w, stride=stride, padding=padding)
    grad = torch.randn_like(y)

    def backward(mask: list[bool]) -> Callable[[], object]:
        return lambda: torch.ops.aten.convolution_backward(
            grad, x, w, None, [stride] * 2, [padding] * 2, [1, 1], transposed, [0, 0], 1, mask
        )

    # Multiply-adds of the forward: each output element of a convolution sums over
    # in-channels x kernel (w[0]); each input element of a transposed one spreads over
    # out-channels x kernel (w[0] again, its weight being (in, out, kh, kw)).
    macs = (x if transposed else y).numel() * w[0].numel()
    calls = {
        "forward": lambda: conv(x, w, stride=stride, padding=padding),
        "input grad": backward([True, False, False]),
        "weight grad": backward([False, True, False]),
    }
    return calls, 2 * macs / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="calls per part per round")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    kinds = {
        "fp32 NCHW (a)": (torch.float32, False),
        "bf16 channels_last (c)": (torch.bfloat16, True),
    }
    print(
        "| layer | GFLOP | "
        + " | ".join(f"{kind}: fwd / dx / dw ms" for kind in kinds)
        + " | bf16 dw GFLOP/s |"
    )
    print("|---|---|" + "---|" * len(kinds) + "---|")
    totals = {(kind, uses): 0.0 for kind in kinds for uses in USES}
    step_gflop = dict.fromkeys(USES, 0.0)
    for name, layer in layers(args.width).items():
        calls: dict[tuple[str, str], Callable[[], object]] = {}
        for kind, (dtype, channels_last) in kinds.items():
            layer_calls, gflop = parts(layer, args.batch_size, dtype, channels_last)
            calls |= {(kind, part): call for part, call in layer_calls.items()}
        for call in calls.values():  # warm up (oneDNN builds its kernels)
            call()
        times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
        for _ in range(args.rounds):
            for key, call in calls.items():
                started = time.perf_counter()
                for _ in range(args.repeat):
                    call()
                times[key].append((time.perf_counter() - started) / args.repeat)
        ms = {key: 1e3 * statistics.median(values) for key, values in times.items()}
        group = name[0] + ("1" if name[1] == "1" else "")
        for uses, counts in USES.items():
            step_gflop[uses] += sum(counts[group]) * gflop
        for kind in kinds:
            for uses, counts in USES.items():
                forward, dx, dw = counts[group]
                totals[(kind, uses)] += (
                    forward * ms[(kind, "forward")]
                    + dx * ms[(kind, "input grad")]
                    + dw * ms[(kind, "weight grad")]
                )
        cells = [
            " / ".join(
                f"{ms[(kind, part)]:.2f}" for part in ("forward", "input grad", "weight grad")
            )
            for kind in kinds
        ]
        dw_rate = gflop / (ms[("bf16 channels_last (c)", "weight grad")] / 1e3)
        print(f"| {name} | {gflop:.2f} | " + " | ".join(cells) + f" | {dw_rate:.0f} |")
    recipe = totals[("fp32 NCHW (a)", "recipe")]
    fast = totals[("bf16 channels_last (c)", "ganlib")]
    print(
        f"\nGFLOP of one step: {step_gflop['recipe']:.1f} in the recipe's loop, "
        f"{step_gflop['ganlib']:.1f} in ganlib's step (D frozen during G's backward)"
    )
    print(
        f"convolutions of one step: the recipe's loop in fp32 NCHW {recipe:.1f} ms; the "
        f"fast path in bf16 channels_last {fast:.1f} ms (the ganlib step in fp32 NCHW "
        f"{totals[('fp32 NCHW (a)', 'ganlib')]:.1f} ms); {recipe / fast:.2f}x between the "
        "two: the fast path's ceiling over (a) if (a) were all convolutions and the fast "
        "path nothing else"
    )


if __name__ == "__main__":
    main()

"""Where the CPU fast path's step spends its time besides the convolutions, and what each
remaining piece's alternatives save.

    python benchmarks/fast_step_pieces.py
    python benchmarks/fast_step_pieces.py --variants fast,eager,fused-adam --rounds 7

The recipe's MNIST DCGAN (28x28, width 128, batch 50) through ``Trainer(fast=True)``'s step
(bf16 autocast where native, torch.compile, channels_last, data held in memory):

(1) the first variant's step by piece, from torch.profiler's self times (shares, so a busy
    machine inflates all alike): the convolutions (oneDNN, forward and backward),
    BatchNorm, activations, casts and copies (autocast's bf16 weights and activations,
    layout changes), the compiled graphs' own kernels (where inductor fused the pieces
    before), the optimizers' steps (their element-wise ops included), ``zero_grad``, and
    the rest (the autograd engine, autocast's dispatch, dynamo's guards, Python);
(2) whole steps with one piece changed, alternating round by round in one process (wall
    clock and this process's CPU time; ratios to the first variant): ``fast`` (as the fast
    path decides for a long run), ``compiled`` and ``eager`` (compile forced on or off),
    ``fused-adam`` (Adam's fused CPU kernel) and ``foreach-adam``, compiled with
    ``cpp-wrapper`` (inductor's C++ wrapper), ``max-autotune``
    (``mode="max-autotune-no-cudagraphs"``) or ``static`` (``dynamic=False``),
    ``no-channels-last``, ``fast-fp32`` (``precision="32"``: the fast path where bf16 is
    not native) and ``defaults``;
(3) the data path: one preloaded batch gathered and put in channels_last, per step.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch._inductor.config as inductor_config
from torch.profiler import ProfilerActivity, profile

from ganlib import DCGAN, Trainer
from ganlib.batching import BatchSource


def adam(**options: Any) -> Callable[[Any], torch.optim.Optimizer]:
    return lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **options)


@contextlib.contextmanager
def compiling_with(**options: Any) -> Iterator[None]:
    """torch.compile with ``options`` (mode, dynamic) while the Trainer is built."""
    plain = torch.compile
    torch.compile = functools.partial(plain, **options)  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.compile = plain  # type: ignore[assignment]


# name -> (Trainer options, inductor config while compiling, torch.compile options)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "fast": ({"fast": True}, {}, {}),  # as the fast path decides for a long run
    "compiled": ({"fast": True, "compile": True}, {}, {}),
    "eager": ({"fast": True, "compile": False}, {}, {}),
    "fused-adam": (
        {"fast": True, "g_optimizer": adam(fused=True), "d_optimizer": adam(fused=True)},
        {},
        {},
    ),
    "foreach-adam": (
        {"fast": True, "g_optimizer": adam(foreach=True), "d_optimizer": adam(foreach=True)},
        {},
        {},
    ),
    "for-loop-adam": (
        {"fast": True, "g_optimizer": adam(foreach=False), "d_optimizer": adam(foreach=False)},
        {},
        {},
    ),
    "cpp-wrapper": ({"fast": True, "compile": True}, {"cpp_wrapper": True}, {}),
    "max-autotune": (
        {"fast": True, "compile": True},
        {},
        {"mode": "max-autotune-no-cudagraphs"},
    ),
    "static": ({"fast": True, "compile": True}, {}, {"dynamic": False}),
    "no-channels-last": ({"fast": True, "channels_last": False}, {}, {}),
    "fast-fp32": ({"fast": True, "precision": "32"}, {}, {}),
    "defaults": ({}, {}, {}),
}


def ran_with(trainer: Trainer) -> str:
    """The Trainer's runtime and the Adam it steps with (a user's Adam is not the
    runtime's fused default)."""
    group = trainer.g_optimizer.param_groups[0]
    kind = "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for-loop"
    return trainer.runtime.summary().replace(", fused Adam", "") + f", {kind} Adam"


def build(name: str, template: DCGAN, images: torch.Tensor, batch_size: int) -> Trainer:
    """A Trainer for variant ``name``, warmed up (compiled) for three steps."""
    options, config, compile_options = VARIANTS[name]
    with compiling_with(**compile_options), inductor_config.patch(config):
        trainer = Trainer(
            copy.deepcopy(template), device="cpu", progress=False, seed=0, max_steps=3,
            **options,
        )  # fmt: skip
        # (a 3-step fit would skip the fast path's compile: the step is warmed up directly)
        trainer.train_step.start_run(None)
        batch = trainer.runtime.format_batch(images[:batch_size])
        for _ in range(3):
            trainer.train_step(batch)
    return trainer


# Profiler keys by piece (each event's self time counts once, in the first piece it fits).
PIECES: dict[str, Callable[[str], bool]] = {
    "convolutions": lambda key: key.startswith("aten::") and "conv" in key,
    "BatchNorm": lambda key: "batch_norm" in key.lower(),
    "activations": lambda key: any(
        name in key.lower() for name in ("relu", "tanh", "threshold", "sigmoid")
    ),
    "casts and copies": lambda key: (
        key in ("aten::copy_", "aten::_to_copy", "aten::to")
        or key.startswith(("aten::clone", "aten::contiguous"))
    ),
    "compiled graphs' own kernels": lambda key: key.startswith("## Call CompiledFxGraph"),
}


def by_piece(trainer: Trainer, batch: torch.Tensor, steps: int) -> dict[str, float]:
    """Shares of the step's profiled time by piece (see the module docstring)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            trainer.train_step(batch)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    # The optimizers' own ops are counted in their step's total, and nowhere else.
    optimizer = {
        "optimizer steps": sum(
            e.cpu_time_total for e in events if e.key.startswith("Optimizer.step#")
        ),
        "zero_grad": sum(
            e.cpu_time_total for e in events if e.key.startswith("Optimizer.zero_grad#")
        ),
    }
    pieces = dict.fromkeys(PIECES, 0.0)
    for e in events:
        for piece, fits in PIECES.items():
            if fits(e.key):
                pieces[piece] += e.self_cpu_time_total
                break
    pieces |= optimizer
    pieces["rest (autograd, autocast, dispatch, Python)"] = total - sum(pieces.values())
    return {name: value / total for name, value in pieces.items()} | {"ms": total / steps / 1e3}


def alternate(
    trainers: dict[str, Trainer], batch: torch.Tensor, rounds: int, steps: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per step of each trainer, alternating round by round."""
    wall: dict[str, list[float]] = {name: [] for name in trainers}
    cpu: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            images = trainer.runtime.format_batch(batch)
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(steps):
                trainer.train_step(images)
            wall[name].append((time.perf_counter() - started) / steps)
            cpu[name].append((time.process_time() - cpu_started) / steps)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in wall}


def data_path(images: torch.Tensor, batch_size: int, batches: int) -> float:
    """Seconds per batch of the fast path's data: gathered from preloaded tensors, then
    put in channels_last."""
    source = BatchSource(
        images, batch_size=batch_size, shuffle=True, drop_last=False, num_workers=0,
        seed=0, device=torch.device("cpu"), preload=True,
    )  # fmt: skip
    started = time.perf_counter()
    for index, (batch, _) in enumerate(source.epoch(0)):
        batch.contiguous(memory_format=torch.channels_last)
        if index + 1 == batches:
            break
    return (time.perf_counter() - started) / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma list, the first is the reference (from {', '.join(VARIANTS)})",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    template = DCGAN(width=args.width)
    images = torch.rand(10_000, 1, 28, 28) * 2 - 1
    batch = images[: args.batch_size]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    names = args.variants.split(",")
    trainers = {}
    for name in names:
        started = time.perf_counter()
        trainers[name] = build(name, template, images, args.batch_size)
        print(
            f"built {name} ({ran_with(trainers[name])}) in {time.perf_counter() - started:.0f} s",
            flush=True,
        )

    reference = names[0]
    shares = by_piece(trainers[reference], trainers[reference].runtime.format_batch(batch), 3)
    print(f"\n(1) {reference}'s step by piece ({shares.pop('ms'):.0f} ms profiled)")
    for piece, share in shares.items():
        print(f"    {piece:<44} {100 * share:5.1f}%")

    times = alternate(trainers, batch, args.rounds, args.steps)
    wall0, cpu0 = times[reference]
    print(f"\n(2) whole steps, {args.rounds} alternating rounds of {args.steps} steps")
    print("| variant | ran with | wall (ms) | ratio | CPU (ms) | ratio |")
    print("|---|---|---|---|---|---|")
    for name, (wall, cpu) in times.items():
        print(
            f"| {name} | {ran_with(trainers[name])} | {wall * 1e3:.1f} "
            f"| {wall0 / wall:.3f} | {cpu * 1e3:.1f} | {cpu0 / cpu:.3f} |"
        )

    per_batch = data_path(images, args.batch_size, 50)
    print(
        f"\n(3) data path: {per_batch * 1e3:.2f} ms a batch, {100 * per_batch / wall0:.2f}% of "
        f"{reference}'s step"
    )


if __name__ == "__main__":
    main()

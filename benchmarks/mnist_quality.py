"""The MNIST quality study: train examples/mnist.py variants and tabulate their scores.

    python benchmarks/mnist_quality.py --data-dir ../shared/data --max-steps 2000 --jobs 2

Each variant is one run of the example (a subprocess, so runs can go side by side);
its metrics.json holds the shipped classifier's scores for every way of sampling
(live generator in train or eval mode, EMA in train mode or eval mode with
recomputed BatchNorm statistics) and the real-data floor. A variant whose
metrics.json already exists in --out is not rerun. Prints a Markdown table and
writes it to --out/table.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist.py"
TRAIN = ["--split", "train", "--shuffle", "--ema"]
# The EMA callback only reads the weights, so --recipe --ema trains exactly as --recipe.
VARIANTS = {
    "recipe": ["--recipe", "--ema"],
    "train-bce": [*TRAIN, "--loss", "bce"],
    "train-hinge": [*TRAIN, "--loss", "hinge"],
    "train-lsgan": [*TRAIN, "--loss", "lsgan"],
    "train-bce-lr-d-1e-4": [*TRAIN, "--loss", "bce", "--lr-d", "1e-4"],
    "train-bce-ttur": [*TRAIN, "--loss", "bce", "--lr-g", "1e-4", "--lr-d", "4e-4"],
    "train-bce-fast": [*TRAIN, "--loss", "bce", "--fast"],
    "train-bce-ema-warmup": [*TRAIN, "--loss", "bce", "--ema-warmup"],
}


def run_variant(name: str, args: argparse.Namespace) -> Path:
    out = args.out / name
    if (out / "metrics.json").exists():
        return out
    command = [sys.executable, str(EXAMPLE), *VARIANTS[name], "--out", str(out)]
    command += ["--data-dir", args.data_dir, "--device", args.device, "--seed", str(args.seed)]
    command += ["--epochs", str(args.epochs)]
    if args.max_steps:
        command += ["--max-steps", str(args.max_steps)]
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    with open(out / "log.txt", "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"variant {name} failed (exit {result.returncode}); see {out}/log.txt")
    print(f"{name}: {time.perf_counter() - started:.0f}s", flush=True)
    return out


def table(outs: dict[str, Path]) -> str:
    lines = [
        "| variant | sampler | FD | FD / floor | classes | KL to uniform | confidence "
        "| classifier score | steps | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    floor = None
    for name, out in outs.items():
        report = json.loads((out / "metrics.json").read_text())
        floor = report["floor"]
        for sampler, s in report["samples"].items():
            lines.append(
                f"| {name} | {sampler} | {s['fd']:.3f} | {report['fd_over_floor'][sampler]:.1f} "
                f"| {s['classes_covered']} | {s['kl_to_uniform']:.4f} "
                f"| {s['mean_confidence']:.3f} | {s['classifier_score']:.2f} "
                f"| {report['steps']} | {report['seconds']:.0f} |"
            )
    if floor is not None:
        lines.append(
            f"| real data (10k train vs test) | floor | {floor['fd']:.3f} | 1.0 "
            f"| {floor['classes_covered']} | {floor['kl_to_uniform']:.4f} "
            f"| {floor['mean_confidence']:.3f} | {floor['classifier_score']:.2f} | | |"
        )
    return "\n".join(lines)


def plot(outs: dict[str, Path], path: Path) -> bool:
    """A bar chart of FD / floor per variant and sampler (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    reports = {name: json.loads((out / "metrics.json").read_text()) for name, out in outs.items()}
    samplers = list(next(iter(reports.values()))["samples"])
    figure, axis = plt.subplots(figsize=(8, 3.5), constrained_layout=True)
    width = 0.8 / len(samplers)
    for index, sampler in enumerate(samplers):
        ratios = [r["fd_over_floor"].get(sampler, float("nan")) for r in reports.values()]
        positions = [i + index * width for i in range(len(reports))]
        axis.bar(positions, ratios, width, label=sampler)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(reports))], list(reports))
    axis.set_ylabel("FD / real-data floor (lower is better)")
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--out", type=Path, default=Path("runs/mnist_quality"))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=None, help="shorter study budget")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="variants run side by side")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1) // 2))
    args = parser.parse_args()
    with ThreadPoolExecutor(args.jobs) as pool:
        outs = dict(
            zip(args.variants, pool.map(lambda v: run_variant(v, args), args.variants), strict=True)
        )
    text = table(outs)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    if plot(outs, args.out / "fd_over_floor.png"):
        print(f"chart: {args.out / 'fd_over_floor.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The table of a semi-supervised study from its run folders.

    python benchmarks/semi_supervised_table.py /work/studies/ssl_mnist100_seed{0,1,2} \\
        --baseline /work/studies/ssl_mnist100_supervised_seed0

Reads each run's ``config.toml`` (seed, labels, the labelled set's fingerprint),
``metrics.csv`` (the test error ``error``/``error_avg`` at each evaluation) and
``summary.json`` (wall time; a run still going has none), and prints one markdown row per
run: its final test error (live and averaged D, at its last evaluation), the lowest
averaged error and its epoch (chosen on the test images, so optimistic), epochs and
minutes; then the median, range and standard deviation of the runs' final averaged error.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from ganlib.runs import read_config


def summarise(run: Path) -> dict[str, Any]:
    """What one run folder says: settings, final and best errors, time."""
    config = read_config(run / "config.toml")
    fingerprint = read_config(run / "config.toml", "data_fingerprint")
    with open(run / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("error_avg")]
    if not rows:
        raise ValueError(f"{run}: metrics.csv has no test error yet")
    steps_per_epoch = -(-int(fingerprint["images"]) // int(config["batch_size"]))
    best = min(rows, key=lambda r: (float(r["error_avg"]), int(r["step"])))
    summary = run / "summary.json"
    seconds = json.loads(summary.read_text())["seconds"] if summary.is_file() else None
    return {
        "run": run.name,
        "seed": config["seed"],
        "labels": config.get("labels"),
        "labelled": fingerprint.get("labelled"),
        "baseline": float(config.get("unlabelled_weight", 1.0)) == 0.0,
        "epochs": int(rows[-1]["step"]) / steps_per_epoch,
        "error": float(rows[-1]["error"]),
        "error_avg": float(rows[-1]["error_avg"]),
        "best_avg": float(best["error_avg"]),
        "best_epoch": int(best["step"]) / steps_per_epoch,
        "minutes": None if seconds is None else seconds / 60,
    }


def row(s: dict[str, Any]) -> str:
    kind = "supervised only" if s["baseline"] else "semi-supervised"
    minutes = "running" if s["minutes"] is None else f"{s['minutes']:.0f}"
    return (
        f"| `{s['run']}` | {kind} | {s['seed']} | {s['labels']} (`{s['labelled']}`) | "
        f"{s['epochs']:g} | {s['error']:.2f}% | **{s['error_avg']:.2f}%** | "
        f"{s['best_avg']:.2f}% (epoch {s['best_epoch']:g}) | {minutes} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="the semi-supervised runs (seeds)")
    parser.add_argument("--baseline", type=Path, nargs="*", default=[], help="baseline runs")
    args = parser.parse_args(argv)
    runs = [summarise(run) for run in args.runs]
    baselines = [summarise(run) for run in args.baseline]
    print(
        "| run | training | seed | labels (fingerprint) | epochs | final error, live D | "
        "final error, averaged D | lowest averaged (on test) | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for summary in [*runs, *baselines]:
        print(row(summary))
    finals = [s["error_avg"] for s in runs]
    spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
    print(
        f"\nsemi-supervised, final averaged-D error over {len(finals)} run(s): median "
        f"{statistics.median(finals):.2f}%, range {min(finals):.2f}-{max(finals):.2f}%, "
        f"standard deviation {spread:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Plot one score of several runs against steps, from their metrics.csv: one line per run.

    python benchmarks/compare_runs.py runs/a runs/b --metric fd --out compare.png

Each run folder's ``metrics.csv`` (``ganlib train``, ``examples/mnist.py``) gives the
points where the metric was logged (``fd``: every ``--eval-every`` steps); the lines are
labelled by folder name, or by ``--labels``. FD spans orders of magnitude over a run, so
the y axis is logarithmic unless ``--linear``. Needs matplotlib (``ganlib[plots]``).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path


def read_metric(run: Path, metric: str) -> tuple[list[int], list[float]]:
    """The steps where ``metric`` was logged in ``run/metrics.csv``, and its values.

    Raises:
        ValueError: If the file is missing or has no such column.
    """
    path = run / "metrics.csv"
    if not path.is_file():
        raise ValueError(f"{run} has no metrics.csv (not a run folder?)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and metric not in rows[0]:
        raise ValueError(f"{path} has no column {metric!r}; it has {sorted(rows[0])}")
    points = [(int(r["step"]), float(r[metric])) for r in rows if r.get(metric)]
    points = [(s, v) for s, v in points if math.isfinite(v)]
    return [s for s, _ in points], [v for _, v in points]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders")
    parser.add_argument("--metric", default="fd", help="a metrics.csv column (default: fd)")
    parser.add_argument("--labels", help="comma-separated line labels, one per run")
    parser.add_argument("--title", default=None, help="the figure's title")
    parser.add_argument("--linear", action="store_true", help="a linear y axis")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"--labels has {len(labels)} names for {len(args.runs)} runs")
    if args.out.exists():
        parser.error(f"--out {args.out} exists; choose another name or remove it")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("error: needs matplotlib (pip install 'ganlib[plots]')", file=sys.stderr)
        return 2
    try:
        series = [read_metric(run, args.metric) for run in args.runs]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    axis = fig.subplots()
    for label, (steps, values) in zip(labels, series, strict=True):
        axis.plot(steps, values, "o-", label=label, linewidth=1, markersize=3)
    if not args.linear:
        axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel(args.metric)
    axis.set_title(args.title or f"{args.metric} during training")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    pairs = zip(labels, series, strict=True)
    counts = [f"{label} ({len(steps)} points)" for label, (steps, _) in pairs]
    print(f"wrote {args.out}: {', '.join(counts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

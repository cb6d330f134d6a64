"""How fast the ``ganlib`` command starts: ``import torch`` vs ``ganlib --help`` vs a CLI
error vs the time to step 1 of ``ganlib train mnist``, side by side.

    python benchmarks/startup.py --data-dir ../shared/data
    python benchmarks/startup.py --compare-src ../main/src    # another tree, interleaved
    python benchmarks/startup.py --only "step 1 (warm cache)"  # some commands only

Each round runs every command once, in a fresh process, in turn (so machine noise hits
all alike), for --repeats rounds, and prints the median, min and max wall time of each
and its median's ratio to ``import torch``'s. The commands:

- ``import torch``: ``python -c "import torch"``, the floor every command stands on;
- ``ganlib --help``: the command list;
- ``train --help``: the train command's flags;
- ``error: bad flag``: ``ganlib train mnist --batch-size 0`` (an argument error);
- ``error: no checkpoint``: ``ganlib sample missing.ckpt`` (an error while running);
- ``train imports``: ``python -c "import ganlib.cli.train"``, what ``ganlib train`` imports
  before it does anything;
- ``step 1 (cold cache)`` / ``step 1 (warm cache)``: ``ganlib train mnist
  --progress-every 1`` until its step-1 progress line appears (the process is then
  stopped), with an empty statistics cache ($GANLIB_CACHE, a fresh folder per round:
  the evaluation's reference is embedded) and with the cache a first (untimed) run
  filled. The run first imports what ``ganlib train`` imports (``ganlib.cli.train``) and
  torchvision (which the run's data and first grid load on use), and prints when that was
  done; the ``after imports`` column is the time from there to the step-1 line, in the
  same process: ganlib's own work.

Each command runs with the environment given to this script (pin it with ``taskset``
and ``OMP_NUM_THREADS`` for steady figures); ``--compare-src`` runs every command again
with PYTHONPATH set to another source tree, in the same rounds.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_name  # (benchmarks/, beside this script)

HELP = ["-m", "ganlib", "--help"]


def timed(command: list[str], env: dict[str, str], until: str | None = None) -> list[float]:
    """Seconds from launching ``command`` to its exit, or to the first stdout line that
    contains ``until`` (then the process is stopped); with ``until``, also the seconds
    after launch its line ``imports done after X s`` reported."""
    started = time.perf_counter()
    if until is None:
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return [time.perf_counter() - started]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    imports = math.nan
    try:
        for line in process.stdout:
            if line.startswith(IMPORTS_DONE):
                imports = float(line.split()[-2])
            if until in line:
                return [time.perf_counter() - started, imports]
        raise RuntimeError(f"{' '.join(command)} ended without printing {until!r}")
    finally:
        process.kill()
        process.wait()


# `ganlib train`, reporting when its imports are done: what the command imports
# (ganlib.cli.train and its modules), then its run, in one process.
IMPORTS_DONE = "imports done after"
TRAIN = """
import os, sys, time
import ganlib.cli.train
import torchvision  # (what the run's data and first grid load: counted with the imports)
stat = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
uptime = float(open("/proc/uptime").read().split()[0])
since_launch = uptime - int(stat[19]) / os.sysconf("SC_CLK_TCK")
print("IMPORTS_DONE", round(since_launch, 3), "s", flush=True)
from ganlib.cli import main
sys.exit(main(sys.argv[1:]))
""".replace("IMPORTS_DONE", IMPORTS_DONE)


def commands(data_dir: str, out: Path) -> dict[str, tuple[list[str], str | None, bool]]:
    """Name -> (python arguments, line to wait for, runs with a fresh cache)."""
    train = [
        "-c",
        TRAIN,
        "train",
        "mnist",
        "--data-dir",
        data_dir,
        "--no-download",
        "--out",
        str(out),
        "--overwrite",
        "--progress-every",
        "1",
        "--max-steps",
        "3",
    ]
    step_one = "step 1  "  # the progress line of step 1: "epoch 1/1  batch 1/1200  step 1  ..."
    return {
        "import torch": (["-c", "import torch"], None, False),
        "ganlib --help": (HELP, None, False),
        "train --help": (["-m", "ganlib", "train", "--help"], None, False),
        "error: bad flag": (["-m", "ganlib", "train", "mnist", "--batch-size", "0"], None, False),
        "error: no checkpoint": (
            ["-m", "ganlib", "sample", str(out / "missing.ckpt")],
            None,
            False,
        ),
        "train imports": (["-c", "import ganlib.cli.train"], None, False),
        "step 1 (cold cache)": (train, step_one, True),
        "step 1 (warm cache)": (train, step_one, False),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--repeats", type=int, default=5, help="rounds")
    parser.add_argument("--compare-src", type=Path, help="another source tree, run alike")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these commands (names as printed)"
    )
    parser.add_argument(
        "--skip-train", action="store_true", help="leave out the step-1 runs (no MNIST needed)"
    )
    args = parser.parse_args(argv)
    trees = {"this": str(Path(__file__).resolve().parents[1] / "src")}
    if args.compare_src is not None:
        trees["compare"] = str(args.compare_src.resolve())
    work = Path(tempfile.mkdtemp(prefix="ganlib-startup-"))
    warm_cache = work / "warm-cache"
    runs = commands(args.data_dir, work / "run")
    if args.skip_train:
        runs = {k: v for k, v in runs.items() if not k.startswith("step 1")}
    if args.only:  # (import torch always: the ratios are to it)
        unknown = sorted(set(args.only) - set(runs))
        if unknown:
            parser.error(f"--only: no command named {unknown}; the commands: {sorted(runs)}")
        runs = {k: v for k, v in runs.items() if k == "import torch" or k in args.only}
    times: dict[tuple[str, str], list[float]] = {}
    try:
        if "step 1 (warm cache)" in runs:  # a first run fills the warm cache
            arguments, until, _ = runs["step 1 (warm cache)"]
            for src in trees.values():
                env = {**os.environ, "PYTHONPATH": src, "GANLIB_CACHE": str(warm_cache)}
                timed([sys.executable, *arguments], env, until)
        for round_ in range(args.repeats):
            for tree, src in trees.items():
                for name, (arguments, until, fresh) in runs.items():
                    env = {**os.environ, "PYTHONPATH": src}
                    if name.startswith("step 1"):
                        cache = work / f"cold-{tree}-{round_}" if fresh else warm_cache
                        env["GANLIB_CACHE"] = str(cache)
                    seconds = timed([sys.executable, *arguments], env, until)
                    times.setdefault((tree, name), []).append(seconds[0])
                    if len(seconds) > 1:  # the time after the process's own imports
                        times.setdefault((tree, name + " after"), []).append(
                            seconds[0] - seconds[1]
                        )
                    if fresh:
                        shutil.rmtree(work / f"cold-{tree}-{round_}", ignore_errors=True)
                print(f"round {round_ + 1}/{args.repeats} done ({tree})", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    version = sys.version.split()[0]
    print(f"\n{args.repeats} rounds on {cpu_name()}; wall seconds from launch; python {version}")
    for tree, src in trees.items():
        torch_median = statistics.median(times[(tree, "import torch")])
        print(f"\n{tree} tree: {src}\n")
        print("| command | median s | min s | max s | / import torch | after imports s |")
        print("|---|---|---|---|---|---|")
        for name in runs:
            values = times[(tree, name)]
            median = statistics.median(values)
            afters = times.get((tree, name + " after"))
            after = f"{statistics.median(afters):.2f}" if afters else ""
            print(
                f"| {name} | {median:.2f} | {min(values):.2f} | {max(values):.2f} "
                f"| {median / torch_median:.2f}x | {after} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

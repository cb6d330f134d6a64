"""Whether two runs trained the same: their newest checkpoints' tensors, bitwise.

    python benchmarks/same_training.py runs/before runs/after

For a change meant to leave training alone (a refactor, a new default that should not
apply to some data): run ``ganlib train`` with the same settings and seed at both code
revisions (``PYTHONPATH=old/src``, one thread each: ``OMP_NUM_THREADS=1``, since a
different thread count reorders sums) and compare. Each top-level entry of the checkpoint
(networks, optimizers, RNG states, each callback's state such as the EMA's) is reported
as equal, differing (naming its first differing tensor) or present in one run only.
Callback entries are matched by kind (``SampleGrid[runs/a]`` and ``SampleGrid[runs/b]``
are one entry); state that names the run's own files, such as a loss curve's history
keyed by folder, is compared by its tensors' values, not by its names. Exits 0 when every
entry both runs hold is equal; entries without tensors (names, versions) are listed,
not compared.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ganlib.checkpoint import load_checkpoint
from ganlib.runs import RunFolder


def tensors(value: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a nested checkpoint entry, with its path (dict keys, list indices)."""
    if torch.is_tensor(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from tensors(item, f"{path}/{_kind(str(key))}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from tensors(item, f"{path}[{index}]")


def _kind(key: str) -> str:
    """A callback's key without the run it names: ``SampleGrid[runs/a]`` -> ``SampleGrid``."""
    return re.sub(r"\[.*\]$", "", key)


def entries(checkpoint: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The checkpoint's top-level entries (each callback one entry), as path -> tensor."""
    payload = load_checkpoint(checkpoint)  # (ganlib's reader: runs no code from the file)
    found: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in payload.items():
        if key == "callbacks" and isinstance(value, dict):
            for name, state in value.items():
                found[f"callbacks/{_kind(name)}"] = dict(tensors(state))
        else:
            found[key] = dict(tensors(value))
    return found


def compare(first: Path, second: Path) -> list[tuple[str, str]]:
    """Each entry of either checkpoint and what it is: ``equal``, ``differs at PATH``,
    ``differs: ...``, ``only in ...`` or ``no tensors (not compared)``."""
    a, b = entries(first), entries(second)
    verdicts = []
    for name in sorted(set(a) | set(b)):
        if not a.get(name) and not b.get(name):
            verdicts.append((name, "no tensors (not compared)"))
        elif name not in b or name not in a:
            verdicts.append((name, f"only in {first if name in a else second}"))
        elif a[name].keys() != b[name].keys():
            verdicts.append((name, f"differs: tensors {sorted(a[name].keys() ^ b[name].keys())}"))
        else:
            unequal = [p for p in a[name] if not torch.equal(a[name][p], b[name][p])]
            verdicts.append((name, f"differs at {unequal[0]}" if unequal else "equal"))
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs=2, help="two run folders")
    args = parser.parse_args(argv)
    first, second = (RunFolder(run).checkpoint() for run in args.runs)
    print(f"{first}\n{second}")
    verdicts = compare(first, second)
    for name, verdict in verdicts:
        print(f"  {name:40s} {verdict}")
    same = all(not v.startswith("differs") for _, v in verdicts)
    print("same training" if same else "NOT the same training")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

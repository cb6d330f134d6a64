"""The ``ganlib`` command: ``ganlib train DATA --out runs/NAME``, ``ganlib sample RUN``,
``ganlib fid A B``, ``ganlib translate RUN INPUTS... --out DIR``.

Every error ends the command with one line on stderr and exit code 2; Ctrl-C and
SIGTERM end a training run at a step boundary, saved, with exit code 130 / 143.
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..checkpoint import CheckpointError
from ..data.common import DataNotFoundError
from ..signals import TrainingInterrupted
from . import fid, sample, train, translate
from .args import non_negative_int, positive_int

__all__ = ["build_parser", "main", "non_negative_int", "positive_int"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganlib", description="ganlib's command-line tools.")
    parser.add_argument("--version", action="version", version=f"ganlib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.add_parser(commands)
    sample.add_parser(commands)
    fid.add_parser(commands)
    translate.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (CheckpointError, DataNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:  # the step finished and was saved
        print(f"stopped: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``ganlib`` command: ``ganlib train DATA --out runs/NAME``, ``ganlib sample RUN``,
``ganlib fid A B``, ``ganlib classify RUN IMAGES...``,
``ganlib translate RUN INPUTS... --out DIR``.

Every error ends the command with one line on stderr and exit code 2; Ctrl-C and
SIGTERM end a training run at a step boundary, saved, with exit code 130 / 143.

The command starts fast: ``ganlib --help`` imports no subcommand (nor torch), and a
subcommand imports only its own module (`main` builds the parser of the command named
on the line, the others as one-line entries of the command list).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING

from .._version import __version__

if TYPE_CHECKING:
    from .args import non_negative_int, positive_int

__all__ = ["COMMANDS", "build_parser", "main", "non_negative_int", "positive_int"]

# Each subcommand's module (``ganlib.cli.<name>``, with ``add_parser(commands)``) and the
# line ``ganlib --help`` shows for it (tests/test_startup.py holds it equal to the
# module's own ``help=``).
COMMANDS = {
    "train": "train a GAN on a folder of images, mnist, fashion-mnist or stacked-mnist",
    "sample": "save a grid (or files) of images from a trained checkpoint",
    "fid": "Fréchet distance (and KID) between two image sets",
    "classify": "classify images with a semi-supervised run's classifier",
    "translate": "translate images with a trained pix2pix or CycleGAN run",
}


def __getattr__(name: str) -> object:
    # The argument types, exported here in earlier releases, load with their module.
    if name in ("non_negative_int", "positive_int"):
        return getattr(importlib.import_module(".args", __name__), name)
    raise AttributeError(f"module 'ganlib.cli' has no attribute {name!r}")


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f".{name}", __name__)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``ganlib`` parser.

    Args:
        only: Build this subcommand's arguments (importing its module) and list the
            others by name and help line only; ``None``: build every subcommand.
    """
    parser = argparse.ArgumentParser(prog="ganlib", description="ganlib's command-line tools.")
    parser.add_argument("--version", action="version", version=f"ganlib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_line in COMMANDS.items():
        if only is None or name == only:
            _command_module(name).add_parser(commands)
        else:
            commands.add_parser(name, help=help_line)
    return parser


def _named_command(argv: list[str]) -> str | None:
    """The subcommand on the line: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    named = _named_command(argv)
    parser = build_parser(only=named if named in COMMANDS else "")
    args = parser.parse_args(argv)
    from ..signals import TrainingInterrupted  # (after parsing: `--help` needs no torch)

    try:
        return int(args.run(args))
    except (ValueError, OSError) as exc:  # CheckpointError and DataNotFoundError among them
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

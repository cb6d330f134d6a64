"""The ``ganlib`` command: ``ganlib sample CHECKPOINT --num 64 --out grid.png``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from ._version import __version__
from .checkpoint import CheckpointError, load_gan
from .device import resolve_device
from .sampling import recompute_batchnorm, sample_images, save_grid
from .seeding import batchnorm_seed

# ganlib sample draws at most this many images into one grid (a PNG of ~3,000 px a side at 28x28).
MAX_GRID_IMAGES = 10_000
# Images per generator call: large enough for train-mode BatchNorm statistics.
SAMPLE_BATCH = 1_000


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[minimum, maximum]``, with a message naming the rule."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            rule = "a positive integer" if minimum == 1 else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}, got {value:,}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def png_path(text: str) -> Path:
    """The grid file: a folder is refused, a name without a suffix gets ``.png``."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file such as grid.png")
    return path if path.suffix else path.with_suffix(".png")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganlib", description="ganlib's command-line tools.")
    parser.add_argument("--version", action="version", version=f"ganlib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sample = commands.add_parser(
        "sample",
        help="save a grid of images from a trained checkpoint",
        description="Save a grid of images drawn from a checkpoint's generator.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sample.add_argument("checkpoint", type=Path, help="a .ckpt written by ganlib's Trainer")
    sample.add_argument(
        "--num", type=int_at_least(1, MAX_GRID_IMAGES), default=64, help="images in the grid"
    )
    sample.add_argument(
        "--out", type=png_path, default=Path("grid.png"), help="image file to write (.png added)"
    )
    sample.add_argument("--nrow", type=positive_int, default=8, help="images per row")
    sample.add_argument("--seed", type=non_negative_int, default=0, help="seed of the latents")
    sample.add_argument("--ema", action="store_true", help="use the EMA generator's weights")
    sample.add_argument(
        "--eval-mode",
        action="store_true",
        help="sample with BatchNorm running statistics (recomputed first with --ema); "
        "default: batch statistics, as during training",
    )
    sample.add_argument(
        "--label",
        type=int,
        default=None,
        help="conditional models: draw only this class; without it, row r shows class "
        "r mod num_classes",
    )
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    return parser


def requested_labels(
    num_classes: int | None, num: int, nrow: int, label: int | None
) -> torch.Tensor | None:
    """The class of each image for a conditional model: ``label`` for all, or row r
    showing class r mod num_classes; ``None`` for an unconditional one."""
    if num_classes is None:
        if label is not None:
            raise ValueError("--label needs a conditional checkpoint (DCGAN(num_classes=K))")
        return None
    if label is not None:
        if not 0 <= label < num_classes:
            raise ValueError(f"--label must lie in [0, {num_classes}), got {label}")
        return torch.full((num,), label)
    return (torch.arange(num) // nrow) % num_classes


def sample_command(args: argparse.Namespace) -> Path:
    device = resolve_device(args.device)
    gan = load_gan(args.checkpoint, ema=args.ema).to(device)
    generator = gan.generator
    labels = requested_labels(gan.num_classes, args.num, args.nrow, args.label)
    if args.eval_mode and args.ema:  # the copied statistics do not fit averaged weights
        recompute_batchnorm(generator, gan, batchnorm_seed(args.seed))
    images = torch.cat(
        list(
            sample_images(
                generator,
                args.num,
                gan,
                batch_size=min(args.num, SAMPLE_BATCH),
                seed=args.seed,
                eval_mode=args.eval_mode,
                labels=labels,
            )
        )
    )
    save_grid(images.cpu(), args.out, nrow=args.nrow)
    return args.out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = sample_command(args)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"wrote {args.num} images to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

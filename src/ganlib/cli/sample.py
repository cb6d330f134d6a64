"""``ganlib sample CHECKPOINT_OR_RUN --num 64 --out grid.png`` (or ``--format files``: one
PNG per image). A run with an EMA generator is sampled through it, as its grids, its
evaluation and ``ganlib fid`` are; ``--no-ema`` takes the live generator."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_gan
from ..device import resolve_device
from ..gan import GAN
from ..sampling import check_grid_pixels, recompute_batchnorm, sample_images, save_grid
from ..seeding import batchnorm_seed
from .args import (
    MAX_GRID_IMAGES,
    SAMPLE_BATCH,
    int_at_least,
    non_negative_int,
    png_path,
    positive_int,
)

# The numbered files of --format files: 00000.png, or 00000_class3.png for a conditional model.
SAMPLE_FILES = "[0-9][0-9][0-9][0-9][0-9]*.png"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``sample`` subcommand's arguments."""
    sample = commands.add_parser(
        "sample",
        help="save a grid (or files) of images from a trained checkpoint",
        description="Save images drawn from a checkpoint's generator: one grid, or one PNG "
        "per image (--format files). A run with an EMA generator is sampled through it, as "
        "its grids, evaluation and `ganlib fid` are; --no-ema takes the live generator.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sample.add_argument(
        "checkpoint",
        type=Path,
        help="a .ckpt written by ganlib's Trainer, or a run folder (its checkpoints/last.ckpt)",
    )
    sample.add_argument(
        "--num", type=int_at_least(1, MAX_GRID_IMAGES), default=64, help="images to draw"
    )
    sample.add_argument(
        "--format",
        choices=("grid", "files"),
        default="grid",
        help="one grid image, or one PNG per image, numbered (00000.png, ...; conditional "
        "models: 00000_class3.png), in the folder --out",
    )
    sample.add_argument(
        "--out",
        default=None,
        help="the grid's file (.png added; default grid.png), or for --format files a new "
        "folder (default samples)",
    )
    sample.add_argument("--nrow", type=positive_int, default=8, help="images per grid row")
    sample.add_argument("--seed", type=non_negative_int, default=0, help="seed of the latents")
    sample.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample the EMA generator (default: when the checkpoint has one); --no-ema: the "
        "live generator",
    )
    sample.add_argument(
        "--eval-mode",
        action="store_true",
        help="sample with BatchNorm running statistics (recomputed first for the EMA "
        "generator); default: batch statistics, as during training",
    )
    sample.add_argument(
        "--label",
        type=int,
        default=None,
        help="conditional models: draw only this class; without it, row r shows class "
        "r mod num_classes",
    )
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    sample.set_defaults(run=sample_command)


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


def load_generator(checkpoint: Path, ema: bool | None) -> tuple[GAN, str]:
    """The checkpoint's GAN with the generator asked for, and its name for messages:
    ``ema=None`` takes the EMA generator where the checkpoint has one.

    Raises:
        CheckpointError: For an unreadable checkpoint, or ``ema=True`` without an EMA.
    """
    if ema is False:
        return load_gan(checkpoint), "the live generator (--no-ema)"
    try:
        return load_gan(checkpoint, ema=True), "the EMA generator"
    except CheckpointError as exc:
        if ema or "has no EMA generator" not in str(exc):
            raise
    return load_gan(checkpoint), "the generator (the run kept no EMA)"


def _output(args: argparse.Namespace) -> Path:
    """Where the images go: the grid's file, or the folder of numbered files.

    Raises:
        ValueError: For a folder given as the grid, a file given as the folder, or a
            folder that already holds numbered samples.
    """
    if args.format == "grid":
        try:
            return png_path(args.out or "grid.png")
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"--out {exc}") from None
    out = Path(args.out or "samples")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; --format files writes into a folder")
    earlier = sorted(out.glob(SAMPLE_FILES)) if out.is_dir() else []
    if earlier:
        raise ValueError(
            f"--out {str(out)!r} already holds {len(earlier)} numbered samples "
            f"({earlier[0].name}, ...); choose another folder or delete them"
        )
    return out


def _save_files(batches: Iterator[torch.Tensor], out: Path, labels: torch.Tensor | None) -> None:
    """One PNG per image, numbered in drawing order (the class in the name, if any)."""
    out.mkdir(parents=True, exist_ok=True)
    index = 0
    for batch in batches:
        for image in batch.cpu():
            name = f"{index:05d}" + ("" if labels is None else f"_class{int(labels[index])}")
            save_grid(image.unsqueeze(0), out / f"{name}.png", nrow=1)  # one image: no padding
            index += 1


def sample_command(args: argparse.Namespace) -> int:
    out = _output(args)
    device = resolve_device(args.device)
    if args.checkpoint.is_dir():  # a run folder: its newest intact checkpoint
        from ..runs.folder import RunFolder  # (ganlib.runs loads the Trainer: only for a folder)

        args.checkpoint = RunFolder(args.checkpoint).checkpoint()
    gan, which = load_generator(args.checkpoint, args.ema)
    if args.format == "grid":
        height, width = gan.image_shape[-2:]
        check_grid_pixels(args.num, height, width, "--num", "lower --num, or use --format files")
    gan = gan.to(device)
    generator = gan.generator
    labels = requested_labels(gan.num_classes, args.num, args.nrow, args.label)
    if args.eval_mode and which == "the EMA generator":  # copied statistics do not fit it
        recompute_batchnorm(generator, gan, batchnorm_seed(args.seed))
    batches = sample_images(
        generator,
        args.num,
        gan,
        batch_size=min(args.num, SAMPLE_BATCH),
        seed=args.seed,
        eval_mode=args.eval_mode,
        labels=labels,
    )
    if args.format == "files":
        _save_files(batches, out, labels)
        print(f"wrote {args.num} images from {which} to {out}/ (00000.png, ...)")
        return 0
    save_grid(torch.cat([batch.cpu() for batch in batches]), out, nrow=args.nrow)
    print(f"wrote {args.num} images from {which} to {out}")
    return 0

"""``ganlib sample CHECKPOINT_OR_RUN --num 64 --out grid.png``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..checkpoint import load_gan
from ..device import resolve_device
from ..runs.folder import RunFolder
from ..sampling import recompute_batchnorm, sample_images, save_grid
from ..seeding import batchnorm_seed
from .args import (
    MAX_GRID_IMAGES,
    SAMPLE_BATCH,
    int_at_least,
    non_negative_int,
    png_path,
    positive_int,
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``sample`` subcommand's arguments."""
    sample = commands.add_parser(
        "sample",
        help="save a grid of images from a trained checkpoint",
        description="Save a grid of images drawn from a checkpoint's generator.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sample.add_argument(
        "checkpoint",
        type=Path,
        help="a .ckpt written by ganlib's Trainer, or a run folder (its checkpoints/last.ckpt)",
    )
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


def sample_command(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.checkpoint.is_dir():  # a run folder: its newest intact checkpoint
        args.checkpoint = RunFolder(args.checkpoint).checkpoint()
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
    print(f"wrote {args.num} images to {args.out}")
    return 0

"""``ganlib fid A B``: the Fréchet distance (and KID) between two image sets, offline.

Each side is a folder of images, an ``.npz`` of feature statistics (``mu``, ``sigma``,
as pytorch-fid writes them), or a checkpoint / run folder (its generator is sampled).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint import CheckpointError, load_gan
from ..data import load_image_folder
from ..device import resolve_device
from ..metrics import FeatureStats, InceptionFeatures, embed, frechet_distance, kernel_distance
from ..metrics.mnist_classifier import load_mnist_classifier
from ..runs.folder import RunFolder
from ..sampling import sample_images
from .args import int_at_least

__all__ = ["add_parser", "fid_command", "load_side"]

Features = Literal["mnist", "inception", "fid-inception"]
_INPUT_SIZE = {"mnist": 28, "inception": 299, "fid-inception": 299}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``fid`` subcommand's arguments."""
    fid = commands.add_parser(
        "fid",
        help="Fréchet distance (and KID) between two image sets",
        description="Fréchet distance between two sets of images in a feature space. Each "
        "side is a folder of images, an .npz of statistics (mu, sigma), or a checkpoint or "
        "run folder, whose generator is sampled. Paper-comparable FID: --features "
        "fid-inception with the TF-ported weights (--weights, or downloaded once where online).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    fid.add_argument("a", type=Path, help="folder, .npz statistics, checkpoint or run folder")
    fid.add_argument("b", type=Path, help="the same kinds as A")
    fid.add_argument(
        "--features",
        choices=("mnist", "inception", "fid-inception"),
        default="fid-inception",
        help="feature space: ganlib's MNIST classifier, torchvision's ImageNet Inception, "
        "or the FID Inception papers use",
    )
    fid.add_argument("--weights", type=Path, default=None, help="Inception weights file")
    fid.add_argument(
        "--num", type=int_at_least(2), default=10_000, help="images drawn from a checkpoint"
    )
    fid.add_argument("--kid", action="store_true", help="also the kernel distance (KID)")
    fid.add_argument("--batch-size", type=int_at_least(1), default=200, help="images per batch")
    fid.add_argument("--seed", type=int_at_least(0), default=0, help="seed of sampled latents")
    fid.add_argument("--save-stats", type=Path, help="write A's statistics to this .npz")
    fid.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    fid.set_defaults(run=fid_command)


def _extractor(
    features: Features, weights: Path | None, device: torch.device
) -> Callable[[Tensor], Tensor]:
    """Images -> features: the MNIST classifier's pooled features, or Inception's."""
    if features == "mnist":
        return load_mnist_classifier().to(device).eval().embed
    variant = "fid" if features == "fid-inception" else "imagenet"
    return InceptionFeatures(weights, variant=variant).to(device).eval()  # type: ignore[arg-type]


def _checkpoint_of(path: Path) -> Path | None:
    if path.suffix == ".ckpt" and path.is_file():
        return path
    if path.is_dir() and RunFolder(path).checkpoints.is_dir():
        return RunFolder(path).checkpoint()
    return None


def load_side(
    path: Path,
    name: str,
    extract: Callable[[Tensor], Tensor],
    features: Features,
    args: argparse.Namespace,
    device: torch.device,
) -> FeatureStats | Tensor:
    """Features (or statistics) of one side of the comparison.

    Raises:
        ValueError: For a path that is none of the accepted kinds, naming the side.
    """
    if path.suffix == ".npz":
        if not path.is_file():
            raise ValueError(f"{name} {str(path)!r} does not exist")
        with np.load(path) as stats:
            if "mu" not in stats or "sigma" not in stats:
                raise ValueError(f"{name} {str(path)!r} has no 'mu' and 'sigma' arrays")
            mean = torch.from_numpy(stats["mu"]).double()
            cov = torch.from_numpy(stats["sigma"]).double()
            count = int(stats["count"]) if "count" in stats else 0
        return FeatureStats(mean, cov, count)
    size = _INPUT_SIZE[features]
    checkpoint = _checkpoint_of(path)
    if checkpoint is not None:
        try:  # a run with an EMA generator is sampled through it
            gan = load_gan(checkpoint, ema=True)
        except CheckpointError:
            gan = load_gan(checkpoint)
        gan = gan.to(device)
        batches = sample_images(gan.generator, args.num, gan, batch_size=500, seed=args.seed)
        return embed(extract, (_fit(b, features) for b in batches), device=device)
    if path.is_dir():
        images = load_image_folder(path, size, 1 if features == "mnist" else 3)
        return embed(extract, images, batch_size=args.batch_size, device=device)
    raise ValueError(
        f"{name} {str(path)!r} is not a folder of images, an .npz of statistics, a .ckpt "
        "or a run folder"
    )


def _fit(images: Tensor, features: Features) -> Tensor:
    """Images as the extractor takes them: MNIST's classifier wants (B, 1, 28, 28)."""
    if features == "mnist":
        if images.shape[1] == 3:
            images = images.mean(1, keepdim=True)
        if tuple(images.shape[-2:]) != (28, 28):
            images = nn.functional.interpolate(images, size=(28, 28), mode="bilinear")
    return images


def fid_command(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    extract = _extractor(args.features, args.weights, device)
    a = load_side(args.a, "A", extract, args.features, args, device)
    b = load_side(args.b, "B", extract, args.features, args, device)
    if args.save_stats is not None:
        stats = a if isinstance(a, FeatureStats) else FeatureStats.of(a)
        args.save_stats.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.save_stats, mu=stats.mean.numpy(), sigma=stats.cov.numpy(), count=stats.count)
        print(f"wrote A's statistics ({stats.count} images) to {args.save_stats}")
    print(f"FD ({args.features} features): {frechet_distance(a, b):.6g}")
    if args.kid:
        if isinstance(a, FeatureStats) or isinstance(b, FeatureStats):
            raise ValueError("--kid needs images on both sides, not .npz statistics")
        subset = min(1000, len(a), len(b))
        mean, std = kernel_distance(a, b, subset_size=subset)
        print(f"KID: {mean:.6g} ± {std:.2g} (subsets of {subset})")
    return 0

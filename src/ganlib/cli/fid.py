"""``ganlib fid A B``: the Fréchet distance (and KID) between two image sets, offline.

Each side is a folder of images, an ``.npz`` of feature statistics (``mu``, ``sigma``,
as pytorch-fid writes them), or a checkpoint / run folder (its generator is sampled).
Offline, ``--features fid-inception`` needs its weights file (``--weights``, or ganlib's
cache); ``--features mnist`` needs nothing, and suits 28x28 grayscale digits only.
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
from ..device import resolve_device
from ..metrics import FeatureStats, InceptionFeatures, embed, frechet_distance, kernel_distance
from ..metrics.mnist_classifier import load_mnist_classifier
from ..sampling import sample_images
from .args import int_at_least

__all__ = ["add_parser", "fid_command", "load_side"]

Features = Literal["mnist", "inception", "fid-inception"]
_INPUT_SIZE = {"mnist": 28, "inception": 299, "fid-inception": 299}
# Fewer images than this make an FD biased upward and noisy (a notice says so).
FEW_IMAGES = 500


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
    fid.add_argument("--save-stats", type=Path, help="write A's statistics to this .npz file")
    fid.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    fid.set_defaults(run=fid_command)


def _extractor(
    features: Features, weights: Path | None, device: torch.device
) -> Callable[[Tensor], Tensor]:
    """Images -> features: the MNIST classifier's pooled features, or Inception's.

    Raises:
        FileNotFoundError: Inception weights that are neither given, cached nor
            downloadable, naming ``--weights`` and where the file goes.
    """
    if features == "mnist":
        return load_mnist_classifier().to(device).eval().embed
    variant = "fid" if features == "fid-inception" else "imagenet"
    try:
        network = InceptionFeatures(weights, variant=variant)  # type: ignore[arg-type]
    except FileNotFoundError as exc:
        given = "" if weights is None else f" (--weights {str(weights)!r})"
        text = str(exc).replace("pass its path as `weights`", "pass its path with --weights")
        raise FileNotFoundError(
            f"--features {features} needs its Inception weights{given}: {text} Without "
            "them, --features mnist works offline, for 28x28 grayscale digits only"
        ) from exc
    return network.to(device).eval()


def _checkpoint_of(path: Path) -> Path | None:
    if path.suffix == ".ckpt" and path.is_file():
        return path
    from ..runs.folder import RunFolder  # (ganlib.runs loads the Trainer: only when used)

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
        stats = read_stats(path, name)
        _notice_count(name, stats.count, features)
        return stats
    size = _INPUT_SIZE[features]
    checkpoint = _checkpoint_of(path)
    if checkpoint is not None:
        try:  # a run with an EMA generator is sampled through it
            gan = load_gan(checkpoint, ema=True)
        except CheckpointError:
            gan = load_gan(checkpoint)
        _notice_shape(name, tuple(gan.image_shape), features)
        _notice_count(name, args.num, features)
        gan = gan.to(device)
        batches = sample_images(gan.generator, args.num, gan, batch_size=500, seed=args.seed)
        return embed(extract, (_fit(b, features) for b in batches), device=device)
    if path.is_dir():
        from ..data import ImageFolder, load_image_folder  # (torchvision: only when used)

        if features == "mnist":  # what the folder holds, before it is made 1x28x28
            listing = ImageFolder(path, None, None)
            shown = (listing.channels, listing.median_size, listing.median_size)
            _notice_shape(name, shown, features)
        images = load_image_folder(path, size, 1 if features == "mnist" else 3)
        _notice_count(name, len(images), features)
        return embed(extract, images, batch_size=args.batch_size, device=device)
    raise ValueError(
        f"{name} {str(path)!r} is not a folder of images, an .npz of statistics, a .ckpt "
        "or a run folder"
    )


def read_stats(path: Path, name: str) -> FeatureStats:
    """An ``.npz`` of statistics: ``mu`` (D,) and ``sigma`` (D, D), finite numbers, and
    optionally ``count``.

    Raises:
        ValueError: Naming the side, the file and what is wrong with it.
    """
    where = f"{name} {str(path)!r}"
    if not path.is_file():
        raise ValueError(f"{where} does not exist")
    try:
        with np.load(path) as stats:
            if "mu" not in stats or "sigma" not in stats:
                raise ValueError(f"{where} has no 'mu' and 'sigma' arrays")
            arrays = {
                key: np.asarray(stats[key]) for key in ("mu", "sigma", "count") if key in stats
            }
    except (OSError, EOFError) as exc:
        raise ValueError(f"{where} is not a readable .npz file: {exc}") from exc
    except ValueError as exc:  # pickled objects (refused), or not a zip
        if str(exc).startswith(where):
            raise
        raise ValueError(f"{where} is not an .npz of numeric arrays: {exc}") from exc
    for key, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{where}: '{key}' must hold real numbers, got dtype {array.dtype}")
    mean, cov = arrays["mu"], arrays["sigma"]
    if mean.ndim != 1 or cov.shape != (len(mean), len(mean)):
        raise ValueError(
            f"{where}: 'mu' must be (D,) and 'sigma' (D, D), got {mean.shape} and {cov.shape}"
        )
    for key, array in (("mu", mean), ("sigma", cov)):
        if not np.isfinite(array).all():
            raise ValueError(
                f"{where}: '{key}' holds {int((~np.isfinite(array)).sum())} NaN or infinite values"
            )
    count = arrays.get("count", np.asarray(0))
    if count.size != 1 or count.dtype.kind not in "iu" or int(count) < 0:
        raise ValueError(f"{where}: 'count' must be one non-negative integer, got {count!r}")
    return FeatureStats(torch.from_numpy(mean).double(), torch.from_numpy(cov).double(), int(count))


def _notice_shape(name: str, shape: tuple[int, ...], features: Features) -> None:
    """A notice when the MNIST classifier is asked to measure what is not 1x28x28."""
    from .._logging import logger

    if features == "mnist" and tuple(shape) != (1, 28, 28):
        channels, height, width = shape
        logger.warning(
            f"ganlib fid: {name} holds {channels}x{height}x{width} images, but --features mnist "
            "measures 28x28 grayscale digits (others are made grayscale and resized): its "
            "distances say little about other pictures; use --features fid-inception "
            "(--weights offline)"
        )


def _notice_count(name: str, count: int, features: Features) -> None:
    """A notice when a side has too few images for a trustworthy FD."""
    from .._logging import logger

    if 0 < count < FEW_IMAGES:
        logger.warning(
            f"ganlib fid: {name} has {count} images; a Fréchet distance from fewer than "
            f"{FEW_IMAGES} is biased upward and varies from draw to draw: compare sets of "
            "the same size, and more images where you can"
        )


def _save_stats(stats: FeatureStats, path: Path) -> None:
    """``stats`` as an ``.npz`` at exactly ``path``, atomically (a temporary file beside it,
    then a rename: an interrupted write leaves the previous file, or none)."""
    import os  # (imported here: this module's imports are kept as they are, to go lazy)
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, mu=stats.mean.numpy(), sigma=stats.cov.numpy(), count=stats.count)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _fit(images: Tensor, features: Features) -> Tensor:
    """Images as the extractor takes them: MNIST's classifier wants (B, 1, 28, 28)."""
    if features == "mnist":
        if images.shape[1] == 3:
            images = images.mean(1, keepdim=True)
        if tuple(images.shape[-2:]) != (28, 28):
            images = nn.functional.interpolate(images, size=(28, 28), mode="bilinear")
    return images


def fid_command(args: argparse.Namespace) -> int:
    if args.save_stats is not None and (
        args.save_stats.suffix != ".npz" or args.save_stats.is_dir()
    ):
        raise ValueError(
            f"--save-stats must name a .npz file (which `ganlib fid` reads back as a side), "
            f"got {str(args.save_stats)!r}"
        )
    device = resolve_device(args.device)
    extract = _extractor(args.features, args.weights, device)
    a = load_side(args.a, "A", extract, args.features, args, device)
    b = load_side(args.b, "B", extract, args.features, args, device)
    if args.save_stats is not None:
        stats = a if isinstance(a, FeatureStats) else FeatureStats.of(a)
        _save_stats(stats, args.save_stats)
        print(f"wrote A's statistics ({stats.count} images) to {args.save_stats}")
    print(f"FD ({args.features} features): {frechet_distance(a, b):.6g}")
    if args.kid:
        if isinstance(a, FeatureStats) or isinstance(b, FeatureStats):
            raise ValueError("--kid needs images on both sides, not .npz statistics")
        subset = min(1000, len(a), len(b))
        mean, std = kernel_distance(a, b, subset_size=subset)
        print(f"KID: {mean:.6g} ± {std:.2g} (subsets of {subset})")
    return 0

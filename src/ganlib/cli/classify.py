"""``ganlib classify RUN IMAGES... [--out predictions.csv]``: a semi-supervised run's
classifier applied to image files."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..data.common import DataNotFoundError, to_unit_range
from ..data.folder import ImageFolder
from ..device import resolve_device
from ..tasks.semi_supervised import load_classifier
from .args import positive_int

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
COLUMNS = ("path", "class", "name", "probability")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``classify`` subcommand's arguments."""
    classify = commands.add_parser(
        "classify",
        help="classify images with a semi-supervised run's classifier",
        description=(
            "Classify image files with the classifier a semi-supervised run trained (its "
            "averaged discriminator, noise off). Each image is converted as training data "
            "is: to the run's channels, its shorter side resized to the run's image size, "
            "centre-cropped. Writes one CSV row per image: path, class index, class name "
            "and the class's probability among the real classes."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    classify.add_argument(
        "run_path",
        metavar="RUN",
        type=Path,
        help="a semi-supervised run folder, or one of its checkpoints",
    )
    classify.add_argument(
        "images",
        type=Path,
        nargs="+",
        help="image files, or folders (every image under them, subfolders included)",
    )
    classify.add_argument(
        "--out", type=Path, default=None, help="CSV file to write (default: standard output)"
    )
    classify.add_argument(
        "--checkpoint",
        choices=("last", "best"),
        default="last",
        help="for a run folder: its newest checkpoint, or best.ckpt (lowest averaged test error)",
    )
    classify.add_argument(
        "--live", action="store_true", help="the live discriminator, not the averaged one"
    )
    classify.add_argument("--batch-size", type=positive_int, default=500, help="images per pass")
    classify.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    classify.set_defaults(run=classify_command)


def images_of(paths: Iterable[Path], shape: tuple[int, ...]) -> Iterator[tuple[Path, Tensor]]:
    """Each image ``paths`` name, as ``(path, image)``: files as given; a folder's images
    read as a training folder is ([`ImageFolder`][ganlib.data.ImageFolder], sorted).

    Raises:
        DataNotFoundError: For a path that does not exist, or a folder without images.
        ValueError: For a file that is not a readable image.
    """
    for path in paths:
        if path.is_dir():
            folder = ImageFolder(path, shape[-1], shape[0])
            for index, file in enumerate(folder.files):
                item = folder[index]
                yield file, item[0] if isinstance(item, tuple) else item
        elif path.is_file():
            yield path, read_image(path, shape)
        else:
            raise DataNotFoundError(f"image {str(path)!r} does not exist")


def read_image(path: Path, shape: tuple[int, ...]) -> Tensor:
    """``path`` as training images are read: converted to ``shape``'s channels, its shorter
    side resized to the size, centre-cropped; (C, H, W) in [-1, 1].

    Raises:
        ValueError: For a file that is not a readable image.
    """
    channels, size = shape[0], shape[-1]
    try:
        with Image.open(path) as opened:
            image = opened.convert(_MODES[channels])
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    image = TF.resize(image, size, antialias=True)
    image = TF.center_crop(image, [shape[1], size])
    return to_unit_range(TF.pil_to_tensor(image))


@torch.no_grad()
def classify_command(args: argparse.Namespace) -> int:
    classifier = load_classifier(args.run_path, averaged=not args.live, checkpoint=args.checkpoint)
    shape: tuple[int, ...] = getattr(classifier, "image_shape")  # noqa: B009
    names: list[str] = getattr(classifier, "class_names")  # noqa: B009
    if shape[0] not in _MODES:
        raise ValueError(f"the run's images have {shape[0]} channels; classify reads 1, 3 or 4")
    device = resolve_device(args.device)
    classifier.to(device)
    rows = []
    pending: list[tuple[Path, Tensor]] = []

    def classify_pending() -> None:
        images = torch.stack([image for _, image in pending]).to(device)
        probabilities = classifier(images).float().softmax(dim=1).cpu()
        best, classes = probabilities.max(dim=1)
        for (path, _), k, p in zip(pending, classes.tolist(), best.tolist(), strict=True):
            rows.append((str(path), k, names[k], f"{p:.4f}"))
        pending.clear()

    for entry in images_of(args.images, shape):
        pending.append(entry)
        if len(pending) == args.batch_size:
            classify_pending()
    if pending:
        classify_pending()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    if args.out is None:
        sys.stdout.write(text.getvalue())
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text.getvalue())
        print(f"wrote {len(rows)} predictions to {args.out}", file=sys.stderr)
    return 0

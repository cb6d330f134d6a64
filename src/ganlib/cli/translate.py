"""``ganlib translate RUN INPUTS... --out DIR [--direction a2b|b2a]``: a trained pix2pix or
CycleGAN run's network on your images, one output file per input."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms import functional as TF
from torchvision.utils import save_image

from ..checkpoint import EMA_STATE_KEY, CheckpointError, load_checkpoint
from ..data.common import DataNotFoundError, to_unit_range
from ..data.folder import IMAGE_EXTENSIONS
from ..device import resolve_device
from ..runs.folder import RunFolder
from ..tasks import CycleGANTask, Pix2PixTask, TranslationTask
from .args import positive_int

__all__ = ["add_parser", "load_translation", "translate_command"]

TRANSLATION_TASKS: dict[str, type[Pix2PixTask] | type[CycleGANTask]] = {
    "pix2pix": Pix2PixTask,
    "cyclegan": CycleGANTask,
}
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``translate`` subcommand's arguments."""
    translate = commands.add_parser(
        "translate",
        help="translate images with a trained pix2pix or CycleGAN run",
        description="Translate images with a trained pix2pix or CycleGAN run: one output "
        "PNG per input, named after it, under --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    translate.add_argument(
        "run_path",
        type=Path,
        metavar="RUN",
        help="a run folder (its newest checkpoint) or a .ckpt of one",
    )
    translate.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        help="image files, or folders of them (searched recursively)",
    )
    translate.add_argument("--out", type=Path, required=True, help="folder for the outputs")
    translate.add_argument(
        "--direction",
        choices=("a2b", "b2a"),
        default="a2b",
        help="a2b: inputs are domain A (pix2pix's inputs); b2a: domain B (CycleGAN only)",
    )
    translate.add_argument(
        "--ema", action="store_true", help="translate with the run's EMA of the network"
    )
    translate.add_argument(
        "--train-mode",
        action="store_true",
        help="BatchNorm's batch statistics and dropout on, as the reference tests; "
        "default: eval mode",
    )
    translate.add_argument(
        "--keep-size",
        action="store_true",
        help="resize each output to its input's size (default: the run's image size)",
    )
    translate.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    translate.add_argument("--batch-size", type=positive_int, default=32, help="images per pass")
    translate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    translate.set_defaults(run=translate_command)


def load_translation(
    path: Path, direction: str, ema: bool = False
) -> tuple[TranslationTask, nn.Module]:
    """The translation task a checkpoint holds, and the network that translates
    ``direction`` (its EMA average with ``ema``).

    Raises:
        CheckpointError: For a checkpoint of another task, or without the EMA asked for.
        ValueError: For a direction the task does not translate.
    """
    payload = load_checkpoint(path)
    kind = payload.get("task")
    if kind not in TRANSLATION_TASKS:
        raise CheckpointError(
            f"{str(path)!r} holds a {kind or 'adversarial'!r} run, not a translation task "
            f"({' or '.join(TRANSLATION_TASKS)}); `ganlib sample` draws from GAN pairs"
        )
    task = TRANSLATION_TASKS[kind].from_config(payload["task_config"])
    if direction not in task.translators:
        raise ValueError(
            f"--direction must be one of {list(task.translators)} for a {kind} run, "
            f"got {direction!r}"
        )
    name = task.translators[direction]
    for network, state in payload["networks"].items():
        task.networks[network].load_state_dict(state)
    network = task.networks[name]
    if ema:
        keys = [f"{EMA_STATE_KEY}[{name}]"]
        keys += [EMA_STATE_KEY] if name == task.image_network else []
        states = payload.get("callbacks", {})
        found = next((states[k]["module"] for k in keys if "module" in states.get(k, {})), None)
        if found is None:
            raise CheckpointError(
                f"{str(path)!r} holds no EMA of {name}: train with EMA(network={name!r}) "
                "(ganlib train --ema), or translate without --ema"
            )
        network.load_state_dict(found)
    return task, network


def input_files(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """Each input image and the name of its output (relative to --out): a file's own
    name, a folder's images under the folder's name, as ``.png``.

    Raises:
        DataNotFoundError: For a missing input or a folder without images.
        ValueError: For two inputs that would write one output.
    """
    found: list[tuple[Path, Path]] = []
    for given in inputs:
        if given.is_dir():
            files = sorted(
                p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not files:
                raise DataNotFoundError(f"{given} holds no images")
            found += [
                (p, Path(given.name) / p.relative_to(given).with_suffix(".png")) for p in files
            ]
        elif given.is_file():
            found.append((given, Path(given.with_suffix(".png").name)))
        else:
            raise DataNotFoundError(f"input {given} does not exist")
    names = [name for _, name in found]
    clashes = sorted({str(n) for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"inputs would write the same output file(s): {', '.join(clashes[:5])}")
    return found


def _read(path: Path, channels: int, size: int) -> tuple[Tensor, tuple[int, int]]:
    try:
        with Image.open(path) as opened:
            image = opened.convert(_MODES[channels])
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    resized = TF.resize(image, [size, size], antialias=True)
    return to_unit_range(TF.pil_to_tensor(resized)), (image.height, image.width)


def translate_command(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    checkpoint = RunFolder.of(args.run_path).checkpoint(args.run_path)
    task, network = load_translation(checkpoint, args.direction, args.ema)
    config = getattr(network, "config", {})
    channels, size = config["in_channels"], config["image_size"]
    files = input_files(args.inputs)
    targets = [args.out / name for _, name in files]
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise ValueError(
            f"{len(existing)} output(s) exist already, e.g. {existing[0]}: pass --overwrite "
            "or another --out"
        )
    network.to(device)
    for start in range(0, len(files), args.batch_size):
        chunk = files[start : start + args.batch_size]
        read = [_read(path, channels, size) for path, _ in chunk]
        images = torch.stack([image for image, _ in read])
        outputs = task.translate(
            images,
            args.direction,
            networks={task.translators[args.direction]: network},
            eval_mode=not args.train_mode,
            batch_size=args.batch_size,
        )
        for output, (_, original), (_, name) in zip(outputs, read, chunk, strict=True):
            if args.keep_size:
                output = TF.resize(output, list(original), antialias=True)
            target = args.out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            save_image((output.clamp(-1, 1) + 1) / 2, target)
    print(f"wrote {len(files)} translated image(s) to {args.out}")
    return 0

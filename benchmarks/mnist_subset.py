"""Write a small MNIST or Fashion-MNIST training set as a folder of PNGs (small-data study).

    python benchmarks/mnist_subset.py runs/mnist1000 --count 1000 --data-dir ../shared/data
    ganlib train runs/mnist1000 --out runs/small --max-steps 12000 --epochs 100000

Takes ``--count`` images of the MNIST train split (``--dataset fashion-mnist``:
Fashion-MNIST's), chosen by a seeded permutation (``--seed``), and writes them as
``NNNNN.png`` (28x28 grayscale) into a flat folder, the way a user's own pictures arrive:
``ganlib train FOLDER`` then trains on them. An existing folder with PNGs in it is refused
(pass another path or delete it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from PIL import Image

from ganlib.data import load_mnist
from ganlib.data.sources import load_fashion_mnist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (new or empty)")
    parser.add_argument("--count", type=int, default=1000, help="images to take (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutation")
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be >= 1, got {args.count}")
    if args.out.exists() and any(args.out.glob("*.png")):
        parser.error(f"--out {str(args.out)!r} already holds PNGs; choose a new folder")
    if args.dataset == "mnist":
        images, _ = load_mnist(args.data_dir, "train", download=False)
    else:
        images, _ = load_fashion_mnist(args.data_dir, "train")
    if args.count > len(images):
        parser.error(f"--count must be <= {len(images)} (the train split), got {args.count}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
    chosen = images[order[: args.count]]
    pixels = ((chosen[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    args.out.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(pixels):
        Image.fromarray(image.numpy(), mode="L").save(args.out / f"{index:05d}.png")
    print(f"wrote {args.count} {args.dataset} training images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

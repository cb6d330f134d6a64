"""Train the MNIST classifier ganlib ships for offline scoring of MNIST samples.

    python scripts/train_mnist_classifier.py --data-dir ../shared/data
    python scripts/train_mnist_classifier.py --dataset fashion-mnist

Trains ganlib.metrics.MNISTClassifier on the 60k training images (random shifts
of up to 2 pixels), reports test accuracy of the float16 weights it writes, and
refuses to write them below --min-accuracy. Output for MNIST (the default):
src/ganlib/metrics/weights/mnist_classifier.pt. --dataset fashion-mnist trains the
same network with the same recipe on Fashion-MNIST (DATA_DIR/FashionMNIST/raw or
Debian's dataset-fashion-mnist) and writes benchmarks/weights/fashion_mnist_classifier.pt
(outside the package, which ships only the MNIST weights; benchmarks/score_run.py uses it).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ganlib.checkpoint import atomic_save
from ganlib.data import load_mnist
from ganlib.data.sources import load_fashion_mnist
from ganlib.metrics.mnist_classifier import MNISTClassifier, default_weights_path

# Fashion-MNIST's classifier is a benchmark tool, kept outside the package.
FASHION_WEIGHTS = (
    Path(__file__).parents[1] / "benchmarks" / "weights" / "fashion_mnist_classifier.pt"
)
DEFAULTS: dict[str, dict[str, Any]] = {
    "mnist": {"min_accuracy": 0.99, "out": default_weights_path()},
    "fashion-mnist": {"min_accuracy": 0.9, "out": FASHION_WEIGHTS},
}


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image by up to ``max_shift`` pixels in x and y (zero padding is -1)."""
    batch, _, height, width = images.shape
    padded = F.pad(images, [max_shift] * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator)
    rows = dy[:, None] + torch.arange(height)[None]  # (B, H)
    cols = dx[:, None] + torch.arange(width)[None]  # (B, W)
    index = torch.arange(batch)[:, None, None]
    return padded[index, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def load_split(dataset: str, data_dir: str, split: str) -> tuple[Tensor, Tensor]:
    """Images (N, 1, 28, 28) in [-1, 1] and labels of one split of ``dataset``."""
    if dataset == "fashion-mnist":
        return load_fashion_mnist(data_dir, split)
    return load_mnist(data_dir, split, download=False)


@torch.no_grad()
def accuracy(model: MNISTClassifier, images: Tensor, labels: Tensor) -> float:
    model.eval()
    correct = sum(
        int((model(x).argmax(1) == y).sum())
        for x, y in zip(images.split(1000), labels.split(1000), strict=True)
    )
    return correct / len(labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist")
    parser.add_argument("--data-dir", default=os.environ.get("GANLIB_DATA", "./data"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument(
        "--min-accuracy", type=float, help="default: 0.99 (mnist), 0.9 (fashion-mnist)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="default: the package's weights (mnist), "
        "benchmarks/weights/fashion_mnist_classifier.pt (fashion-mnist)",
    )
    args = parser.parse_args()
    defaults = DEFAULTS[args.dataset]
    if args.min_accuracy is None:
        args.min_accuracy = defaults["min_accuracy"]
    if args.out is None:
        args.out = defaults["out"]

    torch.manual_seed(args.seed)
    rng = torch.Generator().manual_seed(args.seed)
    train_x, train_y = load_split(args.dataset, args.data_dir, "train")
    test_x, test_y = load_split(args.dataset, args.data_dir, "test")
    model = MNISTClassifier()
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, args.lr, total_steps=args.epochs * steps_per_epoch
    )
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=rng)
        for step, batch in enumerate(order.split(args.batch_size)):
            images = random_shift(train_x[batch], 2, rng)
            loss = F.cross_entropy(
                model(images), train_y[batch], label_smoothing=args.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 100 == 0:
                print(
                    f"epoch {epoch} step {step}/{steps_per_epoch} loss {loss.item():.4f}",
                    flush=True,
                )
        test_acc = accuracy(model, test_x, test_y)
        print(f"epoch {epoch}: test accuracy {test_acc:.4f} ({time.perf_counter() - started:.0f}s)")

    # Ship float16 weights (half the size); score exactly what is shipped.
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    test_acc = accuracy(model, test_x, test_y)
    train_acc = accuracy(model, train_x, train_y)
    print(f"float16 weights: test accuracy {test_acc:.4f}, train accuracy {train_acc:.4f}")
    if test_acc < args.min_accuracy:
        print(f"error: test accuracy {test_acc:.4f} < {args.min_accuracy}", file=sys.stderr)
        return 1
    meta = {"test_accuracy": test_acc, "train_accuracy": train_acc, **vars(args)}
    meta["out"] = str(meta["out"])
    atomic_save({"state_dict": half, **meta}, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

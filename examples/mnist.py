"""Train the reference DCGAN recipe on MNIST with ganlib.

    python examples/mnist.py --device cuda
    python examples/mnist.py --data-dir ../shared/data --max-steps 200   # a quick check

The defaults are the recipe's (../shared/SEED_RECIPE.md): the 28x28 DCGAN
(latent 100, width 128), DCGAN init, BCE, Adam 2e-4 / (0.5, 0.999), batch 50,
10 epochs on the 10,000-image test split, unshuffled, 50 fixed latents shown 10
per row. Outputs go to --out: real_samples.png, generated_epoch_NNN.png,
overview.png, metrics.csv, loss_curve.png, checkpoints/ and summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from ganlib import DCGAN, CheckpointError, Trainer
from ganlib.callbacks import EMA, LossCurve, MetricsLogger, ModelCheckpoint, NaNGuard, SampleGrid
from ganlib.data import DataNotFoundError, load_mnist
from ganlib.device import resolve_device
from ganlib.losses import get_loss


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train the reference DCGAN recipe on MNIST with ganlib.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--epochs", type=positive_int, default=10, help="training epochs")
    parser.add_argument("--batch-size", type=positive_int, default=50, help="images per step")
    parser.add_argument(
        "--split",
        choices=("train", "test"),
        default="test",
        help="test: the recipe's 10k images; train: the 60k training images",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("GANLIB_DATA", "./data"),
        help="folder with MNIST/raw/*-ubyte (default: $GANLIB_DATA or ./data); "
        "downloaded there when missing and online",
    )
    parser.add_argument("--out", default="runs/mnist", help="output folder")
    parser.add_argument("--loss", default="bce", help="bce, hinge, wgan-gp or lsgan")
    parser.add_argument("--width", type=positive_int, default=128, help="feature channels")
    parser.add_argument("--latent-dim", type=positive_int, default=100, help="latent size")
    parser.add_argument("--seed", type=int, default=0, help="seed for init, data order, latents")
    parser.add_argument("--shuffle", action="store_true", help="shuffle (the recipe does not)")
    parser.add_argument("--resume", default=None, help="checkpoint to resume from")
    parser.add_argument("--ema", action="store_true", help="keep an EMA generator (0.999)")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="stop early")
    parser.add_argument("--no-download", action="store_true", help="never try to download")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = resolve_device(args.device)
        loss = get_loss(args.loss)
        images, _ = load_mnist(args.data_dir, args.split, download=not args.no_download)
    except (ValueError, DataNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    out = Path(args.out)
    torch.manual_seed(args.seed)  # the networks' initialisation
    gan = DCGAN(image_size=28, channels=1, latent_dim=args.latent_dim, width=args.width)
    callbacks = [
        *([EMA(decay=0.999)] if args.ema else []),
        SampleGrid(out, num_samples=50, nrow=10),
        MetricsLogger(out / "metrics.csv"),
        LossCurve(out / "loss_curve.png"),
        NaNGuard(),
        ModelCheckpoint(out / "checkpoints", every_n_epochs=1, keep_last=2),
    ]
    trainer = Trainer(
        gan,
        loss=loss,
        device=device,
        max_epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        callbacks=callbacks,
    )
    print(
        f"training on {len(images)} MNIST {args.split} images, {device}, "
        f"batch {args.batch_size}, {args.epochs} epochs -> {out}",
        flush=True,
    )
    started = time.perf_counter()
    try:
        state = trainer.fit(images, args.resume, batch_size=args.batch_size, shuffle=args.shuffle)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    summary = {
        "steps": state.step,
        "epochs": state.epoch,
        "seconds": round(seconds, 2),
        "device": str(device),
        "final_metrics": state.metrics,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    m = state.metrics
    print(
        f"done: {state.step} steps in {seconds:.1f}s; loss_d {m['loss_d']:.3f} "
        f"loss_g {m['loss_g']:.3f} D(x) {m['d_real']:.3f} "
        f"D(G(z)) {m['d_fake']:.3f}>>{m['d_fake_after']:.3f}; images in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

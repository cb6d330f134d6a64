"""A short MNIST training of one variant, scored by the shipped classifier (FD vs the floor).

    OMP_NUM_THREADS=1 python benchmarks/quality_variants.py dcgan --steps 1000
    OMP_NUM_THREADS=1 python benchmarks/quality_variants.py resnet --width 32 --augment \\
        translation,cutout,color --r1-gamma 1 --r1-every 16

Trains ``variant`` (``dcgan``, ``dcgan_sn`` or ``resnet``; 28x28) for ``--steps`` steps of
``--batch-size`` on the real MNIST train split (``--data-dir``, torchvision layout; never
downloads), with the recipe's Adam (2e-4, betas 0.5/0.999) for both networks, the chosen
loss, optional DiffAugment and R1, and a warmed-up EMA of the generator, all on one
thread by default. Then it scores ``--eval-samples`` images from the generator and from
the EMA (both in train mode, as examples/mnist.py's headline does) with
``MNISTEvaluator`` against the test split, beside the real-data floor (train images), and
prints one line per sampler and a JSON summary (also written to ``--out``). These are
short-run figures for comparing variants at a fixed step budget, not the 12,000-step
results of docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from ganlib import DCGAN, GAN, ResNetGAN, Trainer
from ganlib.callbacks import EMA
from ganlib.data import load_mnist
from ganlib.losses import get_loss
from ganlib.metrics import MNISTEvaluator

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def build(variant: str, width: int | None, seed: int) -> GAN:
    rng = torch.Generator().manual_seed(seed)
    if variant == "dcgan":
        return DCGAN(width=width or 128, init_generator=rng)
    if variant == "dcgan_sn":
        return DCGAN(width=width or 128, spectral_norm=True, init_generator=rng)
    return ResNetGAN(width=width or 32, init_generator=rng)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variant", choices=["dcgan", "dcgan_sn", "resnet"])
    parser.add_argument("--width", type=int, default=None, help="128 for DCGANs, 32 for resnet")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--loss", default="bce", choices=["bce", "hinge", "wgan-gp", "lsgan"])
    parser.add_argument("--augment", default=None, help="a DiffAugment policy")
    parser.add_argument("--r1-gamma", type=float, default=None)
    parser.add_argument("--r1-every", type=int, default=1)
    parser.add_argument("--eval-samples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="write summary.json here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    train_images, _ = load_mnist(args.data_dir, "train", download=False)
    test_images, _ = load_mnist(args.data_dir, "test", download=False)
    gan = build(args.variant, args.width, args.seed)
    loss = get_loss(args.loss, r1_gamma=args.r1_gamma, r1_every=args.r1_every)
    betas = (0.5, 0.999)
    trainer = Trainer(
        gan,
        loss=loss,
        g_optimizer=torch.optim.Adam(gan.generator.parameters(), lr=2e-4, betas=betas),
        d_optimizer=torch.optim.Adam(gan.discriminator.parameters(), lr=2e-4, betas=betas),
        augment=args.augment,
        device="cpu",
        max_steps=args.steps,
        seed=args.seed,
        callbacks=[EMA(decay=0.999, warmup=True)],
        progress=False,
    )
    started = time.perf_counter()
    state = trainer.fit(train_images, batch_size=args.batch_size)
    seconds = time.perf_counter() - started

    evaluator = MNISTEvaluator(test_images)
    floor = evaluator.floor(train_images, num_samples=min(10_000, len(train_images)))
    ema = trainer.callback(EMA)
    assert isinstance(ema, EMA) and ema.module is not None
    samplers = {"generator": gan.generator, "ema": ema.module}
    scores = {
        name: evaluator.score_generator(module, args.eval_samples, gan).as_dict()
        for name, module in samplers.items()
    }
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    summary: dict[str, Any] = {
        "variant": args.variant,
        "config": gan.config,
        "parameters": {
            "generator": count(gan.generator),
            "discriminator": count(gan.discriminator),
        },
        "settings": {
            k: getattr(args, k)
            for k in (
                "steps",
                "batch_size",
                "loss",
                "augment",
                "r1_gamma",
                "r1_every",
                "seed",
                "threads",
            )
        },
        "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / state.step, 4),
        "final_metrics": state.metrics,
        "floor_fd": floor.fd,
        "fd_over_floor": {name: s["fd"] / floor.fd for name, s in scores.items()},
        "scores": scores,
    }
    for name, s in scores.items():
        print(
            f"{args.variant} {name}: FD {s['fd']:.2f} = {s['fd'] / floor.fd:.1f}x the floor "
            f"{floor.fd:.2f}; {s['classes_covered']}/10 classes; KL {s['kl_to_uniform']:.4f}; "
            f"confidence {s['mean_confidence']:.3f}; {state.step} steps in {seconds:.0f}s"
        )
    print(json.dumps(summary))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""How far a folder run's discriminator overfits: its outputs on training, held-out and
generated images, and the two signals adaptive augmentation could read.

    python benchmarks/d_overfitting.py runs/icons [--checkpoint CKPT] [--samples 2000]

ADA (Karras et al., 2020) describes a discriminator's overfitting by two ratios of its raw
outputs: ``r_v = (E[D(train)] - E[D(held-out)]) / (E[D(train)] - E[D(generated)])``, 0
where D scores unseen real images as it scores the training ones, 1 where it scores them as
fakes; and ``r_t = E[sign(D(train))]``, which needs no held-out images and is what
``--augment ada`` tunes its probability from (target 0.6). This prints both for a finished
`ganlib train FOLDER` run (its newest checkpoint, or ``--checkpoint``), with the mean
outputs behind them: on the run's training images, on the images it held out (the same
ones its evaluation used), and on as many images from its live generator (the one D trains
against). D runs in eval mode, on unaugmented images, in batches of the run's batch size.
Writes the figures to RUN/d_overfitting.json (``--json`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from ganlib.checkpoint import load_gan
from ganlib.runs import RunFolder, load_trained_data
from ganlib.sampling import sample_images


@torch.no_grad()
def outputs(discriminator: nn.Module, images: Tensor, batch_size: int) -> Tensor:
    """D's raw outputs (B,) on ``images``, batch by batch."""
    return torch.cat([discriminator(batch).float() for batch in images.split(batch_size)])


def overfitting(train: Tensor, held_out: Tensor, generated: Tensor) -> dict[str, float]:
    """The mean outputs on each kind of image, ADA's ``r_v`` and ``r_t``.

    Args:
        train: D's outputs on training images.
        held_out: D's outputs on held-out real images.
        generated: D's outputs on generated images.
    """
    means = {"train": train.mean(), "held_out": held_out.mean(), "generated": generated.mean()}
    gap = means["train"] - means["generated"]
    return {
        **{f"mean_{name}": float(value) for name, value in means.items()},
        "r_v": float((means["train"] - means["held_out"]) / gap) if gap != 0 else float("nan"),
        "r_t": float(train.sign().mean()),
        "r_t_held_out": float(held_out.sign().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder of `ganlib train FOLDER`")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint (default: the newest)")
    parser.add_argument("--samples", type=int, default=2000, help="training and generated images")
    parser.add_argument("--json", type=Path, help="the output (default: RUN/d_overfitting.json)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    settings, data = load_trained_data(args.run)
    if data.held_out is None:
        raise SystemExit(f"error: {args.run} held no images out: there is no r_v to measure")
    checkpoint = args.checkpoint or RunFolder(args.run).checkpoint()
    gan = load_gan(checkpoint)
    discriminator = gan.discriminator.eval()
    count = min(args.samples, len(data.images))
    train = data.images[torch.randperm(len(data.images))[:count]]
    generated = torch.cat(list(sample_images(gan.generator, count, gan, seed=12345)))
    batch = settings.batch_size
    figures = {
        "checkpoint": str(checkpoint),
        "images": {"train": count, "held_out": len(data.held_out), "generated": count},
        **overfitting(
            outputs(discriminator, train, batch),
            outputs(discriminator, data.held_out, batch),
            outputs(discriminator, generated, batch),
        ),
    }
    print(json.dumps(figures, indent=1))
    (args.json or args.run / "d_overfitting.json").write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

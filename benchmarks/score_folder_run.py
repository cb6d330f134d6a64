"""Score a finished folder run offline, in random features, as its evaluation would.

    python benchmarks/score_folder_run.py runs/icons [--samples 2000] [--reference all]

Reads the run's ``config.toml`` (its folder, image size, channels, seed and hold-out),
samples ``--samples`` images from its newest checkpoint (the EMA generator where the run
kept one, in train-mode BatchNorm as grids are drawn) and prints the FD and diversity in
``ganlib.metrics.RandomFeatures`` against the reference: the run's held-out images where
it held some out (with the memorisation check against as many training images, chosen as
the run's evaluation chooses them), else every image of the folder (no memorisation check:
nothing was held out; or ``--reference all``: every image, to compare runs that held
different images out, or none). The real-data floor: as many training images as samples against the
held-out reference, or (nothing held out) one half of the folder against the other, an
estimate of the noise of these sample sizes. Writes the scores to RUN/folder_scores.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from ganlib.checkpoint import load_gan
from ganlib.metrics import FeatureStats, RandomFeatures, embed, frechet_distance, memorisation
from ganlib.metrics.random_features import Memorisation
from ganlib.runs import RunFolder, load_data, load_trained_data, memorisation_images
from ganlib.sampling import sample_images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder of `ganlib train FOLDER`")
    parser.add_argument("--samples", type=int, default=2000, help="images sampled (>= 2)")
    parser.add_argument(
        "--reference",
        choices=("held-out", "all"),
        default="held-out",
        help="score against the run's held-out images (where it held some), or all images",
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    settings, data = load_trained_data(args.run)
    if args.reference == "all" and data.held_out is not None:  # every image, one set
        data = dataclasses.replace(data, images=load_data(settings).images, held_out=None)
    held = data.held_out is not None
    reference = data.held_out if data.held_out is not None else data.images
    checkpoint = RunFolder(args.run).checkpoint()
    try:
        gan, sampler = load_gan(checkpoint, ema=True), "ema"
    except Exception:  # (a run without an EMA)
        gan, sampler = load_gan(checkpoint), "generator"
    features = RandomFeatures(data.channels)
    samples = torch.cat(list(sample_images(gan.generator, args.samples, gan, seed=12345)))
    sample_features = embed(features, samples)
    reference_stats = FeatureStats.of(embed(features, reference))
    if held:  # real training images against the held-out reference
        floor_images = data.images[torch.randperm(len(data.images))[: args.samples]]
        floor_reference = reference_stats
    else:  # nothing held out: one half of the folder against the other
        half = torch.randperm(len(reference)).chunk(2)
        floor_images = reference[half[0]]
        floor_reference = FeatureStats.of(embed(features, reference[half[1]]))
    scores: dict[str, object] = {
        "checkpoint": str(checkpoint),
        "sampler": sampler,
        "samples": args.samples,
        "reference": f"{len(reference)} "
        + ("held-out images" if held else "images, all of the folder"),
        "fd": frechet_distance(FeatureStats.of(sample_features), reference_stats),
        "floor": f"{len(floor_images)} real images against "
        + ("the reference" if held else "the folder's other half"),
        "floor_fd": frechet_distance(
            FeatureStats.of(embed(features, floor_images)), floor_reference
        ),
        "diversity": float(
            (FeatureStats.of(sample_features).cov.trace() / reference_stats.cov.trace()).sqrt()
        ),
    }
    scores["fd_over_floor"] = float(scores["fd"]) / float(scores["floor_fd"])  # type: ignore[arg-type]
    if held:
        result: Memorisation = memorisation(
            sample_features,
            embed(features, memorisation_images(settings, data)),
            embed(features, reference),
        )
        scores["memorisation"] = result.median
    print(json.dumps(scores, indent=1))
    (args.run / "folder_scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

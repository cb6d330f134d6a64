"""A run's quality report: each way of sampling it scored, read against the real-data floor.

``examples/mnist.py`` writes this report to a run's ``metrics.json`` when training ends;
``benchmarks/score_run.py`` writes it for any finished run folder (MNIST or, with its
own classifier, Fashion-MNIST).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from .._validation import check_int
from .mnist import MNISTEvaluator

__all__ = ["quality_report"]


def quality_report(
    evaluator: MNISTEvaluator,
    floor_images: Tensor,
    samplers: Mapping[str, tuple[nn.Module, bool]],
    noise: Any,
    num_samples: int = 10_000,
    *,
    floor_samples: int = 10_000,
    conditional: bool = False,
) -> dict[str, Any]:
    """Scores of every sampler and of the real-data floor, with their ratio.

    Args:
        evaluator: Holds the classifier and the reference (normally the test split).
        floor_images: Real images the floor is drawn from (normally the train split).
        samplers: Name -> (generator, eval_mode): ``eval_mode`` samples with
            BatchNorm running statistics, otherwise with batch statistics.
        noise: The latents' source, as
            [`MNISTEvaluator.score_generator`][ganlib.metrics.MNISTEvaluator.score_generator]
            takes it (a GAN, a latent size or a function).
        num_samples: Images drawn from each sampler (>= 2).
        floor_samples: Real images in the floor, at most ``len(floor_images)``.
        conditional: Draw image ``i`` for class ``i % 10`` and report the
            conditional accuracy.

    Returns:
        ``headline`` (``"ema"`` when there is such a sampler, else the first one),
        ``floor`` and ``samples`` (name -> scores, as
        [`MNISTScores.as_dict`][ganlib.metrics.MNISTScores]) and ``fd_over_floor``
        (name -> FD / floor FD).

    Raises:
        ValueError: If ``samplers`` is empty or a count is below 2.
    """
    check_int("num_samples", num_samples, 2)
    check_int("floor_samples", floor_samples, 2)
    if not samplers:
        raise ValueError("`samplers` must name at least one generator, got none")
    floor = evaluator.floor(floor_images, num_samples=min(floor_samples, len(floor_images)))
    scores = {
        name: evaluator.score_generator(
            module, num_samples, noise, eval_mode=eval_mode, conditional=conditional
        ).as_dict()
        for name, (module, eval_mode) in samplers.items()
    }
    return {
        "headline": "ema" if "ema" in scores else next(iter(scores)),
        "floor": floor.as_dict(),
        "fd_over_floor": {name: s["fd"] / floor.fd for name, s in scores.items()},
        "samples": scores,
    }

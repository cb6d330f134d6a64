"""A run's quality report: each way of sampling it scored, read against the real-data floor.

[`run_quality_report`][ganlib.metrics.run_quality_report] is the final scoring of a
training run: one headline sampler at a sample count scaled to the run (a quick look
does not score 40,000 samples), the other samplers on request.
[`quality_report`][ganlib.metrics.quality_report] scores every sampler it is given at the
counts given: ``benchmarks/score_run.py`` writes it for any finished run folder (MNIST
or, with its own classifier, Fashion-MNIST).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from torch import Tensor, nn

from .._validation import check_int
from .mnist import MNISTEvaluator

__all__ = ["SCORING_LIMITS", "quality_report", "run_quality_report", "scoring_samples"]

# A sampler: (generator, eval_mode), or a function building it when it is scored (an EMA
# generator's BatchNorm statistics measured afresh cost time: only when asked for).
Sampler = tuple[nn.Module, bool] | Callable[[], tuple[nn.Module, bool]]
# The fewest and most samples the final scoring draws, and the run's trained images per
# sample drawn: 200 steps of 50 images score 2,000; 12,000 steps score 10,000.
SCORING_LIMITS = (2_000, 10_000, 50)


def scoring_samples(images_seen: int) -> int:
    """Samples the final scoring of a run draws, for a run that trained on
    ``images_seen`` images (steps x batch size x processes): one per 50 images trained
    on, rounded down to a thousand, within [2,000, 10,000] (`SCORING_LIMITS`).

    Raises:
        ValueError: For a negative count.
    """
    check_int("images_seen", images_seen, 0)
    low, high, per_sample = SCORING_LIMITS
    return max(low, min(high, images_seen // per_sample // 1000 * 1000))


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


def run_quality_report(
    evaluator: MNISTEvaluator,
    floor_images: Tensor,
    samplers: Mapping[str, Sampler],
    noise: Any,
    *,
    images_seen: int,
    headline: str | None = None,
    also: Iterable[str] | Literal["all"] = (),
    num_samples: int | None = None,
    conditional: bool = False,
) -> dict[str, Any]:
    """The final scores of a training run: its headline sampler (and those in ``also``)
    at a sample count scaled to the run, against the real-data floor at the same count.

    A quick look (a few hundred steps) scores 2,000 samples of one sampler and 2,000 real
    images (their statistics cached on disk: free after the first run), where scoring
    every sampler at 10,000 would take longer than the run; a full run scores 10,000.

    Args:
        evaluator: Holds the classifier and the reference (normally the test split).
        floor_images: Real images the floor is drawn from (normally the train split).
        samplers: Name -> ``(generator, eval_mode)``, or a function returning it, called
            only if that sampler is scored.
        noise: The latents' source (a GAN, a latent size or a function).
        images_seen: Images the run trained on (steps x batch size x processes), for
            [`scoring_samples`][ganlib.metrics.scoring_samples].
        headline: The sampler the run is judged by; ``None``: ``"ema"`` when there is
            one, else the first.
        also: Other samplers to score as well, or ``"all"``.
        num_samples: Samples per sampler (and real images in the floor) instead of the
            scaled count, >= 2.
        conditional: Draw image ``i`` for class ``i % 10`` and report the conditional
            accuracy.

    Returns:
        As [`quality_report`][ganlib.metrics.quality_report] (``headline``, ``floor``,
        ``samples``, ``fd_over_floor`` of the scored samplers), plus ``num_samples`` and
        ``not_scored`` (the samplers left out).

    Raises:
        ValueError: For an empty ``samplers``, or a ``headline`` or ``also`` name that is
            not among them.
    """
    if not samplers:
        raise ValueError("`samplers` must name at least one generator, got none")
    names = list(samplers)
    chosen = headline if headline is not None else ("ema" if "ema" in samplers else names[0])
    if chosen not in samplers:
        raise ValueError(f"`headline` must be one of {names}, got {chosen!r}")
    extra = names if also == "all" else list(also)
    unknown = [name for name in extra if name not in samplers]
    if unknown:
        raise ValueError(f"`also` must name samplers among {names} (or be 'all'), got {unknown}")
    count = (
        scoring_samples(images_seen)
        if num_samples is None
        else check_int("num_samples", num_samples, 2)
    )
    count = min(count, len(floor_images)) if num_samples is None else count
    scored = [chosen, *(name for name in extra if name != chosen)]
    built = {}
    for name in scored:
        sampler = samplers[name]
        built[name] = sampler() if callable(sampler) else sampler
    report = quality_report(
        evaluator,
        floor_images,
        built,
        noise,
        count,
        floor_samples=count,
        conditional=conditional,
    )
    return {
        **report,
        "headline": chosen,
        "num_samples": count,
        "not_scored": [name for name in names if name not in built],
    }

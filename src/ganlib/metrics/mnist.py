"""MNIST sample quality measured offline with ganlib's shipped classifier."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_batch_shape, check_int
from ..sampling import sample_images
from .distances import FeatureStats, frechet_distance
from .features import embed
from .mnist_classifier import MNISTClassifier, load_mnist_classifier

__all__ = ["MNISTEvaluator", "MNISTScores", "class_scores"]

NUM_CLASSES = 10


@dataclass(frozen=True)
class MNISTScores:
    """Quality of a set of MNIST-like images, as the shipped classifier sees them.

    Attributes:
        fd: Fréchet distance to the reference set (the test split) in the
            classifier's 128-d feature space; read it against the real-data
            floor ([`MNISTEvaluator.floor`][ganlib.metrics.MNISTEvaluator.floor]).
        classes_covered: Digits that get at least a quarter of a uniform share
            (2.5%) of the predictions, of 10.
        kl_to_uniform: KL(predicted class histogram || uniform), in nats; 0
            when every digit is equally frequent.
        mean_confidence: Mean top softmax probability: low for unreadable digits.
        classifier_score: ``exp(E_x KL(p(y|x) || p(y)))``, the "inception
            score" with this classifier, between 1 and 10.
        num_samples: Images scored.
        conditional_accuracy: For images drawn for requested classes: the share
            the classifier assigns to the requested class; ``None`` otherwise.
    """

    fd: float
    classes_covered: int
    kl_to_uniform: float
    mean_confidence: float
    classifier_score: float
    num_samples: int
    conditional_accuracy: float | None = None

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def class_scores(logits: Tensor, min_share: float = 0.25) -> dict[str, float | int]:
    """Class coverage, KL to uniform, confidence and classifier score from (N, K) logits.

    Args:
        logits: Classifier outputs.
        min_share: A class is covered when its share of predictions is at
            least ``min_share / K``.
    """
    probs = logits.double().softmax(1)
    num_classes = probs.shape[1]
    predicted = probs.argmax(1)
    histogram = torch.bincount(predicted, minlength=num_classes).double() / len(probs)
    marginal = probs.mean(0)
    per_image_kl = (probs * (probs.clamp_min(1e-12).log() - marginal.log())).sum(1)
    return {
        "classes_covered": int((histogram >= min_share / num_classes).sum()),
        "kl_to_uniform": _kl_to_uniform(predicted, num_classes),
        "mean_confidence": float(probs.max(1).values.mean()),
        "classifier_score": math.exp(float(per_image_kl.mean())),
    }


def _kl_to_uniform(predicted: Tensor, num_classes: int) -> float:
    """KL(histogram of the ``predicted`` classes || uniform over ``num_classes``), in nats;
    empty classes contribute 0."""
    histogram = torch.bincount(predicted, minlength=num_classes).double() / len(predicted)
    present = histogram[histogram > 0]
    return float((present * (present * num_classes).log()).sum())


def _checked_batch(images: Tensor, real: bool = False) -> Tensor:
    """An image batch the classifier can score, or a ValueError naming what is wrong.

    Values must lie in [-1, 1], and not look like [0, 1] images (``ToTensor`` without
    ``Normalize``: none below 0, some above 0.5, the rule the Trainer's data check warns
    on), which [-1, 1] bounds alone would pass though the classifier reads them as grey
    digits on a grey background. (An untrained generator's near-zero images pass.)
    ``real`` images (the reference) must also reach below -0.5, toward the background's
    -1."""
    check_batch_shape(images, (1, 28, 28), "MNIST images must be")
    if not images.is_floating_point():
        raise ValueError(
            f"MNIST images must be floating point in [-1, 1], got dtype {images.dtype} "
            "(for uint8 pixels use x / 127.5 - 1)"
        )
    images = images.float()
    if not bool(torch.isfinite(images).all()):
        raise ValueError("MNIST images hold NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    zero_one = low >= 0.0 and high > 0.5
    if low < -1.0 - 1e-3 or high > 1.0 + 1e-3 or zero_one or (real and low > -0.5):
        raise ValueError(
            f"MNIST images must lie in [-1, 1] (background near -1), got values in "
            f"[{low:.3g}, {high:.3g}]; for [0, 1] images use x * 2 - 1"
        )
    return images


class MNISTEvaluator:
    """Scores MNIST-like images against a reference set (normally the 10k test split).

    Example::

        test_images, _ = load_mnist(root, "test")
        evaluator = MNISTEvaluator(test_images)
        scores = evaluator.score_generator(gan.generator, 10_000, gan.latent_dim)

    Args:
        reference: (N, 1, 28, 28) real images in [-1, 1].
        classifier: The feature extractor and classifier; the shipped one when ``None``.
        device: Where the classifier runs.
        batch_size: Images per classifier call.
    """

    def __init__(
        self,
        reference: Tensor,
        classifier: MNISTClassifier | None = None,
        *,
        device: torch.device | str = "cpu",
        batch_size: int = 500,
    ) -> None:
        self.classifier = classifier if classifier is not None else load_mnist_classifier()
        self.classifier = self.classifier.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.reference = FeatureStats.of(self._features(reference, real=True))

    def _features(self, images: Tensor | Iterable[Tensor], real: bool = False) -> Tensor:
        batches = images.split(self.batch_size) if isinstance(images, Tensor) else images
        checked = (_checked_batch(batch, real) for batch in batches)
        return embed(self.classifier.embed, checked, batch_size=self.batch_size, device=self.device)

    @torch.no_grad()
    def score(
        self, images: Tensor | Iterable[Tensor], requested: Tensor | None = None
    ) -> MNISTScores:
        """Scores of (N, 1, 28, 28) images in [-1, 1], or of an iterable of batches.

        Args:
            images: The images.
            requested: The class each image was generated for, shaped (N,), to
                measure the conditional accuracy.

        Raises:
            ValueError: For a batch that is not (N, 1, 28, 28) floating point, holds NaN
                or infinite values, leaves [-1, 1], or looks like [0, 1] images (no value
                below 0, some above 0.5: use ``x * 2 - 1``); and for ``requested`` of the
                wrong shape.
        """
        features = self._features(images)
        head = self.classifier.head
        logits = head(features.to(device=self.device, dtype=head.weight.dtype)).cpu()
        accuracy = None
        if requested is not None:
            if tuple(requested.shape) != (len(logits),):
                raise ValueError(
                    f"`requested` must hold one class per image, shaped ({len(logits)},), "
                    f"got {tuple(requested.shape)}"
                )
            accuracy = float((logits.argmax(1) == requested.cpu()).double().mean())
        return MNISTScores(
            fd=frechet_distance(features, self.reference),
            num_samples=len(features),
            conditional_accuracy=accuracy,
            **class_scores(logits),  # type: ignore[arg-type]
        )

    def score_generator(
        self,
        generator: nn.Module,
        num_samples: int,
        noise: Any,
        *,
        seed: int = 0,
        eval_mode: bool = False,
        conditional: bool = False,
    ) -> MNISTScores:
        """Scores of ``num_samples`` images drawn from ``generator`` (see
        [`sample_images`][ganlib.sampling.sample_images]), its latents from ``noise``: a
        latent size, a GAN (its ``sample_noise``) or a function
        ``(n, torch_generator) -> latents``.

        With ``conditional``, the generator takes labels: image ``i`` is drawn for
        digit ``i % 10`` (every digit equally often) and the scores include the
        conditional accuracy.
        """
        requested = torch.arange(num_samples) % NUM_CLASSES if conditional else None
        batches = sample_images(
            generator,
            num_samples,
            noise,
            batch_size=self.batch_size,
            seed=seed,
            eval_mode=eval_mode,
            labels=requested,
        )
        return self.score(batches, requested)

    def floor(self, real: Tensor, num_samples: int = 10_000, seed: int = 0) -> MNISTScores:
        """Scores of ``num_samples`` real images (a random subset of ``real``, normally
        the train split): the best a generator can hope for, to read other FDs against."""
        check_int("num_samples", num_samples, 2)
        rng = torch.Generator().manual_seed(seed)
        subset = torch.randperm(len(real), generator=rng)[:num_samples]
        return self.score(real[subset])

"""Sample-quality metrics: Fréchet and kernel distances for any feature extractor,
offline MNIST scores with a shipped classifier, random features for any folder (and the
memorisation check), Stacked MNIST modes, and Inception
features (the FID Inception papers use, or torchvision's); reference statistics cached
on disk ([`ganlib.metrics.cache`][ganlib.metrics.cache]).

Each name loads its module on first use, so importing one metric does not import the
others' dependencies (Stacked MNIST's data module, torchvision's Inception).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..sampling import sample_images
    from .cache import cached_feature_stats
    from .distances import FeatureStats, frechet_distance, kernel_distance
    from .features import embed
    from .fid_inception import FIDInceptionV3
    from .inception import InceptionFeatures
    from .mnist import MNISTEvaluator, MNISTScores, class_scores
    from .mnist_classifier import MNISTClassifier, load_mnist_classifier
    from .quality import quality_report, run_quality_report, scoring_samples
    from .random_features import RandomFeatures, memorisation
    from .stacked import stacked_mnist_modes

__all__ = [
    "FIDInceptionV3",
    "FeatureStats",
    "InceptionFeatures",
    "MNISTClassifier",
    "MNISTEvaluator",
    "MNISTScores",
    "RandomFeatures",
    "cached_feature_stats",
    "class_scores",
    "embed",
    "frechet_distance",
    "kernel_distance",
    "load_mnist_classifier",
    "memorisation",
    "quality_report",
    "run_quality_report",
    "sample_images",
    "scoring_samples",
    "stacked_mnist_modes",
]

# Each public name -> its module (relative to this package).
_HOMES = {
    "sample_images": "..sampling",  # (its home is ganlib.sampling)
    "cached_feature_stats": ".cache",
    "FeatureStats": ".distances",
    "frechet_distance": ".distances",
    "kernel_distance": ".distances",
    "embed": ".features",
    "FIDInceptionV3": ".fid_inception",
    "InceptionFeatures": ".inception",
    "MNISTEvaluator": ".mnist",
    "MNISTScores": ".mnist",
    "class_scores": ".mnist",
    "MNISTClassifier": ".mnist_classifier",
    "load_mnist_classifier": ".mnist_classifier",
    "quality_report": ".quality",
    "run_quality_report": ".quality",
    "scoring_samples": ".quality",
    "RandomFeatures": ".random_features",
    "memorisation": ".random_features",
    "stacked_mnist_modes": ".stacked",
}


def __getattr__(name: str) -> Any:
    """Load a public name on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'ganlib.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

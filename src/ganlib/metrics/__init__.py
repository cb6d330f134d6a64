"""Sample-quality metrics: Fréchet and kernel distances for any feature extractor,
offline MNIST scores with a shipped classifier, Stacked MNIST modes, and Inception
features (the FID Inception papers use, or torchvision's)."""

from ..sampling import sample_images  # (its home is ganlib.sampling)
from .distances import FeatureStats, frechet_distance, kernel_distance
from .features import embed
from .fid_inception import FIDInceptionV3
from .inception import InceptionFeatures
from .mnist import MNISTEvaluator, MNISTScores, class_scores
from .mnist_classifier import MNISTClassifier, load_mnist_classifier
from .quality import quality_report
from .stacked import stacked_mnist_modes

__all__ = [
    "FIDInceptionV3",
    "FeatureStats",
    "InceptionFeatures",
    "MNISTClassifier",
    "MNISTEvaluator",
    "MNISTScores",
    "class_scores",
    "embed",
    "frechet_distance",
    "kernel_distance",
    "load_mnist_classifier",
    "quality_report",
    "sample_images",
    "stacked_mnist_modes",
]

"""Data sets for training, as tensors in [-1, 1]: MNIST, Stacked MNIST, folders of your
own images, and translation pairs and domains (made from MNIST, or read from folders)."""

from .common import DataNotFoundError, to_unit_range
from .folder import IMAGE_EXTENSIONS, ImageFolder, load_image_folder
from .mnist import fake_mnist, load_mnist, mnist_dataset
from .stacked import STACKED_MNIST_MODES, load_stacked_mnist, stack_mnist
from .translation import (
    StyleDomains,
    edge_map,
    load_aligned_pairs,
    load_paired_folders,
    load_unpaired_folders,
    match_lengths,
    mnist_edge_pairs,
    mnist_style_domains,
    pad_to,
    restyle_digits,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "STACKED_MNIST_MODES",
    "DataNotFoundError",
    "ImageFolder",
    "StyleDomains",
    "edge_map",
    "fake_mnist",
    "load_aligned_pairs",
    "load_image_folder",
    "load_mnist",
    "load_paired_folders",
    "load_stacked_mnist",
    "load_unpaired_folders",
    "match_lengths",
    "mnist_dataset",
    "mnist_edge_pairs",
    "mnist_style_domains",
    "pad_to",
    "restyle_digits",
    "stack_mnist",
    "to_unit_range",
]

"""Data sets for training, as tensors in [-1, 1]: MNIST, Stacked MNIST and folders of your
own images."""

from .common import DataNotFoundError, to_unit_range
from .folder import IMAGE_EXTENSIONS, ImageFolder, load_image_folder
from .mnist import fake_mnist, load_mnist, mnist_dataset
from .stacked import STACKED_MNIST_MODES, load_stacked_mnist, stack_mnist

__all__ = [
    "IMAGE_EXTENSIONS",
    "STACKED_MNIST_MODES",
    "DataNotFoundError",
    "ImageFolder",
    "fake_mnist",
    "load_image_folder",
    "load_mnist",
    "load_stacked_mnist",
    "mnist_dataset",
    "stack_mnist",
    "to_unit_range",
]

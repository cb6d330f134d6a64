"""Data sets for training, as tensors in [-1, 1]: MNIST and folders of your own images."""

from .common import DataNotFoundError, to_unit_range
from .folder import IMAGE_EXTENSIONS, ImageFolder, load_image_folder
from .mnist import fake_mnist, load_mnist, mnist_dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataNotFoundError",
    "ImageFolder",
    "fake_mnist",
    "load_image_folder",
    "load_mnist",
    "mnist_dataset",
    "to_unit_range",
]

"""ganlib: reusable PyTorch building blocks for training GANs."""

from .init import dcgan_init_, init_weights_
from .models import DCGAN

__version__ = "0.1.0.dev0"

__all__ = ["DCGAN", "__version__", "dcgan_init_", "init_weights_"]

"""ganlib: reusable PyTorch building blocks for training GANs."""

from ._version import __version__
from .callbacks import Callback
from .checkpoint import CheckpointError, load_gan
from .gan import GAN, register_architecture
from .init import dcgan_init_, init_weights_
from .models import DCGAN, ResNetGAN
from .runfolder import RunFolderError
from .seeding import seed_everything
from .signals import TrainingInterrupted
from .trainer import Trainer, TrainerState

__all__ = [
    "DCGAN",
    "GAN",
    "Callback",
    "CheckpointError",
    "ResNetGAN",
    "RunFolderError",
    "Trainer",
    "TrainerState",
    "TrainingInterrupted",
    "__version__",
    "dcgan_init_",
    "init_weights_",
    "load_gan",
    "register_architecture",
    "seed_everything",
]

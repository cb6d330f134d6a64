"""ganlib: reusable PyTorch building blocks for training GANs.

The public names load on first use (a module ``__getattr__``): ``import ganlib`` loads
torch and the registered architectures, not the Trainer, callbacks, metrics or torchvision
(whose model zoo alone takes longer to import than torch); ``from ganlib import Trainer``
and ``ganlib.metrics`` work as they always did.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import models  # noqa: F401  (registers the built-in architectures: checkpoints need them)
from ._version import __version__

if TYPE_CHECKING:
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

# Each public name -> the module that defines it.
_HOMES = {
    "Callback": ".callbacks.base",
    "CheckpointError": ".checkpoint",
    "load_gan": ".checkpoint",
    "GAN": ".gan",
    "register_architecture": ".gan",
    "dcgan_init_": ".init",
    "init_weights_": ".init",
    "DCGAN": ".models",
    "ResNetGAN": ".models",
    "RunFolderError": ".runfolder",
    "seed_everything": ".seeding",
    "TrainingInterrupted": ".signals",
    "Trainer": ".trainer",
    "TrainerState": ".trainer",
}
# Subpackages and modules reachable as attributes (``ganlib.metrics.frechet_distance``).
_SUBMODULES = {
    "augment",
    "batching",
    "callbacks",
    "checkpoint",
    "cli",
    "data",
    "device",
    "distributed",
    "gan",
    "init",
    "losses",
    "metrics",
    "models",
    "optim",
    "runfolder",
    "runs",
    "runtime",
    "sampling",
    "seeding",
    "signals",
    "step",
    "tasks",
    "trainer",
}


def __getattr__(name: str) -> Any:
    """Load a public name, or a submodule, on first use."""
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'ganlib' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})

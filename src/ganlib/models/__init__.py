"""Network builders, one file per architecture family, each registered by name.

A new architecture is one file here (a :class:`ganlib.gan.GAN` subclass) plus one
``register_architecture`` line below; checkpoints then rebuild it by name.
``check_labels`` (ganlib.gan) and ``recompute_batchnorm_stats`` (ganlib.sampling)
stay importable from here for code written against earlier releases.
"""

from ..gan import check_labels, register_architecture
from ..sampling import recompute_batchnorm_stats
from .dcgan import DCGAN, Discriminator, Generator, LayerStep, size_plan, stage_widths

register_architecture("dcgan", DCGAN)

__all__ = [
    "DCGAN",
    "Discriminator",
    "Generator",
    "LayerStep",
    "check_labels",
    "recompute_batchnorm_stats",
    "size_plan",
    "stage_widths",
]

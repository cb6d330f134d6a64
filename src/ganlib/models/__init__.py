"""Network builders."""

from .dcgan import DCGAN, Discriminator, Generator, LayerStep, size_plan, stage_widths
from .norm import recompute_batchnorm_stats

__all__ = [
    "DCGAN",
    "Discriminator",
    "Generator",
    "LayerStep",
    "recompute_batchnorm_stats",
    "size_plan",
    "stage_widths",
]

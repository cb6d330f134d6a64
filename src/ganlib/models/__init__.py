"""Network builders."""

from .dcgan import (
    DCGAN,
    Discriminator,
    Generator,
    LayerStep,
    check_labels,
    size_plan,
    stage_widths,
)
from .norm import recompute_batchnorm_stats

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

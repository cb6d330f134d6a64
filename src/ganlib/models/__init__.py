"""Network builders."""

from .dcgan import DCGAN, Discriminator, Generator, LayerStep, size_plan, stage_widths

__all__ = ["DCGAN", "Discriminator", "Generator", "LayerStep", "size_plan", "stage_widths"]

"""Network builders, one file per architecture family, each registered by name.

A new architecture is one file here (a [`ganlib.gan.GAN`][ganlib.GAN] subclass) plus one
``register_architecture`` line below; checkpoints then rebuild it by name.
"""

from ..gan import register_architecture
from .dcgan import DCGAN, Discriminator, Generator, LayerStep, size_plan, stage_widths
from .layers import ConditionalBatchNorm2d, spectral_norm_
from .resnet import ResNetDiscriminator, ResNetGAN, ResNetGenerator

register_architecture("dcgan", DCGAN)
register_architecture("resnet", ResNetGAN)

__all__ = [
    "DCGAN",
    "ConditionalBatchNorm2d",
    "Discriminator",
    "Generator",
    "LayerStep",
    "ResNetDiscriminator",
    "ResNetGAN",
    "ResNetGenerator",
    "size_plan",
    "spectral_norm_",
    "stage_widths",
]

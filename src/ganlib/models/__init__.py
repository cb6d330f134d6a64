"""Network builders, one file per architecture family, each registered by name.

A new architecture is one file here (a [`ganlib.gan.GAN`][ganlib.GAN] subclass) plus one
``register_architecture`` line below; checkpoints then rebuild it by name.
"""

from ..gan import register_architecture
from .dcgan import DCGAN, Discriminator, Generator, LayerStep, size_plan, stage_widths
from .layers import ConditionalBatchNorm2d, MinibatchStd, spectral_norm_
from .resnet import ResNetDiscriminator, ResNetGAN, ResNetGenerator
from .translation import (
    PatchGANDiscriminator,
    ResNetTranslator,
    UNetTranslator,
    build_translation_network,
    patch_receptive_field,
    register_translation_network,
    translation_networks,
)

register_architecture("dcgan", DCGAN)
register_architecture("resnet", ResNetGAN)
register_translation_network("resnet", ResNetTranslator)
register_translation_network("unet", UNetTranslator)
register_translation_network("patchgan", PatchGANDiscriminator)

__all__ = [
    "DCGAN",
    "ConditionalBatchNorm2d",
    "Discriminator",
    "Generator",
    "LayerStep",
    "MinibatchStd",
    "PatchGANDiscriminator",
    "ResNetDiscriminator",
    "ResNetGAN",
    "ResNetGenerator",
    "ResNetTranslator",
    "UNetTranslator",
    "build_translation_network",
    "patch_receptive_field",
    "register_translation_network",
    "size_plan",
    "spectral_norm_",
    "stage_widths",
    "translation_networks",
]

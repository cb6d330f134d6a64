"""Print the layer tables of docs/models.md, read off the built networks.

    python scripts/layer_tables.py           # DCGAN's tables for 28, 32 and 64
    python scripts/layer_tables.py resnet    # the residual family's for 28 and 32

tests/test_docs.py checks that docs/models.md holds exactly these tables.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from ganlib import DCGAN, ResNetGAN

# (image size, channels, width) of each table: MNIST's recipe, CIFAR-sized, the DCGAN paper's.
TABLES = ((28, 1, 128), (32, 3, 64), (64, 3, 64))
# The residual family's: its defaults (MNIST), and CIFAR-sized.
RESNET_TABLES = ((28, 1, 64), (32, 3, 64))


def _describe(layers: nn.Sequential, x: torch.Tensor) -> list[tuple[str, str]]:
    """(layer text, output shape) per convolution, with the layers that follow it."""
    rows: list[tuple[str, str]] = []
    for layer in layers:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            kind = "ConvT" if isinstance(layer, nn.ConvTranspose2d) else "Conv"
            text = (
                f"{kind} {layer.in_channels}→{layer.out_channels} k{layer.kernel_size[0]} "
                f"s{layer.stride[0]} p{layer.padding[0]}"
            )
            rows.append((text, "×".join(map(str, x.shape[1:]))))
        else:
            name = {"BatchNorm2d": "BN", "LeakyReLU": "LeakyReLU"}.get(type(layer).__name__)
            text, shape = rows[-1]
            rows[-1] = (f"{text}, {name or type(layer).__name__}", shape)
    return rows


def layer_table(image_size: int, channels: int, width: int, latent_dim: int = 100) -> str:
    """The Markdown table of one DCGAN's layers, generator beside discriminator."""
    gan = DCGAN(image_size, channels, latent_dim, width, init=None).eval()
    with torch.no_grad():
        g_rows = _describe(gan.generator.net, torch.zeros(1, latent_dim, 1, 1))
        d_rows = _describe(gan.discriminator.net, torch.zeros(1, channels, image_size, image_size))
    d_rows[-1] = (d_rows[-1][0], "logit")
    count = lambda m: f"{sum(p.numel() for p in m.parameters()):,}"  # noqa: E731
    lines = [
        f"`DCGAN(image_size={image_size}, channels={channels}, width={width})`: "
        f"{count(gan.generator)} generator and {count(gan.discriminator)} discriminator "
        "parameters.",
        "",
        "| layer | generator | output | discriminator | output |",
        "|---|---|---|---|---|",
    ]
    for index, ((g, g_out), (d, d_out)) in enumerate(zip(g_rows, d_rows, strict=True), 1):
        lines.append(f"| {index} | {g} | {g_out} | {d} | {d_out} |")
    return "\n".join(lines)


def _shape(x: torch.Tensor) -> str:
    return "×".join(map(str, x.shape[1:]))


def _count(module: nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()):,}"


def resnet_table(image_size: int, channels: int, width: int, latent_dim: int = 128) -> str:
    """The Markdown tables of one ResNetGAN's blocks: the generator's, then the discriminator's."""
    gan = ResNetGAN(image_size, channels, latent_dim, width, init=None).eval()
    g, d = gan.generator, gan.discriminator
    g_rows, d_rows = [], []
    with torch.no_grad():
        h = g.stem(torch.zeros(1, latent_dim)).view(-1, *g.start)
        g_rows.append((f"Linear {latent_dim}→{g.stem.out_features:,}, reshape", _shape(h)))
        for block in g.blocks:
            h = block(h)
            resample = "" if block.out_size is None else f", upsample to {block.out_size}"
            g_rows.append(
                (f"up block {block.in_channels}→{block.out_channels}{resample}", _shape(h))
            )
        conv = g.head[2]
        text = f"BN, ReLU, Conv {conv.in_channels}→{conv.out_channels} k3, Tanh"
        g_rows.append((text, _shape(g.head(h))))
        h = torch.zeros(1, channels, image_size, image_size)
        for block in d.blocks:
            h = block(h)
            resample = "" if block.out_size is None else f", pool to {block.out_size}"
            first = " (first)" if block.first else ""
            d_rows.append(
                (f"down block{first} {block.in_channels}→{block.out_channels}{resample}", _shape(h))
            )
        side = h.shape[-1]
        text = f"ReLU, sum over {side}×{side}, Linear {d.linear.in_features}→1"
        d_rows.append((text, "logit"))
    lines = [
        f"`ResNetGAN(image_size={image_size}, channels={channels}, width={width})`: "
        f"{_count(g)} generator and {_count(d)} discriminator parameters.",
        "",
        "| block | generator | output |",
        "|---|---|---|",
        *(f"| {i} | {text} | {out} |" for i, (text, out) in enumerate(g_rows, 1)),
        "",
        "| block | discriminator | output |",
        "|---|---|---|",
        *(f"| {i} | {text} | {out} |" for i, (text, out) in enumerate(d_rows, 1)),
    ]
    return "\n".join(lines)


def main() -> None:
    family = sys.argv[1] if len(sys.argv) > 1 else "dcgan"
    if family == "resnet":
        for size, channels, width in RESNET_TABLES:
            print(f"### ResNet {size}×{size}\n\n{resnet_table(size, channels, width)}\n")
        return
    for size, channels, width in TABLES:
        print(f"### {size}×{size}\n\n{layer_table(size, channels, width)}\n")


if __name__ == "__main__":
    main()

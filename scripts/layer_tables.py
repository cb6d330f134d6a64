"""Print the DCGAN layer tables of docs/models.md, read off the built networks.

    python scripts/layer_tables.py           # the tables for 28, 32 and 64

tests/test_docs.py checks that docs/models.md holds exactly these tables.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlib import DCGAN

# (image size, channels, width) of each table: MNIST's recipe, CIFAR-sized, the DCGAN paper's.
TABLES = ((28, 1, 128), (32, 3, 64), (64, 3, 64))


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


def main() -> None:
    for size, channels, width in TABLES:
        print(f"### {size}×{size}\n\n{layer_table(size, channels, width)}\n")


if __name__ == "__main__":
    main()

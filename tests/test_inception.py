"""Inception features against the reference implementation.

Every network here has random weights: nothing is downloaded. torchvision's
ImageNet Inception is checked against torchvision's own pretrained-weights pipeline.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from ganlib.metrics import InceptionFeatures


def images(batch: int, channels: int, height: int, width: int, seed: int) -> Tensor:
    rng = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, height, width, generator=rng) * 2 - 1


def randomise_(network: nn.Module, seed: int) -> nn.Module:
    """Random weights with BatchNorm statistics measured on random images, so every
    layer sees O(1) activations (default statistics would make BatchNorm an identity)."""
    torch.manual_seed(seed)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration pass
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, std=0.2)
    network.train()
    with torch.no_grad():
        network(images(4, 3, 299, 299, seed=seed))
    return network.eval()


def input_of_first_conv(model: nn.Module, network: nn.Module, x: Tensor) -> Tensor:
    """What ``network.Conv2d_1a_3x3`` receives when ``model`` (which runs it) is given ``x``."""
    seen: list[Tensor] = []
    handle = network.Conv2d_1a_3x3.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


# torchvision's ImageNet Inception-v3


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, Tensor]:
    from torchvision.models import inception_v3

    network = inception_v3(weights=None, aux_logits=True, init_weights=False)
    return randomise_(network, seed=0).state_dict()


@pytest.fixture
def torchvision_pretrained(monkeypatch, imagenet_state):
    """torchvision's ``inception_v3(weights=IMAGENET1K_V1)``, as torchvision configures it
    (transform_input=True among others), with random weights in place of the download."""
    from torchvision.models import Inception_V3_Weights, inception_v3

    weights = Inception_V3_Weights.IMAGENET1K_V1
    monkeypatch.setattr(Inception_V3_Weights, "get_state_dict", lambda *a, **k: imagenet_state)
    network = inception_v3(weights=weights).eval()
    assert network.transform_input
    preprocess = weights.transforms()
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)

    def run(batch: Tensor) -> tuple[Tensor, Tensor]:
        """[-1, 1] -> [0, 1] -> resized -> ImageNet-normalised -> torchvision's network:
        the first conv's input and the pool features."""
        unit = ((batch + 1) / 2).expand(-1, 3, -1, -1)
        unit = nn.functional.interpolate(
            unit, size=(299, 299), mode="bilinear", align_corners=False
        )
        pooled: list[Tensor] = []
        handle = network.avgpool.register_forward_hook(lambda *args: pooled.append(args[2]))
        first = input_of_first_conv(network, network, (unit - mean) / std)
        handle.remove()
        return first, pooled[0].flatten(1)

    return run


@pytest.mark.parametrize("shape", [(2, 3, 299, 299), (2, 1, 28, 28)])
def test_imagenet_inception_sees_what_torchvision_feeds_its_pretrained_weights(
    tmp_path, imagenet_state, torchvision_pretrained, shape
):
    path = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    torch.save(imagenet_state, path)
    features = InceptionFeatures(path)
    batch = images(*shape, seed=1)

    expected_input, expected_features = torchvision_pretrained(batch)
    ours = input_of_first_conv(features, features.network, batch)
    difference = (ours - expected_input).abs().max()
    print(f"ImageNet Inception's first-conv input vs torchvision's, {shape}: {difference:.2e}")
    assert difference < 1e-6
    with torch.no_grad():
        out = features(batch)
    torch.testing.assert_close(out, expected_features, rtol=1e-4, atol=1e-4)
    # The old preprocessing (ImageNet normalisation without transform_input) was far off.
    old = (expected_input + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    old = old / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert (old - expected_input).abs().max() > 0.5

"""Initialisation utilities: statistics, layer selection, reproducibility, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlib import DCGAN, dcgan_init_, init_weights_


class MyConv(nn.Conv2d):
    """A subclass: selection by isinstance must still reach it."""


def _big_net() -> nn.Module:
    return nn.Sequential(
        MyConv(64, 256, 5),
        nn.BatchNorm2d(4096),
        nn.ConvTranspose2d(256, 128, 4),
        nn.Linear(512, 512),
    )


def test_dcgan_init_statistics():
    net = dcgan_init_(_big_net(), generator=torch.Generator().manual_seed(0))
    conv, bn, deconv, linear = net
    for weight in (conv.weight, deconv.weight, linear.weight):
        assert abs(weight.mean().item()) < 1e-3
        assert weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=1e-3)
    assert bn.weight.std().item() == pytest.approx(0.02, rel=0.05)
    for bias in (conv.bias, bn.bias, deconv.bias, linear.bias):
        assert torch.count_nonzero(bias) == 0


@pytest.mark.parametrize(
    ("scheme", "expected_std"),
    [
        # Glorot normal: sqrt(2 / (fan_in + fan_out)); Linear(512, 512).
        ("xavier", (2.0 / 1024) ** 0.5),
        # He normal for LeakyReLU(0.2): gain sqrt(2 / (1 + 0.2^2)) / sqrt(fan_in).
        ("kaiming", (2.0 / 1.04) ** 0.5 / 512**0.5),
        # Orthogonal 512x512 rows are unit vectors: std 1 / sqrt(512).
        ("orthogonal", 1 / 512**0.5),
    ],
)
def test_other_schemes_statistics(scheme, expected_std):
    net = init_weights_(_big_net(), scheme, generator=torch.Generator().manual_seed(0))
    linear = net[3]
    assert linear.weight.std().item() == pytest.approx(expected_std, rel=0.03)
    assert torch.count_nonzero(linear.bias) == 0
    assert net[1].weight.mean().item() == pytest.approx(1.0, abs=1e-3)


def test_orthogonal_really_is_orthogonal():
    linear = init_weights_(nn.Linear(64, 64), "orthogonal")
    eye = linear.weight @ linear.weight.T
    assert torch.allclose(eye, torch.eye(64), atol=1e-5)


@pytest.mark.parametrize("scheme", ["dcgan", "xavier", "kaiming", "orthogonal"])
def test_generator_makes_init_reproducible(scheme):
    a = init_weights_(DCGAN(width=4, init=None), scheme, generator=torch.Generator().manual_seed(7))
    b = init_weights_(DCGAN(width=4, init=None), scheme, generator=torch.Generator().manual_seed(7))
    c = init_weights_(DCGAN(width=4, init=None), scheme, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_generator_leaves_global_rng_untouched():
    net = _big_net()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dcgan_init_(net, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)


def test_dcgan_builder_applies_dcgan_init_by_default():
    gan = DCGAN(image_size=64, channels=3, width=64)
    conv = gan.discriminator.net[2]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_bad_scheme_and_module():
    with pytest.raises(
        ValueError,
        match=r"`scheme` must be one of \['dcgan', 'xavier', "
        r"'kaiming', 'orthogonal'\], got 'he'",
    ):
        init_weights_(nn.Linear(2, 2), "he")
    with pytest.raises(TypeError, match=r"`module` must be a torch.nn.Module, got Tensor"):
        init_weights_(torch.zeros(2))


def test_an_unknown_scheme_is_named_as_the_caller_wrote_it():
    with pytest.raises(ValueError, match=r"`scheme` must be one of \['dcgan', .*\], got 'bogus'"):
        init_weights_(nn.Linear(2, 2), "bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`init` must be one of \['dcgan', .*\], got 'bogus'"):
        init_weights_(nn.Linear(2, 2), "bogus", argument_name="init")  # type: ignore[arg-type]


def test_dcgan_names_its_own_init_argument():
    with pytest.raises(
        ValueError,
        match=r"`init` must be one of \['dcgan', 'xavier', 'kaiming', 'orthogonal'\], got 'bogus'",
    ):
        DCGAN(image_size=8, width=4, init="bogus")  # type: ignore[arg-type]


def test_spectrally_normalised_layers_get_their_stored_weight_initialised():
    from torch.nn.utils.parametrizations import spectral_norm

    conv = spectral_norm(nn.Conv2d(8, 16, 3))
    stored = conv.parametrizations.weight.original
    init_weights_(conv, "dcgan", generator=torch.Generator().manual_seed(0))
    assert stored.std().item() == pytest.approx(0.02, rel=0.2)  # written, not a temporary
    assert torch.equal(stored, conv.parametrizations.weight.original)

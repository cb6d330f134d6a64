"""DCGAN builder: the size rule, the recipe's network, shapes and argument errors."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from ganlib import DCGAN
from ganlib.models import MinibatchStd, size_plan, stage_widths


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _layer_table(net: nn.Module, x: torch.Tensor) -> list[tuple[str, int, int, int, tuple]]:
    """(op, kernel, stride, padding, output shape) for every convolution, in order."""
    rows = []
    for layer in net.net:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            rows.append(
                (
                    type(layer).__name__,
                    layer.kernel_size[0],
                    layer.stride[0],
                    layer.padding[0],
                    tuple(x.shape[1:]),
                )
            )
    return rows


def test_recipe_generator_layers_and_parameters():
    gan = DCGAN(image_size=28, channels=1, latent_dim=100, width=128).eval()
    rows = _layer_table(gan.generator, torch.zeros(2, 100, 1, 1))
    assert rows == [
        ("ConvTranspose2d", 3, 1, 0, (512, 3, 3)),
        ("ConvTranspose2d", 3, 2, 0, (256, 7, 7)),
        ("ConvTranspose2d", 4, 2, 1, (128, 14, 14)),
        ("ConvTranspose2d", 4, 2, 1, (1, 28, 28)),
    ]
    kinds = [type(m) for m in gan.generator.net]
    assert kinds == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU] * 3 + [
        nn.ConvTranspose2d,
        nn.Tanh,
    ]
    assert _count(gan.generator) == 2_169_473


def test_recipe_discriminator_layers_and_parameters():
    gan = DCGAN(image_size=28, channels=1, latent_dim=100, width=128).eval()
    rows = _layer_table(gan.discriminator, torch.zeros(2, 1, 28, 28))
    assert rows == [
        ("Conv2d", 4, 2, 1, (128, 14, 14)),
        ("Conv2d", 4, 2, 1, (256, 7, 7)),
        ("Conv2d", 3, 2, 0, (512, 3, 3)),
        ("Conv2d", 3, 1, 0, (1, 1, 1)),
    ]
    kinds = [type(m) for m in gan.discriminator.net]
    assert kinds == [
        nn.Conv2d,
        nn.LeakyReLU,
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.LeakyReLU,
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.LeakyReLU,
        nn.Conv2d,
    ]
    assert all(
        m.negative_slope == 0.2 for m in gan.discriminator.net if isinstance(m, nn.LeakyReLU)
    )
    assert _count(gan.discriminator) == 1_713_025


def test_dcgan64_matches_the_paper():
    gan = DCGAN(image_size=64, channels=3, latent_dim=100, width=64, bias=False).eval()
    rows = _layer_table(gan.generator, torch.zeros(1, 100, 1, 1))
    assert [r[4] for r in rows] == [
        (512, 4, 4),
        (256, 8, 8),
        (128, 16, 16),
        (64, 32, 32),
        (3, 64, 64),
    ]
    assert [r[1:4] for r in rows] == [(4, 1, 0)] + [(4, 2, 1)] * 4
    # pytorch/examples' DCGAN (bias-free) has 3,576,704 generator parameters.
    assert _count(gan.generator) == 3_576_704
    rows = _layer_table(gan.discriminator, torch.zeros(1, 3, 64, 64))
    assert [r[4] for r in rows] == [
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
        (1, 1, 1),
    ]
    assert _count(gan.discriminator) == 2_765_568


@pytest.mark.parametrize(
    ("size", "walk"),
    [
        (5, [2, 5]),
        (6, [3, 6]),
        (7, [3, 7]),
        (8, [4, 8]),
        (9, [4, 9]),
        (28, [3, 7, 14, 28]),
        (32, [4, 8, 16, 32]),
        (64, [4, 8, 16, 32, 64]),
        (100, [3, 6, 12, 25, 50, 100]),
    ],
)
def test_size_rule(size, walk):
    assert [step.out_size for step in size_plan(size)] == walk


@given(size=st.integers(5, 4096))
def test_size_rule_steps_compose(size):
    steps = size_plan(size)
    assert steps[0].in_size == 1 and 1 <= steps[0].out_size <= 4
    assert steps[-1].out_size == size
    for prev, step in itertools.pairwise(steps):
        assert step.in_size == prev.out_size
        # Transposed-convolution output size formula.
        assert (step.in_size - 1) * step.stride - 2 * step.padding + step.kernel == step.out_size
        assert (step.kernel, step.stride, step.padding) in {(4, 2, 1), (3, 2, 0)}
    assert all(step.out_size > 4 for step in steps[1:])


def test_stage_widths_double_toward_latent_and_respect_cap():
    assert stage_widths(4, 64, None) == [512, 256, 128, 64]
    assert stage_widths(4, 64, 256) == [256, 256, 128, 64]


@given(
    image_size=st.integers(5, 128),
    channels=st.integers(1, 4),
    latent_dim=st.integers(1, 128),
    width=st.integers(1, 4),
    batch=st.integers(1, 4),
    flat_latent=st.booleans(),
)
def test_shapes_range_and_gradient_flow(
    image_size, channels, latent_dim, width, batch, flat_latent
):
    gan = DCGAN(image_size, channels, latent_dim, width, max_width=16)
    z = gan.sample_noise(batch)
    assert z.shape == (batch, latent_dim)
    if not flat_latent:
        z = z[:, :, None, None]
    images = gan.generator(z)
    assert images.shape == (batch, channels, image_size, image_size)
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits = gan.discriminator(images)
    assert logits.shape == (batch,)
    logits.sum().backward()
    grads = [p.grad for p in gan.generator.parameters()]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("size", [5, 11, 31, 63, 97, 200, 256])
def test_sizes_round_trip_shapes_up_to_256(size):
    gan = DCGAN(size, 3, 8, 2, max_width=8).eval()
    with torch.no_grad():
        images = gan.generator(gan.sample_noise(2))
        assert images.shape == (2, 3, size, size)
        assert gan.discriminator(images).shape == (2,)


def test_batchnorm_placement_follows_the_paper():
    gan = DCGAN(image_size=64, channels=3, width=8)
    g_layers = list(gan.generator.net)
    d_layers = list(gan.discriminator.net)
    # No BatchNorm after the generator's output layer nor the discriminator's input layer.
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    assert isinstance(d_layers[1], nn.LeakyReLU)
    # Every other hidden layer is followed by BatchNorm.
    g_convs = [i for i, m in enumerate(g_layers) if isinstance(m, nn.ConvTranspose2d)][:-1]
    assert all(isinstance(g_layers[i + 1], nn.BatchNorm2d) for i in g_convs)
    d_convs = [i for i, m in enumerate(d_layers) if isinstance(m, nn.Conv2d)][1:-1]
    assert all(isinstance(d_layers[i + 1], nn.BatchNorm2d) for i in d_convs)


def test_config_rebuilds_the_same_architecture():
    gan = DCGAN(image_size=33, channels=2, latent_dim=7, width=3, max_width=10)
    twin = DCGAN(**gan.config)
    assert [tuple(p.shape) for p in gan.parameters()] == [tuple(p.shape) for p in twin.parameters()]


def test_sample_noise_is_reproducible_with_a_generator():
    gan = DCGAN(width=2)
    a = gan.sample_noise(4, generator=torch.Generator().manual_seed(3))
    b = gan.sample_noise(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_init_can_be_turned_off():
    torch.manual_seed(0)
    default = DCGAN(width=4, init=None)
    # PyTorch's default BatchNorm init is exactly ones; the DCGAN scheme draws N(1, 0.02).
    bn = next(m for m in default.generator.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    dcgan = DCGAN(width=4)
    bn = next(m for m in dcgan.generator.modules() if isinstance(m, nn.BatchNorm2d))
    assert not torch.equal(bn.weight, torch.ones_like(bn.weight))


def test_init_generator_makes_construction_reproducible():
    a = DCGAN(width=4, init_generator=torch.Generator().manual_seed(1))
    b = DCGAN(width=4, init_generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"image_size": 4}, ValueError, r"`image_size` must be >= 5, got 4"),
        ({"image_size": -3}, ValueError, r"`image_size` must be >= 5, got -3"),
        ({"image_size": 28.0}, TypeError, r"`image_size` must be an integer, got 28.0 \(float\)"),
        ({"image_size": "28"}, TypeError, r"`image_size` must be an integer, got '28' \(str\)"),
        ({"image_size": True}, TypeError, r"`image_size` must be an integer, got True \(bool\)"),
        ({"channels": 0}, ValueError, r"`channels` must be >= 1, got 0"),
        ({"channels": 1.5}, TypeError, r"`channels` must be an integer, got 1.5"),
        ({"latent_dim": 0}, ValueError, r"`latent_dim` must be >= 1, got 0"),
        ({"width": -1}, ValueError, r"`width` must be >= 1, got -1"),
        ({"width": None}, TypeError, r"`width` must be an integer, got None"),
        ({"max_width": 0}, ValueError, r"`max_width` must be >= 1, got 0"),
        ({"init": "uniform"}, ValueError, r"`init` must be one of .*, got 'uniform'"),
    ],
)
def test_bad_arguments_name_the_argument_rule_and_value(kwargs, error, message):
    with pytest.raises(error, match=message):
        DCGAN(**kwargs)


def test_generator_rejects_a_wrong_latent_shape():
    gan = DCGAN(width=2)
    with pytest.raises(
        ValueError,
        match=r"generator input must be shaped \(B, 100\) or "
        r"\(B, 100, 1, 1\), got \(2, 99\)",
    ):
        gan.generator(torch.zeros(2, 99))


def test_sample_noise_rejects_bad_counts():
    with pytest.raises(ValueError, match=r"`n` must be >= 1, got 0"):
        DCGAN(width=2).sample_noise(0)


def test_spectral_norm_drops_discriminator_batchnorm_and_normalises_every_conv():
    gan = DCGAN(image_size=28, width=8, spectral_norm=True)
    kinds = [type(m).__name__ for m in gan.discriminator.net]
    assert "BatchNorm2d" not in kinds  # SNGAN's discriminator: no BatchNorm
    convs = [m for m in gan.discriminator.net if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(parametrize.is_parametrized(m, "weight") for m in convs)
    assert not any(parametrize.is_parametrized(m) for m in gan.generator.modules())
    with torch.no_grad():
        for _ in range(30):  # the power iteration runs in training forwards
            gan.discriminator(torch.randn(2, 1, 28, 28))
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), 2)
        assert sigma.item() == pytest.approx(1.0, abs=0.02)
    # The generator is the plain DCGAN generator, weight for weight.
    plain = DCGAN(image_size=28, width=8, init_generator=torch.Generator().manual_seed(0))
    sn = DCGAN(
        image_size=28, width=8, spectral_norm=True, init_generator=torch.Generator().manual_seed(0)
    )
    for a, b in zip(
        plain.generator.state_dict().values(), sn.generator.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_spectral_norm_is_in_the_config_only_when_on():
    assert "spectral_norm" not in DCGAN(width=2).config
    gan = DCGAN(image_size=12, width=2, spectral_norm=True, num_classes=3)
    assert gan.config["spectral_norm"] is True
    twin = DCGAN(**gan.config)
    assert [p.shape for p in twin.parameters()] == [p.shape for p in gan.parameters()]
    assert set(twin.state_dict()) == set(gan.state_dict())
    # The zero-initialised projection stays unnormalised (its spectral norm is zero).
    assert not parametrize.is_parametrized(gan.discriminator.projection)
    logits = gan.discriminator(torch.zeros(2, 1, 12, 12), torch.tensor([0, 2]))
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    with pytest.raises(TypeError, match=r"`spectral_norm` must be True or False, got 'yes'"):
        DCGAN(spectral_norm="yes")


@given(image_size=st.integers(5, 64), width=st.integers(1, 4), batch=st.integers(1, 3))
def test_spectral_norm_shapes_and_gradients(image_size, width, batch):
    gan = DCGAN(image_size, 2, 6, width, max_width=16, spectral_norm=True)
    logits = gan.discriminator(gan.generator(gan.sample_noise(batch)))
    assert logits.shape == (batch,)
    logits.sum().backward()
    for name, parameter in gan.discriminator.named_parameters():
        assert parameter.grad is not None, name


def test_spectral_norm_dcgan_trains_and_comes_back_from_a_checkpoint(tmp_path):
    from ganlib import Trainer, load_gan

    gan = DCGAN(12, 1, 8, 4, spectral_norm=True, init_generator=torch.Generator().manual_seed(0))
    trainer = Trainer(gan, max_steps=2, seed=0, progress=False, device="cpu")
    trainer.fit(torch.rand(16, 1, 12, 12) * 2 - 1, batch_size=8)
    trainer.save_checkpoint(str(tmp_path / "sn.ckpt"))
    loaded = load_gan(tmp_path / "sn.ckpt")
    assert loaded.config["spectral_norm"] is True
    for a, b in zip(loaded.state_dict().values(), gan.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_minibatch_std_adds_each_groups_spread_as_a_channel():
    x = torch.randn(8, 3, 5, 5)
    out = MinibatchStd(4)(x)
    assert out.shape == (8, 4, 5, 5) and torch.equal(out[:, :3], x)
    # Strided groups (image i in group i % 2), as StyleGAN's: the std over each group.
    for member in range(2):
        group = x[member::2]
        spread = torch.sqrt(group.var(0, unbiased=False) + 1e-8).mean()
        assert out[member::2, 3].unique().item() == pytest.approx(spread.item(), rel=1e-5)
    # A batch the group size does not divide takes the largest size under it that does.
    assert MinibatchStd(4)(torch.randn(10, 1, 2, 2))[:, 1].unique().numel() == 5  # groups of 2
    identical = MinibatchStd(4)(torch.ones(4, 2, 3, 3))
    assert identical[:, 2].max().item() == pytest.approx(1e-4)  # no spread, sqrt(1e-8)
    with pytest.raises(ValueError, match=r"`group_size` must be >= 1, got 0"):
        MinibatchStd(0)
    with pytest.raises(TypeError, match=r"`group_size` must be an integer, got 2.0"):
        MinibatchStd(2.0)  # type: ignore[arg-type]


def test_minibatch_std_in_dcgans_discriminator_is_in_the_config_and_checkpoint(tmp_path):
    from ganlib import Trainer, load_gan

    assert "minibatch_std" not in DCGAN(width=2).config
    gan = DCGAN(12, 3, 8, 4, spectral_norm=True, minibatch_std=4, num_classes=3)
    layers = [m for m in gan.discriminator.net if isinstance(m, MinibatchStd)]
    assert len(layers) == 1 and gan.discriminator.net[-1].in_channels == 4 * 2 + 1
    logits = gan.discriminator(torch.randn(5, 3, 12, 12), torch.tensor([0, 1, 2, 0, 1]))
    assert logits.shape == (5,) and torch.isfinite(logits).all()
    plain = DCGAN(12, 3, 8, 4, minibatch_std=2, init_generator=torch.Generator().manual_seed(0))
    trainer = Trainer(plain, max_steps=2, seed=0, progress=False, device="cpu")
    trainer.fit(torch.rand(16, 3, 12, 12) * 2 - 1, batch_size=8)
    trainer.save_checkpoint(str(tmp_path / "mbstd.ckpt"))
    loaded = load_gan(tmp_path / "mbstd.ckpt")
    assert loaded.config["minibatch_std"] == 2
    for a, b in zip(loaded.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"`minibatch_std` must be >= 0, got -1"):
        DCGAN(width=2, minibatch_std=-1)


# ------------------------------------------------ input shapes and the size bound (issue 31)


@pytest.mark.parametrize(
    ("shape", "got"),
    [
        ((4, 1, 16, 16), r"\(4, 1, 16, 16\)"),  # a 16x16 image gave 4 logits per image
        ((4, 3, 12, 12), r"\(4, 3, 12, 12\)"),
        ((4, 1, 12, 13), r"\(4, 1, 12, 13\)"),
        ((1, 12, 12), r"\(1, 12, 12\)"),
    ],
)
def test_the_discriminator_refuses_images_of_another_shape(shape, got):
    gan = DCGAN(image_size=12, latent_dim=8, width=4, num_classes=3)
    rule = r"discriminator `images` must be shaped \(B, 1, 12, 12\) \(the pair's channels and "
    with pytest.raises(ValueError, match=rule + r"image size\), got " + got):
        gan.discriminator(torch.zeros(shape), torch.zeros(shape[0], dtype=torch.long))
    unconditional = DCGAN(image_size=12, latent_dim=8, width=4, spectral_norm=True)
    with pytest.raises(ValueError, match=rule):
        unconditional.discriminator(torch.zeros(shape))


def test_the_discriminators_check_reads_no_values_and_compiles_without_a_graph_break():
    gan = DCGAN(image_size=12, latent_dim=8, width=4)
    # On the meta device a tensor has no values: the check reads shapes only (no device sync).
    meta = copy.deepcopy(gan.discriminator).to("meta")
    assert meta(torch.empty(5, 1, 12, 12, device="meta")).shape == (5,)
    with pytest.raises(ValueError, match=r"got \(5, 1, 14, 14\)"):
        meta(torch.empty(5, 1, 14, 14, device="meta"))
    # fullgraph: the check becomes shape guards, not a break in the graph.
    torch._dynamo.reset()
    compiled = torch.compile(gan.discriminator.eval(), fullgraph=True, backend="eager")
    for batch in (4, 6):
        images = torch.rand(batch, 1, 12, 12) * 2 - 1
        torch.testing.assert_close(compiled(images), gan.discriminator(images))
    # Compiled as the Trainer compiles (graph breaks allowed), a wrong shape is refused alike.
    plain = torch.compile(gan.discriminator, backend="eager")
    with pytest.raises(ValueError, match=r"must be shaped \(B, 1, 12, 12\) .*got \(2, 1, 16, 16\)"):
        plain(torch.rand(2, 1, 16, 16))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"image_size": 4096},
            r"DCGAN\(image_size=4096, channels=1, latent_dim=100, width=128, max_width=None, "
            r"bias=True\) would have 91,732,315,138 parameters, over the bound of "
            r"2,000,000,000 \(ganlib.models.layers.MAX_PARAMETERS\): lower `width`, cap it "
            r"with `max_width`, or lower `image_size`",
        ),
        ({"width": 10**6}, r"width=1000000, .* would have [\d,]+ parameters, over the bound"),
        (
            {"image_size": 65536, "width": 1, "max_width": 1},
            r"DCGAN\(image_size=65536, .*\) would hold [\d,]+ activations for one image "
            r"through its generator and discriminator, over the bound of 1,073,741,824 "
            r"\(ganlib.models.layers.MAX_ACTIVATIONS\): lower `image_size` or `width`",
        ),
    ],
)
def test_a_pair_too_large_to_train_is_refused_before_it_is_allocated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DCGAN(**kwargs)


def test_the_bound_counts_the_networks_it_builds_and_draws_nothing(monkeypatch):
    from ganlib.models import dcgan as dcgan_module
    from ganlib.models import layers

    gan = DCGAN(image_size=12, latent_dim=8, width=4, num_classes=3)
    parameters = _count(gan)
    outputs = []
    leaves = [m for m in gan.modules() if not any(m.children())]
    for leaf in leaves:
        leaf.register_forward_hook(lambda module, args, out: outputs.append(out.numel()))
    labels = torch.tensor([1])
    with torch.no_grad():
        gan.discriminator(gan.generator(torch.zeros(1, 8), labels), labels)
    monkeypatch.setattr(layers, "MAX_PARAMETERS", parameters - 1)
    with pytest.raises(ValueError, match=f"would have {parameters:,} parameters"):
        DCGAN(image_size=12, latent_dim=8, width=4, num_classes=3)
    monkeypatch.setattr(layers, "MAX_PARAMETERS", parameters)
    monkeypatch.setattr(layers, "MAX_ACTIVATIONS", sum(outputs) - 1)
    with pytest.raises(ValueError, match=f"would hold {sum(outputs):,} activations"):
        DCGAN(image_size=12, latent_dim=8, width=4, num_classes=3)
    monkeypatch.undo()
    # The count builds on the meta device: the same seed gives the same weights as without it.
    torch.manual_seed(0)
    checked = DCGAN(image_size=12, latent_dim=8, width=4, init=None)
    monkeypatch.setattr(dcgan_module, "check_network_size", lambda *args: None)
    torch.manual_seed(0)
    unchecked = DCGAN(image_size=12, latent_dim=8, width=4, init=None)
    for a, b in zip(checked.state_dict().values(), unchecked.state_dict().values(), strict=True):
        assert torch.equal(a, b)

"""The residual family (ResNetGAN): sizes, shapes, gradients, labels, spectral norm,
training, exact resume and rebuilding from checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from ganlib import ResNetGAN, Trainer, load_gan
from ganlib.callbacks import EMA
from ganlib.gan import architectures, build_gan
from ganlib.models import ConditionalBatchNorm2d, size_plan, spectral_norm_


def tiny(**kwargs) -> ResNetGAN:
    seeded = torch.Generator().manual_seed(0)
    kwargs = {"image_size": 12, "latent_dim": 8, "width": 2, "init_generator": seeded, **kwargs}
    return ResNetGAN(**kwargs)


def block_sizes(gan: ResNetGAN) -> tuple[list[int], list[int]]:
    """The feature-map side after each block of G and of D, read off a forward pass."""
    g_sizes, d_sizes = [], []
    with torch.no_grad():
        h = gan.generator.stem(gan.sample_noise(2)).view(-1, *gan.generator.start)
        g_sizes.append(h.shape[-1])
        for block in gan.generator.blocks:
            h = block(h)
            g_sizes.append(h.shape[-1])
        h = torch.zeros(2, *gan.image_shape)
        for block in gan.discriminator.blocks:
            h = block(h)
            d_sizes.append(h.shape[-1])
    return g_sizes, d_sizes


@pytest.mark.parametrize("size", [5, 6, 7, 9, 28, 32, 33, 64])
def test_sizes_follow_the_dcgan_size_rule(size):
    walk = [step.out_size for step in size_plan(size)]
    g_sizes, d_sizes = block_sizes(ResNetGAN(size, width=1).eval())
    assert g_sizes == walk
    assert d_sizes == walk[-2::-1]  # the same walk back down, ending at the start size


def test_depth_adds_same_size_blocks_and_widths_double_toward_the_latent():
    gan = ResNetGAN(28, width=4, depth=2).eval()
    g_sizes, d_sizes = block_sizes(gan)
    assert g_sizes == [3, 7, 7, 14, 14, 28, 28]
    assert d_sizes == [14, 14, 7, 7, 3, 3]
    assert [b.out_channels for b in gan.generator.blocks] == [16, 16, 8, 8, 4, 4]
    assert [b.out_channels for b in gan.discriminator.blocks] == [4, 4, 8, 8, 16, 16]
    # Same-size blocks of equal widths add the identity; resampling blocks learn a shortcut.
    assert [b.shortcut is None for b in gan.generator.blocks] == [False, True] * 3
    capped = ResNetGAN(28, width=4, max_width=8)
    assert capped.generator.start == (8, 3, 3)


@given(
    image_size=st.integers(5, 72),
    channels=st.integers(1, 4),
    latent_dim=st.integers(1, 64),
    width=st.integers(1, 4),
    depth=st.integers(1, 2),
    batch=st.integers(1, 4),
    flat_latent=st.booleans(),
)
def test_shapes_range_and_gradients_reach_every_parameter(
    image_size, channels, latent_dim, width, depth, batch, flat_latent
):
    seeded = torch.Generator().manual_seed(0)
    gan = ResNetGAN(
        image_size, channels, latent_dim, width, max_width=16, depth=depth, init_generator=seeded
    )
    z = gan.sample_noise(batch, generator=seeded)
    assert z.shape == (batch, latent_dim)
    images = gan.generator(z if flat_latent else z[:, :, None, None])
    assert images.shape == (batch, channels, image_size, image_size)
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits = gan.discriminator(images)
    assert logits.shape == (batch,) and logits.dtype == torch.float32
    logits.sum().backward(retain_graph=True)
    for network in (gan.generator, gan.discriminator):
        for name, parameter in network.named_parameters():
            assert parameter.grad is not None, f"no gradient reaches {name} from the logit"
    # Every weight of G shapes the image (through D a tiny width may leave all ReLUs dead).
    gan.generator.zero_grad()
    images.square().mean().backward()
    for name, parameter in gan.generator.named_parameters():
        if parameter.dim() > 1:
            assert parameter.grad.abs().sum() > 0, name  # type: ignore[union-attr]


@given(
    image_size=st.integers(5, 40),
    num_classes=st.integers(1, 6),
    batch=st.integers(1, 4),
    data=st.data(),
)
def test_conditional_shapes_and_gradients_reach_every_parameter(
    image_size, num_classes, batch, data
):
    seeded = torch.Generator().manual_seed(0)
    gan = ResNetGAN(
        image_size, 2, 6, 2, max_width=8, num_classes=num_classes, init_generator=seeded
    )
    labels = torch.tensor(
        data.draw(st.lists(st.integers(0, num_classes - 1), min_size=batch, max_size=batch))
    )
    images = gan.generator(gan.sample_noise(batch, generator=seeded), labels)
    assert images.shape == (batch, 2, image_size, image_size)
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits = gan.discriminator(images, labels)
    assert logits.shape == (batch,)
    logits.sum().backward()
    for network in (gan.generator, gan.discriminator):
        for name, parameter in network.named_parameters():
            assert parameter.grad is not None, f"no gradient reaches {name}"
    norms = [m for m in gan.generator.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 2 * len(gan.generator.blocks)
    # Only the rows of the labels used get a gradient.
    used = torch.zeros(num_classes, dtype=torch.bool)
    used[labels] = True
    assert torch.all(norms[0].scale.weight.grad[~used] == 0)  # type: ignore[index]


def test_the_label_changes_the_image_and_the_logit():
    gan = tiny(num_classes=3).eval()
    z = gan.sample_noise(1, generator=torch.Generator().manual_seed(0)).repeat(3, 1)
    with torch.no_grad():
        nn.init.normal_(gan.generator.blocks[0].norm1.shift.weight)  # make the classes differ
        images = gan.generator(z, torch.arange(3))
        assert not torch.equal(images[0], images[1])
        same = images[:1].repeat(3, 1, 1, 1)
        logits = gan.discriminator(same, torch.arange(3))
        assert len(set(logits.tolist())) == 3  # the projection term differs per class


@pytest.mark.parametrize(
    ("network", "call", "error", "message"),
    [
        ("generator", lambda g: g.generator(g.sample_noise(2)), ValueError,
         r"`labels` are required"),
        ("discriminator", lambda g: g.discriminator(torch.zeros(2, 1, 12, 12)), ValueError,
         r"`labels` are required"),
        ("generator", lambda g: g.generator(g.sample_noise(2), torch.tensor([0, 3])), ValueError,
         r"`labels` must lie in \[0, 3\), got values from 0 to 3"),
        ("discriminator", lambda g: g.discriminator(torch.zeros(2, 1, 12, 12), torch.zeros(2)),
         TypeError, r"`labels` must be integer class indices"),
        ("generator", lambda g: g.generator(g.sample_noise(2), torch.tensor([0])), ValueError,
         r"`labels` must be shaped \(2,\), got \(1,\)"),
    ],
)  # fmt: skip
def test_conditional_networks_check_their_labels(network, call, error, message):
    with pytest.raises(error, match=message):
        call(tiny(num_classes=3))


def test_an_unconditional_pair_refuses_labels():
    gan = tiny()
    with pytest.raises(ValueError, match="`labels` given to an unconditional model"):
        gan.discriminator(torch.zeros(2, 1, 12, 12), torch.tensor([0, 1]))


def test_every_discriminator_layer_is_spectrally_normalised_and_none_of_g():
    gan = tiny(num_classes=4, width=3)
    weighted = [
        m
        for m in gan.discriminator.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))
    ]
    assert weighted and all(parametrize.is_parametrized(m, "weight") for m in weighted)
    assert not any(parametrize.is_parametrized(m) for m in gan.generator.modules())
    assert not any(
        isinstance(m, nn.modules.batchnorm._NormBase) for m in gan.discriminator.modules()
    )
    with torch.no_grad():
        for _ in range(30):  # power iterations run in training forwards
            gan.discriminator(torch.randn(2, 1, 12, 12), torch.tensor([0, 1]))
    for m in weighted:
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), 2)
        assert sigma.item() == pytest.approx(1.0, abs=0.02)


def test_construction_is_reproducible_with_init_generator():
    torch.manual_seed(1)
    a = tiny(num_classes=2)
    torch.manual_seed(2)  # a different global state: the power iteration's start still agrees
    b = tiny(num_classes=2)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_config_rebuilds_the_pair_and_is_registered_as_resnet():
    gan = ResNetGAN(image_size=13, channels=2, latent_dim=5, width=3, max_width=8, depth=2)
    assert gan.config == dict(
        image_size=13, channels=2, latent_dim=5, width=3, max_width=8, depth=2
    )
    assert "resnet" in architectures() and ResNetGAN.arch == "resnet"
    twin = build_gan("resnet", gan.config)
    assert type(twin) is ResNetGAN
    assert [p.shape for p in gan.parameters()] == [p.shape for p in twin.parameters()]
    assert tiny(num_classes=7).config["num_classes"] == 7


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"image_size": 4}, ValueError, r"`image_size` must be >= 5, got 4"),
        ({"image_size": 28.0}, TypeError, r"`image_size` must be an integer, got 28.0 \(float\)"),
        ({"channels": 0}, ValueError, r"`channels` must be >= 1, got 0"),
        ({"latent_dim": 0}, ValueError, r"`latent_dim` must be >= 1, got 0"),
        ({"width": 0}, ValueError, r"`width` must be >= 1, got 0"),
        ({"max_width": 0}, ValueError, r"`max_width` must be >= 1, got 0"),
        ({"depth": 0}, ValueError, r"`depth` must be >= 1, got 0"),
        ({"depth": 1.5}, TypeError, r"`depth` must be an integer, got 1.5"),
        ({"num_classes": 0}, ValueError, r"`num_classes` must be >= 1, got 0"),
        ({"init": "uniform"}, ValueError, r"`scheme` must be one of .*, got 'uniform'"),
    ],
)
def test_bad_arguments_name_the_argument_rule_and_value(kwargs, error, message):
    with pytest.raises(error, match=message):
        ResNetGAN(**kwargs)


def data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return images, torch.arange(n) % 3


def trainer(gan: ResNetGAN, steps: int, **kwargs) -> Trainer:
    return Trainer(
        gan, max_steps=steps, seed=5, device="cpu", progress=False, callbacks=[EMA(0.9)], **kwargs
    )


@pytest.mark.parametrize("num_classes", [None, 3])
def test_trainer_smoke_exact_resume_and_load_gan(tmp_path, num_classes):
    images, labels = data()
    batches = images if num_classes is None else (images, labels)
    gan = tiny(num_classes=num_classes)
    before = copy.deepcopy(gan)
    full = trainer(gan, 5, loss="hinge")
    state = full.fit(batches, batch_size=8)
    assert state.step == 5
    assert all(torch.isfinite(torch.tensor(v)) for v in state.metrics.values())
    for network in ("generator", "discriminator"):
        old = dict(getattr(before, network).named_parameters())
        moved = [not torch.equal(p, old[n]) for n, p in getattr(gan, network).named_parameters()]
        assert all(moved), f"some {network} parameters did not move"

    half = trainer(tiny(num_classes=num_classes), 2, loss="hinge")
    half.fit(batches, batch_size=8)
    half.save_checkpoint(str(tmp_path / "half.ckpt"))
    resumed_gan = tiny(num_classes=num_classes, init_generator=None)
    trainer(resumed_gan, 5, loss="hinge").fit(batches, str(tmp_path / "half.ckpt"), batch_size=8)
    for (name, a), b in zip(
        gan.state_dict().items(), resumed_gan.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), f"{name} differs after resume"  # spectral-norm buffers too

    full.save_checkpoint(str(tmp_path / "full.ckpt"))
    loaded = load_gan(tmp_path / "full.ckpt")
    assert type(loaded) is ResNetGAN and loaded.config == gan.config
    for (name, a), b in zip(loaded.state_dict().items(), gan.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    averaged = load_gan(tmp_path / "full.ckpt", ema=True)
    assert averaged.image_shape == (1, 12, 12)


def test_one_row_or_column_weights_are_divided_by_their_norm_and_compile():
    # A grayscale image's 1x1 shortcut (one input column) and the one-logit linear layer
    # (one row): their only singular value is the norm, taken exactly, with no power
    # iteration, whose one-element vector broke torch.compile's backward after two
    # discriminator passes (real, fake).
    net = spectral_norm_(nn.Sequential(nn.Conv2d(1, 4, 1), nn.Flatten(), nn.Linear(64, 1)))
    for layer in (net[0], net[2]):
        assert not any(name.endswith(("_u", "_v")) for name, _ in layer.named_buffers())
        sigma = torch.linalg.matrix_norm(layer.weight.flatten(1), 2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-6)
    compiled = torch.compile(net)
    for _ in range(2):
        real, fake = compiled(torch.randn(3, 1, 4, 4)), compiled(torch.randn(3, 1, 4, 4))
        (real.sum() - fake.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"image_size": 4096},
            r"ResNetGAN\(image_size=4096, channels=1, latent_dim=128, width=64, max_width=None, "
            r"depth=1\) would have [\d,]+ parameters, over the bound of 2,000,000,000 "
            r"\(ganlib.models.layers.MAX_PARAMETERS\)",
        ),
        ({"width": 10**5}, r"width=100000, .* would have [\d,]+ parameters, over the bound"),
        (
            {"image_size": 16384, "width": 4, "max_width": 4},
            r"ResNetGAN\(image_size=16384, .*\) would hold [\d,]+ activations for one image",
        ),
    ],
)
def test_a_pair_too_large_to_train_is_refused_before_it_is_allocated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNetGAN(**kwargs)


def test_the_bound_counts_the_parameters_it_builds(monkeypatch):
    from ganlib.models import layers

    parameters = sum(
        p.numel() for p in ResNetGAN(image_size=12, width=4, num_classes=2).parameters()
    )
    monkeypatch.setattr(layers, "MAX_PARAMETERS", parameters - 1)
    with pytest.raises(ValueError, match=f"would have {parameters:,} parameters"):
        ResNetGAN(image_size=12, width=4, num_classes=2)
    monkeypatch.setattr(layers, "MAX_PARAMETERS", parameters)
    assert sum(
        p.numel() for p in ResNetGAN(image_size=12, width=4, num_classes=2).parameters()
    ) == (parameters)

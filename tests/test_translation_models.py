"""Translation networks against the reference: with the same weights, ganlib's ResNet-blocks
and U-Net generators and PatchGAN discriminator equal the networks of
junyanz/pytorch-CycleGAN-and-pix2pix's ``models/networks.py``, output for output, for any
size the rules allow; the rules refuse the rest by name; the registry rebuilds them."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn import init

from ganlib.models import (
    PatchGANDiscriminator,
    ResNetTranslator,
    UNetTranslator,
    build_translation_network,
    patch_receptive_field,
    register_translation_network,
    translation_networks,
)

# ----------------------------------------------------------------------------------------
# A transcription of the reference's models/networks.py (its master branch: InstanceNorm
# without affine or running statistics), kept as close to the original as the linter lets
# it be, with its names. Only the classes the comparison needs.


def get_norm_layer(norm_type="instance"):
    if norm_type == "batch":
        norm_layer = functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    elif norm_type == "instance":
        norm_layer = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    else:
        raise NotImplementedError(f"normalization layer [{norm_type}] is not found")
    return norm_layer


def init_weights(net, init_type="normal", init_gain=0.02):
    def init_func(m):
        classname = m.__class__.__name__
        if hasattr(m, "weight") and (
            classname.find("Conv") != -1 or classname.find("Linear") != -1
        ):
            init.normal_(m.weight.data, 0.0, init_gain)
            if hasattr(m, "bias") and m.bias is not None:
                init.constant_(m.bias.data, 0.0)
        elif classname.find("BatchNorm2d") != -1:
            init.normal_(m.weight.data, 1.0, init_gain)
            init.constant_(m.bias.data, 0.0)

    net.apply(init_func)


class ResnetGenerator(nn.Module):
    def __init__(
        self,
        input_nc,
        output_nc,
        ngf=64,
        norm_layer=nn.BatchNorm2d,
        use_dropout=False,
        n_blocks=6,
        padding_type="reflect",
    ):
        assert n_blocks >= 0
        super().__init__()
        if type(norm_layer) == functools.partial:  # noqa: E721
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d

        model = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]

        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2**i
            model += [
                nn.Conv2d(
                    ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias
                ),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]

        mult = 2**n_downsampling
        for _i in range(n_blocks):
            model += [
                ResnetBlock(
                    ngf * mult,
                    padding_type=padding_type,
                    norm_layer=norm_layer,
                    use_dropout=use_dropout,
                    use_bias=use_bias,
                )
            ]

        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [
                nn.ConvTranspose2d(
                    ngf * mult,
                    int(ngf * mult / 2),
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=use_bias,
                ),
                norm_layer(int(ngf * mult / 2)),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3)]
        model += [nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
        model += [nn.Tanh()]

        self.model = nn.Sequential(*model)

    def forward(self, input):
        return self.model(input)


class ResnetBlock(nn.Module):
    def __init__(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        super().__init__()
        self.conv_block = self.build_conv_block(
            dim, padding_type, norm_layer, use_dropout, use_bias
        )

    def build_conv_block(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        conv_block = []
        p = 0
        if padding_type == "reflect":
            conv_block += [nn.ReflectionPad2d(1)]
        else:
            raise NotImplementedError(f"padding [{padding_type}] is not implemented")

        conv_block += [
            nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias),
            norm_layer(dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            conv_block += [nn.Dropout(0.5)]

        p = 0
        conv_block += [nn.ReflectionPad2d(1)]
        conv_block += [
            nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias),
            norm_layer(dim),
        ]

        return nn.Sequential(*conv_block)

    def forward(self, x):
        out = x + self.conv_block(x)
        return out


class UnetGenerator(nn.Module):
    def __init__(
        self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False
    ):
        super().__init__()
        unet_block = UnetSkipConnectionBlock(
            ngf * 8, ngf * 8, input_nc=None, submodule=None, norm_layer=norm_layer, innermost=True
        )
        for _i in range(num_downs - 5):
            unet_block = UnetSkipConnectionBlock(
                ngf * 8,
                ngf * 8,
                input_nc=None,
                submodule=unet_block,
                norm_layer=norm_layer,
                use_dropout=use_dropout,
            )
        unet_block = UnetSkipConnectionBlock(
            ngf * 4, ngf * 8, input_nc=None, submodule=unet_block, norm_layer=norm_layer
        )
        unet_block = UnetSkipConnectionBlock(
            ngf * 2, ngf * 4, input_nc=None, submodule=unet_block, norm_layer=norm_layer
        )
        unet_block = UnetSkipConnectionBlock(
            ngf, ngf * 2, input_nc=None, submodule=unet_block, norm_layer=norm_layer
        )
        self.model = UnetSkipConnectionBlock(
            output_nc,
            ngf,
            input_nc=input_nc,
            submodule=unet_block,
            outermost=True,
            norm_layer=norm_layer,
        )

    def forward(self, input):
        return self.model(input)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(
        self,
        outer_nc,
        inner_nc,
        input_nc=None,
        submodule=None,
        outermost=False,
        innermost=False,
        norm_layer=nn.BatchNorm2d,
        use_dropout=False,
    ):
        super().__init__()
        self.outermost = outermost
        if type(norm_layer) == functools.partial:  # noqa: E721
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)

        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            down = [downconv]
            up = [uprelu, upconv, nn.Tanh()]
            model = [*down, submodule, *up]
        elif innermost:
            upconv = nn.ConvTranspose2d(
                inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
            )
            down = [downrelu, downconv]
            up = [uprelu, upconv, upnorm]
            model = down + up
        else:
            upconv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
            )
            down = [downrelu, downconv, downnorm]
            up = [uprelu, upconv, upnorm]

            if use_dropout:
                model = [*down, submodule, *up, nn.Dropout(0.5)]
            else:
                model = [*down, submodule, *up]

        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        else:
            return torch.cat([x, self.model(x)], 1)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d):
        super().__init__()
        if type(norm_layer) == functools.partial:  # noqa: E721
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d

        kw = 4
        padw = 1
        sequence = [
            nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        nf_mult = 1
        nf_mult_prev = 1
        for n in range(1, n_layers):
            nf_mult_prev = nf_mult
            nf_mult = min(2**n, 8)
            sequence += [
                nn.Conv2d(
                    ndf * nf_mult_prev,
                    ndf * nf_mult,
                    kernel_size=kw,
                    stride=2,
                    padding=padw,
                    bias=use_bias,
                ),
                norm_layer(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]

        nf_mult_prev = nf_mult
        nf_mult = min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(
                ndf * nf_mult_prev,
                ndf * nf_mult,
                kernel_size=kw,
                stride=1,
                padding=padw,
                bias=use_bias,
            ),
            norm_layer(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
        ]

        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, input):
        return self.model(input)


# ----------------------------------------------------------------------------------------


def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer across in registration order: the two networks
    must hold the same tensors in the same order, shape for shape."""
    theirs, ours = list(source.state_dict().values()), target.state_dict()
    assert len(theirs) == len(ours), f"{len(theirs)} tensors against {len(ours)}"
    for (name, mine), value in zip(ours.items(), theirs, strict=True):
        assert mine.shape == value.shape, f"{name}: {tuple(mine.shape)} vs {tuple(value.shape)}"
    target.load_state_dict(dict(zip(ours, theirs, strict=True)))


def assert_same_outputs(reference: nn.Module, ours: nn.Module, inputs: torch.Tensor) -> None:
    """Equal outputs in train mode (batch statistics; dropout off) and, after one training
    forward has moved BatchNorm's running statistics, in eval mode; equal input gradients."""
    copy_weights(reference, ours)
    for net in (reference, ours):
        for module in net.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0  # (a draw per element: equal streams are not the point here)
    a, b = inputs.clone().requires_grad_(True), inputs.clone().requires_grad_(True)
    out_ref, out = reference.train()(a), ours.train()(b)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-6)
    out_ref.square().sum().backward()
    out.square().sum().backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(inputs), reference.eval()(inputs), rtol=0, atol=1e-6)


def _images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    return (
        torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    )


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_resnet_generator_equals_the_reference(norm):
    torch.manual_seed(0)
    reference = ResnetGenerator(3, 2, 8, get_norm_layer(norm), n_blocks=3)
    ours = ResNetTranslator(32, 3, 2, width=8, blocks=3, norm=norm)
    assert_same_outputs(reference, ours, _images(3, 3, 32))
    assert ours(_images(2, 3, 32)).shape == (2, 2, 32, 32)


@pytest.mark.parametrize(("size", "downsamplings"), [(32, 5), (64, 6), (128, 7)])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_unet_generator_equals_the_reference(size, downsamplings, norm):
    torch.manual_seed(0)
    reference = UnetGenerator(1, 3, downsamplings, 4, get_norm_layer(norm), use_dropout=True)
    ours = UNetTranslator(size, 1, 3, width=4, downsamplings=downsamplings, norm=norm, dropout=True)
    # Dropout sits in the 8x-width middle levels only, as in the reference.
    dropouts = sum(isinstance(m, nn.Dropout) for m in reference.modules())
    assert sum(isinstance(m, nn.Dropout) for m in ours.modules()) == dropouts
    assert dropouts == downsamplings - 5
    assert_same_outputs(reference, ours, _images(2, 1, size))


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_patchgan_equals_the_reference(layers, norm):
    torch.manual_seed(0)
    reference = NLayerDiscriminator(4, 4, layers, get_norm_layer(norm))
    ours = PatchGANDiscriminator(64, 4, width=4, layers=layers, norm=norm)
    assert_same_outputs(reference, ours, _images(3, 4, 64))


def test_a_seed_gives_the_references_initial_weights():
    """Built after the same seed, ours start where the reference's init_weights leaves its
    networks (N(0, 0.02) filters, BatchNorm N(1, 0.02), zero biases)."""
    pairs = [
        (lambda: ResnetGenerator(3, 3, 4, get_norm_layer("instance"), n_blocks=2),
         lambda: ResNetTranslator(16, 3, 3, width=4, blocks=2)),
        (lambda: UnetGenerator(3, 3, 5, 4, get_norm_layer("batch")),
         lambda: UNetTranslator(32, 3, 3, width=4)),
        (lambda: NLayerDiscriminator(6, 4, 3, get_norm_layer("batch")),
         lambda: PatchGANDiscriminator(32, 6, width=4)),
    ]  # fmt: skip
    for build_reference, build_ours in pairs:
        torch.manual_seed(3)
        reference = build_reference()
        init_weights(reference)
        torch.manual_seed(3)
        ours = build_ours()
        for (name, mine), theirs in zip(
            ours.state_dict().items(), reference.state_dict().values(), strict=True
        ):
            assert torch.equal(mine, theirs), name
        weights = [m.weight for m in ours.modules() if isinstance(m, nn.Conv2d)]
        assert 0.015 < float(torch.cat([w.detach().flatten() for w in weights]).std()) < 0.025


@given(
    quarter=st.integers(2, 10),
    in_channels=st.integers(1, 3),
    out_channels=st.integers(1, 3),
    blocks=st.integers(0, 2),
)
def test_resnet_generator_any_multiple_of_four(quarter, in_channels, out_channels, blocks):
    size = 4 * quarter
    torch.manual_seed(size)
    reference = ResnetGenerator(
        in_channels, out_channels, 2, get_norm_layer("instance"), n_blocks=blocks
    )
    ours = ResNetTranslator(size, in_channels, out_channels, width=2, blocks=blocks)
    assert_same_outputs(reference, ours, _images(2, in_channels, size))
    assert ours(_images(1, in_channels, size)).shape == (1, out_channels, size, size)


@given(
    odd=st.sampled_from([1, 3, 5, 7]),
    downsamplings=st.integers(1, 5),
    in_channels=st.integers(1, 3),
    out_channels=st.integers(1, 3),
    norm=st.sampled_from(["batch", "instance"]),
)
def test_unet_any_size_the_rule_allows(odd, downsamplings, in_channels, out_channels, norm):
    size = odd * 2**downsamplings
    net = UNetTranslator(
        size, in_channels, out_channels, width=2, downsamplings=downsamplings, norm=norm
    )
    # (a bottleneck of 1x1 with batch statistics needs a batch of more than one)
    out = net(_images(2, in_channels, size))
    assert out.shape == (2, out_channels, size, size)
    assert float(out.detach().abs().max()) <= 1.0
    # The default depth halves as often as the size allows.
    assert UNetTranslator(size, in_channels, width=2).config["downsamplings"] >= downsamplings
    if downsamplings >= 5:  # where the reference is defined, it agrees
        torch.manual_seed(size)
        reference = UnetGenerator(in_channels, out_channels, downsamplings, 2, get_norm_layer(norm))
        assert_same_outputs(reference, net, _images(2, in_channels, size))


@given(layers=st.integers(1, 4), extra=st.integers(0, 20), channels=st.integers(1, 6))
def test_patchgan_any_size_the_rule_allows(layers, extra, channels):
    size = 3 * 2**layers + extra
    torch.manual_seed(size)
    reference = NLayerDiscriminator(channels, 2, layers, get_norm_layer("batch"))
    ours = PatchGANDiscriminator(size, channels, width=2, layers=layers)
    assert_same_outputs(reference, ours, _images(2, channels, size))
    side = size // 2**layers - 2
    assert ours(_images(2, channels, size)).shape == (2, 1, side, side)


def test_patchgan_sees_70_pixel_patches_at_three_layers():
    assert [patch_receptive_field(n) for n in (1, 2, 3, 4)] == [16, 34, 70, 142]
    net = PatchGANDiscriminator(128, 1, width=2, layers=3).eval()
    assert net.receptive_field == 70
    image = torch.randn(1, 1, 128, 128, requires_grad=True)
    scores = net(image)  # (1, 1, 14, 14)
    scores[0, 0, 7, 7].backward()
    assert image.grad is not None
    rows = image.grad[0, 0].abs().sum(1).nonzero().flatten()
    cols = image.grad[0, 0].abs().sum(0).nonzero().flatten()
    assert int(rows[-1] - rows[0]) + 1 == 70 and int(cols[-1] - cols[0]) + 1 == 70


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ResNetTranslator(30), r"`image_size` must be a multiple of 4 and >= 8 .* got 30"),
        (lambda: ResNetTranslator(4), r"multiple of 4 and >= 8 .* got 4"),
        (
            lambda: UNetTranslator(28, downsamplings=3),
            r"`image_size` must be divisible by 2 \*\* downsamplings = 8 .* got 28",
        ),
        (lambda: UNetTranslator(32, downsamplings=0), r"`downsamplings` must be >= 1, got 0"),
        (
            lambda: PatchGANDiscriminator(23, layers=3),
            r"`image_size` must be >= 24 for a PatchGAN of 3 layers .* got 23",
        ),
        (lambda: PatchGANDiscriminator(64, layers=0), r"`layers` must be >= 1, got 0"),
        (
            lambda: ResNetTranslator(32, norm="group"),
            r"`norm` must be one of \['instance', 'batch'\], got 'group'",
        ),
        (lambda: UNetTranslator(32, width=0), r"`width` must be >= 1, got 0"),
        (lambda: ResNetTranslator(32, blocks=-1), r"`blocks` must be >= 0, got -1"),
    ],
)
def test_sizes_the_rules_refuse_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_registry_rebuilds_each_network_from_its_config():
    assert {"resnet", "unet", "patchgan"} <= set(translation_networks())
    for net in (
        ResNetTranslator(16, 1, 3, width=2, blocks=1),
        UNetTranslator(16, 3, 1, width=2, dropout=True),
        PatchGANDiscriminator(32, 2, width=2, layers=2, norm="instance"),
    ):
        again = build_translation_network(type(net).kind, net.config)
        assert type(again) is type(net) and again.config == net.config
        assert {k: v.shape for k, v in again.state_dict().items()} == {
            k: v.shape for k, v in net.state_dict().items()
        }
    with pytest.raises(ValueError, match=r"unknown translation network 'vit'; registered: \["):
        build_translation_network("vit", {})
    with pytest.raises(ValueError, match=r"'unet' has no setting 'blocks'"):
        build_translation_network("unet", {"image_size": 32, "blocks": 3})
    with pytest.raises(ValueError, match=r"translation network 'unet' is already registered"):
        register_translation_network("unet", ResNetTranslator)

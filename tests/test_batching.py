"""BatchSource delivers batches in the networks' dtype: a float64 pair trains as it did in 0.1,
step for step the same as the pytorch/examples loop written by hand."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset, TensorDataset

from conftest import images, trainer
from ganlib import DCGAN, Trainer
from ganlib.batching import BatchSource


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """PyTorch's default dtype for new tensors and parameters, restored afterwards."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def source(data, dtype=torch.float32, **kwargs) -> BatchSource:
    settings = dict(batch_size=4, shuffle=False, drop_last=False, num_workers=0, seed=0)
    return BatchSource(data, device=torch.device("cpu"), dtype=dtype, **{**settings, **kwargs})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("form", ["tensor", "pair", "dataset"])
def test_floating_batches_come_in_the_dtype_asked_for(dtype, form):
    images = torch.rand(6, 1, 5, 5, dtype=torch.float64)
    labels = torch.arange(6)
    data = {
        "tensor": images,
        "pair": (images, labels),
        "dataset": TensorDataset(images, labels),
    }[form]
    batches = list(source(data, dtype).epoch(0))
    assert [tuple(b.shape) for b, _ in batches] == [(4, 1, 5, 5), (2, 1, 5, 5)]
    assert all(b.dtype == dtype for b, _ in batches)
    torch.testing.assert_close(torch.cat([b for b, _ in batches]), images.to(dtype))
    assert all(y is None or y.dtype == torch.int64 for _, y in batches)  # labels untouched


def test_integer_images_are_left_for_the_data_checks_and_dtype_is_checked():
    pixels = torch.randint(0, 256, (4, 1, 5, 5), dtype=torch.uint8)
    [(batch, _)] = source(pixels, torch.float64).epoch(0)
    assert batch.dtype == torch.uint8  # check_data refuses it, naming the dtype
    with pytest.raises(TypeError, match=r"`dtype` must be a floating-point torch.dtype, got "):
        source(pixels, torch.int64)
    with pytest.raises(TypeError, match=r"`dtype` must be a floating-point .*got 'float64'"):
        source(pixels, "float64")


def test_the_trainer_feeds_float32_networks_float32_batches():
    seen = []
    gan = DCGAN(image_size=8, latent_dim=4, width=2)
    gan.discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    images = torch.rand(8, 1, 8, 8, dtype=torch.float64) * 2 - 1  # numpy's default dtype
    Trainer(gan, max_steps=1, progress=False, seed=0).fit(images, batch_size=4)
    assert seen and set(seen) == {torch.float32}


def pytorch_examples_loop(gan: DCGAN, images: torch.Tensor, steps: int, batch: int) -> None:
    """pytorch/examples' DCGAN training loop (dcgan/main.py), with logits and
    BCE-with-logits for its Sigmoid and BCELoss, batches in file order, latents from a
    generator seeded as the Trainer seeds its noise stream (``seed``: 0)."""
    net_g, net_d = gan.generator, gan.discriminator
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    noise_stream = torch.Generator().manual_seed(0)
    for step in range(steps):
        real = images[step * batch : (step + 1) * batch]
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        net_d.zero_grad()
        output = net_d(real)
        error_d_real = F.binary_cross_entropy_with_logits(output, torch.ones_like(output))
        error_d_real.backward()
        noise = torch.randn(batch, gan.latent_dim, generator=noise_stream)
        fake = net_g(noise)
        output = net_d(fake.detach())
        error_d_fake = F.binary_cross_entropy_with_logits(output, torch.zeros_like(output))
        error_d_fake.backward()
        optimizer_d.step()
        # (2) Update G: maximize log(D(G(z)))
        net_g.zero_grad()
        output = net_d(fake)
        error_g = F.binary_cross_entropy_with_logits(output, torch.ones_like(output))
        error_g.backward()
        optimizer_g.step()


def test_a_float64_dcgan_trains_as_the_pytorch_examples_loop_in_float64():
    steps, batch = 4, 4
    with default_dtype(torch.float64):  # parameters, data and latents in float64, as in 0.1
        # Bias-free, as pytorch/examples' DCGAN: a bias before BatchNorm has no true gradient,
        # so Adam would scale the two loops' different rounding noise into its steps.
        gan = DCGAN(12, latent_dim=8, width=4, bias=False, init_generator=torch.Generator())
        images = torch.rand(steps * batch, 1, 12, 12, generator=torch.Generator()) * 2 - 1
        by_hand, start = copy.deepcopy(gan), copy.deepcopy(gan)
        trainer = Trainer(gan, loss="bce", max_steps=steps, seed=0, progress=False)
        state = trainer.fit(images, batch_size=batch, shuffle=False)
        pytorch_examples_loop(by_hand, images, steps, batch)
    assert state.step == steps
    assert {t.dtype for t in gan.state_dict().values() if t.is_floating_point()} == {torch.float64}
    trained, expected, initial = gan.state_dict(), by_hand.state_dict(), start.state_dict()
    assert list(trained) == list(expected)
    for name, value in trained.items():
        # Weights and BatchNorm statistics; the two loops sum D's two losses in another order.
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-12, msg=name)
    for name, parameter in gan.named_parameters():  # every one moved: not a vacuous match
        assert float((parameter.detach() - initial[name]).abs().max()) > 1e-4, name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_cast(dtype):
    assert trainer([]).fit(images().to(dtype), batch_size=8).step == 2


def test_an_empty_iterable_dataset_is_named():
    class Empty(IterableDataset):
        def __iter__(self):
            return iter([])

    with pytest.raises(ValueError, match="`data` is empty"):
        trainer([]).fit(Empty(), batch_size=8)

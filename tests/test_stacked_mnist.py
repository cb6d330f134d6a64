"""Stacked MNIST: the data set (deterministic, modes right), the named run data, and the
mode count (exact on known images; real stacks cover the 1,000 modes)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from ganlib.cli import main
from ganlib.data import STACKED_MNIST_MODES, fake_mnist, load_stacked_mnist, stack_mnist
from ganlib.data.sources import load_run_data
from ganlib.metrics import stacked_mnist_modes


def _digit_images(digits: Tensor) -> Tensor:
    """One flat (N, 1, 28, 28) image per digit, its brightness encoding the digit."""
    return (digits.float() / 4.5 - 1).view(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone()


class BrightnessClassifier(nn.Module):
    """Reads the digit _digit_images encoded: logits one-hot at that digit."""

    def forward(self, images: Tensor) -> Tensor:
        digits = ((images.mean((1, 2, 3)) + 1) * 4.5).round().long()
        return nn.functional.one_hot(digits, 10).float()


def test_stack_mnist_is_seeded_and_labels_each_image_by_its_channels():
    labels = torch.arange(50) % 10
    images = _digit_images(labels)
    stacked, modes = stack_mnist(images, labels, num_samples=300, seed=3)
    assert stacked.shape == (300, 3, 28, 28) and modes.shape == (300,)
    assert modes.dtype == torch.long and int(modes.min()) >= 0 and int(modes.max()) <= 999
    # Channel i of image n is digit (mode // 10**(2-i)) % 10, as its brightness says.
    digits = ((stacked.mean((2, 3)) + 1) * 4.5).round().long()  # (300, 3)
    assert torch.equal(digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2], modes)
    again, modes_again = stack_mnist(images, labels, num_samples=300, seed=3)
    assert torch.equal(stacked, again) and torch.equal(modes, modes_again)
    other, _ = stack_mnist(images, labels, num_samples=300, seed=4)
    assert not torch.equal(stacked, other)


def test_stack_mnist_draws_channels_independently():
    labels = torch.arange(1000) % 10
    _, modes = stack_mnist(_digit_images(labels), labels, num_samples=20_000)
    counts = torch.bincount(modes, minlength=1000)
    assert int((counts > 0).sum()) == 1000  # 20 per mode expected; none missed
    for place in (100, 10, 1):  # each channel's digit is uniform on its own
        share = torch.bincount((modes // place) % 10, minlength=10).double() / len(modes)
        assert float((share - 0.1).abs().max()) < 0.01


@pytest.mark.parametrize(
    ("images", "labels", "kwargs", "match"),
    [
        (torch.zeros(4, 3, 28, 28), torch.zeros(4, dtype=torch.long), {}, r"\(N, 1, 28, 28\)"),
        (torch.zeros(4, 1, 28, 28), torch.zeros(3, dtype=torch.long), {}, r"shaped \(4,\)"),
        (torch.zeros(4, 1, 28, 28), torch.full((4,), 10), {}, "digits in 0..9"),
        (torch.zeros(4, 1, 28, 28), torch.zeros(4), {}, "integer digits"),
        (torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), {"num_samples": 0}, ">= 1"),
    ],
)
def test_stack_mnist_names_what_is_wrong(images, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stack_mnist(images, labels, **kwargs)


def test_load_stacked_mnist_reads_an_mnist_split(tmp_path):
    fake_mnist(tmp_path, count=40)
    images, modes = load_stacked_mnist(tmp_path, "test", num_samples=100, download=False)
    assert images.shape == (100, 3, 28, 28) and images.dtype == torch.float32
    assert float(images.min()) >= -1 and float(images.max()) <= 1
    assert modes.shape == (100,)


def test_stacked_mnist_is_a_named_run_data_set(tmp_path):
    fake_mnist(tmp_path, count=40)
    data = load_run_data("stacked-mnist", data_dir=tmp_path, download=False)
    assert (data.image_size, data.channels, data.num_classes) == (28, 3, STACKED_MNIST_MODES)
    assert data.images.shape == (60_000, 3, 28, 28) and data.labels is not None
    assert data.fingerprint == {
        "source": "stacked-mnist",
        "split": "train",
        "images": 60_000,
        "size": 28,
        "channels": 3,
        "seed": 0,
    }
    assert data.for_fit(False) is data.images
    with pytest.raises(ValueError, match=r"28x28 with 3 channels: .* got image_size=32"):
        load_run_data("stacked-mnist", data_dir=tmp_path, download=False, image_size=32)


def test_a_conditional_stacked_mnist_run_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="conditional run over its 1000 modes is not supported"):
        load_run_data("stacked-mnist", data_dir=tmp_path, conditional=True)
    argv = ["train", "stacked-mnist", "--conditional", "--data-dir", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert "leave --conditional off" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_mode_count_and_kl_of_known_images():
    classifier = BrightnessClassifier()
    triples = torch.cartesian_prod(*[torch.arange(10)] * 3)  # (1000, 3): every mode once
    every = _digit_images(triples.flatten()).view(1000, 3, 28, 28)
    result = stacked_mnist_modes(every, classifier, batch_size=64)
    assert result == {"modes": 1000, "kl_to_uniform": 0.0, "num_samples": 1000}
    # Half the images in mode 0 (digits 0, 0, 0), half spread over the other 999 once.
    skewed = torch.cat([every[:1].expand(999, -1, -1, -1), every[1:]])
    result = stacked_mnist_modes(skewed, classifier)
    expected = 0.5 * math.log(0.5 * 1000) + 999 * (1 / 1998) * math.log(1000 / 1998)
    assert result["modes"] == 1000 and result["num_samples"] == 1998
    assert result["kl_to_uniform"] == pytest.approx(expected, rel=1e-12)
    # The mode is red * 100 + green * 10 + blue: (7, 2, 5) is mode 725, not 527.
    one = _digit_images(torch.tensor([7, 2, 5])).view(1, 3, 28, 28)
    batches = [one.expand(3, -1, -1, -1), every[725:726]]
    assert stacked_mnist_modes(batches, classifier)["modes"] == 1


def test_a_collapsed_generator_covers_one_mode_with_kl_ln_1000():
    image = torch.rand(1, 3, 28, 28) * 2 - 1
    result = stacked_mnist_modes(image.expand(300, -1, -1, -1))  # the shipped classifier
    assert result["modes"] == 1 and result["num_samples"] == 300
    assert result["kl_to_uniform"] == pytest.approx(math.log(1000), rel=1e-12)


@pytest.mark.parametrize(
    ("images", "kwargs", "match", "error"),
    [
        (
            torch.zeros(4, 1, 28, 28),
            {},
            r"must be shaped \(N, 3, 28, 28\), got \(4, 1, 28, 28\)",
            ValueError,
        ),
        ([torch.zeros(4, 3, 32, 32)], {}, r"\(N, 3, 28, 28\), got \(4, 3, 32, 32\)", ValueError),
        (torch.zeros(4, 3, 28, 28, dtype=torch.uint8), {}, "floating point", ValueError),
        (torch.full((4, 3, 28, 28), 2.0), {}, r"\[-1, 1\]", ValueError),
        (torch.full((4, 3, 28, 28), float("nan")), {}, "NaN", ValueError),
        (torch.zeros(0, 3, 28, 28), {}, "empty", ValueError),
        ([], {}, "empty", ValueError),
        (torch.zeros(4, 3, 28, 28), {"batch_size": 0}, "`batch_size` must be >= 1", ValueError),
    ],
)
def test_mode_count_names_what_is_wrong(images, kwargs, match, error):
    with pytest.raises(error, match=match):
        stacked_mnist_modes(images, BrightnessClassifier(), **kwargs)


def test_real_stacked_mnist_covers_every_mode_with_kl_near_zero(mnist_root):
    # 8,000 stacks (24,000 digits through the classifier) keep the suite quick; the
    # benchmark counts 26,000 as the papers do.
    count = 8_000
    images, modes = load_stacked_mnist(mnist_root, "train", download=False)
    real = stacked_mnist_modes(images[:count])  # the shipped classifier
    assert real["num_samples"] == count
    share = torch.bincount(modes[:count], minlength=1000).double() / count
    true_modes = int((share > 0).sum())
    assert true_modes >= 990  # 8 per mode on average: a few may be missing from the draw
    # The classifier's errors (~0.5% of digits) barely move the count or the KL, which
    # here is mostly sampling: ~(1000 - 1) / (2 * 8,000) = 0.06 nats from uniform.
    assert abs(real["modes"] - true_modes) <= 5
    present = share[share > 0]
    true_kl = float((present * (present * 1000).log()).sum())
    assert real["kl_to_uniform"] == pytest.approx(true_kl, abs=0.01)
    assert real["kl_to_uniform"] < 0.1

"""The semi-supervised GAN's losses against the reference's formulas, and its networks."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from conftest import REPO_ROOT
from ganlib.models.semi_supervised import (
    GaussianNoise,
    SemiSupervisedDiscriminator,
    SemiSupervisedGenerator,
    WeightNormLinear,
    initialise_from_batch,
)
from ganlib.tasks.semi_supervised import (
    feature_matching_loss,
    generator_gan_loss,
    log_sum_exp,
    supervised_loss,
    unsupervised_loss,
)

# ---- the reference's formulas (openai/improved-gan, train_mnist_feature_matching.py),
# written out in numpy float64 exactly as the Theano code writes them.


def ref_log_sum_exp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1)
    return m + np.log(np.exp(x - m[:, None]).sum(axis=1))


def ref_softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)  # log(1 + e^x), without overflow


def ref_loss_lab(lab: np.ndarray, labels: np.ndarray) -> float:
    l_lab = lab[np.arange(len(labels)), labels]
    return float(-np.mean(l_lab) + np.mean(np.mean(ref_log_sum_exp(lab))))


def ref_loss_unl(unl: np.ndarray, fake: np.ndarray) -> float:
    l_unl = ref_log_sum_exp(unl)
    return float(
        -0.5 * np.mean(l_unl)
        + 0.5 * np.mean(ref_softplus(ref_log_sum_exp(unl)))
        + 0.5 * np.mean(ref_softplus(ref_log_sum_exp(fake)))
    )


def ref_loss_gen(features_real: np.ndarray, features_fake: np.ndarray) -> float:
    return float(np.mean(np.square(features_fake.mean(axis=0) - features_real.mean(axis=0))))


@pytest.fixture
def fixed_logits() -> dict[str, np.ndarray]:
    """Fixed tensors: moderate logits, and a batch with large ones (|l| up to 60)."""
    rng = np.random.RandomState(26)
    return {
        "lab": rng.randn(7, 10) * 3,
        "labels": rng.randint(0, 10, size=7),
        "unl": np.concatenate([rng.randn(5, 10) * 3, rng.randn(3, 10) * 20 + 40]),
        "fake": np.concatenate([rng.randn(6, 10) * 3, rng.randn(2, 10) * 20 - 40]),
        "f_real": rng.rand(9, 6) * 4,
        "f_fake": rng.rand(4, 6) * 2,
    }


def t64(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).to(torch.float64)


def test_log_sum_exp_matches_the_reference(fixed_logits):
    for key in ("lab", "unl", "fake"):
        got = log_sum_exp(t64(fixed_logits[key])).numpy()
        np.testing.assert_allclose(got, ref_log_sum_exp(fixed_logits[key]), rtol=1e-12)


def test_supervised_loss_matches_the_reference(fixed_logits):
    got = supervised_loss(t64(fixed_logits["lab"]), torch.from_numpy(fixed_logits["labels"]))
    expected = ref_loss_lab(fixed_logits["lab"], fixed_logits["labels"])
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_unsupervised_loss_matches_the_reference_value_and_gradient(fixed_logits):
    unl = t64(fixed_logits["unl"]).requires_grad_()
    fake = t64(fixed_logits["fake"]).requires_grad_()
    got = unsupervised_loss(unl, fake)
    assert got.item() == pytest.approx(
        ref_loss_unl(fixed_logits["unl"], fixed_logits["fake"]), rel=1e-12
    )
    # The gradient equals that of the reference's literal expression (autograd, float64).
    unl_ref = unl.detach().clone().requires_grad_()
    fake_ref = fake.detach().clone().requires_grad_()
    lse_unl, lse_fake = torch.logsumexp(unl_ref, 1), torch.logsumexp(fake_ref, 1)
    sp = torch.nn.functional.softplus
    literal = -0.5 * lse_unl.mean() + 0.5 * sp(lse_unl).mean() + 0.5 * sp(lse_fake).mean()
    grads = torch.autograd.grad(got, (unl, fake))
    grads_ref = torch.autograd.grad(literal, (unl_ref, fake_ref))
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-14)


def test_unsupervised_loss_in_a_closed_form_case():
    # All logits 0 over K = 10 classes: lse = log 10, D = 10/11 on both sides.
    zeros = torch.zeros(4, 10, dtype=torch.float64)
    expected = 0.5 * (np.log(1.1) + np.log(11.0))  # 0.5 * (-log D(u) - log(1 - D(f)))
    assert unsupervised_loss(zeros, zeros).item() == pytest.approx(expected, rel=1e-12)


def test_unsupervised_loss_in_float32_keeps_the_large_logit_terms(fixed_logits):
    got = unsupervised_loss(
        torch.from_numpy(fixed_logits["unl"]).float(),
        torch.from_numpy(fixed_logits["fake"]).float(),
    )
    expected = ref_loss_unl(fixed_logits["unl"], fixed_logits["fake"])
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_feature_matching_loss_matches_the_reference(fixed_logits):
    got = feature_matching_loss(t64(fixed_logits["f_real"]), t64(fixed_logits["f_fake"]))
    expected = ref_loss_gen(fixed_logits["f_real"], fixed_logits["f_fake"])
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert expected > 0.5  # the fixed tensors do differ in mean


def test_generator_gan_loss_is_minus_log_d_of_fakes(fixed_logits):
    fake = fixed_logits["fake"]
    z = np.exp(ref_log_sum_exp(fake[:6]))  # the moderate rows: Z without overflow
    expected_moderate = float(np.mean(-np.log(z / (z + 1.0))))
    assert generator_gan_loss(t64(fake[:6])).item() == pytest.approx(expected_moderate, rel=1e-12)
    expected_all = float(np.mean(ref_softplus(-ref_log_sum_exp(fake))))
    assert generator_gan_loss(t64(fake)).item() == pytest.approx(expected_all, rel=1e-12)


# ---- the networks


@given(
    channels=st.integers(1, 3),
    size=st.integers(2, 9),
    classes=st.integers(2, 12),
    widths=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    batch=st.integers(1, 5),
)
def test_discriminator_returns_logits_and_last_hidden_features(
    channels, size, classes, widths, batch
):
    d = SemiSupervisedDiscriminator((channels, size, size), classes, widths)
    out = d(torch.rand(batch, channels, size, size) * 2 - 1)
    assert out.logits.shape == (batch, classes)
    assert out.features.shape == (batch, widths[-1])
    assert (out.features >= 0).all()  # after the ReLU


@given(
    channels=st.integers(1, 3),
    size=st.integers(2, 9),
    latent_dim=st.integers(1, 16),
    widths=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    batch=st.integers(2, 5),
)
def test_generator_makes_images_in_ganlib_range(channels, size, latent_dim, widths, batch):
    g = SemiSupervisedGenerator((channels, size, size), latent_dim, widths)
    latents = g.sample_latents(batch)
    assert latents.shape == (batch, latent_dim)
    assert latents.min() >= 0 and latents.max() < 1  # uniform on [0, 1), as the reference
    images = g(latents)
    assert images.shape == (batch, channels, size, size)
    assert images.min() > -1 and images.max() < 1


def test_reference_mnist_pair_layout():
    d, g = SemiSupervisedDiscriminator(), SemiSupervisedGenerator()
    sizes = [tuple(layer.direction.shape) for layer in [*d.hidden, d.logit_layer]]
    assert sizes == [(1000, 784), (500, 1000), (250, 500), (250, 250), (250, 250), (10, 250)]
    assert [n.sigma for n in d.noise] == [0.3, 0.5, 0.5, 0.5, 0.5, 0.5]
    # Hidden scales fixed after the init pass, the logit layer's trained (train_scale).
    assert [layer.scale.requires_grad for layer in d.hidden] == [False] * 5
    assert d.logit_layer.scale.requires_grad
    assert [tuple(layer.weight.shape) for layer in g.hidden] == [(500, 100), (500, 500)]
    assert tuple(g.output_layer.direction.shape) == (784, 500)


def test_generator_output_is_the_reference_sigmoid_mapped_to_minus_one_one():
    g = SemiSupervisedGenerator((1, 4, 4), 3, (5,))
    latents = g.sample_latents(6, generator=torch.Generator().manual_seed(0))
    h = torch.nn.functional.softplus(g.norms[0](g.hidden[0](latents)) + g.shifts[0])
    sigmoid = torch.sigmoid(g.output_layer(h)).view(6, 1, 4, 4)
    torch.testing.assert_close(g(latents), sigmoid * 2 - 1)


def test_discriminator_sees_the_reference_zero_one_pixels():
    d = SemiSupervisedDiscriminator((1, 2, 2), 3, (4,)).eval()
    images = torch.tensor([-1.0, -0.5, 0.5, 1.0]).view(1, 1, 2, 2)
    pixels = torch.tensor([[0.0, 0.25, 0.75, 1.0]])
    expected = d.logit_layer(torch.relu(d.hidden[0](pixels)))
    torch.testing.assert_close(d(images).logits, expected)


def test_noise_only_in_training_mode():
    d = SemiSupervisedDiscriminator((1, 4, 4), 3, (8, 8))
    images = torch.rand(5, 1, 4, 4) * 2 - 1
    d.eval()
    torch.testing.assert_close(d(images).logits, d(images).logits)
    d.train()
    assert not torch.equal(d(images).logits, d(images).logits)
    noise = GaussianNoise(0.5).train()
    draws = noise(torch.zeros(20_000))
    assert draws.std().item() == pytest.approx(0.5, rel=0.03)


def test_weight_norm_rows_have_the_scale_as_norm():
    layer = WeightNormLinear(7, 4, train_scale=True)
    with torch.no_grad():
        layer.scale.copy_(torch.tensor([0.5, 1.0, 2.0, 3.0]))
        layer.direction.mul_(17.0)  # the direction's length is divided out
    torch.testing.assert_close(layer.weight.norm(dim=1), torch.tensor([0.5, 1.0, 2.0, 3.0]))


def _pre_activations(model: nn.Module, images: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Each weight-normalised layer's output on ``images`` in training mode, with the
    noise drawn from ``seed``."""
    seen: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
        for m in model.modules()
        if isinstance(m, WeightNormLinear)
    ]
    torch.manual_seed(seed)
    with torch.no_grad():
        model.train()(images)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("noise", [0.0, None])  # None: the reference's sigmas
def test_data_dependent_init_gives_unit_variance_pre_activations(noise):
    torch.manual_seed(0)
    sigmas = {} if noise is None else {"input_noise": noise, "hidden_noise": noise}
    d = SemiSupervisedDiscriminator((1, 8, 8), 10, (40, 30, 20), **sigmas)
    images = torch.rand(200, 1, 8, 8) * 2 - 1
    before = _pre_activations(d, images, seed=1)
    assert max(abs(out.std(dim=0, unbiased=False) - 1).max().item() for out in before) > 0.2
    d.eval()
    # The same noise draws as in the check below, so the batch is the same batch.
    torch.manual_seed(1)
    initialise_from_batch(d, images)
    assert not d.training  # mode restored
    assert not any(m.initialising for m in d.modules() if isinstance(m, WeightNormLinear))
    after = _pre_activations(d, images, seed=1)
    assert len(after) == 4
    for out in after:
        torch.testing.assert_close(out.mean(dim=0), torch.zeros(out.shape[1]), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            out.std(dim=0, unbiased=False), torch.ones(out.shape[1]), atol=1e-4, rtol=0
        )


def test_init_refuses_a_batch_of_one():
    with pytest.raises(ValueError, match="`batch` must hold >= 2 examples, got 1"):
        initialise_from_batch(SemiSupervisedDiscriminator(), torch.zeros(1, 1, 28, 28))


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: SemiSupervisedDiscriminator((28, 28)), ValueError, r"`image_shape` must be \(C"),
        (lambda: SemiSupervisedDiscriminator(num_classes=1), ValueError, "`num_classes` must be"),
        (lambda: SemiSupervisedDiscriminator(widths=()), ValueError, "`widths` must name at"),
        (lambda: SemiSupervisedDiscriminator(widths=(5, 0)), ValueError, "`widths` must be >= 1"),
        (lambda: SemiSupervisedDiscriminator(input_noise=-1), ValueError, "`sigma` must be"),
        (lambda: SemiSupervisedGenerator(latent_dim=0), ValueError, "`latent_dim` must be >= 1"),
        (lambda: SemiSupervisedGenerator(widths=(2.5,)), TypeError, "`widths` must be an int"),
    ],
)
def test_bad_settings_are_refused_by_name(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_one_training_step_of_each_network_changes_it():
    """A smoke step as the reference trains: D on labelled + unlabelled + fakes, then G by
    feature matching with D frozen."""
    torch.manual_seed(0)
    d = SemiSupervisedDiscriminator((1, 6, 6), 4, (16, 8))
    g = SemiSupervisedGenerator((1, 6, 6), 5, (12,))
    initialise_from_batch(d, torch.rand(20, 1, 6, 6) * 2 - 1)
    d_params = [p for p in d.parameters() if p.requires_grad]
    d_opt = torch.optim.Adam(d_params, lr=3e-3, betas=(0.5, 0.999))
    g_opt = torch.optim.Adam(g.parameters(), lr=3e-3, betas=(0.5, 0.999))
    d_before = [p.detach().clone() for p in d.parameters()]
    g_before = [p.detach().clone() for p in g.parameters()]
    x_lab, y_lab = torch.rand(8, 1, 6, 6) * 2 - 1, torch.arange(8) % 4
    x_unl = torch.rand(8, 1, 6, 6) * 2 - 1
    with torch.no_grad():
        fake = g(g.sample_latents(8))
    logits = d(torch.cat([x_lab, x_unl, fake])).logits.split(8)
    loss_d = supervised_loss(logits[0], y_lab) + unsupervised_loss(logits[1], logits[2])
    d_opt.zero_grad()
    loss_d.backward()
    d_opt.step()
    d_grads = [p.grad.clone() for p in d_params]
    for p in d_params:
        p.requires_grad_(False)
    loss_g = feature_matching_loss(d(x_unl).features, d(g(g.sample_latents(8))).features)
    g_opt.zero_grad()
    loss_g.backward()
    g_opt.step()
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    for grad, p in zip(d_grads, d_params, strict=True):
        assert torch.equal(grad, p.grad)  # G's backward added nothing to D's gradients
    trainable = {id(p) for p in d_params}
    for before, p in zip(d_before, d.parameters(), strict=True):
        # Adam moved every trained parameter; the hidden scales stay as the init set them.
        assert torch.equal(before, p) != (id(p) in trainable)
    changed_g = [not torch.equal(a, b) for a, b in zip(g_before, g.parameters(), strict=True)]
    assert all(changed_g)


def test_prototype_benchmark_trains_and_prints_the_error_per_epoch(tmp_path):
    from ganlib.data import fake_mnist

    fake_mnist(tmp_path, count=200)
    for extra in ([], ["--supervised-only"]):
        result = subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "benchmarks" / "semi_supervised_prototype.py"),
                "--data-dir",
                str(tmp_path),
                "--labels",
                "10",
                "--steps-per-epoch",
                "3",
                "--epochs",
                "2",
                "--batch-size",
                "10",
                *extra,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        rows = re.findall(r"^\s+(\d+) .* (\d+\.\d+)% +(\d+\.\d+)% ", result.stdout, re.M)
        assert [row[0] for row in rows] == ["1", "2"], result.stdout
        assert all(0 <= float(v) <= 100 for row in rows for v in row[1:])

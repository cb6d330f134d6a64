"""Fréchet / kernel distances, feature extraction, classifier scores, Inception features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import linalg
from torch import nn

from ganlib.metrics import (
    FeatureStats,
    InceptionFeatures,
    MNISTClassifier,
    MNISTEvaluator,
    class_scores,
    embed,
    frechet_distance,
    kernel_distance,
    load_mnist_classifier,
    run_quality_report,
    sample_images,
    scoring_samples,
)
from ganlib.metrics.mnist_classifier import default_weights_path


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The reference formula as pytorch-fid writes it, with scipy's sqrtm."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def correlated(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=rng, dtype=torch.float64)
    return torch.randn(n, dim, generator=rng, dtype=torch.float64) @ mixing + shift


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = correlated(500, 16, seed=0)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("dim", [1, 8, 64])
def test_frechet_distance_matches_scipy_sqrtm(dim):
    a, b = correlated(400, dim, seed=1), correlated(300, dim, seed=2, shift=0.3)
    assert frechet_distance(a, b) == pytest.approx(scipy_frechet(a.numpy(), b.numpy()), rel=1e-6)


def test_frechet_distance_of_gaussians_has_the_closed_form():
    # For diagonal covariances: |m_a - m_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2.
    mean_a, mean_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([3.0, 1.0, -2.0])
    var_a, var_b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    stats = [
        FeatureStats(m.double(), torch.diag(v).double(), 1000)
        for m, v in ((mean_a, var_a), (mean_b, var_b))
    ]
    expected = (mean_a - mean_b).square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum()
    assert frechet_distance(*stats) == pytest.approx(float(expected), rel=1e-12)


def test_frechet_distance_of_shifted_samples_approaches_the_shift():
    shift = torch.tensor([2.0, -1.0, 0.5, 0.0]).double()
    a = correlated(20_000, 4, seed=3)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.square().sum()), rel=1e-9)


@given(
    seed=st.integers(0, 10_000),
    dim=st.integers(1, 12),
    shift=st.floats(-3, 3),
    scale=st.floats(0.1, 10),
)
def test_frechet_distance_properties(seed, dim, shift, scale):
    a, b = correlated(60, dim, seed), correlated(50, dim, seed + 1)
    forward = frechet_distance(a, b)
    assert forward >= 0
    assert frechet_distance(b, a) == pytest.approx(forward, rel=1e-6, abs=1e-9)
    # A shared translation changes nothing; a shared scaling scales it by scale^2.
    assert frechet_distance(a + shift, b + shift) == pytest.approx(forward, rel=1e-6, abs=1e-8)
    assert frechet_distance(a * scale, b * scale) == pytest.approx(
        forward * scale**2, rel=1e-5, abs=1e-8
    )


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"`a` must be \(N, D\) features, got shape \(5,\)"):
        frechet_distance(torch.zeros(5), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="feature sizes differ: 2 and 3"):
        frechet_distance(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="needs >= 2 rows, got 1"):
        frechet_distance(torch.randn(1, 2), torch.randn(5, 2))


def reference_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
    """Unbiased MMD^2 written out with explicit loops."""
    dim = x.shape[1]

    def k(u, v):
        return (u @ v / dim + 1.0) ** degree

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return float(xx + yy - 2 * xy)


def test_kernel_distance_matches_the_written_out_estimator():
    a, b = correlated(30, 5, seed=4), correlated(30, 5, seed=5, shift=0.5)
    mean, std = kernel_distance(a, b, num_subsets=1, subset_size=30)
    assert mean == pytest.approx(reference_mmd2(a.numpy(), b.numpy()), rel=1e-9)
    assert std == 0.0


def test_kernel_distance_is_unbiased_near_zero_and_grows_with_a_shift():
    a, b = correlated(4000, 8, seed=6).chunk(2)  # one distribution, two samples
    same, same_std = kernel_distance(a, b, num_subsets=20, subset_size=500)
    far, _ = kernel_distance(a, b + 1.0, num_subsets=20, subset_size=500)
    assert abs(same) < 3 * same_std + 1e-3  # unbiased: can be slightly negative
    assert far > 100 * max(abs(same), 1e-4)


def test_kernel_distance_refuses_subsets_larger_than_a_set():
    a, b = correlated(30, 5, seed=7), correlated(20, 5, seed=8)
    rule = r"`subset_size` must be <= the rows of `a` and of `b` \(30 and 20\), got "
    with pytest.raises(ValueError, match=rule + "21"):
        kernel_distance(a, b, subset_size=21)
    with pytest.raises(ValueError, match=rule + "1000"):
        kernel_distance(a, b)  # the default, 1000, is not shrunk to fit
    # A subset as large as both sets is allowed: it is each whole set.
    mean, _ = kernel_distance(a[:20], b, num_subsets=1, subset_size=20)
    assert mean == pytest.approx(reference_mmd2(a[:20].numpy(), b.numpy()), rel=1e-9)


def test_embed_accepts_a_tensor_or_batches_and_returns_float64():
    extractor = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    images = torch.randn(7, 1, 2, 2)
    whole = embed(extractor, images, batch_size=3)
    assert whole.shape == (7, 3) and whole.dtype == torch.float64
    torch.testing.assert_close(embed(extractor, iter(images.split(2))), whole)
    with pytest.raises(ValueError, match="`images` is empty"):
        embed(extractor, [])


def test_sample_images_is_reproducible_counts_right_and_restores_mode():
    generator = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    generator.train()
    batches = list(sample_images(generator, 10, 3, batch_size=4, seed=1, eval_mode=True))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert generator.training  # restored
    again = torch.cat(list(sample_images(generator, 10, 3, batch_size=4, seed=1, eval_mode=True)))
    torch.testing.assert_close(torch.cat(batches), again)

    def noise(n, rng):
        return torch.ones(n, 3)

    stats = generator[1].running_mean.clone()
    list(sample_images(generator, 10, 3, batch_size=4, eval_mode=False))
    assert torch.equal(generator[1].running_mean, stats)  # train mode leaves the stats alone

    fixed = torch.cat(list(sample_images(generator, 3, noise, eval_mode=True)))
    torch.testing.assert_close(fixed[0], fixed[2])


def test_class_scores_of_known_histograms():
    uniform = torch.eye(10).repeat(10, 1) * 50  # confident, every class 10 times
    scores = class_scores(uniform)
    assert scores["classes_covered"] == 10
    assert scores["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert scores["mean_confidence"] == pytest.approx(1.0, abs=1e-12)
    assert scores["classifier_score"] == pytest.approx(10.0, rel=1e-9)

    collapsed = torch.zeros(100, 10)
    collapsed[:, 3] = 50
    scores = class_scores(collapsed)
    assert scores["classes_covered"] == 1
    assert scores["kl_to_uniform"] == pytest.approx(math.log(10), rel=1e-12)
    assert scores["classifier_score"] == pytest.approx(1.0, rel=1e-9)

    # A class with under 2.5% of the predictions is not covered.
    labels = torch.tensor([0] * 98 + [1] * 2)
    assert class_scores(torch.eye(10)[labels] * 50)["classes_covered"] == 1


def test_shipped_classifier_weights_are_small_and_load():
    path = default_weights_path()
    assert path.is_file(), f"{path} missing: run scripts/train_mnist_classifier.py"
    assert path.stat().st_size < 1_000_000
    model = load_mnist_classifier()
    assert not model.training
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.embed(torch.zeros(2, 1, 28, 28)).shape == (2, 128)


def test_missing_classifier_weights_say_how_to_train_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train_mnist_classifier\.py"):
        load_mnist_classifier(tmp_path / "nope.pt")


def test_shipped_classifier_reads_real_digits(mnist_root):
    from ganlib.data import load_mnist

    test_x, test_y = load_mnist(mnist_root, "test", download=False)
    train_x, _ = load_mnist(mnist_root, "train", download=False)
    evaluator = MNISTEvaluator(test_x)
    with torch.no_grad():
        predictions = torch.cat([evaluator.classifier(x).argmax(1) for x in test_x.split(1000)])
    assert (predictions == test_y).double().mean() >= 0.99
    floor = evaluator.floor(train_x, num_samples=2000)
    assert floor.classes_covered == 10
    assert floor.kl_to_uniform < 0.01
    assert floor.mean_confidence > 0.95
    assert floor.classifier_score > 9
    # Noise is far from digits.
    noise = evaluator.score(torch.rand(2000, 1, 28, 28) * 2 - 1)
    assert noise.fd > 20 * floor.fd


def test_evaluator_scores_a_generator_end_to_end():
    generator = nn.Sequential(nn.Linear(8, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
    evaluator = MNISTEvaluator(torch.rand(50, 1, 28, 28) * 2 - 1, MNISTClassifier())
    scores = evaluator.score_generator(generator, 30, 8, seed=0)
    assert scores.num_samples == 30
    assert scores.fd >= 0 and 1 <= scores.classes_covered <= 10
    assert set(scores.as_dict()) >= {"fd", "kl_to_uniform", "classifier_score"}


def test_inception_features_from_supplied_weights(tmp_path):
    from torchvision.models import inception_v3

    path = tmp_path / "inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    features = InceptionFeatures(path)
    out = features(torch.rand(2, 1, 28, 28) * 2 - 1)
    assert out.shape == (2, 2048) and torch.isfinite(out).all()

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="is not an Inception-v3 state dict"):
        InceptionFeatures(tmp_path / "wrong.pth")
    with pytest.raises(FileNotFoundError, match="inception_v3"):
        InceptionFeatures(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"images must be \(B, 1 or 3, H, W\)"):
        features(torch.rand(2, 2, 28, 28))


# ------------------------------------------------------------- the final scoring


@pytest.mark.parametrize(
    ("images_seen", "samples"),
    [
        (0, 2_000),
        (200 * 50, 2_000),
        (3_000 * 50, 3_000),
        (4_321 * 50, 4_000),
        (12_000 * 50, 10_000),
    ],
)
def test_the_final_scoring_scales_with_the_run(images_seen, samples):
    assert scoring_samples(images_seen) == samples
    with pytest.raises(ValueError, match=r"`images_seen` must be >= 0, got -1"):
        scoring_samples(-1)


class CountingGenerator(nn.Module):
    """A tiny MNIST-shaped generator that counts the images it draws."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
        self.drawn = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.drawn += len(z)
        return self.net(z)


def test_a_quick_look_scores_one_sampler_at_the_scaled_count(tmp_path, monkeypatch):
    """200 steps of 50: the headline sampler (the EMA) at 2,000 samples, the floor at
    2,000; the others are named as not scored and a lazy one is never built."""
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path))
    real = torch.rand(3000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    evaluator = MNISTEvaluator(real[:200], MNISTClassifier(), batch_size=500)
    live, ema = CountingGenerator(), CountingGenerator()
    built = []
    samplers = {
        "generator": (live, False),
        "ema": (ema, False),
        "ema_eval": lambda: built.append(1) or (ema, True),
    }
    report = run_quality_report(evaluator, real, samplers, 8, images_seen=200 * 50)
    assert report["headline"] == "ema" and report["num_samples"] == 2000
    assert set(report["samples"]) == {"ema"} and report["not_scored"] == ["generator", "ema_eval"]
    assert (live.drawn, ema.drawn, built) == (0, 2000, [])
    assert report["floor"]["num_samples"] == 2000
    assert report["fd_over_floor"]["ema"] == report["samples"]["ema"]["fd"] / report["floor"]["fd"]
    # The rest on request, at a count given.
    everything = run_quality_report(
        evaluator, real, samplers, 8, images_seen=0, also="all", num_samples=30
    )
    assert list(everything["samples"]) == ["ema", "generator", "ema_eval"] and built == [1]
    assert everything["not_scored"] == [] and live.drawn == 30
    picked = run_quality_report(
        evaluator, real, samplers, 8, images_seen=0, headline="generator", num_samples=30
    )
    assert picked["headline"] == "generator" and set(picked["samples"]) == {"generator"}


def test_the_final_scoring_names_bad_choices():
    real = torch.rand(50, 1, 28, 28) * 2 - 1
    evaluator = MNISTEvaluator(real, MNISTClassifier(), cache=False)
    samplers = {"generator": (CountingGenerator(), False)}
    with pytest.raises(ValueError, match=r"`headline` must be one of \['generator'\], got 'ema'"):
        run_quality_report(evaluator, real, samplers, 8, images_seen=0, headline="ema")
    with pytest.raises(ValueError, match=r"`also` must name samplers among \['generator'\]"):
        run_quality_report(evaluator, real, samplers, 8, images_seen=0, also=["ema"])
    with pytest.raises(ValueError, match=r"`samplers` must name at least one generator"):
        run_quality_report(evaluator, real, {}, 8, images_seen=0)


def test_the_evaluators_reference_and_floor_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path))
    real = torch.rand(400, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    classifier = MNISTClassifier()
    calls = []
    classifier.features.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    evaluator = MNISTEvaluator(real[:100], classifier, batch_size=100)
    floor = evaluator.floor(real, num_samples=200)
    assert sum(calls) == 100 + 200
    again = MNISTEvaluator(real[:100], classifier, batch_size=100)
    assert again.floor(real, num_samples=200) == floor and sum(calls) == 300  # no embedding
    assert torch.equal(again.reference.cov, evaluator.reference.cov)
    uncached = MNISTEvaluator(real[:100], classifier, batch_size=100, cache=False)
    assert uncached.floor(real, num_samples=200) == floor and sum(calls) == 600


def test_the_evaluator_refuses_images_in_0_1_as_the_changelog_says():
    evaluator = MNISTEvaluator(torch.rand(50, 1, 28, 28) * 2 - 1, MNISTClassifier())
    rule = r"MNIST images must lie in \[-1, 1\] \(background near -1\), got values in "
    advice = r"; for \[0, 1\] images use x \* 2 - 1"
    zero_one = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=rule + r"\[[\d.e-]+, 1\]" + advice):
        evaluator.score(zero_one)
    ones = torch.ones(4, 1, 28, 28)  # ToTensor of an all-white image
    with pytest.raises(ValueError, match=rule + r"\[1, 1\]" + advice):
        evaluator.score(ones)
    # From a generator too: a Sigmoid output (or ToTensor digits) is refused, not scored.
    sigmoid = nn.Sequential(nn.Linear(8, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
    with pytest.raises(ValueError, match=rule + r"\[[\d.e-]+, [\d.e-]+\]" + advice):
        evaluator.score_generator(sigmoid, 30, 8, seed=0)
    # The same images in [-1, 1] are scored, and so are an untrained generator's near-zero
    # images (eval-mode BatchNorm at its initial statistics: values within 1e-4 of 0).
    assert evaluator.score(zero_one * 2 - 1).num_samples == 40
    assert evaluator.score(zero_one * 1e-4).num_samples == 40
    assert evaluator.score(torch.zeros(4, 1, 28, 28)).num_samples == 4
    tanh = nn.Sequential(nn.Linear(8, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
    assert evaluator.score_generator(tanh, 30, 8, seed=0).num_samples == 30


@pytest.fixture(scope="module")
def evaluator() -> MNISTEvaluator:
    return MNISTEvaluator(torch.rand(20, 1, 28, 28) * 2 - 1)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (torch.rand(4, 1, 64, 64) * 2 - 1, r"shaped \(N, 1, 28, 28\), got \(4, 1, 64, 64\)"),
        (torch.rand(4, 1, 8, 8) * 2 - 1, r"got \(4, 1, 8, 8\)"),
        (torch.rand(4, 3, 28, 28) * 2 - 1, r"got \(4, 3, 28, 28\)"),
        (torch.rand(4, 1, 28, 28) * 255, r"must lie in \[-1, 1\]"),
        ((torch.rand(4, 1, 28, 28) * 255).to(torch.uint8), r"floating point.*x / 127.5 - 1"),
        (torch.full((4, 1, 28, 28), float("nan")), r"NaN or infinite"),
    ],
)
def test_the_evaluator_names_what_is_wrong_with_its_images(evaluator, batch, message):
    with pytest.raises(ValueError, match=message):
        evaluator.score(batch)


def test_the_evaluator_refuses_a_reference_in_0_1():
    with pytest.raises(
        ValueError, match=r"must lie in \[-1, 1\].*for \[0, 1\] images use x \* 2 - 1"
    ):
        MNISTEvaluator(torch.rand(20, 1, 28, 28))


def test_the_evaluator_accepts_float64(evaluator):
    assert evaluator.score((torch.rand(6, 1, 28, 28) * 2 - 1).double()).num_samples == 6

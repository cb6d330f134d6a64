"""The on-disk cache of reference statistics: keyed by the images, the extractor's weights
and its settings; atomic; damaged files recomputed; an off switch; never in the way."""

from __future__ import annotations

import os
import stat
import threading

import pytest
import torch
from torch import Tensor, nn

from conftest import tiny_gan
from ganlib import Trainer
from ganlib.callbacks import Evaluation
from ganlib.metrics import FeatureStats, embed
from ganlib.metrics.cache import (
    NO_CACHE_ENV,
    cached_feature_stats,
    extractor_fingerprint,
    stats_folder,
    stats_key,
)


class Pool(nn.Module):
    """A feature extractor with weights: 3x3 average pooling times a learnable scale."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, images: Tensor) -> Tensor:
        return nn.functional.avg_pool2d(images, 3).flatten(1) * self.scale


def images(seed: int = 2, n: int = 64) -> Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class Counting:
    """Computes the statistics, counting the calls (a cache hit makes none)."""

    def __init__(self, extractor: nn.Module, reference: Tensor) -> None:
        self.extractor, self.reference, self.calls = extractor, reference, 0

    def __call__(self) -> FeatureStats:
        self.calls += 1
        return FeatureStats.of(embed(self.extractor, self.reference))


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    return tmp_path / "cache" / "stats"


def test_the_statistics_are_computed_once_and_read_back_exactly(cache_folder):
    extractor, reference = Pool(), images()
    compute = Counting(extractor, reference)
    first = cached_feature_stats(extractor, reference, compute, settings="precision 32")
    again = cached_feature_stats(extractor, reference, compute, settings="precision 32")
    assert compute.calls == 1
    assert stats_folder() == cache_folder and len(list(cache_folder.glob("*.pt"))) == 1
    assert torch.equal(first.mean, again.mean) and torch.equal(first.cov, again.cov)
    assert again.count == first.count == 64
    assert not list(cache_folder.glob(".*")), "a temporary file was left behind"


def test_the_key_follows_the_images_the_weights_the_method_and_the_settings():
    extractor, reference = Pool(), images()
    key = stats_key(extractor, reference, "precision 32")
    assert key == stats_key(Pool(), reference.clone(), "precision 32")  # same bytes, weights
    other_images = reference.clone()
    other_images[0, 0, 0, 0] += 1e-6
    assert stats_key(extractor, other_images, "precision 32") != key
    assert stats_key(Pool(scale=1.0001), reference, "precision 32") != key
    assert stats_key(extractor, reference, "precision bf16") != key
    assert stats_key(extractor.forward, reference, "precision 32") == key  # its forward
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(144, 4))
    assert extractor_fingerprint(classifier) != extractor_fingerprint(classifier[1])
    assert stats_key(lambda x: x.flatten(1), reference) is None  # no weights: no key


def test_a_plain_function_is_not_cached(cache_folder):
    reference = images()
    calls = []

    def compute() -> FeatureStats:
        calls.append(1)
        return FeatureStats.of(reference.flatten(1))

    for _ in range(2):
        cached_feature_stats(lambda x: x.flatten(1), reference, compute)
    assert len(calls) == 2 and not cache_folder.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other key", "wrong shape"])
def test_a_damaged_file_is_recomputed_and_replaced(cache_folder, damage):
    extractor, reference = Pool(), images()
    compute = Counting(extractor, reference)
    good = cached_feature_stats(extractor, reference, compute)
    (path,) = cache_folder.glob("*.pt")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file")
    else:
        payload = torch.load(path, weights_only=True)
        if damage == "other key":
            payload["key"] = "0" * 64
        else:
            payload["cov"] = payload["cov"][:3]
        torch.save(payload, path)
    again = cached_feature_stats(extractor, reference, compute)
    assert compute.calls == 2 and torch.equal(again.cov, good.cov)
    cached_feature_stats(extractor, reference, compute)  # replaced: read back now
    assert compute.calls == 2


def test_the_cache_can_be_turned_off(cache_folder, monkeypatch):
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    extractor, reference = Pool(), images()
    compute = Counting(extractor, reference)
    for _ in range(2):
        cached_feature_stats(extractor, reference, compute)
    assert compute.calls == 2 and not cache_folder.exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_folder_gives_one_notice_and_the_statistics(tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    extractor, reference = Pool(), images()
    for _ in range(2):
        stats = cached_feature_stats(
            extractor, reference, Counting(extractor, reference), folder=folder
        )
    assert stats.count == 64
    assert capsys.readouterr().err.count("cannot cache statistics") == 1


def test_a_folder_that_is_a_file_gives_a_notice_and_the_statistics(tmp_path, capsys):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the cache folder should be")
    extractor, reference = Pool(), images()
    stats = cached_feature_stats(
        extractor, reference, Counting(extractor, reference), folder=blocker / "stats"
    )
    assert stats.count == 64 and "cannot cache statistics" in capsys.readouterr().err


def test_concurrent_runs_share_one_file(cache_folder):
    """Eight threads asking at once: every one gets the statistics, the folder ends with
    one complete file and no temporary files."""
    extractor, reference = Pool(), images(n=256)
    results: list[FeatureStats] = []

    def ask() -> None:
        results.append(cached_feature_stats(extractor, reference, Counting(extractor, reference)))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(torch.equal(r.cov, results[0].cov) for r in results)
    assert len(list(cache_folder.iterdir())) == 1


# ------------------------------------------------------------------ Evaluation


def tiny_trainer(callbacks) -> Trainer:
    gan = tiny_gan()
    return Trainer(gan, max_steps=2, seed=0, device="cpu", progress=False, callbacks=callbacks)


def test_an_evaluation_embeds_its_reference_once_per_machine(cache_folder):
    calls = []

    class Recording(Pool):
        def forward(self, images: Tensor) -> Tensor:
            calls.append(len(images))
            return super().forward(images)

    extractor = Recording()
    data = images(seed=1, n=16)
    first = Evaluation(extractor, images(), every_n_steps=2, num_samples=8, batch_size=8)
    tiny_trainer([first]).fit(data, batch_size=8)
    embedded_first = list(calls)
    assert sum(embedded_first) == 64 + 8  # the reference, then one evaluation's samples
    calls.clear()
    second = Evaluation(extractor, images(), every_n_steps=2, num_samples=8, batch_size=8)
    tiny_trainer([second]).fit(data, batch_size=8)
    assert sum(calls) == 8, "the second run embedded its reference again"
    assert second.history["fd"] == first.history["fd"]
    calls.clear()
    uncached = Evaluation(
        extractor, images(), every_n_steps=2, num_samples=8, batch_size=8, cache=False
    )
    tiny_trainer([uncached]).fit(data, batch_size=8)
    assert sum(calls) == 64 + 8

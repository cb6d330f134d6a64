"""Choosing a semi-supervised run's labelled examples, their fingerprint, and the seeded
streams of indices its batches come from."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
import torch

from ganlib.data import load_mnist
from ganlib.data.labels import IndexStream, choose_labelled, fingerprint, stream_seed


@pytest.fixture
def labels() -> torch.Tensor:
    """1,000 labels of 10 classes with unequal sizes (class 9 is the smallest: 19)."""
    sizes = [150, 120, 110, 100, 100, 100, 100, 100, 101, 19]
    values = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
    return values[torch.randperm(len(values), generator=torch.Generator().manual_seed(3))]


def test_choice_is_balanced_unique_sorted_and_in_range(labels):
    chosen = choose_labelled(labels, 100, seed=0)
    assert chosen.dtype == torch.int64 and chosen.shape == (100,)
    assert torch.equal(chosen, chosen.sort().values)
    assert len(set(chosen.tolist())) == 100
    assert chosen.min() >= 0 and chosen.max() < len(labels)
    assert torch.bincount(labels[chosen], minlength=10).tolist() == [10] * 10


def test_choice_depends_on_the_seed_only(labels):
    assert torch.equal(choose_labelled(labels, 50, seed=7), choose_labelled(labels, 50, seed=7))
    assert not torch.equal(choose_labelled(labels, 50, seed=7), choose_labelled(labels, 50, seed=8))
    # Lists, numpy arrays and other integer dtypes give the same choice.
    same = choose_labelled(labels.numpy().astype(np.int32).tolist(), 50, seed=7)
    assert torch.equal(same, choose_labelled(labels.to(torch.int16), 50, seed=7))
    assert torch.equal(same, choose_labelled(labels, 50, seed=7))


def test_a_larger_count_extends_a_smaller_one(labels):
    small, large = choose_labelled(labels, 20, seed=4), choose_labelled(labels, 100, seed=4)
    assert set(small.tolist()) <= set(large.tolist())


def test_every_example_of_the_smallest_class_can_be_taken(labels):
    chosen = choose_labelled(labels, 190, seed=0)
    assert set(chosen[labels[chosen] == 9].tolist()) == set(
        torch.nonzero(labels == 9).flatten().tolist()
    )


def test_num_classes_counts_classes_beyond_the_largest_label():
    with pytest.raises(
        ValueError, match="`count` 12 needs 3 examples of each class, but class 3 has 0"
    ):
        choose_labelled(torch.tensor([0, 1, 2] * 5), 12, seed=0, num_classes=4)


@pytest.mark.parametrize(
    ("labels_", "count", "error", "message"),
    [
        (
            torch.arange(1000) % 10,
            105,
            ValueError,
            "`count` must be a multiple of the 10 classes, got 105",
        ),
        (torch.arange(1000) % 10, 0, ValueError, "`count` must be >= 1, got 0"),
        (
            torch.arange(1000) % 10,
            2000,
            ValueError,
            "needs 200 examples of each class, but class 0 has 100",
        ),
        (torch.arange(1000) % 10, 10.0, TypeError, "`count` must be an integer"),
        (
            torch.rand(100),
            10,
            TypeError,
            "`labels` must hold integer classes, got dtype torch.float32",
        ),
        (
            torch.zeros(10, 2, dtype=torch.int64),
            2,
            ValueError,
            r"`labels` must be 1-D and non-empty, got shape \(10, 2\)",
        ),
        (torch.zeros(0, dtype=torch.int64), 2, ValueError, r"got shape \(0,\)"),
        (torch.tensor([-1, 0, 1]), 2, ValueError, r"classes in \[0, 2\), got values in \[-1, 1\]"),
    ],
)
def test_bad_arguments_are_refused_by_name(labels_, count, error, message):
    with pytest.raises(error, match=message):
        choose_labelled(labels_, count, seed=0)


def test_labels_beyond_num_classes_are_refused():
    with pytest.raises(ValueError, match=r"classes in \[0, 3\), got values in \[0, 5\]"):
        choose_labelled(torch.arange(6), 3, seed=0, num_classes=3)


def test_fingerprint_is_sha256_of_the_sorted_int64_bytes():
    indices = [31, 4, 15, 9, 26]
    packed = b"".join(struct.pack("<q", i) for i in sorted(indices))
    assert fingerprint(indices) == hashlib.sha256(packed).hexdigest()[:16]
    assert fingerprint(torch.tensor(indices[::-1], dtype=torch.int32)) == fingerprint(indices)
    assert fingerprint([31, 4, 15, 9, 27]) != fingerprint(indices)
    assert len(fingerprint(indices)) == 16 and int(fingerprint(indices), 16) >= 0


def test_fingerprint_refuses_a_matrix():
    with pytest.raises(ValueError, match=r"`indices` must be 1-D, got shape \(2, 2\)"):
        fingerprint(torch.zeros(2, 2))


def test_real_mnist_100_labels_are_ten_of_each_digit(mnist_root):
    _, train_labels = load_mnist(mnist_root, "train", download=False)
    chosen = choose_labelled(train_labels, 100, seed=0)
    assert torch.bincount(train_labels[chosen], minlength=10).tolist() == [10] * 10
    assert fingerprint(chosen) == fingerprint(choose_labelled(train_labels, 100, seed=0))
    assert fingerprint(chosen) != fingerprint(choose_labelled(train_labels, 100, seed=1))


# ---- IndexStream: the seeded orders a semi-supervised run draws its batches from


def test_index_stream_passes_are_seeded_permutations():
    stream = IndexStream(7, seed=3, name="labelled")
    passes = [stream.take(7 * k, 7) for k in range(4)]
    assert all(sorted(p.tolist()) == list(range(7)) for p in passes)
    assert len({tuple(p.tolist()) for p in passes}) == 4  # each pass reshuffled
    again = IndexStream(7, seed=3, name="labelled")
    assert torch.equal(torch.cat(passes), again.take(0, 28))  # one read = many reads


def test_index_stream_is_a_pure_function_of_position():
    whole = IndexStream(10, seed=1, name="unlabelled").take(0, 45)
    fresh = IndexStream(10, seed=1, name="unlabelled")
    # Any window, read in any order, from a fresh stream: the same items (batches span passes).
    for start, count in [(37, 8), (3, 9), (18, 4), (0, 1), (9, 12)]:
        assert torch.equal(fresh.take(start, count), whole[start : start + count])


def test_index_streams_of_other_names_or_seeds_are_independent():
    base = IndexStream(1000, seed=5, name="a").take(0, 1000)
    assert not torch.equal(base, IndexStream(1000, seed=5, name="b").take(0, 1000))
    assert not torch.equal(base, IndexStream(1000, seed=6, name="a").take(0, 1000))
    assert stream_seed(5, "a", 0) == stream_seed(5, "a", 0) != stream_seed(5, "a", 1)
    assert 0 <= stream_seed(2**62, "x" * 100, 10**9) < 2**63


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: IndexStream(0, 1, "a"), r"`n` must be >= 1, got 0"),
        (lambda: IndexStream(3, 1, "a").take(-1, 2), r"`position` must be >= 0, got -1"),
        (lambda: IndexStream(3, 1, "a").take(0, 0), r"`count` must be >= 1, got 0"),
    ],
)
def test_index_stream_refuses_bad_arguments_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()

"""Translation data: the MNIST makers (edge maps, the restyled rendering, disjoint
halves), deterministic; and the readers of aligned images, paired and unpaired folders."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ganlib.data import (
    DataNotFoundError,
    edge_map,
    load_aligned_pairs,
    load_mnist,
    load_paired_folders,
    load_unpaired_folders,
    match_lengths,
    mnist_edge_pairs,
    mnist_style_domains,
    pad_to,
    restyle_digits,
)


def square(size: int = 12, side: int = 6) -> torch.Tensor:
    """A white square on black, (1, 1, size, size) in [-1, 1]."""
    image = -torch.ones(1, 1, size, size)
    start = (size - side) // 2
    image[..., start : start + side, start : start + side] = 1.0
    return image


def test_edge_map_marks_the_outline_and_nothing_else():
    edges = edge_map(square())[0, 0]
    assert set(edges.unique().tolist()) == {-1.0, 1.0}
    # Sobel responds on both sides of the square's border: rows and columns 2..9 (of
    # 3..8 inside); the inside and the far background stay black.
    on = (edges > 0).nonzero()
    assert int(on[:, 0].min()) == 2 and int(on[:, 0].max()) == 9
    assert bool((edges[5:7, 5:7] < 0).all()) and bool((edges[0] < 0).all())
    assert torch.equal(edge_map(square()), edge_map(square()))
    with pytest.raises(
        ValueError, match=r"`images` must be shaped \(N, 1, H, W\), got \(1, 3, 4, 4\)"
    ):
        edge_map(torch.zeros(1, 3, 4, 4))


def test_pad_to_centres_on_black():
    padded = pad_to(torch.ones(2, 1, 28, 28), 32)
    assert padded.shape == (2, 1, 32, 32)
    assert bool((padded[..., 2:30, 2:30] == 1).all()) and float(padded.sum()) == 2 * (784 - 240)
    with pytest.raises(ValueError, match=r"`image_size` must be >= 28, got 20"):
        pad_to(torch.ones(1, 1, 28, 28), 20)


def test_restyled_digits_are_thick_dark_coloured_strokes_on_light_paper():
    digit = pad_to(square(20, 4), 24)
    styled = restyle_digits(digit.repeat(4, 1, 1, 1), seed=3)
    assert styled.shape == (4, 3, 24, 24) and float(styled.min()) >= -1 and float(styled.max()) <= 1
    assert torch.equal(styled, restyle_digits(digit.repeat(4, 1, 1, 1), seed=3))
    assert not torch.equal(styled, restyle_digits(digit.repeat(4, 1, 1, 1), seed=4))
    brightness = styled.mean(1)  # (4, 24, 24)
    inside, thickened, paper = brightness[:, 12, 12], brightness[:, 9, 12], brightness[:, 1, 1]
    assert bool((inside < paper - 0.5).all())  # dark ink on light paper: contrast inverted
    assert bool((thickened < paper - 0.5).all())  # the stroke grew by a pixel
    colours = styled[:, :, 12, 12]
    assert float(colours.std(0).mean()) > 0.05  # each image its own hue
    assert float(styled[:, :, 0:4, 0:4].std()) > 0.02  # the paper is textured


def test_mnist_edge_pairs_are_the_digits_and_their_edges(mnist_root):
    edges, digits, labels = mnist_edge_pairs(mnist_root, "test")
    raw, raw_labels = load_mnist(mnist_root, "test", download=False)
    assert edges.shape == digits.shape == (10_000, 1, 32, 32)
    assert torch.equal(digits[..., 2:30, 2:30], raw) and torch.equal(labels, raw_labels)
    assert torch.equal(edges, edge_map(digits))
    # Edges lie on or next to the strokes: none further than a pixel from ink.
    near_ink = torch.nn.functional.max_pool2d(digits, 3, stride=1, padding=1) > -1
    assert bool(near_ink[edges > 0].all())


def test_mnist_style_domains_come_from_disjoint_halves(mnist_root):
    train = mnist_style_domains(mnist_root, "train", image_size=28)
    raw, labels = load_mnist(mnist_root, "train", download=False)
    assert train.a.shape == train.b.shape == (30_000, 3, 28, 28)
    assert torch.equal(train.a[:, :1], raw[:30_000]) and torch.equal(train.a[:, 0], train.a[:, 2])
    assert torch.equal(train.labels_a, labels[:30_000])
    assert torch.equal(train.labels_b, labels[30_000:])
    # B's ink sits where the second half's digits have theirs.
    ink = raw[30_000:30_100, 0] > 0
    assert bool((train.b[:100].mean(1)[ink] < 0).all())
    test = mnist_style_domains(mnist_root, "test")
    assert torch.equal(test.labels_a, test.labels_b) and test.b.shape == (10_000, 3, 32, 32)


# ------------------------------------------------------------------ readers


def write(path, pixels: torch.Tensor) -> None:
    """(H, W, 3) uint8 pixels to a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.numpy()).save(path)


def colour(value: int, height: int = 8, width: int = 8) -> torch.Tensor:
    return torch.full((height, width, 3), value, dtype=torch.uint8)


def test_aligned_images_split_into_a_left_and_b_right(tmp_path):
    for index in range(3):
        side_by_side = torch.cat([colour(10 * index, 8, 8), colour(200 + index, 8, 8)], 1)
        write(tmp_path / f"{index}.png", side_by_side)
    a, b = load_aligned_pairs(tmp_path, image_size=4)
    assert a.shape == b.shape == (3, 3, 4, 4)
    assert torch.allclose(a[:, 0, 0, 0], torch.tensor([0, 10, 20]) / 127.5 - 1)
    assert torch.allclose(b[:, 0, 0, 0], torch.tensor([200, 201, 202]) / 127.5 - 1)
    grey, _ = load_aligned_pairs(tmp_path, image_size=4, channels=1)
    assert grey.shape == (3, 1, 4, 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=r"holds no images"):
        load_aligned_pairs(tmp_path / "empty", 4)


def test_paired_folders_match_by_name_whatever_the_extension(tmp_path):
    for name, value in (("cat", 0), ("dog", 100), ("sub/eel", 200)):
        write(tmp_path / "a" / f"{name}.png", colour(value))
        negative = (tmp_path / "b" / name).with_suffix(".bmp")
        negative.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(colour(255 - value).numpy()).convert("L").save(negative)
    a, b = load_paired_folders(tmp_path / "a", tmp_path / "b", 8, channels_a=3, channels_b=1)
    assert a.shape == (3, 3, 8, 8) and b.shape == (3, 1, 8, 8)
    # Left to the data: A's median size, each folder's channels from its files (B is grey).
    same_a, same_b = load_paired_folders(tmp_path / "a", tmp_path / "b")
    assert torch.equal(same_a, a) and torch.equal(same_b, b)
    # Sorted by name (cat, dog, sub/eel): B is A's negative, pair for pair.
    assert torch.allclose(a[:, 0, 0, 0] + b[:, 0, 0, 0], torch.zeros(3), atol=1e-6)
    write(tmp_path / "a" / "fox.png", colour(1))
    with pytest.raises(ValueError, match=r"1 image\(s\) have no match by name in .*b: fox"):
        load_paired_folders(tmp_path / "a", tmp_path / "b", 8)


def test_unpaired_domains_are_made_equally_long_using_every_image(tmp_path):
    for index in range(5):
        write(tmp_path / "a" / f"{index}.png", colour(index))
    for index in range(2):
        write(tmp_path / "b" / f"{index}.png", colour(100 + index))
    a, b = load_unpaired_folders(tmp_path / "a", tmp_path / "b", 4, seed=1)
    assert a.shape == b.shape == (5, 3, 4, 4)
    counts = torch.bincount((((b[:, 0, 0, 0] + 1) * 127.5).round().long() - 100), minlength=2)
    assert sorted(counts.tolist()) == [2, 3]  # each of the two used 2 or 3 times
    long, short = torch.arange(7.0), torch.arange(3.0)
    x, y = match_lengths(short, long, seed=0)
    assert torch.equal(y, long) and len(x) == 7
    assert torch.equal(x[:3].sort().values, short) and torch.equal(x[3:6].sort().values, short)
    assert torch.equal(match_lengths(short, long, seed=0)[0], x)  # seeded
    with pytest.raises(ValueError, match=r"both domains need images, got 0 and 7"):
        match_lengths(short[:0], long)

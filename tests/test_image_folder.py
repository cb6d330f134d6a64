"""ganlib's ImageFolder behaves like torchvision's where a torchvision user relies on it:
class subfolders give (image, class_index) with classes / class_to_idx, and transform=."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torchvision import datasets, transforms
from torchvision.transforms import functional as TF

from ganlib import DCGAN, Trainer
from ganlib.data import DataNotFoundError, ImageFolder, load_image_folder
from ganlib.data import folder as folder_module


def write_classes(root, counts: dict[str, int], size=(12, 12)):
    for c, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", size, (40 * c, 20 * i, 200)).save(root / name / f"{i}.png")


TO_UNIT_RANGE = transforms.Compose(
    [transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]
)


def test_class_subfolders_give_the_same_items_as_torchvision(tmp_path):
    write_classes(tmp_path, {"dogs": 2, "cats": 3, "birds": 1})
    (tmp_path / "cats" / "b").mkdir()  # nested folders, ordered as torchvision walks them
    Image.new("RGB", (12, 12), (1, 2, 3)).save(tmp_path / "cats" / "b" / "0.png")
    Image.new("RGB", (12, 12), (4, 5, 6)).save(tmp_path / "cats" / "b.png")
    ours = ImageFolder(tmp_path)
    theirs = datasets.ImageFolder(tmp_path, transform=TO_UNIT_RANGE)
    assert ours.classes == theirs.classes == ["birds", "cats", "dogs"]
    assert ours.class_to_idx == theirs.class_to_idx
    assert ours.samples == theirs.samples and ours.targets == theirs.targets
    assert len(ours) == len(theirs) == 8
    for index in range(len(ours)):
        (image, label), (expected, expected_label) = ours[index], theirs[index]
        assert isinstance(label, int) and label == expected_label
        assert torch.equal(image, expected)  # bitwise: the same pixels in [-1, 1]


def test_transform_gets_the_converted_resized_pil_image(tmp_path):
    write_classes(tmp_path, {"a": 1}, size=(30, 20))
    seen = []

    def transform(image):
        seen.append((image.mode, image.size))
        return transforms.functional.pil_to_tensor(image)

    image, label = ImageFolder(tmp_path, 8, channels=1, transform=transform)[0]
    assert seen == [("L", (8, 8))]
    assert image.dtype == torch.uint8 and image.shape == (1, 8, 8) and label == 0
    # Without image_size the transform sees the file's own size, as in torchvision.
    plain = ImageFolder(tmp_path, transform=lambda im: im.size)[0]
    assert plain == ((30, 20), 0)


def test_target_transform_and_flat_folders(tmp_path):
    write_classes(tmp_path / "classes", {"x": 1, "y": 1})
    item = ImageFolder(tmp_path / "classes", 8, target_transform=lambda t: t + 10)[1]
    assert item[1] == 11
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    folder = ImageFolder(flat, 8)
    assert folder.classes == [] and folder.class_to_idx == {} and folder.targets == []
    assert isinstance(folder[0], torch.Tensor) and folder[0].shape == (3, 8, 8)
    with pytest.raises(ValueError, match=r"`target_transform` needs class subfolders, but .*flat"):
        ImageFolder(flat, 8, target_transform=int)


def test_an_empty_class_subfolder_is_named(tmp_path):
    write_classes(tmp_path, {"full": 1})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=r"the class subfolders \['empty'\] hold no images"):
        ImageFolder(tmp_path, 8)


def test_load_image_folder_of_classes_gives_the_images(tmp_path):
    write_classes(tmp_path, {"a": 2, "b": 1})
    images = load_image_folder(tmp_path, 8)
    assert images.shape == (3, 3, 8, 8)
    assert torch.equal(images[2], ImageFolder(tmp_path, 8)[2][0])


def test_a_conditional_pair_trains_on_a_folder_of_classes(tmp_path):
    write_classes(tmp_path, {"a": 4, "b": 4})
    gan = DCGAN(image_size=8, channels=3, latent_dim=4, width=4, num_classes=2)
    state = Trainer(gan, max_steps=2, progress=False).fit(ImageFolder(tmp_path, 8), batch_size=4)
    assert state.step == 2


def test_torchvisions_image_folder_trains_as_it_is(tmp_path):
    write_classes(tmp_path, {"a": 3, "b": 3})
    data = datasets.ImageFolder(tmp_path, transform=TO_UNIT_RANGE)
    gan = DCGAN(image_size=12, channels=3, latent_dim=4, width=4)
    state = Trainer(gan, max_steps=2, progress=False).fit(data, batch_size=3)
    assert state.step == 2 and all(map(torch.isfinite, map(torch.tensor, state.metrics.values())))


def test_the_small_data_studys_folder_is_mnist_as_a_user_folder(mnist_root, tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT
    from ganlib.data import load_mnist
    from ganlib.data.sources import load_run_data

    script = [sys.executable, str(REPO_ROOT / "benchmarks" / "mnist_subset.py")]
    out = tmp_path / "mnist12"
    args = [str(out), "--count", "12", "--seed", "3", "--data-dir", str(mnist_root)]
    first = subprocess.run(script + args, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    data = load_run_data(str(out))
    assert (len(data.images), data.channels, data.image_size) == (12, 1, 28)
    train, _ = load_mnist(mnist_root, "train", download=False)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(3))
    # PNG pixels are MNIST's bytes: the round trip is exact.
    torch.testing.assert_close(data.images, train[order[:12]], atol=1e-6, rtol=0)
    again = subprocess.run(script + args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already holds PNGs" in again.stderr


# ------------------------------------------------- the folder read as a whole (issue 31)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def declared_png(path, width: int, height: int) -> None:
    """A few hundred bytes whose header declares a ``width`` x ``height`` RGB image."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_one_grey_file_sorted_first_no_longer_turns_a_colour_folder_grey(tmp_path):
    Image.new("L", (12, 12), 90).save(tmp_path / "0_grey.png")
    for i in range(3):
        Image.new("RGB", (12, 12), (200, 30 * i, 10)).save(tmp_path / f"{i + 1}_colour.png")
    assert ImageFolder(tmp_path, channels=None).channels == 3
    images = load_image_folder(tmp_path, 12, channels=None)
    assert images.shape == (4, 3, 12, 12)
    assert torch.equal(images[0, 0], images[0, 2])  # the grey file, as RGB: equal channels
    # Grey files only (a grey palette file included) resolve to one channel.
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.new("L", (12, 12), 10).save(grey / "a.png")
    palette = Image.new("P", (12, 12), 1)
    palette.putpalette([v for level in range(256) for v in (level, level, level)])
    palette.save(grey / "b.png")
    assert ImageFolder(grey, channels=None).channels == 1
    coloured = Image.new("P", (12, 12), 1)
    coloured.putpalette([0, 0, 0, 255, 0, 0])
    coloured.save(grey / "c.png")
    assert ImageFolder(grey, channels=None).channels == 3
    # The given channels stay as given; the default stays torchvision's RGB.
    assert ImageFolder(grey).channels == 3 and ImageFolder(grey, channels=1).channels == 1


def test_one_small_file_no_longer_sets_the_size(tmp_path):
    Image.new("RGB", (6, 9), 0).save(tmp_path / "0_small.png")  # shorter side 6, sorted first
    for i, size in enumerate([(40, 30), (30, 30), (30, 50), (64, 64)]):
        Image.new("RGB", size, (i, 0, 0)).save(tmp_path / f"{i + 1}.png")
    folder = ImageFolder(tmp_path)
    assert folder.median_size == 30  # shorter sides 6, 30, 30, 30, 64
    assert load_image_folder(tmp_path).shape == (5, 3, 30, 30)
    assert load_image_folder(tmp_path, 16).shape == (5, 3, 16, 16)  # a given size wins
    Image.new("RGB", (8, 8)).save(tmp_path / "6.png")  # an even count: the lower median
    assert ImageFolder(tmp_path).median_size == 30  # sides 6, 8, 30, 30, 30, 64


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    levels = np.array([[0, 257, 4096], [32768, 51000, 65535]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode == "I;16"  # a 16-bit PNG, as PIL opens it
        clipped = np.asarray(image.convert("L")).tolist()  # what PIL's convert does: white
        assert clipped == [[0, 255, 255], [255, 255, 255]]
    folder = ImageFolder(tmp_path, channels=None, transform=TF.pil_to_tensor)
    assert folder.channels == 1
    expected = torch.tensor([[0, 1, 16], [128, 198, 255]], dtype=torch.uint8)  # v * 255 / 65535
    assert torch.equal(folder[0], expected[None])
    rgb = ImageFolder(tmp_path, channels=3, transform=TF.pil_to_tensor)[0]
    assert torch.equal(rgb, expected.expand(3, 2, 3))


def test_transparency_is_composited_onto_white_unless_4_channels(tmp_path, capsys):
    plate = Image.new("RGBA", (8, 8), (0, 0, 0, 64))  # a quarter-opaque black plate
    plate.save(tmp_path / "plate.png")
    to_bytes = TF.pil_to_tensor
    rgb = ImageFolder(tmp_path, transform=to_bytes)[0]
    assert torch.equal(rgb, torch.full((3, 8, 8), 191, dtype=torch.uint8))  # 255 * (1 - 64/255)
    theirs = datasets.folder.default_loader(str(tmp_path / "plate.png"))  # drops the alpha
    assert to_bytes(theirs).max() == 0  # the black square this replaces
    assert torch.equal(ImageFolder(tmp_path, channels=1, transform=to_bytes)[0], rgb[:1])
    rgba = ImageFolder(tmp_path, channels=4, transform=to_bytes)[0]
    assert rgba[:3].max() == 0 and (rgba[3] == 64).all()  # the alpha kept
    lines = stderr_lines(capsys)
    notice = "1 of 1 images have transparency (an alpha channel or a transparent colour), "
    assert sum(notice in line and "onto a white background" in line for line in lines) == 2
    # A palette file's transparent entry and a grey file with alpha are composited too.
    flat = tmp_path / "flat"
    flat.mkdir()
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([10, 20, 30, 200, 0, 0])
    palette.save(flat / "p.png", transparency=0)
    Image.new("LA", (8, 8), (0, 0)).save(flat / "q.png")
    images = ImageFolder(flat, transform=to_bytes)
    assert torch.equal(images[0], torch.full((3, 8, 8), 255, dtype=torch.uint8))
    assert torch.equal(images[1], torch.full((3, 8, 8), 255, dtype=torch.uint8))


def test_files_that_are_not_images_are_counted_in_one_line(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "icon.svg").write_text("<svg/>")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.svg").write_text("<svg/>")
    (tmp_path / "c.xpm").write_text("/* XPM */")
    (tmp_path / "README").write_text("notes")
    folder = ImageFolder(tmp_path)
    assert len(folder) == 1
    lines = stderr_lines(capsys)
    assert lines == [
        f"image folder {tmp_path}: skipped 4 files that are not images "
        "(2 .svg, 1 .xpm, 1 (no suffix))"
    ]
    with pytest.raises(DataNotFoundError, match=r"no images \(looked for .*\); it holds 1 .svg"):
        ImageFolder(tmp_path / "sub")


def test_a_broken_file_is_skipped_by_name_not_fatal(tmp_path, capsys):
    for i in range(3):
        Image.new("RGB", (8, 8), (50 * i, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "1_broken.png").write_bytes(b"<html>not found</html>")
    folder = ImageFolder(tmp_path)
    assert [p.name for p in folder.files] == ["0.png", "1.png", "2.png"]
    assert stderr_lines(capsys) == [
        f"image folder {tmp_path}: skipped {tmp_path / '1_broken.png'}: cannot identify image file"
    ]
    assert load_image_folder(tmp_path, 8).shape == (3, 3, 8, 8)


def truncated_png(path, size=32) -> None:
    """A PNG whose header reads and whose pixels stop halfway (an interrupted download)."""
    rng = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=rng).numpy()
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_file_whose_pixels_do_not_decode_is_dropped_with_its_label(tmp_path, capsys):
    write_classes(tmp_path, {"a": 2, "b": 2}, size=(32, 32))
    truncated_png(tmp_path / "a" / "0b.png")
    folder = ImageFolder(tmp_path, 16)
    assert len(folder) == 5 and folder.targets == [0, 0, 0, 1, 1]  # the header reads
    with pytest.raises(ValueError, match=r"cannot read image .*0b.png: .*truncated"):
        folder[1]  # read lazily, it cannot be skipped: named instead
    capsys.readouterr()
    images = folder.load()
    assert images.shape == (4, 3, 16, 16)
    assert folder.targets == [0, 0, 1, 1] and len(folder.samples) == len(folder.files) == 4
    assert "0b.png" not in [path.name for path in folder.files]
    for index in range(4):
        assert torch.equal(images[index], folder[index][0])
    [line] = stderr_lines(capsys)
    assert line.startswith(f"image folder {tmp_path}: skipped {tmp_path / 'a' / '0b.png'}: ")


def test_huge_files_and_decompression_bombs_are_refused_by_name_unread(
    tmp_path, capsys, monkeypatch
):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    declared_png(tmp_path / "bomb.png", 30_000, 30_000)  # over twice PIL's bound: PIL refuses
    declared_png(tmp_path / "big.png", 10_000, 10_000)  # over PIL's bound: PIL only warns
    assert (tmp_path / "bomb.png").stat().st_size < 200

    def no_decoding(self, *args):
        raise AssertionError(f"pixels of {self.filename} were decoded")

    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", no_decoding)
        folder = ImageFolder(tmp_path)
    assert [p.name for p in folder.files] == ["a.png"]
    lines = stderr_lines(capsys)
    assert len(lines) == 2
    assert lines[0].startswith(f"image folder {tmp_path}: skipped {tmp_path / 'big.png'}: ")
    assert (
        "refused, 10000x10000 = 100,000,000 pixels is over PIL's Image.MAX_IMAGE_PIXELS "
        in (lines[0])
    )
    assert f"skipped {tmp_path / 'bomb.png'}: refused as a decompression bomb: " in lines[1]
    # Over ganlib's file-size bound: refused from its size, before it is opened.
    monkeypatch.setattr(folder_module, "MAX_FILE_BYTES", 16)

    def no_opening(path, *args):
        raise AssertionError(f"{path} was opened")

    monkeypatch.setattr(Image, "open", no_opening)
    with pytest.raises(DataNotFoundError, match=r"none of its 3 image files can be read"):
        ImageFolder(tmp_path)
    size = (tmp_path / "a.png").stat().st_size
    assert f"skipped {tmp_path / 'a.png'}: refused, {size:,} bytes is over " in (
        capsys.readouterr().err
    )


def test_many_unreadable_files_are_named_up_to_ten_then_counted(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    for i in range(13):
        (tmp_path / f"bad{i:02d}.jpg").write_bytes(b"")
    assert len(ImageFolder(tmp_path)) == 1
    lines = stderr_lines(capsys)
    assert len(lines) == 11 and all("skipped" in line and "bad" in line for line in lines[:10])
    assert lines[-1] == f"image folder {tmp_path}: skipped 3 more unreadable files"


def test_the_small_data_studys_folder_can_be_fashion_mnist(tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT
    from ganlib.data.common import DataNotFoundError
    from ganlib.data.sources import load_fashion_mnist, load_run_data

    try:
        train, _ = load_fashion_mnist(tmp_path / "none", "train")  # (Debian's package, if there)
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    script = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "mnist_subset.py"),
        str(tmp_path / "f"),
    ]
    args = ["--count", "6", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none")]
    result = subprocess.run(script + args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "wrote 6 fashion-mnist training images" in result.stdout
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(load_run_data(str(tmp_path / "f")).images, train[order[:6]])

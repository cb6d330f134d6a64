"""ganlib's ImageFolder behaves like torchvision's where a torchvision user relies on it:
class subfolders give (image, class_index) with classes / class_to_idx, and transform=."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision import datasets, transforms

from ganlib import DCGAN, Trainer
from ganlib.data import DataNotFoundError, ImageFolder, load_image_folder


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

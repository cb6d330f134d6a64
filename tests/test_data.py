"""Image-folder loading: sizes, channels, scaling and the errors for bad folders."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from conftest import images, trainer
from ganlib import DCGAN, Trainer
from ganlib.data import DataNotFoundError, ImageFolder, load_image_folder


def write_images(folder, sizes, mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for index, (width, height) in enumerate(sizes):
        color = (index * 40 % 256, 128, 255) if mode == "RGB" else index * 40 % 256
        Image.new(mode, (width, height), color).save(folder / f"img{index}.png")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_folder_images_are_resized_cropped_and_scaled(tmp_path, channels):
    write_images(tmp_path, [(40, 20), (20, 50), (16, 16)])
    write_images(tmp_path / "sub", [(33, 33)], mode="L")  # subfolders and other modes count
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_image_folder(tmp_path, image_size=16, channels=channels)
    assert images.shape == (4, channels, 16, 16)
    assert images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1


def test_pixels_match_torchvision_to_tensor_and_normalize(tmp_path):
    write_images(tmp_path, [(8, 8)])
    from torchvision.transforms import functional as TF

    with Image.open(tmp_path / "img0.png") as image:
        expected = TF.normalize(TF.to_tensor(image.convert("RGB")), [0.5] * 3, [0.5] * 3)
    torch.testing.assert_close(load_image_folder(tmp_path, 8)[0], expected)


def test_centre_crop_keeps_the_middle(tmp_path):
    image = Image.new("L", (30, 10), 0)
    image.paste(255, (10, 0, 20, 10))  # a white middle third
    tmp_path.mkdir(exist_ok=True)
    image.save(tmp_path / "wide.png")
    out = load_image_folder(tmp_path, 10, channels=1)[0, 0]
    assert out.min() > 0.9  # the crop is the white middle


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist or is not a folder"):
        load_image_folder(tmp_path / "missing", 16)
    with pytest.raises(DataNotFoundError, match=r"holds no images \(looked for .bmp"):
        load_image_folder(tmp_path, 16)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(
        DataNotFoundError,
        match=r"holds no readable images: none of its 1 image files can be read "
        r"\(the first: cannot read image .*broken.png: cannot identify image file\)",
    ):
        load_image_folder(tmp_path, 16)
    write_images(tmp_path / "ok", [(8, 8)])
    with pytest.raises(ValueError, match=r"`channels` must be one of \[1, 3, 4\] or None, got 2"):
        ImageFolder(tmp_path / "ok", 8, channels=2)
    with pytest.raises(ValueError, match="`image_size` must be >= 1, got 0"):
        ImageFolder(tmp_path / "ok", 0)


def test_trainer_trains_on_an_image_folder_dataset(tmp_path):
    write_images(tmp_path, [(20, 20)] * 6)
    gan = DCGAN(image_size=16, channels=3, latent_dim=4, width=4)
    trainer = Trainer(gan, max_steps=2, progress=False)
    state = trainer.fit(ImageFolder(tmp_path, 16), batch_size=3)
    assert state.step == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (images(8).squeeze(1), r"4-d tensor \(N, C, H, W\), got shape \(8, 12, 12\).*unsqueeze"),
        (images(8)[:, None], r"4-d tensor \(N, C, H, W\), got shape \(8, 1, 1, 12, 12\)"),
        (images(1)[0], r"got shape \(1, 12, 12\); a single image"),
        ((images(40), torch.zeros(20, dtype=torch.long)), r"40 images, 20 labels"),
        ((images(40), torch.zeros(80, dtype=torch.long)), r"40 images, 80 labels"),
    ],
)
def test_tensor_data_of_the_wrong_form_is_refused_before_step_one(data, message):
    with pytest.raises(ValueError, match=message):
        trainer([]).fit(data, batch_size=8)


def test_non_finite_images_anywhere_are_refused():
    data = images(40)
    data[20, 0, 3, 3] = float("nan")
    with pytest.raises(
        ValueError, match=r"NaN or infinite values in 1 images \(the first is image 20"
    ):
        trainer([]).fit(data, batch_size=8)


def test_range_is_checked_on_every_image():
    data = images(40)
    data[30] = data[30] * 127.5 + 127.5  # one image in [0, 255]
    with pytest.warns(UserWarning, match=r"images range over \[-1, 2"):
        trainer([]).fit(data, batch_size=8)
    with pytest.warns(UserWarning, match=r"they look like \[0, 1\]"):
        trainer([]).fit((images(16) + 1) / 2, batch_size=8)

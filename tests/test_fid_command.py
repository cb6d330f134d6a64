"""`ganlib fid A B`: folders, .npz statistics and checkpoints, offline."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from ganlib import DCGAN, Trainer
from ganlib.cli import main
from ganlib.data import load_image_folder
from ganlib.metrics import FeatureStats, embed, frechet_distance, load_mnist_classifier


def digits_folder(root, count: int, seed: int):
    root.mkdir(parents=True)
    rng = torch.Generator().manual_seed(seed)
    for i in range(count):
        pixels = (torch.rand(28, 28, generator=rng) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels, mode="L").save(root / f"{i:03d}.png")
    return root


def test_fid_of_two_folders_equals_the_library_value(tmp_path, capsys):
    a, b = digits_folder(tmp_path / "a", 12, 0), digits_folder(tmp_path / "b", 10, 1)
    stats = tmp_path / "a_stats.npz"
    args = ["fid", str(a), str(b), "--features", "mnist", "--save-stats", str(stats), "--kid"]
    assert main([*args, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    classifier = load_mnist_classifier()
    fa = embed(classifier.embed, load_image_folder(a, 28, 1))
    fb = embed(classifier.embed, load_image_folder(b, 28, 1))
    expected = frechet_distance(fa, fb)
    reported = float(out.split("FD (mnist features): ")[1].split()[0])
    assert reported == pytest.approx(expected, rel=1e-5)
    assert "KID: " in out and "(subsets of 10)" in out
    # The saved statistics stand in for the folder: the same FD, without the images.
    with np.load(stats) as saved:
        assert int(saved["count"]) == 12
        assert np.allclose(saved["mu"], FeatureStats.of(fa).mean.numpy())
    assert main(["fid", str(stats), str(b), "--features", "mnist", "--device", "cpu"]) == 0
    again = float(capsys.readouterr().out.split("FD (mnist features): ")[1].split()[0])
    assert again == pytest.approx(expected, rel=1e-5)


def test_fid_samples_a_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    trainer = Trainer(DCGAN(28, 1, latent_dim=8, width=4), max_steps=1, seed=0, progress=False)
    trainer.fit(torch.rand(8, 1, 28, 28) * 2 - 1, batch_size=8)
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(str(ckpt))
    real = digits_folder(tmp_path / "real", 10, 2)
    args = ["fid", str(ckpt), str(real), "--features", "mnist", "--num", "20", "--device", "cpu"]
    assert main(args) == 0
    assert float(capsys.readouterr().out.split(": ")[1].split()[0]) > 0


def test_fid_names_a_side_it_cannot_read(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    args = ["fid", str(tmp_path / "notes.txt"), str(tmp_path), "--features", "mnist"]
    assert main([*args, "--device", "cpu"]) == 2
    assert "A '" in capsys.readouterr().err
    args = ["fid", str(tmp_path / "none.npz"), str(tmp_path), "--features", "mnist"]
    assert main(args) == 2
    assert "does not exist" in capsys.readouterr().err


def colour_folder(root, count: int, size: int = 64):
    root.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (size, size), (20 * i, 100, 200)).save(root / f"{i:03d}.png")
    return root


def stats_file(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"mu": np.array([0.0, np.nan]), "sigma": np.eye(2)}, "'mu' holds 1 NaN or infinite"),
        ({"mu": np.zeros(2), "sigma": np.full((2, 2), np.inf)}, "'sigma' holds 4 NaN or inf"),
        ({"mu": np.array(["a", "b"]), "sigma": np.eye(2)}, "'mu' must hold real numbers, got"),
        ({"mu": np.zeros(2), "sigma": np.eye(3)}, r"'mu' must be \(D,\) and 'sigma' \(D, D\)"),
        ({"mu": np.zeros(2), "sigma": np.eye(2), "count": "ten"}, "'count' must hold real"),
        ({"mu": np.zeros(2), "sigma": np.eye(2), "count": -1}, "'count' must be one non-neg"),
        ({"mu": np.array([{}, {}]), "sigma": np.eye(2)}, "is not an .npz of numeric arrays"),
        ({"sigma": np.eye(2)}, "has no 'mu' and 'sigma' arrays"),
    ],
)
def test_fid_names_what_is_wrong_with_a_statistics_file(tmp_path, capsys, arrays, message):
    bad = stats_file(tmp_path / "bad.npz", **arrays)
    good = stats_file(tmp_path / "good.npz", mu=np.zeros(2), sigma=np.eye(2))
    for args in ([bad, good], [good, bad]):
        assert main(["fid", *map(str, args), "--features", "mnist", "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
    (tmp_path / "text.npz").write_text("not a zip")
    args = ["fid", str(tmp_path / "text.npz"), str(good), "--features", "mnist"]
    assert main([*args, "--device", "cpu"]) == 2
    assert "A '" in capsys.readouterr().err


def test_save_stats_writes_the_named_file_atomically(tmp_path, capsys, monkeypatch):
    a, b = digits_folder(tmp_path / "a", 12, 0), digits_folder(tmp_path / "b", 10, 1)
    args = ["fid", str(a), str(b), "--features", "mnist", "--device", "cpu"]
    assert main([*args, "--save-stats", str(tmp_path / "stats")]) == 2  # np.savez adds .npz
    assert "--save-stats must name a .npz file" in capsys.readouterr().err
    assert not list(tmp_path.glob("stats*"))
    target = tmp_path / "out" / "a.npz"
    assert main([*args, "--save-stats", str(target)]) == 0
    first = target.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.npz"]

    def dies(handle, **arrays):  # a write cut off half-way (disk full, Ctrl-C)
        handle.write(b"PK half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", dies)
    assert main([*args, "--save-stats", str(target)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert target.read_bytes() == first  # the earlier file, whole; no temporary left
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.npz"]


def test_missing_inception_weights_name_the_flag_and_the_place(tmp_path, capsys, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    a = colour_folder(tmp_path / "a", 3)
    assert main(["fid", str(a), str(a), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (after the download notice)
    assert err.startswith("error: "), err
    assert "--features fid-inception needs its Inception weights" in err
    assert "pass its path with --weights" in err and str(tmp_path / "cache") in err
    assert "--features mnist works offline" in err
    missing = tmp_path / "nowhere.pth"
    assert main(["fid", str(a), str(a), "--weights", str(missing), "--device", "cpu"]) == 2
    assert f"(--weights '{missing}')" in capsys.readouterr().err


def test_mnist_features_on_other_pictures_or_few_images_come_with_a_notice(tmp_path, capsys):
    colour = colour_folder(tmp_path / "colour", 12)
    digits = digits_folder(tmp_path / "digits", 10, 1)
    args = ["fid", str(colour), str(digits), "--features", "mnist", "--device", "cpu"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "A holds 3x64x64 images, but --features mnist measures 28x28 grayscale digits" in err
    assert "B holds" not in err  # 28x28 grayscale: as the classifier wants
    assert "A has 12 images; a Fréchet distance from fewer than 500" in err
    assert "B has 10 images" in err

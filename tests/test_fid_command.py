"""`ganlib fid A B`: folders, .npz statistics and checkpoints, offline."""

from __future__ import annotations

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

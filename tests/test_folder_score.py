"""Scores for any folder, offline: a fixed random feature space, a held-out slice of the
folder as the reference, and the memorisation check (nearest training vs nearest held-out
image), tracked during training and shown in the report."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from ganlib.cli import main
from ganlib.data.shapes import make_shapes
from ganlib.data.sources import RunData
from ganlib.metrics import RandomFeatures, memorisation
from ganlib.runs import (
    RunSettings,
    held_out_count,
    load_trained_data,
    memorisation_images,
    read_config,
)

TINY = ["--width", "4", "--latent-dim", "8", "--batch-size", "8", "--device", "cpu"]


def test_random_features_are_fixed_by_channels_and_seed():
    images = torch.rand(5, 3, 20, 20) * 2 - 1
    a, b = RandomFeatures(3), RandomFeatures(3)
    assert torch.equal(a(images), b(images)) and a(images).shape == (5, 128)
    assert not torch.equal(a(images), RandomFeatures(3, seed=1)(images))
    for channels in (1, 2, 4):  # any channels, any size (pooling stops at 1 pixel)
        assert RandomFeatures(channels)(torch.zeros(2, channels, 3, 5)).shape == (2, 128)
    assert not any(p.requires_grad for p in a.parameters()) and not a.training
    with pytest.raises(ValueError, match="`channels` must be 1 to 4, got 5"):
        RandomFeatures(5)


def test_memorisation_is_near_one_for_fresh_samples_and_near_zero_for_copies():
    draw = torch.Generator().manual_seed(0)
    train, held_out, fresh = (torch.randn(400, 8, generator=draw) for _ in range(3))
    assert memorisation(fresh, train, held_out).median == pytest.approx(1.0, abs=0.1)
    copies = train[:100] + 1e-3 * torch.randn(100, 8, generator=draw)
    result = memorisation(copies, train, held_out)
    assert result.median < 0.01
    assert torch.equal(result.nearest_train, torch.arange(100))  # each copy finds its source
    with pytest.raises(ValueError, match="`held_out` must be"):
        memorisation(fresh, train, torch.randn(3, 5))


def test_holding_out_moves_a_seeded_slice_out_of_training():
    images = torch.arange(10.0).reshape(10, 1, 1, 1)
    data = RunData(images, torch.arange(10), 1, 1, None)
    split = data.holding_out(3, seed=4)
    assert split.held_out is not None and len(split.held_out) == 3 and len(split.images) == 7
    together = torch.cat([split.images, split.held_out]).flatten().sort().values
    assert torch.equal(together, images.flatten())  # disjoint, nothing lost
    assert torch.equal(split.labels, split.images.flatten().long())  # labels follow
    assert torch.equal(data.holding_out(3, seed=4).held_out, split.held_out)


def test_memorisation_images_are_as_many_seeded_training_images_as_held_out():
    data = RunData(torch.arange(20.0).reshape(20, 1, 1, 1), None, 1, 1, None).holding_out(5, 0)
    chosen = memorisation_images(RunSettings("pictures", seed=3), data)
    assert len(chosen) == 5
    assert set(chosen.flatten().tolist()) <= set(data.images.flatten().tolist())
    assert chosen.flatten().tolist() == sorted(chosen.flatten().tolist())  # the folder's order
    assert torch.equal(memorisation_images(RunSettings("pictures", seed=3), data), chosen)
    assert not torch.equal(memorisation_images(RunSettings("pictures", seed=4), data), chosen)
    with pytest.raises(ValueError, match="held-out"):
        memorisation_images(RunSettings("pictures"), RunData(data.images, None, 1, 1, None))


@pytest.mark.parametrize(
    ("given", "images", "held"),
    [
        ({}, 2247, 225),
        ({}, 60_000, 2000),  # at most 2,000
        ({}, 199, 0),  # too few to spare any
        ({"holdout": 0.0}, 2247, 0),
        ({"eval_every": 0}, 2247, 0),
        ({"eval_features": "none"}, 2247, 0),
        ({"data": "mnist"}, 60_000, 0),  # a named data set's test split is its reference
        ({"task": "cyclegan"}, 2247, 0),
    ],
)
def test_the_held_out_slice_is_a_share_of_a_folder_that_evaluates(given, images, held):
    settings = RunSettings(**{"data": "pictures", **given})
    assert held_out_count(settings, images) == held


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"), count=240, image_size=12)


def test_a_folder_run_scores_against_its_held_out_images_and_checks_memorisation(
    folder, tmp_path, capsys
):
    run = tmp_path / "run"
    args = ["train", str(folder), "--out", str(run), "--max-steps", "4", "--eval-every", "2"]
    assert main([*args, "--eval-samples", "64", *TINY]) == 0
    out = capsys.readouterr().out
    assert "training dcgan on 216 images (3x12x12, 24 more held out)" in out
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    scored = [row for row in rows if row["fd"]]
    assert [row["step"] for row in scored] == ["2", "4"]
    assert all(float(row["fd"]) > 0 and float(row["memorisation"]) > 0 for row in scored)
    chosen = read_config(run / "config.toml", "chosen")
    assert chosen["evaluation"].startswith("FD in random features against 24 held-out images")
    report = (run / "report.html").read_text()
    assert "Memorisation check" in report and "median ratio" in report
    assert (run / "checkpoints" / "best.ckpt").exists()  # best by FD, as MNIST runs


def test_holdout_0_trains_on_every_image_without_scores(folder, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", str(folder), "--out", str(run), "--max-steps", "2", "--holdout", "0"]
    assert main([*args, *TINY]) == 0
    assert "training dcgan on 240 images (3x12x12) from" in capsys.readouterr().out
    assert "fd" not in (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert main([*args[:4], "--eval-features", "random", "--holdout", "0", *TINY]) == 2
    assert "`eval_features` 'random' scores a folder run against" in capsys.readouterr().err


def test_a_run_from_before_the_holdout_resumes_on_all_its_images(folder, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", str(folder), "--out", str(run), "--holdout", "0", "--eval-every", "0"]
    assert main([*args, "--max-steps", "2", *TINY]) == 0
    config = run / "config.toml"  # as an earlier release wrote it: no `holdout`
    config.write_text(
        "\n".join(line for line in config.read_text().splitlines() if "holdout" not in line)
    )
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "training dcgan on 240 images (3x12x12) from" in out
    assert read_config(config)["holdout"] == 0.0  # config.toml says what ran


def test_a_finished_runs_data_comes_back_split_as_it_trained(folder, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(folder), "--out", str(run), "--max-steps", "2", "--eval-every", "2"]
    assert main([*args, "--eval-samples", "16", *TINY]) == 0
    settings, data = load_trained_data(run)
    assert settings.seed == 0 and settings.download is False
    assert data.held_out is not None and (len(data.images), len(data.held_out)) == (216, 24)
    config = run / "config.toml"  # as an earlier release wrote it: no `holdout`, all trained
    config.write_text(
        "\n".join(line for line in config.read_text().splitlines() if "holdout" not in line)
    )
    settings, data = load_trained_data(run)
    assert settings.holdout == 0.0 and data.held_out is None and len(data.images) == 240


def test_ada_can_read_the_held_out_images_and_says_so(folder, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", str(folder), "--out", str(run), "--max-steps", "4", "--eval-every", "4"]
    assert main([*args, "--eval-samples", "16", "--ada-signal", "held-out", *TINY]) == 0
    chosen = read_config(run / "config.toml", "chosen")
    assert "tuned from D's scores on the held-out images (r_v)" in chosen["augment"]
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["ada_rv"]) for row in rows][:3] == [0.0] * 3  # (measured at step 4)
    assert rows[-1]["d_real_raw"] and rows[-1]["d_fake_raw"]
    capsys.readouterr()
    nothing_held = [*args[:4], "--out", str(tmp_path / "b"), "--holdout", "0"]
    assert main([*nothing_held, "--ada-signal", "held-out", *TINY]) == 2
    assert "--ada-signal held-out reads the folder's held-out images" in capsys.readouterr().err
    no_ada = [*nothing_held, "--augment", "none", "--ada-signal", "held-out", *TINY]
    assert main(no_ada) == 2
    assert "--ada-signal tunes adaptive augmentation (--augment ada), got augment='none'" in (
        capsys.readouterr().err
    )

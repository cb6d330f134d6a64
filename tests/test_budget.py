"""A run's budget in images shown (``--kimg``), its default with a floor for small data,
and what a run on a small folder chooses for itself (adaptive augmentation), said at the
start and recorded in config.toml's ``[chosen]``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from ganlib.cli import main
from ganlib.data.shapes import make_shapes
from ganlib.runs import MIN_KIMG, RunSettings, read_config, training_budget
from ganlib.runs.settings import ADA_BELOW_IMAGES

TINY = ["--width", "4", "--latent-dim", "8", "--batch-size", "8", "--device", "cpu"]


def budget(images: int, min_kimg: float | None = MIN_KIMG, **given):
    return training_budget(RunSettings(data="x", batch_size=50, **given), images, min_kimg)


def test_small_data_trains_for_the_floor_and_large_data_for_ten_epochs():
    icons = budget(2247)
    assert (icons.max_steps, icons.max_epochs) == (4000, None)  # 200 kimg / 50
    assert icons.images == 200_000 and "at least 200 kimg" in icons.reason
    assert "10 epochs would show 22.5 kimg" in icons.reason
    mnist = budget(60_000)  # 10 epochs are 600 kimg, over the floor: unchanged
    assert (mnist.max_steps, mnist.max_epochs, mnist.steps) == (None, 10, 12_000)
    assert "the default, 10 epochs" in mnist.reason
    # A task without a floor (translation, semi-supervised) keeps 10 epochs.
    assert (budget(2247, None).max_epochs, budget(2247, None).steps) == (10, 450)


def test_given_limits_decide_alone_or_the_first_reached_wins():
    assert budget(2247, kimg=10).steps == 200 and "--kimg as given" in budget(2247, kimg=10).reason
    assert budget(2247, kimg=10.01).steps == math.ceil(10_010 / 50)
    only_steps = budget(2247, max_steps=7)
    assert (only_steps.max_steps, only_steps.max_epochs, only_steps.steps) == (7, None, 7)
    only_epochs = budget(2247, epochs=2)
    assert (only_epochs.max_steps, only_epochs.max_epochs, only_epochs.steps) == (None, 2, 90)
    both = budget(2247, kimg=100, epochs=2)
    assert both.steps == 90 and "--kimg, --epochs: first reached" in both.reason
    assert budget(2247, kimg=1, max_steps=30).max_steps == 20  # the nearer step limit
    line = budget(2247).describe(2247)
    assert line.startswith("budget: 200 kimg = 4,000 steps of 50 images (89 epochs of 2,247)")


def test_kimg_is_checked_like_every_setting(capsys):
    assert main(["train", "x", "--kimg", "0"]) == 2
    assert "--kimg must be > 0, got 0.0" in capsys.readouterr().err


def test_augment_is_adaptive_below_the_bound_unless_given():
    settings = RunSettings(data="x")
    assert settings.choose_augment(ADA_BELOW_IMAGES - 1).startswith("ada: adaptive")
    assert settings.augment == "ada"
    large = RunSettings(data="x")
    assert large.choose_augment(ADA_BELOW_IMAGES).startswith("none: ")
    assert large.augment is None
    critic = RunSettings(data="x", loss="wgan-gp")
    assert critic.choose_augment(10).startswith("none: a WGAN critic") and critic.augment is None
    given = RunSettings(data="x", augment="none")
    assert given.choose_augment(10) == "none: as given" and given.augment == "none"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"), count=24, image_size=12)


def test_a_small_folder_says_its_budget_and_tunes_p(folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(folder), "--out", str(run), "--kimg", "0.04", *TINY]) == 0
    out = capsys.readouterr().out
    assert "budget: 0.04 kimg = 5 steps of 8 images (1.7 epochs of 24); --kimg as given" in out
    assert "aug_p " in out and "d_real_sign " in out  # on the progress line
    chosen = read_config(run / "config.toml", "chosen")
    assert chosen["augment"].startswith("ada: adaptive augmentation for data of fewer than")
    assert chosen["budget"].startswith("0.04 kimg = 5 steps")
    assert chosen["network"].startswith("dcgan, width 4: DCGAN for colour")
    assert read_config(run / "config.toml")["augment"] == "ada"  # what ran, read back
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and all(0.0 <= float(r["aug_p"]) <= 0.8 for r in rows)


def test_augment_none_turns_adaptive_augmentation_off(folder, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(folder), "--out", str(run), "--max-steps", "2", "--augment", "none"]
    assert main([*args, *TINY]) == 0
    assert "aug_p" not in (run / "metrics.csv").read_text().splitlines()[0]
    assert read_config(run / "config.toml", "chosen")["augment"] == "none: as given"

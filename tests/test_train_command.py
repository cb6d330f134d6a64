"""`ganlib train`: a folder of the user's own pictures to a trained, resumed, sampled run."""

from __future__ import annotations

import csv
import html
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import REPO_ROOT
from ganlib.callbacks import Callback
from ganlib.checkpoint import load_checkpoint
from ganlib.cli import main
from ganlib.data.shapes import make_shapes
from ganlib.data.sources import RunData
from ganlib.models import MinibatchStd
from ganlib.runfolder import LOCK_NAME
from ganlib.runs import (
    DEFAULT_WIDTHS,
    RunFolder,
    RunSettings,
    build_trainer,
    read_config,
    snapshot_epochs,
    train,
)

TINY = ["--width", "4", "--latent-dim", "8", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    # RGB at an odd size, three classes as subfolders: like a user's own folder.
    return make_shapes(tmp_path_factory.mktemp("shapes"), count=24, image_size=21)


def ganlib(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganlib", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_train_resume_and_sample_a_folder_as_a_user_does(shapes, tmp_path):
    run = tmp_path / "runs" / "shapes"
    first = ganlib("train", str(shapes), "--out", str(run), "--max-steps", "2", *TINY)
    assert first.returncode == 0, first.stderr
    assert "training dcgan on 24 images (3x21x21)" in first.stdout
    assert "starting at step 0 of 2" in first.stdout and "finished: 2 steps" in first.stdout
    config = read_config(run / "config.toml")
    assert (config["image_size"], config["channels"], config["max_steps"]) == (21, 3, 2)
    assert {p.name for p in run.iterdir()} >= {
        "config.toml",
        "metrics.csv",
        "loss_curve.png",
        "real_samples.png",
        "generated_step_0000002.png",
        "overview.png",
        "summary.json",
        "checkpoints",
        "report.html",
    }
    assert "finished at step 2" in (run / "report.html").read_text()
    # The same command again would clobber the run: refused, in one line.
    again = ganlib("train", str(shapes), "--out", str(run), "--max-steps", "2", *TINY)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "--resume" in again.stderr and "--overwrite" in again.stderr
    # Continue it from the folder alone, further.
    resumed = ganlib("train", "--resume", str(run), "--max-steps", "5")
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["state"]["step"] == 5
    assert [int(r["step"]) for r in rows(run)] == [1, 2, 3, 4, 5]
    assert read_config(run / "config.toml")["max_steps"] == 5
    sampled = ganlib("sample", str(run), "--ema", "--num", "6", "--out", str(tmp_path / "g.png"))
    assert sampled.returncode == 0, sampled.stderr
    with Image.open(tmp_path / "g.png") as grid:
        assert grid.size == (2 + 6 * 23, 2 + 1 * 23)  # 21-pixel images, 2-pixel padding


def test_a_run_started_from_its_config_repeats_bitwise(shapes, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    grids = ["--grid-every", "1", "--checkpoint-every", "2"]
    assert main(["train", str(shapes), "--out", str(a), "--max-steps", "2", *TINY, *grids]) == 0
    assert main(["train", "--config", str(a / "config.toml"), "--out", str(b)]) == 0
    first = load_checkpoint(a / "checkpoints" / "last.ckpt")
    second = load_checkpoint(b / "checkpoints" / "last.ckpt")
    for part in ("generator", "discriminator"):
        for name, value in first[part].items():
            assert torch.equal(value, second[part][name]), f"{part}.{name}"
    assert (a / "generated_step_0000001.png").exists() and (
        b / "generated_step_0000002.png"
    ).exists()
    assert rows(a) == rows(b)


def test_a_conditional_run_learns_the_subfolders_as_classes(shapes, tmp_path):
    run = tmp_path / "c"
    args = ["train", str(shapes), "--out", str(run), "--conditional", "--max-steps", "2", *TINY]
    assert main(args) == 0
    payload = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert payload["gan_config"]["num_classes"] == 3
    assert (
        main(["sample", str(run), "--label", "2", "--num", "4", "--out", str(tmp_path / "t.png")])
        == 0
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train"], "DATA is required"),
        (["train", "no-such-folder"], "neither a folder of images nor one of mnist"),
        (["train", "--resume", "."], "is not a run folder: no config.toml"),
        (["train", "x", "--lr-g", "0"], "--lr-g must be > 0, got 0.0"),
        (["train", "x", "--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
        (["train", "x", "--loss", "nope"], "argument --loss: invalid choice: 'nope'"),
    ],
)
def test_train_errors_are_one_line(args, message, capsys):
    try:
        code = main(args)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_config_files_are_checked(tmp_path, capsys):
    bad = tmp_path / "run.toml"
    bad.write_text('[run]\ndata = "x"\nwdith = 8\n')
    assert main(["train", "--config", str(bad)]) == 2
    assert "unknown settings ['wdith']" in capsys.readouterr().err
    bad.write_text('[run]\ndata = "x"\nepochs = "ten"\n')
    assert main(["train", "--config", str(bad)]) == 2
    assert "`epochs` must be int, got 'ten'" in capsys.readouterr().err
    assert RunSettings.from_dict({"data": "x", "lr_g": 1}, "t").lr_g == 1.0
    bad.write_text('[run]\ndata = "x"\naugment = "adaa"\n')
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "--augment must be ada, none or a DiffAugment policy of color, translation" in err
    assert "got 'adaa' (in " in err
    for policy in ("ada", "none", "translation,color"):
        assert RunSettings.from_dict({"data": "x", "augment": policy}, "t").augment == policy


def test_fashion_mnist_is_read_from_debians_package_or_named_missing(tmp_path):
    from ganlib.data import DataNotFoundError
    from ganlib.data.sources import FASHION_MNIST_DIRS, load_run_data

    if not any((d / "train-images-idx3-ubyte.gz").exists() for d in FASHION_MNIST_DIRS):
        with pytest.raises(DataNotFoundError, match=r"apt-get install dataset-fashion-mnist"):
            load_run_data("fashion-mnist", data_dir=tmp_path)
        return
    data = load_run_data("fashion-mnist", data_dir=tmp_path, split="test")
    assert tuple(data.images.shape) == (10_000, 1, 28, 28) and data.num_classes == 10
    assert data.labels is not None and data.labels.bincount().tolist() == [1000] * 10
    assert float(data.images.min()) == -1.0 and float(data.images.max()) == 1.0


def test_spectral_norm_r1_and_diffaugment_are_settings(shapes, tmp_path, capsys):
    run = tmp_path / "sn"
    extra = ["--spectral-norm", "--r1-gamma", "1", "--r1-every", "4", "--augment", "translation"]
    args = ["train", str(shapes), "--out", str(run), "--max-steps", "2", *TINY, *extra]
    assert main(args) == 0
    config = read_config(run / "config.toml")
    assert (config["spectral_norm"], config["r1_every"], config["augment"]) == (
        True,
        4,
        "translation",
    )
    settings = RunSettings.from_dict({**config, "out": str(tmp_path / "again")}, "config")
    trainer = build_trainer(settings)
    assert any("parametrizations" in name for name, _ in trainer.discriminator.named_modules())
    assert trainer.loss.every == 4 and trainer.loss.gamma == 1.0
    assert trainer.train_step.augment.policy == "translation"
    # A setting the architecture lacks is named, with what it takes.
    resnet = RunSettings.from_dict({**config, "arch": "resnet"}, "config")
    with pytest.raises(ValueError, match="'resnet' has no setting 'spectral_norm'"):
        build_trainer(resnet)


def test_minibatch_std_is_a_dcgan_setting_kept_on_resume(shapes, tmp_path, capsys):
    run = tmp_path / "mbstd"
    args = ["train", str(shapes), "--out", str(run), "--max-steps", "2", *TINY]
    assert main([*args, "--minibatch-std", "4"]) == 0
    config = read_config(run / "config.toml")
    assert config["minibatch_std"] == 4
    trainer = build_trainer(RunSettings.from_dict({**config, "out": str(tmp_path / "b")}, "c"))
    layers = [m for m in trainer.discriminator.modules() if isinstance(m, MinibatchStd)]
    assert [layer.group_size for layer in layers] == [4]
    # It defines D's shape: a resumed run cannot change it.
    resume = ["train", "--resume", str(run), "--minibatch-std", "2", "--max-steps", "3"]
    assert "--minibatch-std 2 differs from the run's 4" in refused(resume, capsys)
    for given, got in [({"arch": "resnet"}, "arch='resnet'"), ({"task": "pix2pix"}, "'pix2pix'")]:
        with pytest.raises(ValueError, match=rf"--minibatch-std is an option of DCGAN.*{got}"):
            RunSettings(data="x", minibatch_std=4, **given).validate()
    with pytest.raises(ValueError, match=r"--minibatch-std must be .*got -1"):
        RunSettings(data="x", minibatch_std=-1).validate()


@pytest.mark.parametrize(
    ("images", "batch", "epochs"),
    [(60_000, 50, 1), (10_000, 50, 1), (9_950, 50, 2), (2_022, 50, 5), (900, 50, 12), (0, 50, 1)],
)
def test_default_snapshots_are_at_least_200_steps_apart(images, batch, epochs):
    settings = RunSettings(data="x", batch_size=batch)
    assert snapshot_epochs(settings, images) == epochs


def test_a_small_folders_grids_and_checkpoints_come_every_few_epochs(shapes, tmp_path, monkeypatch):
    import ganlib.runs.build

    monkeypatch.setattr(ganlib.runs.build, "MIN_SNAPSHOT_STEPS", 6)  # (200 in earnest)
    run = tmp_path / "small"  # 24 images at batch 8: 3 steps an epoch, so every 2 epochs
    args = ["train", str(shapes), "--out", str(run), "--holdout", "0", *TINY]
    assert main([*args, "--max-steps", "10"]) == 0
    grids = sorted(p.name for p in run.glob("generated_*.png"))
    assert grids == ["generated_epoch_002.png", "generated_step_0000010.png"]
    checkpoints = {p.name for p in (run / "checkpoints").glob("step-*.ckpt")}
    assert checkpoints == {"step-0000006.ckpt", "step-0000010.ckpt"}
    # Given cadences are kept.
    again = tmp_path / "given"
    given = ["--grid-every", "4", "--checkpoint-every", "5", "--max-steps", "8"]
    assert main([*args[:3], str(again), *args[4:], *given]) == 0
    grids = sorted(p.name for p in again.glob("generated_*.png"))
    assert grids == ["generated_step_0000004.png", "generated_step_0000008.png"]
    checkpoints = {p.name for p in (again / "checkpoints").glob("step-*.ckpt")}
    assert checkpoints == {"step-0000005.ckpt", "step-0000008.ckpt"}


def test_a_runs_adam_takes_its_settings_and_the_fast_paths_kernel(shapes, tmp_path):
    base = dict(data=str(shapes), out=str(tmp_path / "r"), image_size=12, channels=1, width=8)
    plain = build_trainer(RunSettings(**base, lr_g=1e-4, beta1=0.0, device="cpu", fast=False))
    assert plain.g_optimizer.defaults["lr"] == 1e-4 and plain.d_optimizer.defaults["lr"] == 2e-4
    assert plain.g_optimizer.defaults["betas"] == (0.0, 0.999)
    assert not plain.g_optimizer.defaults["fused"]
    fast = build_trainer(RunSettings(**base, fast=True, device="cpu"))
    assert fast.g_optimizer.defaults["fused"] and fast.d_optimizer.defaults["fused"]


@pytest.mark.parametrize(
    ("given", "size", "channels", "chosen"),
    [
        ({}, 28, 1, ("resnet", 32)),  # small grayscale: the measured best (docs/results.md)
        ({}, 32, 1, ("resnet", 32)),
        ({}, 33, 1, ("dcgan", 64)),
        ({}, 28, 3, ("dcgan", 64)),
        ({"spectral_norm": True}, 28, 1, ("dcgan", 64)),  # only DCGAN has the switch
        ({"conditional": True}, 28, 1, ("dcgan", 64)),  # measured better conditional
        ({"minibatch_std": 4}, 28, 1, ("dcgan", 64)),  # only DCGAN has the layer
        ({"width": 16}, 28, 1, ("resnet", 16)),
        ({"arch": "dcgan"}, 28, 1, ("dcgan", 64)),
        ({"arch": "dcgan", "width": 128}, 28, 1, ("dcgan", 128)),
    ],
)
def test_the_network_is_chosen_for_the_data_unless_given(given, size, channels, chosen):
    settings = RunSettings(data="mnist", image_size=size, channels=channels, **given)
    settings.choose_network()
    assert (settings.arch, settings.width) == chosen


@pytest.mark.parametrize(
    ("images", "recipe"),
    [
        (None, ("bce", False, 0.5, 0.999)),  # not known: a large data set
        (60_000, ("bce", False, 0.5, 0.999)),  # MNIST: the classic recipe, 8.1x
        (20_000, ("bce", False, 0.5, 0.999)),
        (19_999, ("hinge", False, 0.0, 0.9)),  # small: SNGAN's loss and betas
        (900, ("hinge", False, 0.0, 0.9)),  # 12.2x and 10.3x on 900 digits
    ],
)
def test_small_grayscale_data_get_resnetgan_with_sngans_loss_and_betas(images, recipe):
    settings = RunSettings(data="digits", image_size=28, channels=1)
    reason = settings.choose_network(images)
    assert settings.arch == "resnet"
    assert (settings.loss, settings.spectral_norm, settings.beta1, settings.beta2) == recipe
    assert ("fewer than 20,000 small grayscale" in reason) == (recipe[0] == "hinge")
    # Given settings are kept, the recipe taken whole or not at all.
    given = RunSettings(data="digits", image_size=28, channels=1, beta1=0.5)
    given.choose_network(images)
    assert (given.arch, given.loss, given.beta1) == ("resnet", "bce", 0.5)
    dcgan = RunSettings(data="digits", image_size=28, channels=1, arch="dcgan")
    dcgan.choose_network(images)  # DCGAN on small grayscale data: SNGAN's whole recipe
    assert (dcgan.loss, dcgan.spectral_norm) == (
        ("hinge", True) if recipe[0] == "hinge" else ("bce", False)
    )
    larger = RunSettings(data="digits", image_size=33, channels=1)  # over 32 pixels
    larger.choose_network(images)
    assert (larger.arch, larger.loss) == ("dcgan", "bce")
    conditional = RunSettings(data="digits", image_size=28, channels=1, conditional=True)
    conditional.choose_network(images)
    assert (conditional.arch, conditional.loss) == ("dcgan", "bce")


SNGAN = ("hinge", True, 0.0, 0.9)
CLASSIC = ("bce", False, 0.5, 0.999)


@pytest.mark.parametrize(
    ("given", "size", "channels", "recipe"),
    [
        ({}, 48, 3, SNGAN),  # small colour images: SNGAN's recipe
        ({}, 32, 3, SNGAN),
        ({}, 64, 4, SNGAN),
        ({}, 28, 3, CLASSIC),  # below 32 pixels: not measured, the classic one
        ({}, 128, 3, CLASSIC),
        ({}, 48, 1, CLASSIC),  # grayscale
        ({"arch": "resnet"}, 48, 3, CLASSIC),
        ({"conditional": True}, 48, 3, CLASSIC),
        ({"loss": "bce"}, 48, 3, CLASSIC),  # one of the four given: the classic rest
        ({"beta1": 0.2}, 48, 3, ("bce", False, 0.2, 0.999)),
        ({"spectral_norm": False}, 48, 3, CLASSIC),
    ],
)
def test_how_d_trains_is_chosen_for_the_data_unless_given(given, size, channels, recipe):
    settings = RunSettings(data="pictures", image_size=size, channels=channels, **given)
    reason = settings.choose_network()
    assert (settings.loss, settings.spectral_norm, settings.beta1, settings.beta2) == recipe
    assert ("SNGAN's recipe" in reason) == (recipe == SNGAN and not given)


def test_other_tasks_train_with_the_classic_recipe():
    settings = RunSettings(data="pictures", image_size=48, channels=3, task="pix2pix")
    assert settings.choose_recipe().endswith("the classic recipe")
    assert (settings.loss, settings.spectral_norm, settings.beta1, settings.beta2) == CLASSIC


def test_a_chosen_network_is_recorded_and_a_config_is_type_checked(shapes, tmp_path):
    run = tmp_path / "auto"
    args = ["train", str(shapes), "--out", str(run), "--channels", "1", "--max-steps", "1"]
    assert main([*args, *TINY[2:]]) == 0  # grayscale, 21 px, no --arch or --width
    config = read_config(run / "config.toml")
    # 24 images, a small data set: ResNetGAN with SNGAN's loss and Adam betas
    assert config["arch"] == "resnet" and config["width"] == DEFAULT_WIDTHS["resnet"]
    assert (config["loss"], config["spectral_norm"], config["beta1"]) == ("hinge", False, 0.0)
    chosen = read_config(run / "config.toml", "chosen")
    assert "on fewer than 20,000 small grayscale images" in chosen["network"]
    with pytest.raises(ValueError, match=r"`width` must be int, got '8' \(in cfg\)"):
        RunSettings.from_dict({"data": "mnist", "width": "8"}, "cfg")
    with pytest.raises(ValueError, match=r"`max_steps` must be int, got True \(in cfg\)"):
        RunSettings.from_dict({"data": "mnist", "max_steps": True}, "cfg")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes (locks aside)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".ganlib.lock"
    }


def test_overwrite_replaces_a_run_and_a_failed_replacement_puts_it_back(shapes, tmp_path, capsys):
    run = tmp_path / "run"
    steps = ["--checkpoint-every", "1", "--keep-checkpoints", "10", "--grid-every", "1"]
    assert main(["train", str(shapes), "--out", str(run), "--max-steps", "5", *TINY, *steps]) == 0
    (run / "notes.txt").write_text("mine")  # not a run's file: stays where it is
    before = snapshot(run)
    assert "checkpoints/step-0000005.ckpt" in before and "generated_step_0000005.png" in before

    class FailsAtStepOne(Callback):
        def on_batch_end(self, trainer, metrics):
            raise RuntimeError("the new run dies at step 1")

    settings = RunSettings.from_dict(
        {"data": str(shapes), "out": str(run), "max_steps": 2, "width": 4, "latent_dim": 8,
         "batch_size": 8, "device": "cpu"},
        "flags",
    )  # fmt: skip
    capsys.readouterr()
    with pytest.raises(RuntimeError, match="dies at step 1"):
        train(settings, overwrite=True, callbacks=[FailsAtStepOne()])
    err = capsys.readouterr().err
    assert "moved the earlier run's files" in err and ".replaced-" in err
    assert f"the run it was replacing is back in {run}, as it was" in err
    assert snapshot(run) == before  # every file, byte for byte; nothing set aside is left
    assert not list(run.glob(".replaced-*"))

    # A replacement that gets its first checkpoint deletes the earlier run, and says so.
    args = ["train", str(shapes), "--out", str(run), "--max-steps", "2", "--overwrite", *TINY]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "wrote its first checkpoint, so the run it replaced is deleted" in err
    after = snapshot(run)
    assert sorted(p for p in after if p.startswith("checkpoints/")) == [
        "checkpoints/last.ckpt",
        "checkpoints/step-0000002.ckpt",
    ]
    assert not [p for p in after if p.startswith("generated_step_000000") and p[-5] in "345"]
    assert [int(r["step"]) for r in rows(run)] == [1, 2]
    assert read_config(run / "config.toml")["max_steps"] == 2
    assert after["notes.txt"] == b"mine" and not list(run.glob(".replaced-*"))


def test_a_replacement_killed_before_its_checkpoint_says_where_the_run_is(shapes, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(shapes), "--out", str(run), "--max-steps", "2", *TINY]) == 0
    config = (run / "config.toml").read_text()
    aside = RunFolder(run).set_aside()  # as --overwrite does, then killed (SIGKILL) ...
    assert aside is not None and (aside / "checkpoints" / "last.ckpt").is_file()
    (run / "config.toml").write_text(config)  # ... after writing its config.toml
    assert main(["sample", str(run), "--out", str(tmp_path / "g.png")]) == 2
    message = capsys.readouterr().err
    assert (
        "has no checkpoint yet" in message and f"the run it replaced is kept in {aside}" in message
    )


def test_sizes_that_cannot_fit_are_refused_before_anything_is_written(
    shapes, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    big_grid = ["--image-size", "1024", "--grid-samples", "65"]  # 68,157,440 pixels
    assert main(["train", str(shapes), "--out", str(out), *big_grid, *TINY]) == 2
    assert "--grid-samples 65 images of 1024x1024 make a grid of 68,157,440 pixels" in (
        capsys.readouterr().err
    )
    config = tmp_path / "run.toml"  # the same in a config file
    config.write_text(f'[run]\ndata = "{shapes}"\nimage_size = 1024\ngrid_samples = 65\n')
    assert main(["train", "--config", str(config), "--out", str(out), *TINY]) == 2
    assert "over the bound of 67,108,864" in capsys.readouterr().err
    # A conditional run's grid is a row per class: 3 x 22 images of 1024x1024.
    conditional = ["--image-size", "1024", "--grid-nrow", "22", "--conditional"]
    assert main(["train", str(shapes), "--out", str(out), *conditional, *TINY]) == 2
    assert "3 classes x --grid-nrow 66 images of 1024x1024" in capsys.readouterr().err
    # The images themselves, read as a whole, against this machine's memory.
    monkeypatch.setattr(sys.modules["ganlib.runs.train"], "_memory_bytes", lambda: 2**20)
    assert main(["train", str(shapes), "--out", str(out), "--image-size", "64", *TINY]) == 2
    assert (
        "--image-size 64: the 24 image files of "
        f"{shapes} would take 1.1 MiB in memory (3x64x64 float32 each), over 50% of this "
        "machine's 1.0 MiB: lower --image-size"
    ) in capsys.readouterr().err
    assert not out.exists()


def test_a_folders_own_size_keeps_the_image_size_rule(shapes, tmp_path):
    huge = RunData(torch.zeros(1, 1, 1, 1), None, 5000, 1, None, {"images": 1})
    settings = RunSettings(data=str(shapes), out=str(tmp_path / "run"), device="cpu")
    with pytest.raises(ValueError, match=r"are 5000 pixels a side \(their median\), over "):
        train(settings, data=huge)
    assert not (tmp_path / "run").exists()


def test_grid_every_draws_the_last_step_too(shapes, tmp_path):
    run = tmp_path / "run"  # 3 steps an epoch; grids every 2 steps, the run ends at step 3
    args = ["train", str(shapes), "--out", str(run), "--epochs", "1", "--grid-every", "2"]
    assert main([*args, *TINY]) == 0
    grids = sorted(p.name for p in run.glob("generated_*.png"))
    assert grids == ["generated_step_0000002.png", "generated_step_0000003.png"]


def test_a_grid_of_ten_thousand_images_is_drawn_and_the_run_saved(shapes, tmp_path):
    run = tmp_path / "run"
    grid = ["--grid-samples", "10000", "--grid-nrow", "100", "--max-steps", "1"]
    assert main(["train", str(shapes), "--out", str(run), *grid, *TINY]) == 0
    with Image.open(run / "generated_step_0000001.png") as image:
        assert image.size == (2 + 100 * 23, 2 + 100 * 23)  # 21-pixel images, 2-pixel padding
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["state"]["step"] == 1


def test_sigterm_under_ganlib_train_says_how_to_resume_here_and_in_the_report(shapes, tmp_path):
    run = tmp_path / "my run's"  # a space and a quote: the hint must survive a shell
    command = [sys.executable, "-m", "ganlib", "train", str(shapes), "--out", str(run)]
    process = subprocess.Popen(
        [*command, "--max-steps", "100000", *TINY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "  step 1  " in line:  # the first step's progress line
                break
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    hint = f"resume with: ganlib train --resume {shlex.quote(str(run))}"
    assert last.startswith(
        "stopped: training interrupted by SIGTERM after step "
    ) and last.endswith(hint), last
    assert html.escape(hint) in (run / "report.html").read_text()
    step = load_checkpoint(run / "checkpoints" / "last.ckpt")["state"]["step"]
    # The hint, split as a shell splits it, continues the run.
    args = shlex.split(last.split("resume with: ")[1])
    assert args[:3] == ["ganlib", "train", "--resume"] and args[3] == str(run)
    assert main([*args[1:], "--max-steps", str(step + 1)]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["state"]["step"] == step + 1


def test_the_done_line_shows_numbers_and_a_sample_command_that_runs(shapes, tmp_path, capsys):
    run = tmp_path / 'a "quoted" run'
    assert main(["train", str(shapes), "--out", str(run), "--max-steps", "2", *TINY]) == 0
    done = capsys.readouterr().out.strip().splitlines()[-1]
    assert done.startswith("done: 2 steps in ") and "loss_d " in done, done
    assert not set("{}'") & set(done.split("; sample it with: ")[0]), "a raw dict"
    args = shlex.split(done.split("; sample it with: ")[1])
    assert args == ["ganlib", "sample", str(run), "--ema"]
    assert main([*args[1:], "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()


def test_the_nan_guard_under_ganlib_train_is_one_line_naming_the_kept_checkpoint(
    shapes, tmp_path, monkeypatch, capsys
):
    from ganlib.tasks import AdversarialTask

    step = AdversarialTask.training_step

    def goes_nan(self, batch, index):
        metrics = step(self, batch, index)
        return {**metrics, "loss_g": float("nan")} if index >= 2 else metrics

    monkeypatch.setattr(AdversarialTask, "training_step", goes_nan)
    run = tmp_path / "run"
    args = ["train", str(shapes), "--out", str(run), "--max-steps", "5", "--checkpoint-every", "1"]
    assert main([*args, *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: loss_g is nan at step ") and "Traceback" not in "".join(err)
    kept = run / "checkpoints" / "last.ckpt"
    assert err[-1].endswith(f"; the newest good checkpoint: {kept}"), err[-1]
    assert load_checkpoint(kept)["state"]["step"] == 2  # the last finite step


def refused(args: list[str], capsys) -> str:
    """The error line that ends a `ganlib train` that must exit 2."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.splitlines()[-1].startswith("error: "), err
    return err.splitlines()[-1]


def test_a_runs_files_change_only_when_it_starts(shapes, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(shapes), "--out", str(run), "--max-steps", "2", *TINY]) == 0
    config = (run / "config.toml").read_bytes()
    resume = ["train", "--resume", str(run)]
    # Refused changes leave config.toml as it was, so a plain --resume still works.
    assert "--arch 'resnet' differs from the run's 'dcgan'" in refused(
        [*resume, "--arch", "resnet"], capsys
    )
    assert "--width 16 differs from the run's 4" in refused([*resume, "--width", "16"], capsys)
    assert "--seed 5 differs from the run's 0" in refused([*resume, "--seed", "5"], capsys)
    assert "--beta1 must be in [0, 1), got 1.5" in refused([*resume, "--beta1", "1.5"], capsys)
    other = tmp_path / "B"
    message = refused([*resume, "--out", str(other)], capsys)
    assert "a run continues in its own folder" in message and not other.exists()
    # A live run holds the folder's lock: a resume with a new rate is refused by the lock
    # before anything is written.
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": holder.pid, "host": os.uname().nodename, "started": 0}
        (run / LOCK_NAME).write_text(json.dumps(lock))
        assert f"another run (pid {holder.pid} on " in refused([*resume, "--lr-g", "0.01"], capsys)
    finally:
        holder.kill()
        holder.wait()
    (run / LOCK_NAME).unlink()
    assert (run / "config.toml").read_bytes() == config
    assert main([*resume, "--max-steps", "3"]) == 0
    assert read_config(run / "config.toml")["max_steps"] == 3
    # A refused bad value leaves nothing behind, so the corrected command is a fresh run.
    fresh = ["train", str(shapes), "--out", str(tmp_path / "new"), "--max-steps", "1", *TINY]
    assert "--beta1 must be in [0, 1), got 1.5" in refused([*fresh, "--beta1", "1.5"], capsys)
    assert not (tmp_path / "new").exists()
    assert main(fresh) == 0
    assert "--out must name a folder, got ''" in refused(
        ["train", str(shapes), "--out", ""], capsys
    )


def test_resume_checks_what_it_resumes(shapes, tmp_path, capsys):
    data = tmp_path / "pictures"
    shutil.copytree(shapes, data)
    run = tmp_path / "run"
    steps = ["--max-steps", "2", "--checkpoint-every", "1"]
    assert main(["train", str(data), "--out", str(run), *steps, *TINY]) == 0
    config = (run / "config.toml").read_bytes()
    resume = ["train", "--resume", str(run), "--max-steps", "3"]
    # Settings that define the networks, the data or its order are refused, by flag.
    assert "--batch-size 4 differs from the run's 8" in refused(
        [*resume, "--batch-size", "4"], capsys
    )
    assert "--ema False differs from the run's True" in refused([*resume, "--no-ema"], capsys)
    message = refused([*resume, "--config", str(run / "config.toml")], capsys)
    assert "--resume takes the run's own config.toml: drop --config" in message
    assert "--data " in refused([*resume[:1], str(shapes), *resume[1:]], capsys)
    # The data is compared with what the run trained on: a folder that gained an image.
    extra = sorted(data.rglob("*.png"))[0]
    shutil.copy(extra, extra.with_name("zz_new.png"))
    message = refused(resume, capsys)
    assert "the data differs from what the run in" in message and "images was 24, now 25" in message
    extra.with_name("zz_new.png").unlink()
    # The same count, other pixels (a grey picture turned colour, say): its content differs.
    with Image.open(extra) as image:
        image.convert("RGB").point(lambda v: 255 - v).save(extra)
    assert "its content was " in refused(resume, capsys)
    assert (run / "config.toml").read_bytes() == config
    shutil.rmtree(data)
    shutil.copytree(shapes, data)
    # A changed setting that may change is applied, with a notice.
    assert main([*resume, "--lr-g", "0.001"]) == 0
    assert "resuming " in capsys.readouterr().err
    # A missing or truncated last.ckpt: the newest intact step file is named and taken.
    last = run / "checkpoints" / "last.ckpt"
    last.unlink()
    assert main(["train", "--resume", str(run), "--max-steps", "4"]) == 0
    err = capsys.readouterr().err
    assert "it has no checkpoints/last.ckpt; using the newest intact step-0000003.ckpt" in err
    whole = last.read_bytes()
    last.unlink()  # (it may share its bytes with step-0000004.ckpt)
    last.write_bytes(whole[:100])
    assert main(["train", "--resume", str(run), "--max-steps", "5"]) == 0
    err = capsys.readouterr().err
    assert (
        "its last.ckpt is truncated or not a checkpoint; using the newest intact step-0000004.ckpt"
        in err
    )
    assert load_checkpoint(last)["state"]["step"] == 5

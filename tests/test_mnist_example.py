"""The MNIST example as a user runs it: a subprocess, its files, its errors."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import REPO_ROOT, one_line_error, run
from ganlib.checkpoint import load_checkpoint
from ganlib.data import DataNotFoundError, fake_mnist, load_mnist
from ganlib.runs import read_config

EXAMPLE = REPO_ROOT / "examples" / "mnist.py"
RECIPE_KEYS = (
    *("arch", "width", "split", "shuffle", "loss", "lr_g", "lr_d", "ema", "ema_warmup"),
    *("epochs", "batch_size", "seed", "fast", "conditional", "num_workers"),
)


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=300
    )


def test_tiny_run_writes_every_output(mnist_root, tmp_path):
    out = tmp_path / "run"
    result = run_example(
        "--data-dir",
        str(mnist_root),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--width",
        "4",
        "--latent-dim",
        "8",
        "--batch-size",
        "50",
        "--max-steps",
        "3",
        "--ema",
        "--score-samples",
        "300",
        "--eval-every",
        "0",  # (evaluation during training: the stand-in run below)
        "--no-download",
    )
    assert result.returncode == 0, result.stderr
    names = {p.name for p in out.iterdir()}
    assert {
        "real_samples.png",
        "generated_step_0000003.png",
        "overview.png",
        "metrics.csv",
        "loss_curve.png",
        "checkpoints",
        "summary.json",
        "metrics.json",
    } <= names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3
    assert set(summary["final_metrics"]) == {"loss_d", "loss_g", "d_real", "d_fake", "d_fake_after"}
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert "trained: 3 steps" in result.stdout

    report = json.loads((out / "metrics.json").read_text())
    assert report["preset"] == "recommended" and report["headline"] == "ema"  # --ema given
    assert set(report["samples"]) == {"generator", "generator_eval", "ema", "ema_eval"}
    floor = report["floor"]
    assert floor["classes_covered"] == 10 and floor["num_samples"] == 10_000
    for name, scores in report["samples"].items():
        assert scores["num_samples"] == 300
        assert scores["fd"] > floor["fd"]  # 3 steps of a tiny network are far from digits
        assert report["fd_over_floor"][name] == pytest.approx(scores["fd"] / floor["fd"])
        assert 1 <= scores["classes_covered"] <= 10 and scores["kl_to_uniform"] >= 0
    assert "quality (ema, 300 samples): FD " in result.stdout
    assert "x the real-data floor" in result.stdout


def test_full_epochs_on_a_stand_in_mnist_write_a_grid_at_the_end(tmp_path):
    fake_mnist(tmp_path / "data", count=100)
    out = tmp_path / "run"
    result = run_example(
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--width",
        "2",
        "--latent-dim",
        "4",
        "--epochs",
        "2",
        "--score-samples",
        "50",
        "--no-download",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    # 100 images are 2 steps an epoch: grids come every 100 epochs (at least 200 steps
    # apart, ganlib.runs.snapshot_epochs; real MNIST's 1,200-step epochs get one each),
    # and the last step has its own.
    grids = sorted(p.name for p in out.glob("generated_*.png"))
    assert grids == ["generated_step_0000004.png"]
    # Evaluated during training by default: at the last step (4), best.ckpt kept by FD.
    with (out / "metrics.csv").open() as handle:
        scored = [row["step"] for row in csv.DictReader(handle) if row["fd"]]
    assert scored == ["4"]
    assert (out / "checkpoints" / "best.ckpt").exists()
    assert "evaluation at step 4 (ema, 2000 samples): fd " in result.stderr
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2
    report = json.loads((out / "metrics.json").read_text())
    assert report["headline"] == "ema"  # the recommended preset keeps a warmed-up EMA
    assert report["settings"]["ema"] and report["settings"]["ema_warmup"]
    # The recommended network: the residual family (its width given: 2).
    assert (report["settings"]["arch"], report["settings"]["width"]) == ("resnet", 2)
    assert "training resnet on 100 images (1x28x28) from mnist" in result.stdout
    assert set(report["samples"]) == {"generator", "generator_eval", "ema", "ema_eval"}
    assert report["samples"]["ema"]["num_samples"] == 50


def test_recipe_preset_and_dataset_pipeline(tmp_path):
    fake_mnist(tmp_path / "data", count=60)
    out = tmp_path / "run"
    common = ["--data-dir", str(tmp_path / "data"), "--width", "2", "--latent-dim", "4"]
    result = run_example(
        *common,
        *("--out", str(out), "--recipe", "--loss", "hinge", "--num-workers", "1"),
        *("--max-steps", "2", "--score-samples", "0", "--device", "cpu", "--no-download"),
        *("--eval-every", "0"),
    )
    assert result.returncode == 0, result.stderr
    config = read_config(out / "config.toml")
    # The recipe's values (ganlib/runs/presets/recipe.toml), except the flags given.
    assert {k: config.get(k) for k in RECIPE_KEYS} == {
        "arch": "dcgan",  # the recipe's network (its width given: 2)
        "width": 2,
        "split": "test",
        "shuffle": False,
        "loss": "hinge",
        "lr_g": 2e-4,
        "lr_d": 2e-4,
        "ema": False,
        "ema_warmup": False,
        "epochs": 10,
        "batch_size": 50,
        "seed": 0,
        "fast": False,
        "conditional": False,
        "num_workers": 1,
    }
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
    assert not (out / "metrics.json").exists()  # --score-samples 0 skips scoring


def test_an_example_run_is_continued_by_ganlib_train_resume(tmp_path):
    fake_mnist(tmp_path / "data", count=60)
    out = tmp_path / "run"
    common = ("--data-dir", str(tmp_path / "data"), "--no-download", "--device", "cpu")
    first = run_example(
        *common,
        *("--out", str(out), "--width", "2", "--latent-dim", "4", "--max-steps", "2"),
        *("--score-samples", "0", "--eval-every", "0", "--checkpoint-every", "1"),
    )
    assert first.returncode == 0, first.stderr
    config = read_config(out / "config.toml")
    assert (config["arch"], config["width"], config["max_steps"]) == ("resnet", 2, 2)
    resumed = subprocess.run(
        [sys.executable, "-m", "ganlib", "train", "--resume", str(out), "--max-steps", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step 2" in resumed.stdout
    assert "changed settings: max_steps 2 -> 4" in resumed.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 4
    assert read_config(out / "config.toml")["max_steps"] == 4
    # ...and by the example itself, from the folder.
    again = run_example(*common, "--resume", str(out), "--max-steps", "5", "--score-samples", "0")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 5


def test_conditional_run_draws_a_row_per_digit_and_reports_its_accuracy(tmp_path):
    fake_mnist(tmp_path / "data", count=60)
    out = tmp_path / "run"
    result = run_example(
        *("--data-dir", str(tmp_path / "data"), "--width", "2", "--latent-dim", "4"),
        *("--out", str(out), "--conditional", "--max-steps", "3", "--score-samples", "100"),
        *("--device", "cpu", "--no-download", "--eval-every", "0"),
    )
    assert result.returncode == 0, result.stderr
    assert "conditional accuracy" in result.stdout
    report = json.loads((out / "metrics.json").read_text())
    assert report["settings"]["conditional"] is True
    # The recommended preset's conditional network: the recipe's DCGAN (width 2 given).
    assert (report["settings"]["arch"], report["settings"]["width"]) == ("dcgan", 2)
    for scores in report["samples"].values():
        assert 0.0 <= scores["conditional_accuracy"] <= 1.0
    with Image.open(out / "generated_step_0000003.png") as grid:  # (the last step's)
        assert grid.size == (10 * 30 + 2, 10 * 30 + 2)  # 10 digits x 10 latents, 28 px + 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "wgan"], "argument --loss: invalid choice: 'wgan'"),
        (["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
        (["--lr-d", "0"], "--lr-d must be > 0, got 0.0"),
        (["--num-workers", "-1"], "argument --num-workers: must be >= 0, got -1"),
        (["--device", "tpu"], "error: `device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    ],
)
def test_bad_arguments_give_one_clear_line(args, message, tmp_path):
    result = run_example("--data-dir", str(tmp_path), "--no-download", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cuda_without_cuda_gives_one_clear_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_example("--device", "cuda", "--data-dir", str(tmp_path), "--no-download")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: `device` is 'cuda' but CUDA is not available" in result.stderr


def test_missing_data_says_where_to_put_it(tmp_path):
    result = run_example("--data-dir", str(tmp_path), "--no-download", "--device", "cpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        f"Put train-images-idx3-ubyte, train-labels-idx1-ubyte (uncompressed) in "
        f"{tmp_path / 'MNIST' / 'raw'}" in result.stderr
    )


def test_failed_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def offline(self):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(
        DataNotFoundError,
        match=r"MNIST train split not found under .* and the "
        r"download failed .*no network.* Put "
        r"train-images-idx3-ubyte",
    ):
        load_mnist(tmp_path, "train", download=True)


def test_load_mnist_matches_torchvision_transforms(mnist_root):
    from torchvision import transforms
    from torchvision.datasets import MNIST

    images, labels = load_mnist(mnist_root, "test", download=False)
    assert images.shape == (10_000, 1, 28, 28) and labels.shape == (10_000,)
    reference = MNIST(
        str(mnist_root),
        train=False,
        download=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]),
    )
    for index in (0, 1234, 9999):
        image, label = reference[index]
        assert torch.equal(images[index], image) and labels[index] == label


def test_stand_in_mnist_reads_back(tmp_path):
    raw = fake_mnist(tmp_path, count=12)
    assert raw == Path(tmp_path) / "MNIST" / "raw"
    images, labels = load_mnist(tmp_path, "train", download=False)
    assert images.shape == (12, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert labels.max() < 10


def example_args(data: Path, out: Path) -> list[str]:
    return [
        *("--data-dir", str(data), "--out", str(out), "--device", "cpu", "--no-download"),
        *("--width", "4", "--latent-dim", "8", "--batch-size", "20", "--score-samples", "0"),
    ]


def example(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(str(EXAMPLE), *example_args(data, out), *extra)


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    from ganlib.data import fake_mnist

    root = tmp_path_factory.mktemp("data")
    fake_mnist(root, count=60)
    return root


def test_the_example_never_clobbers_an_earlier_run(fake_data, tmp_path):
    out = tmp_path / "run"
    assert example(fake_data, out, "--max-steps", "2").returncode == 0
    log = (out / "metrics.csv").read_text()
    one_line_error(example(fake_data, out, "--max-steps", "2"), "--resume", "--overwrite")
    assert (out / "metrics.csv").read_text() == log
    resumed = example(fake_data, out, "--max-steps", "4", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "checkpoints" / "last.ckpt")["state"]["step"] == 4
    again = example(fake_data, out, "--max-steps", "1", "--overwrite")
    assert again.returncode == 0, again.stderr


def test_the_example_checks_its_flags_before_training(fake_data, tmp_path):
    one_line_error(example(fake_data, tmp_path / "a", "--score-samples", "1"), "--score-samples")
    one_line_error(example(fake_data, tmp_path / "b", "--seed", "-1"), "--seed", ">= 0")
    (tmp_path / "file").write_text("x")
    one_line_error(example(fake_data, tmp_path / "file"), "--out", "is a file")


def test_the_example_ends_on_sigterm_with_one_line_and_143(fake_data, tmp_path):
    out = tmp_path / "run"
    args = [*example_args(fake_data, out), "--epochs", "1000"]
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("runtime:"):
                break
        while not (out / "checkpoints" / "last.ckpt").exists():  # an epoch is 3 steps
            if process.poll() is not None:
                break
            subprocess.run(["sleep", "0.2"], check=False)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "stopped: training interrupted by SIGTERM" in stderr.strip().splitlines()[-1]

"""The semi-supervised GAN from the command line: ``ganlib classify`` (and, with the run
task registered, ``ganlib train --task semi-supervised``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganlib import DCGAN, Trainer
from ganlib.callbacks import ModelCheckpoint
from ganlib.cli import main
from ganlib.cli.classify import read_image
from ganlib.models.semi_supervised import SemiSupervisedDiscriminator, SemiSupervisedGenerator
from ganlib.tasks import SemiSupervisedTask, load_classifier

SHAPE = (1, 8, 8)


def toy_data(n: int = 90, seed: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes: a bright band in the top, middle or bottom rows."""
    rng = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.rand(n, *SHAPE, generator=rng) * 0.5 - 0.9
    for k in range(3):
        images[labels == k, :, 3 * k : 3 * k + 2, :] += 1.5
    return images.clamp(-1, 1), labels


def save_png(image: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = ((image[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    Image.fromarray(pixels, mode="L").save(path)


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ssl_run")
    torch.manual_seed(0)
    task = SemiSupervisedTask(
        SemiSupervisedDiscriminator(SHAPE, 3, (16, 8)),
        SemiSupervisedGenerator(SHAPE, 4, (8,)),
        labelled=6,
        init_size=30,
        class_names=["top", "middle", "bottom"],
    )
    trainer = Trainer(
        task,
        max_steps=30,
        device="cpu",
        progress=False,
        callbacks=[ModelCheckpoint(folder, every_n_steps=30)],
    )
    trainer.fit(toy_data(), batch_size=15)
    return folder / "last.ckpt"


def test_classify_writes_one_row_per_image_with_the_classifiers_answer(run_checkpoint, tmp_path):
    images, labels = toy_data(9, seed=11)
    paths = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = tmp_path / "images" / f"class{int(label)}" / f"{i}.png"
        save_png(image, path)
        paths.append(path)
    single = tmp_path / "one.png"
    save_png(images[0], single)
    out = tmp_path / "predictions.csv"
    code = main(
        ["classify", str(run_checkpoint), str(tmp_path / "images"), str(single), "--out", str(out)]
    )
    assert code == 0
    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "class", "name", "probability"]
    assert [row["path"] for row in rows] == [str(p) for p in sorted(paths)] + [str(single)]
    classifier = load_classifier(run_checkpoint)
    read = torch.stack([read_image(Path(row["path"]), SHAPE) for row in rows])
    probabilities = classifier(read).softmax(dim=1)
    expected = probabilities.argmax(dim=1).tolist()
    assert [int(row["class"]) for row in rows] == expected
    names = ["top", "middle", "bottom"]
    assert [row["name"] for row in rows] == [names[k] for k in expected]
    for row, p in zip(rows, probabilities.max(dim=1).values.tolist(), strict=True):
        assert float(row["probability"]) == pytest.approx(p, abs=1e-4)
    assert getattr(classifier, "class_names") == names  # noqa: B009
    assert getattr(classifier, "image_shape") == SHAPE  # noqa: B009


def test_classify_prints_to_standard_output_without_out(run_checkpoint, tmp_path, capsys):
    save_png(toy_data(1)[0][0], tmp_path / "a.png")
    assert main(["classify", str(run_checkpoint), str(tmp_path / "a.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,class,name,probability" and lines[1].startswith(
        str(tmp_path / "a.png")
    )


def test_classify_errors_name_the_problem(run_checkpoint, tmp_path, capsys):
    assert main(["classify", str(run_checkpoint), str(tmp_path / "missing.png")]) == 2
    assert f"image {str(tmp_path / 'missing.png')!r} does not exist" in capsys.readouterr().err
    (tmp_path / "bad.png").write_text("not an image")
    assert main(["classify", str(run_checkpoint), str(tmp_path / "bad.png")]) == 2
    assert "cannot read image" in capsys.readouterr().err
    pair = tmp_path / "pair.ckpt"
    Trainer(DCGAN(image_size=8, width=4, latent_dim=4), progress=False).save_checkpoint(str(pair))
    save_png(toy_data(1)[0][0], tmp_path / "a.png")
    assert main(["classify", str(pair), str(tmp_path / "a.png")]) == 2
    assert "not a semi-supervised one: it has no classifier" in capsys.readouterr().err


# ------------------------------------------------- ganlib train --task semi-supervised


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ganlib.data import fake_mnist

    folder = tmp_path_factory.mktemp("mnist")
    fake_mnist(folder, count=300)
    return folder


def train_args(data_dir: Path, out: Path, *more: str) -> list[str]:
    return [
        "train",
        "mnist",
        "--data-dir",
        str(data_dir),
        "--no-download",
        "--task",
        "semi-supervised",
        "--labels",
        "20",
        "--device",
        "cpu",
        "--out",
        str(out),
        *more,
    ]


def test_a_tiny_mnist_run_records_its_labels_tracks_the_error_and_classifies(small_mnist, tmp_path):
    from ganlib.data import load_mnist
    from ganlib.data.labels import choose_labelled, fingerprint
    from ganlib.runs import read_config

    run = tmp_path / "run"
    assert main(train_args(small_mnist, run, "--epochs", "2", "--seed", "3")) == 0
    config = read_config(run / "config.toml")
    # The reference's settings where the GAN defaults were left: batch 100, lr 3e-3, the
    # error every epoch (300 images: 3 steps), no FD evaluation.
    assert (config["task"], config["labels"], config["batch_size"]) == ("semi-supervised", 20, 100)
    assert (config["lr_d"], config["lr_g"], config["eval_every"]) == (0.003, 0.003, 3)
    assert config["eval_features"] == "none"
    recorded = read_config(run / "config.toml", "data_fingerprint")
    _, labels = load_mnist(small_mnist, "train", download=False)
    chosen = choose_labelled(labels, 20, seed=3)  # --label-seed defaults to --seed
    assert torch.bincount(labels[chosen], minlength=10).tolist() == [2] * 10
    assert recorded["labelled"] == fingerprint(chosen)
    assert (recorded["labelled_count"], recorded["label_seed"]) == (20, 3)
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    scored = [(row["step"], row["error"], row["error_avg"]) for row in rows if row["error_avg"]]
    assert [step for step, _, _ in scored] == ["3", "6"]
    assert "error_avg" in (run / "report.html").read_text()
    best = run / "checkpoints" / "best.ckpt"
    assert best.is_file()
    averaged = [float(e) for _, _, e in scored]
    from ganlib.checkpoint import load_checkpoint

    assert load_checkpoint(best)["state"]["step"] == [3, 6][averaged.index(min(averaged))]
    # The product: the run folder classifies.
    classifier = load_classifier(run)
    assert getattr(classifier, "class_names") == [str(k) for k in range(10)]  # noqa: B009
    assert load_classifier(run, checkpoint="best") is not None
    save_png(torch.zeros(1, 28, 28) - 1, tmp_path / "digit.png")
    out = tmp_path / "p.csv"
    assert main(["classify", str(run), str(tmp_path / "digit.png"), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2


def test_a_run_resumed_through_the_command_is_bitwise_an_uninterrupted_one(
    small_mnist, tmp_path, capsys
):
    from ganlib.checkpoint import load_checkpoint

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(train_args(small_mnist, straight, "--epochs", "2")) == 0
    assert main(train_args(small_mnist, split, "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(split), "--epochs", "2"]) == 0
    # The last line says what this process trained, and offers the run's product.
    done = capsys.readouterr().out.strip().splitlines()[-1]
    assert done.startswith("done: step 6 (3 from step 3) in "), done
    assert done.endswith(f"; classify with: ganlib classify {split} IMAGES..."), done
    a = load_checkpoint(straight / "checkpoints" / "last.ckpt")
    b = load_checkpoint(split / "checkpoints" / "last.ckpt")
    assert a["state"]["step"] == b["state"]["step"] == 6
    for name in ("generator", "discriminator"):
        for key, value in a["networks"][name].items():
            assert torch.equal(value, b["networks"][name][key]), f"{name}.{key}"
    assert a["task_state"]["positions"] == b["task_state"]["positions"]
    for key, value in a["task_state"]["average"].items():
        assert torch.equal(value, b["task_state"]["average"][key]), key


def test_a_folder_of_classes_trains_and_is_scored_on_its_held_back_images(tmp_path, capsys):
    images, labels = toy_data(60, seed=2)
    names = ["bottom", "middle", "top"]  # sorted: the class order is the folders'
    folder = tmp_path / "bands"
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        save_png(image, folder / names[2 - int(label)] / f"{i}.png")
    run = tmp_path / "run"
    args = ["train", str(folder), "--task", "semi-supervised", "--labels", "6", "--device", "cpu"]
    assert main([*args, "--out", str(run), "--epochs", "2", "--batch-size", "20"]) == 0
    assert "test error at step 3 (54 images)" in capsys.readouterr().err  # 60 - 6 held back
    classifier = load_classifier(run)
    assert getattr(classifier, "class_names") == names  # noqa: B009
    assert getattr(classifier, "image_shape") == (1, 8, 8)  # noqa: B009
    out = tmp_path / "p.csv"
    assert main(["classify", str(run), str(folder / "top"), "--out", str(out)]) == 0
    with open(out) as handle:
        assert {row["name"] for row in csv.DictReader(handle)} <= set(names)


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--labels", "15"], "`count` must be a multiple of the 10 classes, got 15"),
        (["--eval-features", "mnist"], "--eval-features 'mnist' scores a GAN pair's generator"),
        (["--precision", "bf16"], "the semi-supervised task trains in float32"),
        (["--unlabelled-weight", "-1"], "--unlabelled-weight must be >= 0, got -1.0"),
        (["--generator-loss", "hinge"], "invalid choice: 'hinge'"),
    ],
)
def test_bad_semi_supervised_settings_are_refused_by_name(
    small_mnist, tmp_path, capsys, more, message
):
    try:
        code = main(train_args(small_mnist, tmp_path / "run", "--epochs", "1", *more))
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_run_without_labels_or_classes_is_refused(small_mnist, tmp_path, capsys):
    args = train_args(small_mnist, tmp_path / "run", "--epochs", "1")
    args.remove("--labels")
    args.remove("20")
    assert main(args) == 2
    assert "--task semi-supervised needs --labels N" in capsys.readouterr().err
    flat = tmp_path / "flat"
    for i in range(4):
        save_png(torch.zeros(1, 8, 8), flat / f"{i}.png")
    command = ["train", str(flat), "--task", "semi-supervised", "--labels", "2"]
    assert main([*command, "--out", str(tmp_path / "flat_run"), "--device", "cpu"]) == 2
    assert "needs data with classes" in capsys.readouterr().err


def test_fast_keeps_float32_for_a_semi_supervised_run(small_mnist, tmp_path):
    from ganlib.runs import read_config

    run = tmp_path / "run"
    assert main(train_args(small_mnist, run, "--max-steps", "1", "--fast")) == 0
    assert read_config(run / "config.toml")["precision"] == "32"


def test_the_study_table_reads_run_folders(small_mnist, tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT

    ssl, base = tmp_path / "ssl", tmp_path / "base"
    assert main(train_args(small_mnist, ssl, "--epochs", "2")) == 0
    assert main(train_args(small_mnist, base, "--epochs", "1", "--unlabelled-weight", "0")) == 0
    script = REPO_ROOT / "benchmarks" / "semi_supervised_table.py"
    out = subprocess.run(
        [sys.executable, str(script), str(ssl), "--baseline", str(base)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    lines = out.splitlines()
    assert lines[2].startswith("| `ssl` | semi-supervised | 0 | 20 (`") and "| 2 |" in lines[2]
    assert lines[3].startswith("| `base` | supervised only | 0 | 20 (`") and "| 1 |" in lines[3]
    assert "final averaged-D error over 1 run(s): median" in out

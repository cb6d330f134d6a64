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

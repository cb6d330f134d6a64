"""The translation commands as a user runs them: ``ganlib train --task cyclegan A B``,
``ganlib train --task pix2pix DIR`` (aligned A|B images, or two folders of matching
names), resuming them, and ``ganlib translate RUN INPUTS... --out DIR``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ganlib import DCGAN, Trainer
from ganlib.callbacks import ModelCheckpoint
from ganlib.checkpoint import load_checkpoint
from ganlib.cli import main
from ganlib.runs import read_config

TINY = ["--width", "4", "--device", "cpu", "--progress-every", "50", "--no-report"]


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int, grey=False) -> None:
    """``count`` random PNGs of ``size`` (width, height) in ``folder``, named 00.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = torch.Generator().manual_seed(seed)
    for index in range(count):
        pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=rng, dtype=torch.uint8)
        image = Image.fromarray(pixels.numpy())
        (image.convert("L") if grey else image).save(folder / f"{index:02d}.png")


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cyclegan")
    write_images(root / "horses", 10, (16, 16), seed=0)
    write_images(root / "zebras", 6, (20, 20), seed=1)
    run = root / "run"
    domains = [str(root / "horses"), str(root / "zebras")]
    steps = ["--max-steps", "3", "--batch-size", "4"]
    code = main(["train", "--task", "cyclegan", *domains, "--out", str(run), *steps, *TINY])
    assert code == 0
    return run


def test_cyclegan_trains_from_two_folders_and_resumes(cyclegan_run, capsys):
    config = read_config(cyclegan_run / "config.toml")
    assert config["task"] == "cyclegan" and config["data_b"].endswith("zebras")
    assert (config["image_size"], config["channels"]) == (16, 3)  # A's size and channels
    payload = load_checkpoint(cyclegan_run / "checkpoints" / "last.ckpt")
    assert payload["task"] == "cyclegan" and payload["state"]["step"] == 3
    assert payload["task_config"]["lr_schedule"] == [1, 2]  # half constant, half decaying
    assert {"EMA", "EMA[g_ba]"} <= set(payload["callbacks"])  # both directions averaged
    assert main(["train", "--resume", str(cyclegan_run), "--max-steps", "4"]) == 0
    assert "translate with: ganlib translate" in capsys.readouterr().out
    assert load_checkpoint(cyclegan_run / "checkpoints" / "last.ckpt")["state"]["step"] == 4


def test_translate_writes_one_file_per_input_each_way(cyclegan_run, tmp_path):
    zebras = cyclegan_run.parent / "zebras"
    out = tmp_path / "out"
    b2a = ["--direction", "b2a", "--out", str(out), "--ema", "--device", "cpu"]
    assert main(["translate", str(cyclegan_run), str(zebras), *b2a]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [f"zebras/{i:02d}.png" for i in range(6)]
    with Image.open(out / "zebras" / "00.png") as image:
        assert image.size == (16, 16) and image.mode == "RGB"
    # One file, kept at its own size; an existing output is not replaced without --overwrite.
    horse = cyclegan_run.parent / "horses" / "03.png"
    again = ["translate", str(cyclegan_run), str(horse), "--out", str(out), "--keep-size"]
    assert main(again) == 0
    with Image.open(out / "03.png") as image:
        assert image.size == (16, 16)
    assert main(again) == 2
    assert main([*again, "--overwrite"]) == 0


def test_translate_refuses_what_it_cannot_do(cyclegan_run, tmp_path, capsys):
    horse = str(cyclegan_run.parent / "horses" / "00.png")
    assert (
        main(["translate", str(cyclegan_run), str(tmp_path / "none.png"), "--out", str(tmp_path)])
        == 2
    )
    assert "input" in capsys.readouterr().err
    gan = tmp_path / "gan"
    pair = DCGAN(image_size=8, width=4, latent_dim=4)
    trainer = Trainer(pair, max_steps=1, progress=False, callbacks=[ModelCheckpoint(gan)])
    trainer.fit(torch.rand(4, 1, 8, 8) * 2 - 1, batch_size=4)
    assert main(["translate", str(gan / "last.ckpt"), horse, "--out", str(tmp_path / "o")]) == 2
    assert "holds a 'adversarial' run, not a translation task" in capsys.readouterr().err


def test_pix2pix_trains_on_aligned_images_and_on_two_folders_of_names(tmp_path, capsys):
    write_images(tmp_path / "aligned", 6, (24, 12), seed=2)  # A|B side by side, 12x12 each
    run = tmp_path / "aligned_run"
    args = ["--out", str(run), "--max-steps", "2", "--batch-size", "3", *TINY]
    assert main(["train", "--task", "pix2pix", str(tmp_path / "aligned"), *args]) == 0
    config = read_config(run / "config.toml")
    assert (config["task"], config["image_size"], config["channels"]) == ("pix2pix", 12, 3)
    write_images(tmp_path / "edges", 5, (16, 16), seed=3, grey=True)
    write_images(tmp_path / "photos", 5, (16, 16), seed=4)
    named = tmp_path / "named_run"
    args = ["--out", str(named), "--max-steps", "2", "--batch-size", "5", *TINY]
    assert (
        main(
            ["train", "--task", "pix2pix", str(tmp_path / "edges"), str(tmp_path / "photos"), *args]
        )
        == 0
    )
    generator = load_checkpoint(named / "checkpoints" / "last.ckpt")["task_config"]["generator"]
    assert (generator["config"]["in_channels"], generator["config"]["out_channels"]) == (1, 3)
    out = tmp_path / "out"
    assert (
        main(["translate", str(named), str(tmp_path / "edges" / "01.png"), "--out", str(out)]) == 0
    )
    with Image.open(out / "01.png") as image:
        assert image.mode == "RGB"  # grey edges in, colour out
    capsys.readouterr()
    assert (
        main(
            ["translate", str(named), str(out / "01.png"), "--direction", "b2a", "--out", str(out)]
        )
        == 2
    )
    assert "--direction must be one of ['a2b'] for a pix2pix run" in capsys.readouterr().err


def test_cyclegan_without_a_second_folder_is_refused_by_name(tmp_path, capsys):
    write_images(tmp_path / "a", 4, (16, 16), seed=5)
    assert (
        main(["train", "--task", "cyclegan", str(tmp_path / "a"), "--out", str(tmp_path / "r")])
        == 2
    )
    assert (
        "DATA_B (domain B; ganlib train --task cyclegan A B) must be a folder"
        in capsys.readouterr().err
    )

"""`ganlib sample` on a saved checkpoint, and loading a GAN back from a checkpoint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.functional import pil_to_tensor

from ganlib import DCGAN, CheckpointError, Trainer
from ganlib.callbacks import EMA
from ganlib.checkpoint import load_gan
from ganlib.cli import main
from ganlib.sampling import recompute_batchnorm_stats, sample_images, save_grid


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    gan = DCGAN(image_size=16, channels=3, latent_dim=8, width=4)
    trainer = Trainer(gan, max_steps=3, callbacks=[EMA(decay=0.5)], progress=False)
    trainer.fit(torch.rand(12, 3, 16, 16) * 2 - 1, batch_size=4)
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(str(path))
    return path


def grid_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_sample_command_writes_the_grid(checkpoint, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", str(checkpoint), "--num", "6", "--nrow", "3", "--out", str(out)]) == 0
    assert grid_size(out) == (3 * 18 + 2, 2 * 18 + 2)  # 16-pixel images, 2-pixel padding
    assert f"wrote 6 images from the EMA generator to {out}" in capsys.readouterr().out


def sampled(checkpoint: Path, out: Path, *extra: str) -> torch.Tensor:
    """The grid ``ganlib sample`` writes to a file of its own, after it exits with 0."""
    assert not out.exists()
    assert main(["sample", str(checkpoint), "--num", "4", "--out", str(out), *extra]) == 0
    with Image.open(out) as image:
        return pil_to_tensor(image).float()


def test_sample_command_seed_ema_and_eval_mode(checkpoint, tmp_path):
    def pixels(*extra: str) -> torch.Tensor:
        return sampled(
            checkpoint, tmp_path / f"grid{len(list(tmp_path.glob('*.png')))}.png", *extra
        )

    first = pixels("--seed", "1")
    assert torch.equal(first, pixels("--seed", "1"))
    assert not torch.equal(first, pixels("--seed", "2"))
    # The EMA generator by default (the checkpoint has one), the live one with --no-ema.
    assert torch.equal(first, pixels("--seed", "1", "--ema"))
    live = pixels("--seed", "1", "--no-ema")
    assert not torch.equal(first, live)
    assert not torch.equal(live, pixels("--seed", "1", "--no-ema", "--eval-mode"))
    assert not torch.equal(first, pixels("--seed", "1", "--eval-mode"))
    assert pixels("--ema", "--eval-mode").numel() == first.numel()


def test_sample_command_draws_the_ema_generators_images(checkpoint, tmp_path):
    gan = load_gan(checkpoint, ema=True)
    (expected,) = sample_images(gan.generator, 4, gan, batch_size=4, seed=3)
    save_grid(expected, tmp_path / "expected.png", nrow=8)
    with Image.open(tmp_path / "expected.png") as image:
        assert torch.equal(
            sampled(checkpoint, tmp_path / "g.png", "--seed", "3"), pil_to_tensor(image).float()
        )


def test_sample_command_writes_one_numbered_file_per_image(checkpoint, tmp_path, capsys):
    out = tmp_path / "samples"
    args = ["sample", str(checkpoint), "--num", "12", "--format", "files", "--out", str(out)]
    assert main([*args, "--seed", "3"]) == 0
    assert f"wrote 12 images from the EMA generator to {out}/" in capsys.readouterr().out
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(12)]
    gan = load_gan(checkpoint, ema=True)
    (images,) = sample_images(gan.generator, 12, gan, batch_size=12, seed=3)
    for index in (0, 11):  # each file is its image, unpadded, as a grid cell shows it
        with Image.open(files[index]) as image:
            assert image.size == (16, 16)
            pixels = pil_to_tensor(image).float()
        expected = ((images[index] + 1) / 2).clamp(0, 1).mul(255).add(0.5).clamp(0, 255)
        assert torch.equal(pixels, expected.to(torch.uint8).float())
    # A second time into the same folder would mix two draws: refused, in one line.
    assert main(args) == 2
    assert "already holds 12 numbered samples (00000.png, ...)" in capsys.readouterr().err
    assert main([*args[:-1], str(files[0])]) == 2
    assert "is a file; --format files writes into a folder" in capsys.readouterr().err


def test_sample_console_script_runs(checkpoint, tmp_path):
    script = Path(sys.executable).with_name("ganlib")
    command = [str(script)] if script.exists() else [shutil.which("ganlib") or "ganlib"]
    out = tmp_path / "grid.png"
    result = subprocess.run(
        [*command, "sample", str(checkpoint), "--num", "4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert out.exists()


def test_sample_command_errors_are_one_line(checkpoint, tmp_path, capsys):
    assert main(["sample", str(tmp_path / "missing.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err

    no_ema = tmp_path / "plain.ckpt"
    trainer = Trainer(DCGAN(image_size=8, latent_dim=2, width=2), progress=False)
    trainer.save_checkpoint(str(no_ema))
    assert main(["sample", str(no_ema), "--ema", "--out", str(tmp_path / "g.png")]) == 2
    assert "has no EMA generator" in capsys.readouterr().err
    # Without --ema, a run that kept no EMA is sampled through its generator, and says so.
    assert main(["sample", str(no_ema), "--out", str(tmp_path / "g.png")]) == 0
    assert "from the generator (the run kept no EMA)" in capsys.readouterr().out
    assert main(["sample", str(checkpoint), "--out", str(tmp_path)]) == 2
    assert "is a folder; give a file such as grid.png" in capsys.readouterr().err


def test_sample_command_refuses_a_grid_over_the_pixel_bound(tmp_path, capsys):
    trainer = Trainer(DCGAN(image_size=1024, latent_dim=2, width=1), progress=False)
    big = tmp_path / "big.ckpt"
    trainer.save_checkpoint(str(big))
    out = tmp_path / "g.png"
    assert main(["sample", str(big), "--num", "65", "--out", str(out), "--device", "cpu"]) == 2
    assert "--num 65 images of 1024x1024 make a grid of 68,157,440 pixels, over the bound" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_load_gan_restores_the_generator(checkpoint):
    payload = torch.load(checkpoint, weights_only=True)
    gan = load_gan(checkpoint)
    assert gan.config == payload["gan_config"]
    for name, value in gan.generator.state_dict().items():
        assert torch.equal(value, payload["generator"][name])
    averaged = load_gan(checkpoint, ema=True).generator.state_dict()
    assert any(not torch.equal(averaged[k], v) for k, v in payload["generator"].items())


def test_load_gan_refuses_checkpoints_of_custom_networks(tmp_path):
    generator = nn.Sequential(nn.Linear(2, 4), nn.Unflatten(1, (1, 2, 2)))
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0))
    trainer = Trainer((generator, discriminator, 2), progress=False)
    path = tmp_path / "custom.ckpt"
    trainer.save_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="does not record an architecture's configuration"):
        load_gan(path)


def test_recompute_batchnorm_stats_measures_the_inputs():
    network = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    network.eval()
    batches = [torch.randn(50, 3) * 2 + 1 for _ in range(4)]
    assert recompute_batchnorm_stats(network, batches) == 4
    norm = network[1]
    hidden = network[0](torch.cat(batches)).detach()
    torch.testing.assert_close(norm.running_mean, hidden.mean(0))
    assert norm.momentum == 0.1 and not network.training  # restored
    with pytest.raises(ValueError, match="`inputs` is empty"):
        recompute_batchnorm_stats(network, [])

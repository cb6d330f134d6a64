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
from ganlib.sampling import recompute_batchnorm_stats


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
    assert f"wrote 6 images to {out}" in capsys.readouterr().out


def test_sample_command_seed_ema_and_eval_mode(checkpoint, tmp_path):
    def pixels(*extra: str) -> torch.Tensor:
        out = tmp_path / "grid.png"
        main(["sample", str(checkpoint), "--num", "4", "--out", str(out), *extra])
        with Image.open(out) as image:
            return pil_to_tensor(image).float()

    first = pixels("--seed", "1")
    assert torch.equal(first, pixels("--seed", "1"))
    assert not torch.equal(first, pixels("--seed", "2"))
    assert not torch.equal(first, pixels("--seed", "1", "--ema"))
    assert not torch.equal(first, pixels("--seed", "1", "--eval-mode"))
    assert pixels("--ema", "--eval-mode").numel() == first.numel()


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

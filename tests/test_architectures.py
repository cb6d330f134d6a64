"""The GAN-pair contract and the architecture registry: a new architecture in a few lines,
trained, checkpointed and rebuilt by name; checkpoints of the previous release still load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import ganlib.gan
from ganlib import DCGAN, GAN, CheckpointError, Trainer, load_gan, register_architecture
from ganlib.callbacks import EMA, ModelCheckpoint
from ganlib.cli import main as cli_main
from ganlib.gan import as_gan, build_gan

OLD_CHECKPOINT = Path(__file__).parent / "data" / "release_0_1_checkpoint.ckpt"


class MLPGAN(GAN):
    """A tiny fully connected pair: not a DCGAN, to show any architecture fits."""

    def __init__(self, image_size: int = 6, latent_dim: int = 4, hidden: int = 16) -> None:
        super().__init__()
        pixels = image_size * image_size
        self.latent_dim, self.num_classes = latent_dim, None
        self.image_shape = (1, image_size, image_size)
        self.config = dict(image_size=image_size, latent_dim=latent_dim, hidden=hidden)
        self.generator = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, pixels), nn.Tanh(),
            nn.Unflatten(1, self.image_shape),
        )  # fmt: skip
        self.discriminator = nn.Sequential(
            nn.Flatten(), nn.Linear(pixels, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1),
            nn.Flatten(0),
        )  # fmt: skip


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(ganlib.gan, "_ARCHITECTURES", dict(ganlib.gan._ARCHITECTURES))
    return ganlib.gan


def test_a_registered_architecture_trains_checkpoints_and_comes_back(registry, tmp_path):
    register_architecture("mlp", MLPGAN)  # the one registry line
    assert "mlp" in registry.architectures() and MLPGAN.arch == "mlp"
    gan = MLPGAN(hidden=12)
    ckpt = ModelCheckpoint(tmp_path / "ckpt", every_n_steps=1)
    trainer = Trainer(gan, max_steps=2, seed=0, progress=False, callbacks=[EMA(decay=0.5), ckpt])
    state = trainer.fit(torch.rand(8, 1, 6, 6) * 2 - 1, batch_size=4)
    assert state.step == 2
    loaded = load_gan(ckpt.last_path)
    assert type(loaded) is MLPGAN and loaded.config == gan.config
    for a, b in zip(loaded.state_dict().values(), gan.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    averaged = load_gan(ckpt.last_path, ema=True)
    ema = trainer.callback(EMA)
    assert ema is not None and ema.module is not None
    for a, b in zip(averaged.generator.parameters(), ema.module.parameters(), strict=True):
        assert torch.equal(a, b)
    out = tmp_path / "grid.png"
    argv = ["sample", str(ckpt.last_path), "--num", "6", "--nrow", "3", "--out", str(out)]
    assert cli_main([*argv, "--device", "cpu"]) == 0
    with Image.open(out) as image:
        assert image.size == (2 + 3 * 8, 2 + 2 * 8)  # 6-pixel images, 2-pixel padding


def test_an_unregistered_architecture_is_named_when_loading(registry, tmp_path):
    register_architecture("mlp", MLPGAN)
    trainer = Trainer(MLPGAN(), max_steps=1, seed=0, progress=False)
    path = tmp_path / "mlp.ckpt"
    trainer.save_checkpoint(str(path))
    del registry._ARCHITECTURES["mlp"]
    with pytest.raises(CheckpointError, match="unknown architecture 'mlp'; registered: "):
        load_gan(path)


def test_registry_refuses_a_taken_name_and_unknown_names(registry):
    with pytest.raises(ValueError, match="architecture 'dcgan' is already registered"):
        register_architecture("dcgan", MLPGAN)
    with pytest.raises(ValueError, match="`name` must be a non-empty string, got ''"):
        register_architecture("", MLPGAN)
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        build_gan("nope", {})
    assert isinstance(build_gan("dcgan", dict(image_size=12, latent_dim=8, width=4)), DCGAN)


def test_tuple_pairs_are_adapted_to_the_contract():
    gan = MLPGAN()
    pair = as_gan((gan.generator, gan.discriminator, 4))
    assert pair.latent_dim == 4 and pair.num_classes is None and pair.image_shape == (1, 6, 6)
    assert pair.sample_noise(3).shape == (3, 4)
    assert pair.generator_inputs(2)[0].shape == (2, 4)
    with pytest.raises(ValueError, match="sample_labels needs a conditional pair"):
        pair.sample_labels(2)
    assert as_gan(gan) is gan
    with pytest.raises(TypeError, match=r"`gan` must provide \.generator"):
        as_gan(object())


def test_a_checkpoint_of_the_previous_release_loads_and_resumes():
    # Written by ganlib 0.1.0.dev0 (commit 10098dc): no architecture name recorded.
    payload = torch.load(OLD_CHECKPOINT, weights_only=True)
    assert "arch" not in payload
    gan = load_gan(OLD_CHECKPOINT, ema=True)
    assert type(gan) is DCGAN and gan.num_classes == 3
    assert torch.equal(
        gan.generator.state_dict()["net.0.weight"],
        payload["callbacks"]["EMA"]["module"]["net.0.weight"],
    )
    torch.manual_seed(0)
    fresh = DCGAN(12, 1, latent_dim=8, width=4, num_classes=3)
    trainer = Trainer(fresh, max_steps=3, progress=False, callbacks=[EMA(decay=0.5)])
    images = torch.rand(16, 1, 12, 12) * 2 - 1
    state = trainer.fit((images, torch.arange(16) % 3), str(OLD_CHECKPOINT), batch_size=8)
    assert state.step == 3 and trainer.seed == 7

"""ganlib.checkpoint: failed saves, all-or-nothing loading, malformed and corrupted
checkpoints."""

from __future__ import annotations

import errno

import pytest
import torch

from conftest import images, tiny_gan, trainer
from ganlib import CheckpointError, load_gan
from ganlib.callbacks import ModelCheckpoint
from ganlib.checkpoint import atomic_save, load_checkpoint


def test_a_failed_save_records_nothing_and_names_the_cause(tmp_path, monkeypatch, capsys):
    ckpt = ModelCheckpoint(tmp_path, every_n_steps=1)
    t = trainer([ckpt], max_steps=3)
    t.fit(images(), batch_size=8)
    assert ckpt.newest.endswith("step-0000003.ckpt")
    (tmp_path / ".step-0000009.ckpt.x1y2.tmp").write_bytes(b"left by a killed save")

    def disk_full(obj, handle):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    t.max_steps = 4
    with pytest.raises(OSError, match=r"could not write checkpoint .*disk full"):
        t.fit(images(), batch_size=8)
    monkeypatch.undo()
    assert ckpt.newest.endswith("step-0000003.ckpt")  # the failed file is not recorded
    assert load_checkpoint(ckpt.last_path)["state"]["step"] == 3  # still loadable
    assert "newest checkpoint: " in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp"))  # stale and partial temporary files are gone


def test_loading_is_all_or_nothing(tmp_path):
    sgd = trainer([], g_optimizer=lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9))
    sgd.fit(images(), batch_size=8)
    sgd.save_checkpoint(str(tmp_path / "sgd.ckpt"))
    adam = trainer([], gan=tiny_gan(seed=3))
    before = {k: v.clone() for k, v in adam.generator.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"does not fit this trainer: .*another kind of opt"):
        adam.load_checkpoint(str(tmp_path / "sgd.ckpt"))
    assert all(torch.equal(v, adam.generator.state_dict()[k]) for k, v in before.items())
    assert adam.state.step == 0 and adam.seed == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.pop("state"), r"`state` is missing"),
        (lambda p: p.pop("callbacks"), r"`callbacks` is not a mapping"),
        (lambda p: p.pop("rng"), r"`rng` is missing"),
        (lambda p: p["state"].update(step="12"), r"`state.step` must be an integer >= 0, got '12'"),
        (lambda p: p.update(seed=-3), r"`seed` must be an integer >= 0, got -3"),
        (lambda p: p.update(generator=[1, 2]), r"`generator` is not a state dict"),
    ],
)
def test_a_malformed_checkpoint_is_refused_before_anything_changes(tmp_path, edit, message):
    t = trainer([])
    t.fit(images(), batch_size=8)
    payload = t.state_dict()
    edit(payload)
    atomic_save(payload, tmp_path / "bad.ckpt")
    fresh = trainer([], gan=tiny_gan(seed=3))
    before = [p.clone() for p in fresh.generator.parameters()]
    with pytest.raises(CheckpointError, match=message):
        fresh.load_checkpoint(str(tmp_path / "bad.ckpt"))
    assert all(torch.equal(a, b) for a, b in zip(before, fresh.generator.parameters(), strict=True))


def test_flipped_bytes_and_inflated_configs_are_caught(tmp_path):
    t = trainer([])
    t.fit(images(), batch_size=8)
    path = tmp_path / "run.ckpt"
    t.save_checkpoint(str(path))
    assert load_checkpoint(path)["checksum"].startswith("crc32:")
    payload = torch.load(path, weights_only=True)
    payload["generator"]["net.0.weight"][0, 0, 0, 0] += 1.0  # one changed number
    torch.save(payload, tmp_path / "flipped.ckpt")
    with pytest.raises(CheckpointError, match="corrupted: its tensor data does not match"):
        load_checkpoint(tmp_path / "flipped.ckpt")
    payload = torch.load(path, weights_only=True)
    payload.pop("checksum")
    payload["gan_config"]["image_size"] = 4096  # would be a multi-gigabyte network
    torch.save(payload, tmp_path / "inflated.ckpt")
    with pytest.raises(CheckpointError, match=r"builds [\d,]+ parameters, but the file holds"):
        load_gan(tmp_path / "inflated.ckpt")
    with pytest.raises(CheckpointError, match=r"is a folder, not a file"):
        load_checkpoint(tmp_path)

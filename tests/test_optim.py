"""ganlib.optim: a resumed run keeps the optimizer settings the user gave, with a notice."""

from __future__ import annotations

import torch

from conftest import images, tiny_gan, trainer


def test_resume_applies_the_users_new_learning_rate_with_a_notice(tmp_path, capsys):
    t = trainer([])
    t.fit(images(), batch_size=8)
    t.save_checkpoint(str(tmp_path / "a.ckpt"))
    gan = tiny_gan()
    faster = torch.optim.Adam(gan.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    resumed = trainer([], gan=gan, g_optimizer=faster, max_steps=3)
    resumed.fit(images(), str(tmp_path / "a.ckpt"), batch_size=8)
    assert resumed.g_optimizer.param_groups[0]["lr"] == 1e-3
    assert "g_optimizer lr: 0.0002 -> 0.001" in capsys.readouterr().err

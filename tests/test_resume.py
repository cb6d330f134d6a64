"""Exact resume across processes, crash safety and checkpoint errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_gan
from ganlib import DCGAN, CheckpointError, Trainer
from ganlib.checkpoint import atomic_save, load_checkpoint

WORKER = Path(__file__).with_name("resume_worker.py")
STEPS = 12  # 28 images in batches of 8: 4 batches an epoch, so step 6 is mid-epoch


def run_worker(out: Path, steps: int, resume: Path | None = None) -> None:
    command = [sys.executable, str(WORKER), str(out), "--steps", str(steps)]
    if resume is not None:
        command += ["--resume", str(resume)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def start_slow_worker(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(out), "--steps", "1000", "--slow", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(process: subprocess.Popen[str], step: int) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == f"step {step}":
            return
    raise AssertionError(f"worker ended before step {step}: {process.stderr.read()}")


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = torch.load(a / "final.pt"), torch.load(b / "final.pt")
    assert first["step"] == second["step"] == STEPS
    for part in ("generator", "discriminator", "ema"):
        for name, tensor in first[part].items():
            assert torch.equal(tensor, second[part][name]), f"{part}.{name} differs"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    run_worker(out, STEPS)
    return out


def test_resume_mid_epoch_in_a_new_process_is_bitwise_exact(uninterrupted, tmp_path):
    run_worker(tmp_path, 6)
    checkpoint = tmp_path / "ckpt" / "step-0000006.ckpt"
    state = load_checkpoint(checkpoint)["state"]
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 2)  # mid-epoch
    run_worker(tmp_path, STEPS, resume=checkpoint)
    assert_same_weights(uninterrupted, tmp_path)
    # The metrics log of the resumed run reads as one run.
    assert (tmp_path / "metrics.csv").read_text() == (uninterrupted / "metrics.csv").read_text()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "last.ckpt",
        "step-0000010.ckpt",
        "step-0000012.ckpt",
    ]  # keep_last=2 across the resume


def test_sigkill_leaves_a_checkpoint_that_finishes_the_run(uninterrupted, tmp_path):
    process = start_slow_worker(tmp_path)
    try:
        wait_for_step(process, 5)
    finally:
        process.kill()
        process.wait()
    last = tmp_path / "ckpt" / "last.ckpt"
    step = load_checkpoint(last)["state"]["step"]
    assert 4 <= step < STEPS
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))  # no half-written files left
    run_worker(tmp_path, STEPS, resume=last)
    assert_same_weights(uninterrupted, tmp_path)


def test_ctrl_c_saves_a_checkpoint_at_a_step_boundary(uninterrupted, tmp_path):
    process = start_slow_worker(tmp_path)
    try:
        wait_for_step(process, 3)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    # TrainingInterrupted is the KeyboardInterrupt that names the signal and the step.
    assert (
        process.returncode != 0 and "TrainingInterrupted: training interrupted by Ctrl-C" in stderr
    )
    last = tmp_path / "ckpt" / "last.ckpt"
    step = load_checkpoint(last)["state"]["step"]
    assert 3 <= step < STEPS
    assert f"step-{step:07d}.ckpt" in stderr  # it says where it saved
    assert (tmp_path / "ckpt" / f"step-{step:07d}.ckpt").exists()
    run_worker(tmp_path, STEPS, resume=last)
    assert_same_weights(uninterrupted, tmp_path)


def tiny_trainer(width: int = 4, **kwargs) -> Trainer:
    gan = tiny_gan(width=width)
    return Trainer(gan, max_steps=2, seed=0, device="cpu", progress=False, **kwargs)


def data() -> torch.Tensor:
    return torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(2)) * 2 - 1


def test_checkpoint_holds_everything_needed(tmp_path):
    t = tiny_trainer(precision="16")
    t.fit(data(), batch_size=8)
    t.save_checkpoint(str(tmp_path / "a.ckpt"))
    payload = load_checkpoint(tmp_path / "a.ckpt")
    for key in (
        "generator",
        "discriminator",
        "g_optimizer",
        "d_optimizer",
        "scaler",
        "state",
        "seed",
        "rng",
        "noise_rng",
        "callbacks",
        "gan_config",
    ):
        assert key in payload
    assert payload["state"]["step"] == 2
    assert payload["scaler"]["scale"] > 0
    assert set(payload["rng"]) >= {"python", "torch"}
    assert payload["gan_config"]["width"] == 4


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    t = tiny_trainer()
    t.save_checkpoint(str(tmp_path / "full.ckpt"))
    blob = (tmp_path / "full.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(
        CheckpointError,
        match=r"could not be read \(truncated, corrupt, or not a "
        r"PyTorch file\)",
    ):
        tiny_trainer().fit(data(), ckpt_path=str(tmp_path / "cut.ckpt"))


def test_foreign_files_give_clear_errors(tmp_path):
    torch.save(DCGAN(12, 1, 8, 4).generator.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"is not a ganlib checkpoint .* plain state_dict"):
        tiny_trainer().load_checkpoint(str(tmp_path / "plain.pt"))
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"could not be read"):
        tiny_trainer().load_checkpoint(str(tmp_path / "text.ckpt"))


def test_checkpoint_for_another_model_shape(tmp_path):
    tiny_trainer(width=4).save_checkpoint(str(tmp_path / "w4.ckpt"))
    with pytest.raises(
        CheckpointError,
        match=r"holds a generator of another shape than this "
        r"trainer's: size mismatch for net.0.weight",
    ):
        tiny_trainer(width=6).load_checkpoint(str(tmp_path / "w4.ckpt"))


class Payload:
    """Unpickling this would run code: weights_only loading must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_loading_never_runs_code_from_the_file(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"ganlib_checkpoint": 1, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"could not be read"):
        load_checkpoint(path)


def test_atomic_save_keeps_the_previous_file_on_a_crash(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    atomic_save({"version": 1}, path)

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"version": 2}, path)
    monkeypatch.undo()
    assert torch.load(path) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


@pytest.mark.parametrize("options", [{}, {"fast": True}], ids=["plain", "fast"])
def test_in_process_resume_is_exact(tmp_path, options):
    # (the fast path: bf16 where native, channels_last, fused Adam, uncompiled on a CPU)
    def tiny_trainer(**kwargs) -> Trainer:
        return globals()["tiny_trainer"](**options, **kwargs)

    full = tiny_trainer()
    full.max_steps = 5
    full.fit(data(), batch_size=6)
    part = tiny_trainer()
    part.max_steps = 3
    part.fit(data(), batch_size=6)
    part.save_checkpoint(str(tmp_path / "p.ckpt"))
    resumed = tiny_trainer()
    resumed.max_steps = 5
    resumed.fit(data(), batch_size=6, ckpt_path=str(tmp_path / "p.ckpt"))
    for a, b in zip(full.generator.parameters(), resumed.generator.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_fast_checkpoint_resumes_in_a_plain_trainer_without_a_notice(tmp_path, capsys):
    fast = tiny_trainer(fast=True)
    assert fast.g_optimizer.param_groups[0]["fused"]  # the fast path's fused Adam
    fast.fit(data(), batch_size=8)
    fast.save_checkpoint(str(tmp_path / "fast.ckpt"))
    plain = tiny_trainer()
    plain.max_steps = 4
    plain.fit(data(), batch_size=8, ckpt_path=str(tmp_path / "fast.ckpt"))
    assert plain.state.step == 4 and not plain.g_optimizer.param_groups[0]["fused"]
    assert "your settings" not in capsys.readouterr().err  # `fused` is no setting of the maths

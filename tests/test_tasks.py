"""The task seam: a CycleGAN-shaped task (two generators, two discriminators) trained by
the same Trainer as a GAN pair, with everything the loop gives: callbacks, EMA of any
named network, exact resume (in process, and after SIGKILL), the NaN guard, the fast path,
checkpoint checks and torchrun (gloo)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT
from cycle_task import TinyCycleTask, domain_pair
from ganlib import DCGAN, CheckpointError, Trainer
from ganlib.callbacks import (
    EMA,
    LossCurve,
    MetricsLogger,
    ModelCheckpoint,
    NonFiniteLossError,
    RunReport,
    SampleGrid,
)
from ganlib.checkpoint import load_checkpoint
from ganlib.tasks import AdversarialTask, Task

WORKER = REPO_ROOT / "tests" / "task_worker.py"
STEPS = 10  # 24 pairs in batches of 4: 6 batches an epoch, so step 5 is mid-epoch


def snapshot(task: Task) -> dict[str, dict[str, torch.Tensor]]:
    return {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in task.networks.items()}


def assert_same(first: dict, second: dict, where: str = "") -> None:
    for key, value in first.items():
        if isinstance(value, dict):
            assert_same(value, second[key], f"{where}{key}.")
        elif isinstance(value, torch.Tensor):
            assert torch.equal(value, second[key]), f"{where}{key} differs"
        else:
            assert value == second[key], f"{where}{key} differs"


def test_task_contract_is_importable_and_a_pair_becomes_the_adversarial_task():
    assert issubclass(TinyCycleTask, Task) and issubclass(AdversarialTask, Task)
    trainer = Trainer(DCGAN(image_size=8, width=4, latent_dim=4), progress=False)
    assert isinstance(trainer.task, AdversarialTask)
    assert trainer.generator is trainer.task.networks["generator"]
    assert set(trainer.task.optimizers) == {"g_optimizer", "d_optimizer"}


def test_a_two_generator_task_trains_with_the_usual_callbacks(tmp_path):
    task = TinyCycleTask()
    before = snapshot(task)
    g_ba_ema = EMA(decay=0.5, network="g_ba")
    trainer = Trainer(
        task,
        max_steps=7,
        seed=0,
        device="cpu",
        progress=True,
        callbacks=[
            EMA(decay=0.5),
            g_ba_ema,
            SampleGrid(tmp_path, num_samples=3, nrow=3, every_n_steps=3),
            MetricsLogger(tmp_path / "metrics.csv"),
            LossCurve(tmp_path / "loss_curve.png"),
            RunReport(tmp_path),
            ModelCheckpoint(tmp_path / "ckpt", every_n_steps=3),
        ],
    )
    state = trainer.fit(domain_pair(), batch_size=4)
    assert state.step == 7 and set(state.metrics) == {"loss_g", "loss_d", "cycle"}
    assert all(math.isfinite(v) for v in state.metrics.values())
    after = snapshot(task)
    for name in task.networks:  # every network learned
        assert any(not torch.equal(before[name][k], after[name][k]) for k in before[name]), name
    # EMA of a named network: the average of g_ba, not of the image network g_ab.
    assert g_ba_ema.module is not None
    assert g_ba_ema.module.state_dict().keys() == task.networks["g_ba"].state_dict().keys()
    assert not torch.equal(g_ba_ema.module[0].weight, task.networks["g_ba"][0].weight)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header.split(",")[:5] == ["step", "epoch", "loss_g", "loss_d", "cycle"]
    # The grid is the task's: 3 inputs, their translations and reconstructions, a row each.
    from PIL import Image

    with Image.open(tmp_path / "generated_step_0000006.png") as grid:
        rows, cols = (grid.height - 2) // 10, (grid.width - 2) // 10  # 8 px + 2 px padding
    assert (rows, cols) == (3, 3)
    assert "tiny-cycle: g_ab, g_ba, d_a, d_b" in (tmp_path / "report.html").read_text()
    payload = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert payload["task"] == "tiny-cycle" and set(payload["networks"]) == set(task.networks)
    assert set(payload["callbacks"]) >= {"EMA", "EMA[g_ba]"}


def run_in_process(tmp_path: Path, steps: int, resume: str | None = None) -> TinyCycleTask:
    task = TinyCycleTask()
    trainer = Trainer(
        task,
        max_steps=steps,
        seed=3,
        device="cpu",
        progress=False,
        callbacks=[EMA(decay=0.9, network="g_ba"), ModelCheckpoint(tmp_path, every_n_steps=2)],
    )
    trainer.fit(domain_pair(), ckpt_path=resume, batch_size=4)
    return task


def test_resume_mid_epoch_restores_every_network_optimizer_and_the_task_state(tmp_path):
    straight = run_in_process(tmp_path / "a", 10)
    run_in_process(tmp_path / "b", 4)
    resumed = run_in_process(tmp_path / "b", 10, resume=str(tmp_path / "b" / "step-0000004.ckpt"))
    assert_same(snapshot(straight), snapshot(resumed))
    assert_same(straight.pools, resumed.pools)  # the pools drew from the resumed stream
    for name in ("g_optimizer", "d_optimizer"):
        assert_same(straight.optimizers[name].state_dict(), resumed.optimizers[name].state_dict())


def run_worker(out: Path, steps: int, resume: Path | None = None) -> None:
    command = [sys.executable, str(WORKER), str(out), "--steps", str(steps)]
    command += ["--resume", str(resume)] if resume else []
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def test_sigkill_then_resume_is_bitwise_an_uninterrupted_run(tmp_path):
    run_worker(tmp_path / "straight", STEPS)
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(killed), "--steps", "1000", "--slow", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == "step 5":
                break
    finally:
        process.kill()
        process.wait()
    last = killed / "ckpt" / "last.ckpt"
    assert 4 <= load_checkpoint(last)["state"]["step"] < STEPS
    run_worker(killed, STEPS, resume=last)
    straight = torch.load(tmp_path / "straight" / "final0.pt")
    again = torch.load(killed / "final0.pt")
    assert straight["step"] == again["step"] == STEPS
    assert set(again["emas"]) == {"EMA", "EMA[g_ba]"}
    assert_same(straight, again)


def test_torchrun_trains_the_task_on_two_processes(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(WORKER), str(tmp_path), "--steps", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"final{r}.pt") for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [4, 4]
    # DDP kept the four networks equal across the ranks (each saw its own half of the data).
    for name in ("g_ab", "g_ba", "d_a", "d_b"):
        states = [r["networks"][name] for r in ranks]
        weights = [{k: v for k, v in s.items() if "running" not in k} for s in states]
        assert_same(weights[0], weights[1], f"{name}.")
    assert (tmp_path / "ckpt" / "last.ckpt").exists()  # rank 0 wrote the files


def test_a_task_keeps_its_own_settings_and_pair_views_say_so():
    with pytest.raises(TypeError, match=r"`loss` configures a GAN pair's training; a task holds"):
        Trainer(TinyCycleTask(), loss="hinge", progress=False)
    trainer = Trainer(TinyCycleTask(), progress=False)
    with pytest.raises(AttributeError, match=r"trains a TinyCycleTask, which has no GAN pair"):
        trainer.gan  # noqa: B018
    with pytest.raises(AttributeError, match=r"Trainer.g_optimizer belongs to a GAN pair"):
        trainer.g_optimizer  # noqa: B018


def test_a_checkpoint_of_another_task_is_refused_by_name(tmp_path):
    run_in_process(tmp_path, 2)
    gan_trainer = Trainer(DCGAN(image_size=8, width=4, latent_dim=4), progress=False)
    with pytest.raises(CheckpointError, match=r"holds a 'tiny-cycle' task, not a GAN pair"):
        gan_trainer.fit(torch.rand(8, 1, 8, 8) * 2 - 1, ckpt_path=str(tmp_path / "last.ckpt"))
    pair = tmp_path / "pair.ckpt"
    gan_trainer.save_checkpoint(str(pair))
    trainer = Trainer(TinyCycleTask(), progress=False)
    with pytest.raises(CheckpointError, match=r"holds a 'adversarial' task, not 'tiny-cycle'"):
        trainer.fit(domain_pair(), ckpt_path=str(pair), batch_size=4)


def test_nan_guard_and_fast_path_work_for_any_task(tmp_path):
    class Exploding(TinyCycleTask):
        def training_step(self, batch, step):  # type: ignore[no-untyped-def]
            metrics = super().training_step(batch, step)
            return {**metrics, "cycle": math.nan} if step == 2 else metrics

    with pytest.raises(NonFiniteLossError, match=r"cycle is nan at step 3"):
        Trainer(Exploding(), max_steps=5, progress=False).fit(domain_pair(), batch_size=4)
    fast = Trainer(TinyCycleTask(), max_steps=2, fast=True, device="cpu", progress=False)
    assert fast.runtime.channels_last and fast.runtime.fused_optimizers
    state = fast.fit(domain_pair(), batch_size=4)
    assert state.step == 2 and all(math.isfinite(v) for v in state.metrics.values())
    weight = fast.task.networks["g_ab"][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.task.optimizers["g_optimizer"].defaults["fused"]  # the fast path's Adam

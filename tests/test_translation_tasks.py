"""The translation tasks: pix2pix's and CycleGAN's losses against hand formulas, the history
pool against the reference's rule, the learning-rate schedule, exact resume (with a
decaying rate, EMA and pools), EMA of ``g_ab``, the fast path, torchrun (gloo), the checks
on data and arguments, ``translate`` and rebuilding from a checkpoint's config.

Run as a script, this file is the torchrun worker of
``test_torchrun_trains_both_tasks_on_two_processes``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ganlib import CheckpointError, Trainer
from ganlib.callbacks import EMA, Callback, ModelCheckpoint, SampleGrid
from ganlib.checkpoint import load_checkpoint
from ganlib.tasks import CycleGANTask, ImagePool, LinearDecay, Pix2PixTask, TranslationTask


def pairs(n: int = 12, size: int = 16, channels: tuple[int, int] = (1, 1), seed: int = 0):
    rng = torch.Generator().manual_seed(seed)
    a = torch.rand(n, channels[0], size, size, generator=rng) * 2 - 1
    b = torch.rand(n, channels[1], size, size, generator=rng) * 2 - 1
    return a, b


def pix2pix(**task) -> Pix2PixTask:
    torch.manual_seed(0)
    return Pix2PixTask.build(16, 1, 1, width=4, discriminator_width=4, layers=2, **task)


def cyclegan(channels: tuple[int, int] = (1, 1), **task) -> CycleGANTask:
    torch.manual_seed(0)
    return CycleGANTask.build(
        16, *channels, width=2, blocks=1, discriminator_width=2, layers=2, **task
    )


def states(task: TranslationTask) -> dict:
    return {
        "networks": {n: copy.deepcopy(m.state_dict()) for n, m in task.networks.items()},
        "optimizers": {n: copy.deepcopy(o.state_dict()) for n, o in task.optimizers.items()},
        "extra": copy.deepcopy(task.extra_state()),
    }


def assert_same(first, second, where: str = "") -> None:
    if isinstance(first, dict):
        assert set(first) == set(second), where
        for key in first:
            assert_same(first[key], second[key], f"{where}{key}.")
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second), where
        for index, (x, y) in enumerate(zip(first, second, strict=True)):
            assert_same(x, y, f"{where}{index}.")
    elif isinstance(first, torch.Tensor):
        assert torch.equal(first, second), f"{where} differs"
    else:
        assert first == second, f"{where}: {first} != {second}"


# ------------------------------------------------------------------------ the pool


def reference_pool(size: int, stored: list, batch, coins, slots) -> tuple[list, list]:
    """The reference's ImagePool.query, with its random draws given."""
    returned = []
    for image, coin, slot in zip(batch, coins, slots, strict=True):
        if len(stored) < size:
            stored.append(image)
            returned.append(image)
        elif coin > 0.5:
            returned.append(stored[slot])
            stored[slot] = image
        else:
            returned.append(image)
    return stored, returned


def test_pool_follows_the_reference_rule_with_draws_from_the_given_stream():
    pool, stored = ImagePool(4), []
    rng = torch.Generator().manual_seed(5)
    for call in range(6):
        batch = (
            torch.arange(3 * call, 3 * call + 3).float()[:, None, None, None].expand(-1, 1, 2, 2)
        )
        twin = torch.Generator().manual_seed(0)
        twin.set_state(rng.get_state())
        coins, slots = torch.rand(3, generator=twin), torch.randint(4, (3,), generator=twin)
        stored, expected = reference_pool(4, stored, list(batch), coins.tolist(), slots.tolist())
        out = pool.query(batch, rng)
        assert torch.equal(out, torch.stack(expected)), f"call {call}"
        assert torch.equal(pool.images, torch.stack(stored))
    assert len(pool) == 4
    # Once full, about half of what D sees is history.
    rng = torch.Generator().manual_seed(1)
    big = ImagePool(50)
    big.query(-torch.ones(50, 1, 1, 1), rng)
    fresh = torch.arange(2000.0)[:, None, None, None]
    out = big.query(fresh, rng)
    assert 0.45 < float((out != fresh).float().mean()) < 0.55


def test_pool_state_round_trips_and_refuses_too_many_images():
    pool = ImagePool(3)
    assert torch.equal(
        pool.query(torch.ones(2, 1, 2, 2), torch.Generator()), torch.ones(2, 1, 2, 2)
    )
    again = ImagePool(3)
    again.load_state_dict(pool.state_dict())
    assert torch.equal(again.images, pool.images) and again.images is not pool.images
    with pytest.raises(ValueError, match=r"a pool of 1 images cannot hold the saved 2"):
        ImagePool(1).load_state_dict(pool.state_dict())
    empty = ImagePool(0)  # no pool: every batch as it is
    assert torch.equal(
        empty.query(torch.full((2, 1, 1, 1), 3.0), torch.Generator()), torch.full((2, 1, 1, 1), 3.0)
    )


# -------------------------------------------------------------- losses by hand


def bce_with_logits(scores: torch.Tensor, target: float) -> torch.Tensor:
    """-mean(t log σ(s) + (1 - t) log(1 - σ(s))), written out."""
    p = torch.sigmoid(scores.double())
    return -(target * p.log() + (1 - target) * (1 - p).log()).mean()


@pytest.mark.parametrize("loss", ["vanilla", "lsgan"])
def test_pix2pix_losses_are_the_references(loss):
    task = pix2pix(gan_loss=loss, l1_weight=100.0)
    trainer = Trainer(task, max_steps=1, seed=0, device="cpu", progress=False)
    g0, d0 = (copy.deepcopy(task.networks[n]) for n in ("generator", "discriminator"))
    a, b = pairs(8)
    metrics = trainer.fit((a, b), batch_size=8, shuffle=False).metrics

    def gan(scores, target):
        if loss == "lsgan":
            return (scores.double() - target).square().mean()
        return bce_with_logits(scores, target)

    with torch.no_grad():
        fake = g0(a)
        d_real, d_fake = gan(d0(torch.cat([a, b], 1)), 1.0), gan(d0(torch.cat([a, fake], 1)), 0.0)
        # G is trained against D after D's update (the reference's order: D first).
        d1 = task.networks["discriminator"]
        g_gan = gan(d1(torch.cat([a, fake], 1)), 1.0)
        l1 = (fake - b).abs().mean()
    expected = {
        "loss_d_real": d_real,
        "loss_d_fake": d_fake,
        "loss_d": 0.5 * (d_real + d_fake),
        "loss_g_gan": g_gan,
        "loss_g_l1": l1,
        "loss_g": g_gan + 100 * l1,
    }
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name


def test_cyclegan_losses_are_the_references():
    task = cyclegan(pool_size=50)
    nets0 = {n: copy.deepcopy(m) for n, m in task.networks.items()}
    trainer = Trainer(task, max_steps=1, seed=0, device="cpu", progress=False)
    a, b = pairs(6)
    metrics = trainer.fit((a, b), batch_size=6, shuffle=False).metrics
    g_ab, g_ba, d_a, d_b = (nets0[n] for n in ("g_ab", "g_ba", "d_a", "d_b"))
    mse = lambda x, t: (x.double() - t).square().mean()  # noqa: E731  (LSGAN)
    l1 = lambda x, y: (x.double() - y).abs().mean()  # noqa: E731
    with torch.no_grad():
        fake_b, fake_a = g_ab(a), g_ba(b)
        expected = {
            "gan_ab": mse(d_b(fake_b), 1.0),  # G is trained first, against D as it was
            "gan_ba": mse(d_a(fake_a), 1.0),
            "cycle_a": l1(g_ba(fake_b), a),
            "cycle_b": l1(g_ab(fake_a), b),
            "identity_a": l1(g_ba(a), a),
            "identity_b": l1(g_ab(b), b),
            # A pool not yet full hands D the new fakes; D is as it was (G moved, not D).
            "loss_d_a": 0.5 * (mse(d_a(a), 1.0) + mse(d_a(fake_a), 0.0)),
            "loss_d_b": 0.5 * (mse(d_b(b), 1.0) + mse(d_b(fake_b), 0.0)),
        }
    expected["loss_g"] = (
        expected["gan_ab"]
        + expected["gan_ba"]
        + 10 * (expected["cycle_a"] + expected["cycle_b"])
        + 10 * 0.5 * (expected["identity_a"] + expected["identity_b"])
    )
    expected["loss_d"] = expected["loss_d_a"] + expected["loss_d_b"]
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name
    assert len(task.pools["a"]) == len(task.pools["b"]) == 6


# ------------------------------------------------------------------ the schedule


class RateLog(Callback):
    """Records each optimizer's rate as it steps."""

    def __init__(self) -> None:
        self.rates: list[tuple[str, float]] = []

    def on_before_optimizer_step(self, trainer, network, optimizer) -> None:  # type: ignore[no-untyped-def]
        self.rates.append((network, optimizer.param_groups[0]["lr"]))


def test_linear_decay_is_constant_then_falls_to_zero():
    assert [LinearDecay(3, 3).factor(s) for s in range(8)] == [1, 1, 1, 0.75, 0.5, 0.25, 0, 0]
    assert LinearDecay.halves(9) == LinearDecay(4, 5)
    with pytest.raises(ValueError, match=r"`decay_steps` must be >= 0, got -1"):
        LinearDecay(3, -1)
    log = RateLog()
    task = cyclegan(g_optimizer={"lr": 1e-3}, lr_schedule=LinearDecay(2, 3))
    Trainer(task, max_steps=6, callbacks=[log], device="cpu", progress=False).fit(
        pairs(), batch_size=4
    )
    g_rates = [rate for network, rate in log.rates if network == "generators"]
    d_rates = [rate for network, rate in log.rates if network == "discriminators"]
    assert g_rates == pytest.approx([1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0])
    assert d_rates == pytest.approx([2e-4, 2e-4, 1.5e-4, 1e-4, 5e-5, 0.0])


# ------------------------------------------------------------------ exact resume


def run(task_factory, folder: Path, steps: int, resume: str | None = None, **trainer):
    task = task_factory()
    ema = EMA(decay=0.8, network="g_ab" if isinstance(task, CycleGANTask) else None)
    Trainer(
        task,
        max_steps=steps,
        seed=3,
        device="cpu",
        progress=False,
        callbacks=[ema, ModelCheckpoint(folder, every_n_steps=2, every_n_epochs=None)],
        **trainer,
    ).fit(pairs(), ckpt_path=resume, batch_size=4)
    return task, ema


@pytest.mark.parametrize(
    "factory",
    [
        lambda: pix2pix(lr_schedule=LinearDecay(3, 5)),
        lambda: cyclegan(pool_size=5, lr_schedule=LinearDecay(3, 5)),
    ],
    ids=["pix2pix", "cyclegan"],
)
def test_resume_mid_epoch_equals_a_straight_run(tmp_path, capsys, factory):
    """Stopped at step 4 (mid-epoch, mid-decay), resumed to 10: every network, optimizer
    (rates included), pool and EMA as a run of 10 steps leaves them; no notice."""
    straight, straight_ema = run(factory, tmp_path / "a", 10)
    run(factory, tmp_path / "b", 4)
    resumed, resumed_ema = run(
        factory, tmp_path / "b", 10, str(tmp_path / "b" / "step-0000004.ckpt")
    )
    assert_same(states(straight), states(resumed))
    assert_same(straight_ema.module.state_dict(), resumed_ema.module.state_dict())
    assert "resuming" not in capsys.readouterr().err
    if isinstance(straight, CycleGANTask):
        assert len(straight.pools["a"]) == 5  # the pools were full and trading


def test_resume_with_a_new_rate_continues_the_schedule_from_it(tmp_path, capsys):
    factory = lambda: pix2pix(lr_schedule=LinearDecay(2, 6))  # noqa: E731
    run(factory, tmp_path, 4)
    log = RateLog()
    task = pix2pix(lr_schedule=LinearDecay(2, 6), g_optimizer={"lr": 1e-3})
    trainer = Trainer(task, max_steps=6, callbacks=[log], device="cpu", progress=False)
    trainer.fit(pairs(), ckpt_path=str(tmp_path / "step-0000004.ckpt"), batch_size=4)
    assert "g_optimizer lr: 0.0002 -> 0.001" in capsys.readouterr().err
    g_rates = [rate for network, rate in log.rates if network == "generator"]
    assert g_rates == pytest.approx([1e-3 * 4 / 7, 1e-3 * 3 / 7])  # steps 4 and 5
    payload = load_checkpoint(tmp_path / "last.ckpt")
    assert payload["task"] == "pix2pix" and payload["task_config"]["lr_schedule"] == [2, 6]


def test_a_checkpoint_of_the_other_translation_task_is_refused(tmp_path):
    run(lambda: pix2pix(), tmp_path, 2)
    trainer = Trainer(cyclegan(), device="cpu", progress=False)
    with pytest.raises(CheckpointError, match=r"holds a 'pix2pix' task, not 'cyclegan'"):
        trainer.fit(pairs(), ckpt_path=str(tmp_path / "last.ckpt"), batch_size=4)


# ------------------------------------------------------------ EMA, grids, fast


def test_ema_of_g_ab_and_the_grids_show_inputs_translations_and_cycles(tmp_path):
    from PIL import Image

    task = cyclegan(channels=(1, 3), identity_weight=0.0)
    ema = EMA(decay=0.5, network="g_ab")
    trainer = Trainer(
        task,
        max_steps=3,
        device="cpu",
        progress=False,
        callbacks=[ema, SampleGrid(tmp_path, nrow=5, every_n_steps=3, every_n_epochs=None)],
    )
    trainer.fit(pairs(channels=(1, 3)), batch_size=4)
    assert ema.module is not None and ema.averaged(trainer).keys() == {"g_ab"}
    live, averaged = task.networks["g_ab"], ema.module
    assert not torch.equal(next(live.parameters()), next(averaged.parameters()))
    with Image.open(tmp_path / "generated_step_0000003.png") as grid:
        rows, cols = (grid.height - 2) // 18, (grid.width - 2) // 18  # 16 px + 2 px padding
    assert (rows, cols) == (6, 4)  # a, a->b, a->b->a, b, b->a, b->a->b; a batch of 4
    a, b = pairs(4, channels=(1, 3))
    shown = task.grid({"a": a, "b": b}, {**task.networks, "g_ab": averaged}, eval_mode=True)
    assert shown.shape == (24, 3, 16, 16)
    assert torch.equal(shown[4:8], averaged.eval()(a).float())  # the average drew row 2
    with pytest.raises(TypeError, match=r"take no drawn inputs: draw grids from an EMA in train"):
        trainer.generator_inputs(2)


@pytest.mark.parametrize("factory", [pix2pix, cyclegan], ids=["pix2pix", "cyclegan"])
def test_the_fast_path_trains_both_tasks(factory):
    trainer = Trainer(factory(), max_steps=3, fast=True, device="cpu", progress=False)
    state = trainer.fit(pairs(), batch_size=4)
    assert state.step == 3 and all(math.isfinite(v) for v in state.metrics.values())
    for network in trainer.task.networks.values():
        convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
        assert convolutions[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(o.defaults["fused"] for o in trainer.task.optimizers.values())


# -------------------------------------------------------- data, arguments, config


def test_data_that_is_not_pairs_of_the_tasks_shapes_is_refused():
    trainer = Trainer(pix2pix(), max_steps=1, device="cpu", progress=False)
    images, _ = pairs()
    with pytest.raises(ValueError, match=r"must hold \(images_a, images_b\) pairs .* got labels"):
        trainer.fit((images, torch.zeros(len(images), dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match=r"got no second item"):
        trainer.fit(images, batch_size=4)
    with pytest.raises(ValueError, match=r"12 A images, 5 B images"):
        trainer.fit((images, images[:5]), batch_size=4)
    with pytest.raises(
        ValueError, match=r"B images must be shaped .* \(1, 16, 16\) .* got \(1, 3, 16, 16\)"
    ):
        trainer.fit(pairs(channels=(1, 3)), batch_size=4)
    with pytest.raises(ValueError, match=r"A images must be shaped .* got \(1, 1, 8, 8\)"):
        trainer.fit(pairs(size=8), batch_size=4)


def test_arguments_are_checked_by_name():
    with pytest.raises(
        ValueError, match=r"`identity_weight` needs domains of one channel count .* 1 and 3"
    ):
        cyclegan(channels=(1, 3))
    with pytest.raises(
        ValueError, match=r"`gan_loss` must be one of \['vanilla', 'lsgan'\], got 'hinge'"
    ):
        pix2pix(gan_loss="hinge")
    with pytest.raises(ValueError, match=r"`l1_weight` must be finite and >= 0, got -1.0"):
        pix2pix(l1_weight=-1)
    with pytest.raises(ValueError, match=r"`pool_size` must be >= 0, got -1"):
        cyclegan(pool_size=-1)
    with pytest.raises(
        TypeError, match=r"`lr_schedule` must be a LinearDecay or None, got \(1, 2\)"
    ):
        pix2pix(lr_schedule=(1, 2))
    with pytest.raises(TypeError, match=r"`d_a` must be a torch.nn.Module, got str"):
        CycleGANTask(nn.Identity(), nn.Identity(), "d", nn.Identity())  # type: ignore[arg-type]


def test_translate_each_way_and_leave_the_networks_as_they_were():
    task = cyclegan(channels=(1, 3), identity_weight=0.0)
    Trainer(task, device="cpu", progress=False)  # (placed on the device, set up)
    a, b = pairs(5, channels=(1, 3))
    task.networks["g_ab"].train()
    assert task.translate(a, "a2b", batch_size=2).shape == (5, 3, 16, 16)
    assert task.translate(b, "b2a").shape == (5, 1, 16, 16)
    assert task.networks["g_ab"].training
    with pytest.raises(ValueError, match=r"`direction` must be one of \['a2b'\], got 'b2a'"):
        pix2pix().translate(a, "b2a")  # type: ignore[arg-type]


def test_a_config_rebuilds_the_task():
    for task in (pix2pix(gan_loss="lsgan", lr_schedule=LinearDecay(1, 2)), cyclegan(pool_size=7)):
        again = type(task).from_config(task.config)
        assert again.config == task.config
        for name, network in task.networks.items():
            assert again.networks[name].state_dict().keys() == network.state_dict().keys()
    custom = Pix2PixTask(nn.Conv2d(1, 1, 1), nn.Conv2d(2, 1, 1))
    assert custom.config["generator"] == {"kind": None, "config": {}}
    with pytest.raises(ValueError, match=r"the task's generator is not a registered translation"):
        Pix2PixTask.from_config(custom.config)
    # A network of the user's trains too, on pairs of any shape.
    state = Trainer(custom, max_steps=2, device="cpu", progress=False).fit(
        pairs(size=5), batch_size=4
    )
    assert state.step == 2


# ---------------------------------------------------------------------- torchrun


def test_torchrun_trains_both_tasks_on_two_processes(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    command += [__file__, str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for kind in ("pix2pix", "cyclegan"):
        ranks = [torch.load(tmp_path / f"{kind}{r}.pt") for r in (0, 1)]
        assert [r["world_size"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [3, 3]
        for name in ranks[0]["networks"]:  # DDP kept every network equal across the ranks
            weights = [
                {k: v for k, v in r["networks"][name].items() if "running" not in k} for r in ranks
            ]
            assert_same(weights[0], weights[1], f"{kind}.{name}.")
        assert (tmp_path / kind / "last.ckpt").exists()  # rank 0 wrote it


# ------------------------------------------------------------------------ the study


@pytest.mark.parametrize("task", ["pix2pix", "cyclegan"])
def test_the_study_trains_and_scores_each_task(task, mnist_root, tmp_path):
    command = [
        sys.executable,
        str(Path(__file__).parents[1] / "benchmarks" / "translation_study.py"),
    ]
    command += [task, "--data-dir", str(mnist_root), "--out", str(tmp_path), "--steps", "2"]
    command += ["--width", "2", "--discriminator-width", "2", "--blocks", "1", "--batch-size", "4"]
    command += ["--train-images", "16", "--test-images", "40"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "scores.json").read_text())
    scores = report["scores"]
    assert scores["test_images"] == 40 and 0 <= scores["accuracy"] <= 1
    assert scores["fd"] > 0 and scores["fd_floor"] > 0
    expected = {"l1", "psnr_db"} if task == "pix2pix" else {"cycle_l1_a", "cycle_l1_b"}
    assert expected <= set(scores)
    assert report["train_minutes_cpu"] > 0 and report["runtime"].startswith("runtime: device cpu")
    for name in ("grid.png", "metrics.csv", "report.html", "loss_curve.png"):
        assert (tmp_path / name).exists(), name


def _worker(out: Path) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    for kind, factory in (("pix2pix", pix2pix), ("cyclegan", cyclegan)):
        task = factory(lr_schedule=LinearDecay(1, 2))
        trainer = Trainer(
            task,
            max_steps=3,
            seed=7,
            device="cpu",
            progress=False,
            callbacks=[
                EMA(decay=0.5),
                ModelCheckpoint(out / kind, every_n_steps=1, every_n_epochs=None),
            ],
        )
        trainer.fit(pairs(16), batch_size=4)
        torch.save(
            {
                "networks": {n: m.state_dict() for n, m in task.networks.items()},
                "step": trainer.state.step,
                "world_size": trainer.world.world_size,
            },
            out / f"{kind}{rank}.pt",
        )


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
    from worker_exit import leave_without_teardown  # (issue 31 A.7: why)

    leave_without_teardown()

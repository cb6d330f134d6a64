"""The adversarial step on its own (no Trainer), the runtime it runs in, and losses that
report metrics or read real logits."""

from __future__ import annotations

import copy
import csv

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from conftest import tiny_gan
from ganlib import DCGAN, Trainer, TrainerState
from ganlib.callbacks import LossCurve, MetricsLogger
from ganlib.callbacks.progress import format_metrics
from ganlib.losses import BCELoss, Loss, R1Penalty
from ganlib.runtime import COMPILE_PAYBACK_STEPS, CompiledOrEager, Runtime, steps_left
from ganlib.step import METRIC_NAMES, AdversarialStep

CPU = torch.device("cpu")


def real_batch(n: int = 8) -> Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1


def make_step(gan: DCGAN, loss=None, **kwargs) -> AdversarialStep:
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    return AdversarialStep(
        gan,
        torch.optim.Adam(gan.generator.parameters(), **adam),
        torch.optim.Adam(gan.discriminator.parameters(), **adam),
        loss or BCELoss(),
        runtime=Runtime.resolve(CPU),
        rng=torch.Generator().manual_seed(0),
        **kwargs,
    )


def test_step_trains_both_networks_and_returns_the_metrics():
    gan = tiny_gan()
    before = copy.deepcopy(gan)
    calls: list[str] = []
    step = make_step(gan, d_steps=2, before_optimizer_step=lambda net, opt: calls.append(net))
    metrics = step(real_batch())
    assert tuple(metrics) == METRIC_NAMES
    assert all(0.0 < metrics[k] < 1.0 for k in ("d_real", "d_fake", "d_fake_after"))  # BCE: probs
    assert calls == ["discriminator", "discriminator", "generator"]
    for network in ("generator", "discriminator"):
        old = dict(getattr(before, network).named_parameters())
        for name, value in getattr(gan, network).named_parameters():
            if value.dim() == 4:
                assert not torch.equal(value, old[name]), f"{network}.{name} did not move"
    # D is frozen only during G's backward.
    assert all(p.requires_grad for p in gan.discriminator.parameters())


def test_step_equals_the_trainers_first_step():
    gan_a, gan_b = tiny_gan(), tiny_gan()
    metrics = make_step(gan_a)(real_batch())
    trainer = Trainer(gan_b, max_steps=1, seed=0, progress=False, device="cpu")
    state = trainer.fit(real_batch(), batch_size=8, shuffle=False)
    assert state.metrics == metrics
    for a, b in zip(gan_a.parameters(), gan_b.parameters(), strict=True):
        assert torch.equal(a, b)


class ReportingBCE(BCELoss):
    """BCE that logs the mean real logit, as a penalised loss would log its penalty."""

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        self.report("real_logit", real_logits.mean())
        return super().discriminator_loss(real_logits, fake_logits)


def test_a_loss_reports_its_own_metric_into_the_logs(tmp_path):
    gan = tiny_gan()
    step = make_step(gan, loss=ReportingBCE())
    metrics = step(real_batch())
    assert tuple(metrics) == (*METRIC_NAMES, "real_logit")
    assert "real_logit" in format_metrics(metrics)
    # Through the Trainer: a column of metrics.csv, and a panel of the loss curve.
    log = tmp_path / "metrics.csv"
    curve = LossCurve(tmp_path / "curve.png")
    Trainer(
        tiny_gan(),
        loss=ReportingBCE(),
        max_steps=3,
        seed=0,
        progress=False,
        callbacks=[MetricsLogger(log), curve],
    ).fit(real_batch(16), batch_size=8)
    rows = list(csv.DictReader(log.open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(r["real_logit"] not in ("", None) for r in rows)
    assert len(curve.history["real_logit"]) == 3


def test_r1_passes_on_what_the_inner_loss_reports():
    metrics = make_step(tiny_gan(), loss=R1Penalty(ReportingBCE(), 1.0))(real_batch())
    assert "real_logit" in metrics


class RelativisticAverage(Loss):
    """RaGAN (Jolicoeur-Martineau 2018): G's loss reads D's logits on real images too."""

    reads_real_logits = True

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real_rel = real_logits - fake_logits.mean()
        fake_rel = fake_logits - real_logits.mean()
        return F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        assert real_logits is not None  # declared: the step always passes them
        self.seen.append(tuple(real_logits.shape))
        real_rel = real_logits - fake_logits.mean()
        fake_rel = fake_logits - real_logits.mean()
        return F.softplus(real_rel).mean() + F.softplus(-fake_rel).mean()


def test_a_relativistic_generator_loss_gets_real_logits():
    loss = RelativisticAverage()
    gan = tiny_gan()
    before = copy.deepcopy(gan.generator)
    metrics = make_step(gan, loss=loss)(real_batch())
    assert loss.seen == [(8,)]
    assert torch.isfinite(torch.tensor(metrics["loss_g"]))
    pairs = zip(gan.generator.parameters(), before.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)


def test_runtime_resolves_once_and_says_why():
    plain = Runtime.resolve(CPU)
    assert (plain.precision, plain.compile, plain.channels_last, plain.preload) == (
        "32",
        False,
        False,
        False,
    )
    assert plain.reasons == ()
    fast = Runtime.resolve(CPU, fast=True)
    assert fast.channels_last and fast.preload and fast.fused_optimizers  # fused Adam on CPU
    assert not fast.compile  # compiled steps measured no faster on a CPU
    line = fast.describe()
    assert line.startswith("runtime: device cpu, precision ")
    assert ("native on this cpu" in line) == (fast.precision == "bf16")
    assert "no compile: measured no faster on a cpu" in line and "fused Adam" in line
    # An explicit choice wins and needs no reason.
    forced = Runtime.resolve(CPU, fast=True, precision="32", compile=True)
    assert forced.precision == "32" and forced.compile and forced.reasons == ()
    with pytest.raises(ValueError, match="`precision` must be one of"):
        Runtime.resolve(CPU, precision="64")


@pytest.fixture
def cpu_pays_back_after_5(monkeypatch):
    """A CPU whose compiled steps pay compiling back after 5 steps (none measured so)."""
    monkeypatch.setitem(COMPILE_PAYBACK_STEPS, "cpu", 5)


def test_a_run_shorter_than_the_payback_skips_the_fast_paths_compile(cpu_pays_back_after_5):
    fast = Runtime.resolve(CPU, fast=True, precision="bf16")
    assert fast.compile and fast.auto_compile
    assert "compile: on cpu for runs of 5+ steps" in fast.describe()
    assert fast.for_run(None) is fast and fast.for_run(5) is fast  # unknown or long enough
    short = fast.for_run(4)
    assert not short.compile and (short.precision, short.channels_last) == ("bf16", True)
    line = short.describe()
    assert "compile off" in line and "compile: on" not in line
    assert "compile: off for a run of 4 steps, shorter than the ~5 steps" in line
    # What the caller asked for stays: compile=True, or a runtime that never compiled.
    assert Runtime.resolve(CPU, fast=True, precision="bf16", compile=True).for_run(1).compile
    plain = Runtime.resolve(CPU)
    assert plain.for_run(1) is plain
    # Where compiling pays back from the first step (CUDA, until measured) it stays.
    cuda = Runtime(torch.device("cuda"), compile=True, auto_compile=True)
    assert COMPILE_PAYBACK_STEPS["cuda"] == 0 and cuda.for_run(1) is cuda


def test_steps_left_is_the_nearer_limit():
    at = TrainerState(step=12, epoch=2, batch_in_epoch=2)  # 5 batches an epoch
    assert steps_left(at, 100, None, 5) == 88
    assert steps_left(at, None, 4, 5) == 8  # the rest of epoch 3, then epoch 4
    assert steps_left(at, 100, 4, 5) == 8 and steps_left(at, 15, 4, 5) == 3
    assert steps_left(at, None, 4, None) is None  # epochs of unknown length
    assert steps_left(TrainerState(step=20), 20, None, None) == 0


def test_fit_settles_compile_for_the_runs_length(capsys, cpu_pays_back_after_5):
    trainer = Trainer(tiny_gan(), fast=True, max_steps=2, seed=0, device="cpu")
    step = trainer.train_step
    assert isinstance(step.networks.generator, CompiledOrEager)  # built to compile
    assert trainer.fit(real_batch(), batch_size=8).step == 2
    out = capsys.readouterr().out
    assert "compile off" in out and "compile: off for a run of 2 steps" in out
    assert not trainer.runtime.compile and step.runtime is trainer.runtime
    assert not isinstance(step.networks.generator, CompiledOrEager)
    # A longer run compiles again (decided afresh; nothing is compiled until it runs).
    assert step.start_run(5).compile
    assert all(
        isinstance(network, CompiledOrEager)
        for network in (step.networks.generator, step.networks.discriminator)
    )


def test_fit_prints_the_runtime_line_for_the_fast_path(capsys):
    trainer = Trainer(tiny_gan(), fast=True, compile=False, max_steps=1, seed=0, device="cpu")
    trainer.fit(real_batch(), batch_size=8)
    out = capsys.readouterr().out
    assert "runtime: device cpu" in out and "channels_last on" in out

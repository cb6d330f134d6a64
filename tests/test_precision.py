"""Precision names (ganlib's short ones and Lightning 2's, one canonical name after), and
fp16's grad scaler with several D updates per step."""

from __future__ import annotations

import math

import pytest
import torch

from ganlib import DCGAN, Trainer
from ganlib.callbacks import Callback
from ganlib.optim import Updater
from ganlib.runtime import Runtime, canonical_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("32", "32"),
        ("32-true", "32"),
        (32, "32"),
        ("bf16", "bf16"),
        ("bf16-mixed", "bf16"),
        ("16", "16"),
        ("16-mixed", "16"),
        (16, "16"),
    ],
)
def test_lightning_names_resolve_to_the_short_name(name, canonical):
    assert canonical_precision(name) == canonical
    runtime = Runtime.resolve(CPU, precision=name)
    assert runtime.precision == canonical
    expected_dtype = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[canonical]
    assert runtime.autocast_dtype is expected_dtype
    assert runtime.grad_scaler().is_enabled() == (canonical == "16")


@pytest.mark.parametrize("name", ["16-mixed", 16, "bf16-mixed", "32-true", 32])
def test_the_trainer_takes_them_and_reports_the_short_name(name):
    trainer = Trainer(DCGAN(image_size=8, width=4), precision=name, device="cpu", progress=False)
    assert trainer.precision == canonical_precision(name)
    assert trainer.precision in ("32", "bf16", "16")


ACCEPTED = (
    r"`precision` must be one of \['32', 'bf16', '16'\], got {value}; "
    r"Lightning's names '32-true', 32, 'bf16-mixed', '16-mixed' and 16 are accepted too"
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("fp16", "'fp16'"), (64, "64"), (32.0, r"32\.0"), (True, "True"), ("16_mixed", "'16_mixed'")],
)
def test_unknown_names_are_refused_with_the_accepted_ones(value, shown):
    with pytest.raises(ValueError, match=ACCEPTED.format(value=shown)):
        Runtime.resolve(CPU, precision=value)


def test_true_half_precision_is_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"got '16-true'; .* \(ganlib keeps fp32 weights"):
        Runtime.resolve(CPU, precision="16-true")


def test_an_optimizer_stepped_twice_between_scaler_updates_gets_true_gradients():
    # What D's updates do with d_steps >= 2 in fp16: the grad scaler, enabled on the CPU,
    # sees one optimizer step twice before the task's update() at the end of the step.
    layer = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(layer.weight)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0)
    seen: list[torch.Tensor] = []
    updater = Updater(scaler, lambda network, opt: seen.append(layer.weight.grad.clone()))
    inputs = torch.ones(4, 2)
    updater.step(layer(inputs).sum() * float("inf"), optimizer, "discriminator")  # overflows
    assert torch.equal(layer.weight, torch.zeros(1, 2))  # skipped, as the scaler does
    updater.step(layer(inputs).sum(), optimizer, "discriminator")  # d(sum)/dw = 4 each
    assert scaler.get_scale() == 8.0  # the overflow was counted before this step
    assert torch.equal(seen[-1], torch.full((1, 2), 4.0))  # the hook reads true gradients
    assert torch.allclose(layer.weight, torch.full((1, 2), -0.4))  # stepped by 0.1 * 4
    scaler.update()  # the task's, at the end of its step
    assert scaler.get_scale() == 8.0


@pytest.mark.parametrize("d_steps", [2, 3])
def test_fp16_with_several_d_steps_trains(d_steps):
    class Count(Callback):
        def __init__(self) -> None:
            self.updates: list[str] = []

        def on_before_optimizer_step(self, trainer, network, optimizer) -> None:
            self.updates.append(network)

    count = Count()
    trainer = Trainer(
        DCGAN(image_size=8, width=4, latent_dim=4),
        precision="16",
        device="cpu",
        d_steps=d_steps,
        max_steps=3,
        seed=0,
        progress=False,
        callbacks=[count],
    )
    assert trainer.scaler.is_enabled()  # fp16 autocast and its scaler run on the CPU too
    state = trainer.fit(torch.rand(16, 1, 8, 8) * 2 - 1, batch_size=8)
    assert state.step == 3 and all(math.isfinite(v) for v in state.metrics.values())
    assert count.updates == (["discriminator"] * d_steps + ["generator"]) * 3


def test_fp16_trains_a_task_that_never_updates_the_scaler_itself():
    # A Task steps through the Updater and calls no scaler.update(): its second step's
    # optimizers were refused ("unscale_() is being called after step()") before.
    from cycle_task import TinyCycleTask, domain_pair

    trainer = Trainer(TinyCycleTask(), precision="16", device="cpu", max_steps=3, progress=False)
    state = trainer.fit(domain_pair(), batch_size=8)
    assert state.step == 3 and all(math.isfinite(v) for v in state.metrics.values())

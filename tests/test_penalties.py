"""Penalties in the step: lazy R1 (StyleGAN2's recipe), R1 reporting on request, and every
loss composed with every penalty."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from conftest import tiny_gan
from ganlib import DCGAN, Trainer
from ganlib.losses import BCELoss, R1Penalty, WGANGPLoss, get_loss
from ganlib.runtime import Runtime
from ganlib.step import METRIC_NAMES, AdversarialStep

LOSSES = ("bce", "hinge", "wgan-gp", "lsgan")


def batch(seed: int = 1, n: int = 8) -> Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def make_step(gan: DCGAN, loss, d_steps: int = 1) -> AdversarialStep:
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    return AdversarialStep(
        gan,
        torch.optim.Adam(gan.generator.parameters(), **adam),
        torch.optim.Adam(gan.discriminator.parameters(), **adam),
        loss,
        runtime=Runtime.resolve(torch.device("cpu")),
        rng=torch.Generator().manual_seed(0),
        d_steps=d_steps,
    )


class Linear(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: Tensor) -> Tensor:
        return (x.flatten(1) * self.w).sum(1)


class PlainR1(BCELoss):
    """R1 as ganlib computed it before lazy regularisation: a penalty without ``d_update``."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def penalty(
        self, discriminator: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, generator=None
    ) -> Tensor:
        real = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
        return 0.5 * self.gamma * grad.flatten(1).pow(2).sum(1).mean()


def test_every_1_trains_bitwise_as_the_plain_penalty():
    gan_a, gan_b = tiny_gan(), tiny_gan()
    step_a, step_b = make_step(gan_a, get_loss("bce", r1_gamma=3.0)), make_step(gan_b, PlainR1(3.0))
    assert step_a.loss.counts_updates and not step_b.loss.counts_updates
    for seed in range(3):
        assert step_a(batch(seed)) == step_b(batch(seed))
    for a, b in zip(gan_a.state_dict().values(), gan_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_lazy_r1_applies_every_k_updates_scaled_by_k():
    d = Linear(torch.tensor([1.0, 2.0, 0.0, 2.0]))  # ||grad||^2 = 9
    real = torch.randn(3, 1, 2, 2)
    lazy = R1Penalty(BCELoss(), gamma=4.0, every=4)
    values = [lazy.penalty(d, real, real, None, d_update=i).item() for i in range(9)]
    assert values == [4 * 0.5 * 4.0 * 9.0, 0, 0, 0, 4 * 18.0, 0, 0, 0, 4 * 18.0]
    assert lazy.penalty(d, real, real).item() == 4 * 18.0  # outside a step: always
    # An inner penalty (WGAN-GP's) is added on every update, lazy R1 or not.
    both = R1Penalty(WGANGPLoss(), gamma=2.0, every=2)
    gp = 10.0 * (3.0 - 1.0) ** 2
    assert both.penalty(d, real, real, None, d_update=1).item() == pytest.approx(gp)
    assert both.penalty(d, real, real, None, d_update=2).item() == pytest.approx(2 * 9.0 + gp)


@pytest.mark.parametrize("d_steps", [1, 2])
def test_the_step_numbers_d_updates_through_the_run(d_steps):
    loss = get_loss("hinge", r1_gamma=1.0, r1_every=3, r1_report=True)
    step = make_step(tiny_gan(), loss, d_steps=d_steps)
    r1 = [step(batch(i))["r1"] for i in range(6)]
    # The metric is the last D update's term: update (i + 1) * d_steps - 1 of step i.
    last_updates = [(i + 1) * d_steps - 1 for i in range(6)]
    assert [value > 0 for value in r1] == [u % 3 == 0 for u in last_updates]
    # An explicit step index (the Trainer's) overrides the object's own count.
    assert step(batch(), step=3 if d_steps == 1 else 1)["r1"] > 0


def test_r1_reports_only_when_asked():
    for name in LOSSES:
        metrics = make_step(tiny_gan(), get_loss(name, r1_gamma=1.0, r1_every=2))(batch())
        assert tuple(metrics) == METRIC_NAMES, name
    reported = make_step(tiny_gan(), R1Penalty(BCELoss(), 1.0, report=True))(batch())
    assert tuple(reported) == (*METRIC_NAMES, "r1") and reported["r1"] > 0


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize(("every", "report"), [(1, False), (2, True)])
def test_every_loss_composes_with_every_penalty(name, every, report):
    gan = tiny_gan()
    step = make_step(gan, get_loss(name, r1_gamma=2.0, r1_every=every, r1_report=report))
    for seed in range(2):
        metrics = step(batch(seed))
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert list(metrics) == [*METRIC_NAMES, *(["r1"] if report else [])]
    if name == "wgan-gp":  # R1 on top of the loss's own gradient penalty
        assert isinstance(step.loss, R1Penalty) and isinstance(step.loss.loss, WGANGPLoss)


def test_a_users_penalty_gets_the_update_index():
    class Counting(BCELoss):
        counts_updates = True  # declared: the step passes d_update

        def __init__(self) -> None:
            self.seen: list[int] = []

        def penalty(self, discriminator, real, fake, generator=None, *, d_update: int) -> Tensor:
            self.seen.append(d_update)
            return real.new_zeros(())

    loss = Counting()
    step = make_step(tiny_gan(), loss, d_steps=2)
    for _ in range(2):
        step(batch())
    assert loss.seen == [0, 1, 2, 3]


def test_lazy_r1_resumes_exactly_between_regularised_updates(tmp_path):
    def trainer(steps: int) -> Trainer:
        loss = get_loss("bce", r1_gamma=1.0, r1_every=4, r1_report=True)
        return Trainer(tiny_gan(), loss=loss, max_steps=steps, seed=3, progress=False)

    images = batch(n=40)
    full = trainer(7)
    full.fit(images, batch_size=8)
    half = trainer(3)  # stops between update 0 and update 4
    half.fit(images, batch_size=8)
    half.save_checkpoint(str(tmp_path / "half.ckpt"))
    resumed = trainer(7)
    resumed.fit(images, str(tmp_path / "half.ckpt"), batch_size=8)
    assert resumed.state.metrics == full.state.metrics
    for a, b in zip(full.gan.state_dict().values(), resumed.gan.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: get_loss("bce", r1_gamma=1.0, r1_every=0), ValueError,
         r"`r1_every` must be >= 1, got 0"),
        (lambda: get_loss("bce", r1_gamma=1.0, r1_every=2.0), TypeError,
         r"`r1_every` must be an integer, got 2.0"),
        (lambda: get_loss("bce", r1_every=16), ValueError,
         r"`r1_every` and `r1_report` configure the R1 penalty: give `r1_gamma` too, "
         r"got r1_gamma=None, r1_every=16"),
        (lambda: R1Penalty(BCELoss(), 1.0, every=-1), ValueError,
         r"`r1_every` must be >= 1, got -1"),
    ],
)  # fmt: skip
def test_lazy_r1_argument_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()

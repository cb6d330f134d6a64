"""Adversarial losses on known cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlib.losses import (
    BCELoss,
    HingeLoss,
    LSGANLoss,
    R1Penalty,
    WGANGPLoss,
    get_loss,
    penalty_of,
    score_of,
)

REAL = torch.tensor([2.0, -1.0, 0.5])
FAKE = torch.tensor([-3.0, 0.2, 1.0])


def test_bce_matches_the_recipe_sigmoid_plus_bce():
    bce = nn.BCELoss()
    p_real, p_fake = torch.sigmoid(REAL), torch.sigmoid(FAKE)
    expected_d = bce(p_real, torch.ones(3)) + bce(p_fake, torch.zeros(3))
    expected_g = bce(p_fake, torch.ones(3))
    loss = BCELoss()
    assert torch.allclose(loss.discriminator_loss(REAL, FAKE), expected_d)
    assert torch.allclose(loss.generator_loss(FAKE), expected_g)
    assert torch.allclose(score_of(loss)(REAL), p_real)


def test_bce_is_stable_for_huge_logits():
    loss = BCELoss()
    big = torch.tensor([1e4, -1e4])
    assert torch.isfinite(loss.discriminator_loss(big, -big))
    assert loss.discriminator_loss(big.abs(), -big.abs()).item() == 0.0


def test_hinge_and_lsgan_closed_forms():
    hinge = HingeLoss()
    # relu(1 - [2, -1, .5]) = [0, 2, .5]; relu(1 + [-3, .2, 1]) = [0, 1.2, 2]
    assert hinge.discriminator_loss(REAL, FAKE).item() == pytest.approx(2.5 / 3 + 3.2 / 3)
    assert hinge.generator_loss(FAKE).item() == pytest.approx(-(-3 + 0.2 + 1) / 3)
    ls = LSGANLoss()
    expected = 0.5 * ((REAL - 1) ** 2).mean() + 0.5 * (FAKE**2).mean()
    assert ls.discriminator_loss(REAL, FAKE).item() == pytest.approx(expected.item())
    assert ls.generator_loss(FAKE).item() == pytest.approx(0.5 * ((FAKE - 1) ** 2).mean().item())
    assert torch.equal(score_of(hinge)(REAL), REAL)


class Linear(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * self.w).sum(1)


def test_wgan_gp_penalty_closed_form():
    w = torch.full((4,), 1.0)  # gradient norm 2 everywhere -> penalty 10 * (2 - 1)^2
    d = Linear(w)
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    penalty = WGANGPLoss().penalty(d, real, fake, torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx(10.0)
    penalty.backward()  # differentiable with respect to D's weights
    assert d.w.grad is not None and d.w.grad.abs().sum() > 0
    unit = Linear(torch.tensor([0.6, 0.8, 0.0, 0.0]))
    assert WGANGPLoss().penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_r1_penalty_closed_form_and_delegation():
    d = Linear(torch.tensor([1.0, 2.0, 0.0, 2.0]))  # ||grad||^2 = 9
    real = torch.randn(3, 1, 2, 2)
    loss = get_loss("bce", r1_gamma=4.0)
    assert isinstance(loss, R1Penalty)
    assert loss.penalty(d, real, real).item() == pytest.approx(0.5 * 4.0 * 9.0)
    assert torch.allclose(
        loss.discriminator_loss(REAL, FAKE), BCELoss().discriminator_loss(REAL, FAKE)
    )
    assert torch.allclose(score_of(loss)(REAL), torch.sigmoid(REAL))
    both = R1Penalty(WGANGPLoss(), gamma=2.0)
    assert both.penalty(d, real, real).item() == pytest.approx(9.0 + 10.0 * (3.0 - 1.0) ** 2)


def test_penalty_of_and_score_of_defaults():
    assert penalty_of(BCELoss()) is None
    assert penalty_of(WGANGPLoss()) is not None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: get_loss("wgan"),
            r"`loss` must be one of \['bce', 'hinge', 'wgan-gp', 'lsgan'\], "
            r"got 'wgan'",
        ),
        (lambda: get_loss("bce", r1_gamma=0.0), r"`r1_gamma` must be finite and > 0, got 0.0"),
        (lambda: WGANGPLoss(penalty_weight=-1), r"`penalty_weight` must be finite and > 0, got -1"),
    ],
)
def test_loss_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()

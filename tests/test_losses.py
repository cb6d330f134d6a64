"""Adversarial losses on known cases; what a Loss declares, and losses written before it."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conftest import tiny_gan
from ganlib import Trainer
from ganlib.losses import (
    BCELoss,
    HingeLoss,
    Loss,
    LSGANLoss,
    R1Penalty,
    ReportsMetrics,
    WGANGPLoss,
    as_loss,
    get_loss,
)
from ganlib.runtime import Runtime
from ganlib.step import METRIC_NAMES, AdversarialStep

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
    assert torch.allclose(loss.score(REAL), p_real)


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
    assert torch.equal(hinge.score(REAL), REAL)  # the default: the raw score


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
    assert torch.allclose(loss.score(REAL), torch.sigmoid(REAL))  # the inner loss's
    both = R1Penalty(WGANGPLoss(), gamma=2.0)
    assert both.penalty(d, real, real).item() == pytest.approx(9.0 + 10.0 * (3.0 - 1.0) ** 2)


def test_the_built_in_losses_declare_what_they_do():
    for loss in (BCELoss(), HingeLoss(), LSGANLoss()):
        assert isinstance(loss, Loss) and not loss.has_penalty
        assert loss.penalty(Linear(torch.ones(4)), torch.randn(2, 1, 2, 2), torch.randn(2)) is None
    assert WGANGPLoss.has_penalty and not WGANGPLoss.counts_updates
    assert not any(cls.reads_real_logits for cls in (BCELoss, HingeLoss, LSGANLoss, WGANGPLoss))
    assert R1Penalty.has_penalty and R1Penalty.counts_updates
    with pytest.raises(TypeError, match="abstract"):
        Loss()  # type: ignore[abstract]


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


# ----------------------------------------------------------------- user losses


def batch(seed: int = 1, n: int = 8) -> Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def make_step(loss, d_steps: int = 1) -> AdversarialStep:
    gan = tiny_gan()
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


def r1(discriminator, real: Tensor) -> Tensor:
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


class Relativistic(Loss):
    """RaGAN (Jolicoeur-Martineau 2018) with a lazy R1 of its own (every 2 D updates)
    that it reports: every capability, declared."""

    reads_real_logits = True
    counts_updates = True

    def __init__(self) -> None:
        self.updates: list[int | None] = []
        self.real_shapes: list[tuple[int, ...]] = []

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real_rel = real_logits - fake_logits.mean()
        fake_rel = fake_logits - real_logits.mean()
        return F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        assert real_logits is not None
        self.real_shapes.append(tuple(real_logits.shape))
        real_rel = real_logits - fake_logits.mean()
        fake_rel = fake_logits - real_logits.mean()
        return F.softplus(real_rel).mean() + F.softplus(-fake_rel).mean()

    def score(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)

    def penalty(self, discriminator, real, fake, generator=None, d_update=None) -> Tensor:
        self.updates.append(d_update)
        lazy = d_update is None or d_update % 2 == 0
        value = 2 * 0.5 * r1(discriminator, real) if lazy else real.new_zeros(())
        self.report("mine", value)
        return value


class DuckRelativistic(ReportsMetrics):
    """The same loss written before Loss: recognised by its methods and their parameters."""

    __init__ = Relativistic.__init__
    discriminator_loss = Relativistic.discriminator_loss
    score = Relativistic.score
    penalty = Relativistic.penalty

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor) -> Tensor:
        return Relativistic.generator_loss(self, fake_logits, real_logits)  # type: ignore[arg-type]


def test_a_loss_gets_what_it_declares():
    loss = Relativistic()
    step = make_step(loss, d_steps=2)
    for seed in range(3):
        metrics = step(batch(seed))
    assert tuple(metrics) == (*METRIC_NAMES, "mine") and metrics["mine"] == 0.0
    assert loss.updates == [0, 1, 2, 3, 4, 5]  # d_update, numbered through the run
    assert loss.real_shapes == [(8,)] * 3  # real logits, for G's loss
    assert all(0 < metrics[name] < 1 for name in METRIC_NAMES[2:])  # its score: probabilities


def test_a_loss_that_declares_nothing_is_called_with_nothing_more():
    class Plain(BCELoss):  # methods with the short signatures: nothing is passed unasked
        def generator_loss(self, fake_logits):  # type: ignore[override]
            return super().generator_loss(fake_logits)

        def penalty(self, discriminator, real, fake, generator=None):  # type: ignore[override]
            return real.new_zeros(())

    class NoPenalty(WGANGPLoss):
        has_penalty = False  # declared: the step never calls the inherited penalty

        def penalty(self, *args, **kwargs):
            raise AssertionError("called")

    assert Plain.has_penalty  # defining a penalty declares it
    assert tuple(make_step(Plain(), d_steps=2)(batch())) == METRIC_NAMES
    assert tuple(make_step(NoPenalty())(batch())) == METRIC_NAMES


def test_r1_follows_what_its_inner_loss_declares():
    wrapped = R1Penalty(Relativistic(), 1.0, every=2, report=True)
    assert wrapped.reads_real_logits and wrapped.counts_updates and wrapped.has_penalty
    assert not R1Penalty(BCELoss(), 1.0).reads_real_logits
    step = make_step(wrapped, d_steps=2)
    for seed in range(2):
        metrics = step(batch(seed))
    assert wrapped.loss.updates == [0, 1, 2, 3]
    assert tuple(metrics) == (*METRIC_NAMES, "mine", "r1")  # the inner loss's first


def test_the_reporting_mixin_still_makes_a_loss_report():
    class ReportingBCE(BCELoss, ReportsMetrics):  # written when reporting was a mixin
        def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
            self.report("real_logit", real_logits.mean())
            return super().discriminator_loss(real_logits, fake_logits)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Loss: nothing to adapt
        metrics = make_step(ReportingBCE())(batch())
    assert tuple(metrics) == (*METRIC_NAMES, "real_logit")


DEPRECATED = (
    r"`loss`: DuckRelativistic is not a ganlib\.losses\.Loss subclass; it trains as before, "
    r"but losses recognised by their methods alone are deprecated\. Derive it from "
    r"ganlib\.losses\.Loss, `class DuckRelativistic\(Loss\)`, declaring "
    r"reads_real_logits = True and counts_updates = True"
)


def test_a_duck_typed_loss_warns_and_trains_as_the_same_loss_written_as_a_loss():
    with pytest.warns(DeprecationWarning, match=DEPRECATED) as caught:
        duck = make_step(DuckRelativistic(), d_steps=2)
    assert caught[0].filename == __file__  # the warning points at the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        declared = make_step(Relativistic(), d_steps=2)
    for seed in range(3):
        assert duck(batch(seed)) == declared(batch(seed))
    weights = zip(duck.gan.state_dict().values(), declared.gan.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in weights)
    assert duck.loss.loss.updates == declared.loss.updates == [0, 1, 2, 3, 4, 5]


def test_a_duck_typed_loss_warns_where_the_user_passes_it():
    class TwoMethods:
        def discriminator_loss(self, real_logits, fake_logits):
            return BCELoss().discriminator_loss(real_logits, fake_logits)

        def generator_loss(self, fake_logits):
            return BCELoss().generator_loss(fake_logits)

    message = r"`loss`: TwoMethods is not.*`class TwoMethods\(Loss\)` \(see 'Your own loss'"
    with pytest.warns(DeprecationWarning, match=message) as caught:
        trainer = Trainer(tiny_gan(), loss=TwoMethods(), max_steps=2, progress=False)
    assert caught[0].filename == __file__
    assert isinstance(trainer.loss, Loss) and isinstance(trainer.loss.loss, TwoMethods)
    assert trainer.loss.score(REAL) is REAL and not trainer.loss.has_penalty
    assert trainer.fit(batch(n=16), batch_size=8).step == 2
    with pytest.warns(DeprecationWarning, match=message):
        R1Penalty(TwoMethods(), 1.0)  # a wrapped loss too


@pytest.mark.parametrize(
    ("make", "got"),
    [
        (lambda: Trainer(tiny_gan(), loss=3), "int"),  # type: ignore[arg-type]
        (lambda: make_step(object()), "object"),
        (lambda: as_loss(lambda r, f: r), "function"),
    ],
)
def test_anything_else_is_refused(make, got):
    message = (
        r"`loss` must be one of \['bce', 'hinge', 'wgan-gp', 'lsgan'\] or an object with "
        rf"discriminator_loss and generator_loss methods \(a ganlib\.losses\.Loss\), got {got}"
    )
    with pytest.raises(TypeError, match=message):
        make()


def test_a_loss_class_is_refused_with_the_fix():
    message = r"`loss` must be a loss object, got the class BCELoss: pass an instance, BCELoss\(\)"
    with pytest.raises(TypeError, match=message):
        Trainer(tiny_gan(), loss=BCELoss)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message):
        R1Penalty(BCELoss, 1.0)  # type: ignore[arg-type]


def test_as_loss_builds_names_and_keeps_losses():
    loss = BCELoss()
    assert as_loss(loss) is loss
    assert isinstance(as_loss("hinge"), HingeLoss)
    with pytest.raises(ValueError, match=r"`loss` must be one of .*, got 'wgan'"):
        as_loss("wgan")

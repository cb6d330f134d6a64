"""Adaptive augmentation (ADA): the pipe's transformations (each image with probability p,
differentiable, seeded), the controller that tunes p from E[sign(D(real))], and the Trainer
that logs p and tunes it (its exact resume: tests/test_augment.py)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from conftest import tiny_gan
from ganlib import Trainer
from ganlib.ada import ADA_MAX_P, AdaptiveAugment, overfitting_ratio
from ganlib.augment import (
    ADA_PIPELINE,
    PIPE_OPS,
    AugmentPipe,
    color_transform,
    integer_translation,
    rotate90,
    xflip,
)
from ganlib.losses import get_loss
from ganlib.tasks import AdversarialTask


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 6, channels: int = 3, size: int = 8, seed: int = 1) -> Tensor:
    return torch.rand(n, channels, size, size, generator=seeded(seed)) * 2 - 1


# ---------------------------------------------------------------- the transformations


@pytest.mark.parametrize("name", PIPE_OPS)
def test_each_pipe_transformation_is_differentiable(name):
    x = images(3, size=6).double().requires_grad_(True)
    pipe = AugmentPipe(name, p=1.0)
    assert torch.autograd.gradcheck(lambda t: pipe(t, seeded(5)), (x,))


@pytest.mark.parametrize("name", PIPE_OPS)
def test_at_p_0_images_pass_untouched_and_at_p_1_they_change(name):
    x = images(64)
    assert AugmentPipe(name, p=0.0)(x, seeded(0)) is x
    changed = (AugmentPipe(name, p=1.0)(x, seeded(0)) != x).flatten(1).any(dim=1)
    # Every transformation changes most images at p = 1 (a flip or a turn by 0 keeps some).
    assert changed.float().mean() > 0.4, name


def test_each_image_is_transformed_with_probability_p():
    x = images(4000, channels=1, size=4)
    for p in (0.2, 0.6):
        turned = (AugmentPipe("rotate90", p=p)(x, seeded(1)) != x).flatten(1).any(dim=1)
        # A chosen image is turned by 90, 180 or 270 degrees with odds 3/4.
        assert abs(turned.float().mean().item() - p * 0.75) < 0.03


def test_the_same_generator_state_gives_the_same_augmentation():
    pipe = AugmentPipe(ADA_PIPELINE, p=0.5)
    x = images(16)
    assert torch.equal(pipe(x, seeded(3)), pipe(x, seeded(3)))
    assert not torch.equal(pipe(x, seeded(3)), pipe(x, seeded(4)))


def test_xflip_and_rotate90_only_mirror_or_turn_each_image():
    x = images(32)
    flipped = xflip(x, seeded(0), p=1.0)
    for a, b in zip(x, flipped, strict=True):
        assert torch.equal(a, b) or torch.equal(a.flip(2), b)
    turned = rotate90(x, seeded(0), p=1.0)
    for a, b in zip(x, turned, strict=True):
        assert any(torch.equal(torch.rot90(a, k, dims=(1, 2)), b) for k in range(4))
    with pytest.raises(ValueError, match="square"):
        rotate90(torch.zeros(2, 1, 4, 6), seeded(0))


def test_integer_translation_moves_whole_pixels_within_an_eighth_and_reflects_the_border():
    x = torch.arange(16 * 16, dtype=torch.float32).reshape(1, 1, 16, 16).repeat(40, 1, 1, 1)
    shifted = integer_translation(x, seeded(2), p=1.0)
    moves = set()
    for image in shifted[:, 0]:
        # Each pixel is one of the original's (no blending), and the centre moved by whole
        # pixels, at most 16 / 8 = 2 each way.
        assert set(image.flatten().tolist()) <= set(x[0, 0].flatten().tolist())
        row, col = divmod(int(image[8, 8].item()), 16)
        dy, dx = 8 - row, 8 - col
        assert abs(dy) <= 2 and abs(dx) <= 2
        assert torch.equal(image[2:-2, 2:-2], x[0, 0, 2 - dy : 14 - dy, 2 - dx : 14 - dx])
        moves.add((dy, dx))
    assert len(moves) > 5


def test_colour_keeps_grey_pixels_grey_under_hue_and_saturation():
    grey = torch.rand(8, 1, 5, 5, generator=seeded(0)).expand(8, 3, 5, 5) * 2 - 1
    out = color_transform(grey.contiguous(), seeded(1), p=1.0, parts=("hue", "saturation"))
    assert torch.allclose(out, grey, atol=1e-5)
    # Brightness alone adds one number per image to every pixel.
    out = color_transform(grey.contiguous(), seeded(1), p=1.0, parts=("brightness",))
    shift = (out - grey).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-5)
    assert shift[:, 0].abs().max() > 0
    # Images of 2 or 4 channels are left alone; grey ones get the map's mean over RGB.
    two = images(4, channels=2)
    assert torch.equal(color_transform(two, seeded(0), p=1.0), two)
    assert color_transform(images(4, channels=1), seeded(0), p=1.0).shape == (4, 1, 8, 8)


def test_pipe_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown: 'blur'"):
        AugmentPipe("xflip,blur")
    with pytest.raises(TypeError, match="comma-separated"):
        AugmentPipe(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`p` must be in \[0, 1\], got 1.5"):
        AugmentPipe("xflip", p=1.5)
    # The pipe applies its transformations in ADA's order, whatever the order named.
    assert AugmentPipe("saturation,xflip").pipeline == "xflip,saturation"


# ---------------------------------------------------------------- the controller


def test_p_rises_while_d_is_sure_of_the_real_images_and_falls_below_the_target():
    ada = AdaptiveAugment(interval=2, kimg=1.0)
    for _ in range(2):
        ada.update(real_sign=0.9, images=50)  # above the target 0.6
    assert ada.p == pytest.approx(0.1)  # 100 images over 1,000 per unit of p
    assert ada.last_rt == pytest.approx(0.9)
    ada.update(real_sign=0.2, images=50)
    assert ada.p == pytest.approx(0.1)  # (half an interval: no adjustment yet)
    ada.update(real_sign=0.2, images=50)
    assert ada.p == pytest.approx(0.0)
    ada.update(real_sign=0.0, images=50)
    ada.update(real_sign=0.0, images=50)
    assert ada.p == 0.0  # never below 0


def test_p_stays_below_the_leak_threshold_and_nan_steps_are_ignored():
    ada = AdaptiveAugment(interval=1, kimg=0.01)
    for _ in range(20):
        ada.update(real_sign=1.0, images=100)
    assert ada.p == ADA_MAX_P
    ada.update(real_sign=float("nan"), images=100)
    assert ada.p == ADA_MAX_P and ada.last_rt == 1.0


def test_the_controller_state_round_trips():
    ada = AdaptiveAugment(interval=3, kimg=0.5)
    for sign in (1.0, 0.9, 0.8, 0.7):
        ada.update(real_sign=sign, images=10)
    copy = AdaptiveAugment(interval=3, kimg=0.5)
    copy.load_state_dict(ada.state_dict())
    for sign in (1.0, 0.1):
        ada.update(real_sign=sign, images=10)
        copy.update(real_sign=sign, images=10)
    assert copy.state_dict() == ada.state_dict()
    with pytest.raises(ValueError, match="needs `p`"):
        copy.load_state_dict({})


def test_r_v_places_the_held_out_mean_between_the_training_and_generated_means():
    assert overfitting_ratio(train=2.0, validation=2.0, generated=-2.0) == 0.0  # as training
    assert overfitting_ratio(train=2.0, validation=-2.0, generated=-2.0) == 1.0  # as fakes
    assert overfitting_ratio(train=1.0, validation=0.5, generated=0.0) == 0.5
    # D rates its fakes at least as high as its training images: it overfits nothing.
    assert overfitting_ratio(train=0.0, validation=-3.0, generated=0.0) == 0.0
    assert overfitting_ratio(train=-1.0, validation=-3.0, generated=0.5) == 0.0


def test_with_validation_images_p_follows_r_v_measured_at_the_end_of_each_interval():
    ada = AdaptiveAugment(interval=2, kimg=1.0, validation=images(4))
    assert ada.signal == "r_v" and AdaptiveAugment().signal == "r_t"
    assert not ada.wants_validation_score  # (the interval's first step)
    ada.update(real_sign=-1.0, images=50)  # r_t far below the target: not what p follows
    assert ada.wants_validation_score
    with pytest.raises(ValueError, match=r"tuned from r_v needs `rv`.*every 2 steps"):
        ada.update(real_sign=-1.0, images=50)
    ada = AdaptiveAugment(interval=2, kimg=1.0, validation=images(4))
    ada.update(real_sign=-1.0, images=50)
    ada.update(real_sign=-1.0, images=50, rv=0.9)  # above the target 0.6: p goes up
    assert ada.p == pytest.approx(0.1) and ada.last_rv == 0.9 and ada.last_rt is None
    ada.update(real_sign=1.0, images=50)
    ada.update(real_sign=1.0, images=50, rv=0.1)  # below: down, whatever r_t says
    assert ada.p == pytest.approx(0.0) and ada.last_rv == 0.1
    copy = AdaptiveAugment(interval=2, kimg=1.0, validation=images(4))
    copy.load_state_dict(ada.state_dict())
    assert copy.last_rv == 0.1 and copy.state_dict() == ada.state_dict()
    assert "validation=4 images" in repr(ada)
    for bad in (images(4)[0], images(0), [[0.0]]):
        with pytest.raises(ValueError, match=r"`validation` must be a \(N, C, H, W\) tensor"):
            AdaptiveAugment(validation=bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 1.0}, r"`target` must be in \(0, 1\), got 1.0"),
        ({"target": 0.0}, r"`target` must be in \(0, 1\), got 0.0"),
        ({"interval": 0}, "interval"),
        ({"kimg": -1.0}, "kimg"),
        ({"max_p": 1.2}, r"`max_p` must be in \[0, 1\]"),
        ({"p": 0.9}, r"`p` must be in \[0, 0.8\]"),
        ({"p": "0.1"}, "`p` must be a finite number"),
    ],
)
def test_controller_arguments_are_checked(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        AdaptiveAugment(**kwargs)


# ---------------------------------------------------------------- in training


def data(n: int = 32) -> Tensor:
    return images(n, channels=1, size=12)


def test_the_trainer_logs_p_and_the_signal_and_tunes_p():
    ada = AdaptiveAugment(interval=1, kimg=0.02)  # p moves by 0.4 per step of 8
    trainer = Trainer(tiny_gan(), max_steps=4, seed=0, augment=ada, progress=False)
    state = trainer.fit(data(), batch_size=8)
    assert state.metrics["aug_p"] == ada.p
    assert -1.0 <= state.metrics["d_real_sign"] <= 1.0
    assert ada.last_rt is not None
    assert "adaptive augmentation" in trainer.task.metric_groups()


def test_the_trainer_tunes_p_from_d_on_the_validation_images_before_each_interval_ends():
    held_out = images(10, channels=1, size=12, seed=5)
    ada = AdaptiveAugment(interval=2, kimg=0.02, validation=held_out)
    seen: list[tuple[int, float]] = []
    trainer = Trainer(tiny_gan(), max_steps=4, seed=0, augment=ada, progress=False)
    task = trainer.task
    assert isinstance(task, AdversarialTask)
    score = task._validation_score

    def recording(count: int, step: int) -> float:
        seen.append((count, step))
        return score(count, step)

    task._validation_score = recording  # type: ignore[method-assign]
    state = trainer.fit(data(), batch_size=8)
    assert [step for _, step in seen] == [1, 3] and {count for count, _ in seen} == {8}
    assert state.metrics["ada_rv"] == ada.last_rv is not None
    assert state.metrics["d_real_raw"] != state.metrics["d_fake_raw"]
    assert task.metric_groups()["adaptive augmentation"] == ("aug_p", "d_real_sign", "ada_rv")
    # The same step's draws: the same score, and D's weights untouched by it.
    before = {k: v.clone() for k, v in task.gan.discriminator.state_dict().items()}
    assert score(8, 3) == score(8, 3)
    after = task.gan.discriminator.state_dict()
    assert all(
        torch.equal(before[k], after[k])
        for k in before
        if "running" not in k and "batches" not in k
    )


def test_validation_images_must_fit_an_unconditional_pair():
    with pytest.raises(ValueError, match=r"validation images are \(1, 8, 8\), the pair's"):
        AdversarialTask(tiny_gan(), augment=AdaptiveAugment(validation=images(3, 1, 8)))
    conditional = tiny_gan(num_classes=3)
    with pytest.raises(ValueError, match="suits an unconditional pair, got one of 3 classes"):
        AdversarialTask(conditional, augment=AdaptiveAugment(validation=images(3, 1, 12)))


def test_ada_by_name_is_the_default_controller():
    task = AdversarialTask(tiny_gan(), augment="ada")
    assert isinstance(task.ada, AdaptiveAugment) and task.ada.p == 0.0
    assert task.ada.pipeline == ADA_PIPELINE
    assert AdversarialTask(tiny_gan(), augment="translation").ada is None


@pytest.mark.parametrize(("loss", "sign"), [("bce", 1.0), ("hinge", 1.0), ("lsgan", -1.0)])
def test_the_signal_counts_signs_around_the_losss_decision_boundary(loss, sign):
    # D outputs 0.4 for every image: "real" for BCE and hinge (boundary 0), "fake" for
    # LSGAN (targets 0 and 1: boundary 0.5).
    gan = tiny_gan()
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12 * 12, 1))
    torch.nn.init.zeros_(critic[1].weight)
    torch.nn.init.constant_(critic[1].bias, 0.4)
    pair = (gan.generator, critic, gan.latent_dim)
    trainer = Trainer(pair, loss=loss, augment="ada", max_steps=1, seed=0, progress=False)
    state = trainer.fit(data(8), batch_size=8)
    assert state.metrics["d_real_sign"] == sign
    assert get_loss(loss, r1_gamma=1.0).decision_boundary == (0.5 if loss == "lsgan" else 0.0)

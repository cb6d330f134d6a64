"""DiffAugment: the transformations, their randomness and gradients, and the step and Trainer
that apply them wherever D sees an image, resuming exactly."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from conftest import tiny_gan
from ganlib import DCGAN, Trainer
from ganlib.augment import (
    DiffAugment,
    brightness,
    contrast,
    cutout,
    resolve_augment,
    saturation,
    translation,
)
from ganlib.losses import BCELoss, get_loss
from ganlib.runtime import Runtime
from ganlib.step import AdversarialStep

TRANSFORMS = [brightness, saturation, contrast, translation, cutout]
WORKER = Path(__file__).with_name("resume_worker.py")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 6, channels: int = 3, size: int = 16, seed: int = 1) -> Tensor:
    return torch.rand(n, channels, size, size, generator=seeded(seed)) * 2 - 1


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t.__name__)
def test_each_transform_is_differentiable(transform):
    x = images(3, size=7).double().requires_grad_(True)
    # The same draws on every call (a fresh generator of one state), as gradcheck needs.
    assert torch.autograd.gradcheck(lambda t: transform(t, seeded(5)), (x,))


def test_a_policy_passes_gradients_to_what_it_augments():
    x = images().requires_grad_(True)
    DiffAugment("translation,cutout,color")(x, seeded()).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_the_same_random_state_gives_the_same_augmentation():
    augment = DiffAugment("color,translation,cutout")
    x = images()
    assert torch.equal(augment(x, seeded(3)), augment(x, seeded(3)))
    assert not torch.equal(augment(x, seeded(3)), augment(x, seeded(4)))
    # Each image of a batch gets its own draws.
    same = x[:1].repeat(6, 1, 1, 1)
    out = augment(same, seeded(3))
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1


def test_translation_shifts_whole_pixels_within_an_eighth():
    x = torch.zeros(200, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    moved = translation(x, seeded())
    assert torch.equal(moved.sum((1, 2, 3)), torch.ones(200))  # never shifted off a 16-side
    where = moved[:, 0].flatten(1).argmax(1)
    rows, cols = where // 16 - 8, where % 16 - 8
    assert rows.abs().max() == 2 and cols.abs().max() == 2  # 16 / 8 = 2
    assert len(set(rows.tolist())) == 5  # every shift in [-2, 2] occurs


def test_cutout_zeroes_a_half_side_square():
    out = cutout(torch.ones(300, 2, 12, 12), seeded())
    zeros = (out == 0).all(1)  # (B, H, W): the same square in every channel
    counts = zeros.flatten(1).sum(1)
    assert counts.max() == 36 and counts.min() > 0  # 6 x 6 when inside, clipped at the edges
    assert ((out == 0) | (out == 1)).all()


def test_color_moves_images_within_the_papers_ranges():
    x = images(500, seed=2)
    shift = brightness(x, seeded()) - x
    per_image = shift.flatten(1)
    assert torch.allclose(per_image.min(1).values, per_image.max(1).values, atol=1e-6)  # one value
    assert per_image.abs().max() <= 0.5
    grey = torch.full((4, 1, 8, 8), 0.3)
    assert torch.allclose(saturation(grey, seeded()), grey)  # one channel: no saturation
    assert torch.allclose(contrast(grey, seeded()), grey)  # flat images keep their value


def test_resolve_augment_and_its_errors():
    assert resolve_augment(None) is None
    assert resolve_augment("cutout").names == ("cutout",)  # type: ignore[union-attr]
    assert repr(DiffAugment(" translation , color")) == "DiffAugment('translation,color')"

    def flip(x: Tensor, generator: torch.Generator | None) -> Tensor:
        return x.flip(3)

    assert resolve_augment(flip) is flip
    with pytest.raises(
        ValueError,
        match=r"`augment` must be a comma-separated list of \['color', 'translation', 'cutout'\], "
        r"got 'translation,flip' \(unknown: 'flip'\)",
    ):
        resolve_augment("translation,flip")
    with pytest.raises(ValueError, match=r"`augment` must be .*, got '' \(unknown: ''\)"):
        resolve_augment("")
    with pytest.raises(ValueError, match=r"`policy` must be .*, got 'colour' \(unknown: 'colour'"):
        DiffAugment("colour")
    with pytest.raises(TypeError, match=r"`augment` must be None, a DiffAugment policy string"):
        resolve_augment(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`augment` must be a comma-separated list"):
        Trainer(DCGAN(12, width=2), augment="translation,rotate", progress=False)


class Recording:
    """An augmentation that counts what it is given and flips the images (differentiably)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        self.calls.append((x.shape[0], x.requires_grad))
        return x.flip(3)


def make_step(gan: DCGAN, augment=None, loss=None, d_steps: int = 1) -> AdversarialStep:
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    return AdversarialStep(
        gan,
        torch.optim.Adam(gan.generator.parameters(), **adam),
        torch.optim.Adam(gan.discriminator.parameters(), **adam),
        loss or BCELoss(),
        runtime=Runtime.resolve(torch.device("cpu")),
        rng=seeded(0),
        d_steps=d_steps,
        augment=augment,
    )


def real(n: int = 8) -> Tensor:
    return images(n, channels=1, size=12)


def test_off_is_the_plain_step():
    a, b = tiny_gan(), tiny_gan()
    plain = AdversarialStep(
        b,
        torch.optim.Adam(b.generator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
        torch.optim.Adam(b.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
        BCELoss(),
        runtime=Runtime.resolve(torch.device("cpu")),
        rng=seeded(0),
    )
    assert make_step(a, augment=None)(real()) == plain(real())
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_d_sees_every_image_augmented_and_penalties_see_d_after_the_augmentation():
    record = Recording()
    step = make_step(tiny_gan(), record, loss=get_loss("hinge", r1_gamma=1.0), d_steps=2)
    step(real())
    # Per D update: the reals, the fakes (the last update's keep their graph for G), and
    # R1's points; G's loss reads the last update's augmented fakes again (no new draw).
    assert record.calls == [(8, False), (8, False), (8, True), (8, False), (8, True), (8, True)]


def test_gradients_reach_g_through_the_augmentation():
    gan = tiny_gan()
    step = make_step(gan, "translation,cutout,color")
    before = [p.clone() for p in gan.generator.parameters()]
    metrics = step(real())
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    moved = [not torch.equal(a, b) for a, b in zip(before, gan.generator.parameters(), strict=True)]
    assert all(moved)


def test_augmentation_draws_from_the_steps_stream():
    metrics = [make_step(tiny_gan(), "translation,cutout")(real()) for _ in range(2)]
    assert metrics[0] == metrics[1]
    plain = make_step(tiny_gan())(real())
    assert plain["d_real"] != metrics[0]["d_real"]


def run_worker(out: Path, steps: int, augment: str, resume: Path | None = None) -> None:
    command = [sys.executable, str(WORKER), str(out), "--steps", str(steps), "--augment", augment]
    if resume is not None:
        command += ["--resume", str(resume)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


# DiffAugment, and ADA with a p that moves fast (resume_worker.py), tuned from r_t or from
# r_v on held-out images: all resume exactly.
@pytest.mark.parametrize("augment", ["translation,cutout,color", "ada", "ada-held-out"])
def test_resume_mid_epoch_with_augmentation_is_bitwise_exact(tmp_path, augment):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_worker(whole, 12, augment)
    run_worker(parts, 6, augment)
    run_worker(parts, 12, augment, resume=parts / "ckpt" / "step-0000006.ckpt")
    first, second = torch.load(whole / "final.pt"), torch.load(parts / "final.pt")
    assert first["step"] == second["step"] == 12
    for part in ("generator", "discriminator", "ema"):
        for name, tensor in first[part].items():
            assert torch.equal(tensor, second[part][name]), f"{part}.{name} differs"
    text = (whole / "metrics.csv").read_text()
    assert text == (parts / "metrics.csv").read_text()
    if augment.startswith("ada"):  # p moved during the run, and the resumed run moved it alike
        rows = list(csv.DictReader(text.splitlines()))
        assert len({row["aug_p"] for row in rows}) > 1
        if augment == "ada-held-out":  # r_v measured every other step, as the whole run did
            assert len({row["ada_rv"] for row in rows}) > 1

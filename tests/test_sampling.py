"""Sampling (ganlib.sampling): every path leaves a generator exactly as it found it."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import conftest
from ganlib import DCGAN, Trainer
from ganlib.callbacks import EMA, SampleGrid
from ganlib.cli import main as cli_main
from ganlib.metrics import MNISTEvaluator
from ganlib.sampling import (
    generate,
    preserved_state,
    recompute_batchnorm,
    sample_images,
)
from ganlib.seeding import batchnorm_seed


def tiny_gan(num_classes: int | None = None) -> DCGAN:
    torch.manual_seed(0)
    return DCGAN(12, 1, latent_dim=8, width=4, num_classes=num_classes)


def snapshot(module: nn.Module) -> tuple[bool, dict[str, torch.Tensor]]:
    return module.training, {k: v.clone() for k, v in module.named_buffers()}


def assert_untouched(module: nn.Module, before: tuple[bool, dict[str, torch.Tensor]]) -> None:
    training, buffers = before
    assert module.training == training
    for name, value in module.named_buffers():
        assert torch.equal(value, buffers[name]), f"buffer {name} changed"


def test_generate_leaves_batchnorm_statistics_alone():
    # The reproduction: before the fix running_mean and num_batches_tracked moved.
    g = tiny_gan().generator
    norm = next(m for m in g.modules() if isinstance(m, nn.BatchNorm2d))
    mean, tracked = norm.running_mean.clone(), norm.num_batches_tracked.clone()
    images = generate(g, torch.randn(5, 8))
    assert images.shape == (5, 1, 12, 12)
    assert torch.equal(norm.running_mean, mean)
    assert torch.equal(norm.num_batches_tracked, tracked)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("eval_mode", [True, False])
def test_every_sampling_path_restores_mode_and_buffers(tmp_path, training, eval_mode):
    gan = tiny_gan(num_classes=3)
    g = gan.generator.train(training)
    before = snapshot(g)
    labels = torch.tensor([0, 1, 2, 0])
    generate(g, gan.sample_noise(4), eval_mode, labels)
    assert_untouched(g, before)
    list(sample_images(g, 7, gan, batch_size=3, eval_mode=eval_mode, labels=torch.arange(7) % 3))
    assert_untouched(g, before)
    list(sample_images(g, 4, lambda n, rng: torch.randn(n, 8, generator=rng), labels=labels))
    assert_untouched(g, before)
    evaluator = MNISTEvaluator(torch.rand(20, 1, 28, 28) * 2 - 1)
    mnist = DCGAN(28, 1, latent_dim=4, width=2)
    mnist.generator.train(training)
    mnist_before = snapshot(mnist.generator)
    evaluator.score_generator(mnist.generator, 12, mnist, eval_mode=eval_mode)
    assert_untouched(mnist.generator, mnist_before)


def test_preserved_state_restores_even_after_an_error():
    g = tiny_gan().generator.eval()
    before = snapshot(g)
    with pytest.raises(RuntimeError, match="boom"), preserved_state(g):
        g.train()
        g(torch.randn(4, 8))
        raise RuntimeError("boom")
    assert_untouched(g, before)


def test_sample_grids_during_training_do_not_change_the_weights_or_statistics(tmp_path):
    data = torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def train(callbacks: list) -> dict[str, torch.Tensor]:
        gan = tiny_gan()
        Trainer(gan, max_epochs=2, seed=3, progress=False, callbacks=callbacks).fit(
            data, batch_size=8
        )
        return gan.generator.state_dict()

    plain = train([])
    with_grids = train([SampleGrid(tmp_path / "grids", num_samples=5)])
    assert (tmp_path / "grids" / "generated_epoch_002.png").exists()
    # Before the fix the grids' train-mode forwards leaked into BatchNorm's statistics.
    for key, value in plain.items():
        assert torch.equal(value, with_grids[key]), key


def test_ema_and_cli_share_one_batchnorm_recompute(tmp_path):
    gan = tiny_gan()
    ema = EMA(decay=0.5)
    trainer = Trainer(gan, max_steps=2, seed=5, progress=False, callbacks=[ema])
    trainer.fit(torch.rand(16, 1, 12, 12) * 2 - 1, batch_size=8)
    live_before = snapshot(gan.generator)
    averaged = copy.deepcopy(ema.module)
    ema.recompute_batchnorm(trainer)
    recompute_batchnorm(averaged, gan, batchnorm_seed(trainer.seed))
    assert_untouched(gan.generator, live_before)  # only the average is measured
    for (name, a), b in zip(ema.module.named_buffers(), averaged.buffers(), strict=True):
        assert torch.equal(a, b), name
    # The command recomputes with the same routine and defaults, from its own --seed.
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(str(path))
    out = tmp_path / "grid.png"
    argv = ["sample", str(path), "--ema", "--eval-mode", "--num", "4", "--seed", "9"]
    assert cli_main([*argv, "--out", str(out), "--device", "cpu"]) == 0
    assert out.exists()


def test_recompute_batchnorm_checks_its_arguments():
    gan = tiny_gan()
    with pytest.raises(ValueError, match="`num_batches` must be >= 1, got 0"):
        recompute_batchnorm(gan.generator, gan, 0, num_batches=0)
    with pytest.raises(TypeError, match="`noise` must be a latent size, a GAN"):
        list(sample_images(gan.generator, 2, "eight"))


def test_grids_are_drawn_in_batches():
    gan = conftest.tiny_gan()  # (not this file's tiny_gan: a seeded init_generator)
    sizes: list[int] = []
    gan.generator.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    latents = gan.sample_noise(2500, generator=torch.Generator().manual_seed(0))
    images = generate(gan.generator, latents)
    assert sizes == [1000, 1000, 500] and images.shape == (2500, 1, 12, 12)
    with torch.no_grad():  # up to a batch, the same images as one call (train-mode BatchNorm)
        one_call = gan.generator(latents[:700]).float()
    assert torch.equal(generate(gan.generator, latents[:700]), one_call)

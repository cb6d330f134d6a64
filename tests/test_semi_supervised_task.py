"""The semi-supervised task trained by the Trainer: the reference's iteration, its three
streams, exact resume, the averaged D, the test-error scores and the classifier."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ganlib import DCGAN, CheckpointError, Trainer
from ganlib.callbacks import (
    Callback,
    ClassificationError,
    MetricsLogger,
    ModelCheckpoint,
    SampleGrid,
)
from ganlib.checkpoint import load_checkpoint
from ganlib.data.labels import fingerprint
from ganlib.models.semi_supervised import (
    SemiSupervisedDiscriminator,
    SemiSupervisedGenerator,
    WeightNormLinear,
)
from ganlib.tasks import SemiSupervisedTask, load_classifier

SHAPE = (1, 6, 6)
CLASSES = 4


def toy_data(n: int = 120, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class sets a bright quadrant, with noise: learnable from few labels."""
    rng = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    images = torch.rand(n, *SHAPE, generator=rng) * 0.6 - 0.9
    for k in range(CLASSES):
        rows, cols = divmod(k, 2)
        images[labels == k, :, rows * 3 : rows * 3 + 3, cols * 3 : cols * 3 + 3] += 1.2
    return images.clamp(-1, 1), labels


def make_task(**kwargs) -> SemiSupervisedTask:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    d = SemiSupervisedDiscriminator(SHAPE, CLASSES, (16, 8))
    g = SemiSupervisedGenerator(SHAPE, 5, (12,))
    settings = {"labelled": 8, "seed": 3, "init_size": 40, **kwargs}
    return SemiSupervisedTask(d, g, **settings)


def train(
    task: SemiSupervisedTask,
    steps: int,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    callbacks: list | None = None,  # type: ignore[type-arg]
    resume: str | None = None,
    **trainer_args,  # type: ignore[no-untyped-def]
) -> Trainer:
    trainer = Trainer(
        task,
        max_steps=steps,
        seed=3,
        device="cpu",
        progress=False,
        callbacks=callbacks or [],
        **trainer_args,
    )
    trainer.fit(data or toy_data(), ckpt_path=resume, batch_size=16)
    return trainer


def state_of(task: SemiSupervisedTask) -> dict[str, object]:
    return {
        "networks": {
            n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in task.networks.items()
        },
        "optimizers": {n: o.state_dict() for n, o in task.optimizers.items()},
        "task_state": task.extra_state(),
    }


def assert_same(first: object, second: object, where: str = "") -> None:
    if isinstance(first, dict):
        assert isinstance(second, dict) and first.keys() == second.keys(), where
        for key in first:
            assert_same(first[key], second[key], f"{where}.{key}")
    elif isinstance(first, torch.Tensor):
        assert isinstance(second, torch.Tensor) and torch.equal(first, second), where
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second), where  # type: ignore[arg-type]
        for i, (a, b) in enumerate(zip(first, second, strict=True)):  # type: ignore[call-overload]
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert first == second, f"{where}: {first!r} != {second!r}"


# ---------------------------------------------------------------- one step


def test_a_step_is_the_reference_iteration():
    task = make_task()
    hidden_before = [layer.scale.clone() for layer in task.discriminator.hidden]
    g_before = {k: v.clone() for k, v in task.generator.state_dict().items()}
    trainer = train(task, 1)
    metrics = trainer.state.metrics
    assert set(metrics) == {"loss_lab", "loss_unl", "loss_g", "train_error"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["train_error"] <= 100.0
    assert task.initialised and task.average_count == 1
    # The init pass set the hidden scales, which then stay fixed (not trained).
    scales = [layer.scale for layer in task.discriminator.hidden]
    assert all(not torch.equal(a, b) for a, b in zip(hidden_before, scales, strict=True))
    assert [s.requires_grad for s in scales] == [False, False]
    assert task.discriminator.logit_layer.scale.requires_grad  # unfrozen after G's step
    assert all(p.requires_grad for p in task._trainable)
    # Fixed scales are left out of D's Adam state: they get no gradient.
    state = task.d_optimizer.state
    assert all(s not in state for s in scales) and len(state) == len(task._trainable)
    assert all(
        not torch.equal(v, task.generator.state_dict()[k])
        for k, v in g_before.items()
        if not k.endswith("num_batches_tracked")
    )
    # Each stream moved by one batch of 16.
    assert task.positions == {"labelled": 16, "unlabelled": 16}
    # The first average is a copy of D after its update.
    assert_same(task.averaged.state_dict(), task.discriminator.state_dict())


def test_hidden_scales_stay_as_the_init_pass_set_them():
    task = make_task()
    train(task, 1)
    after_init = [layer.scale.clone() for layer in task.discriminator.hidden]
    train(task, 6)
    for layer, scale in zip(task.discriminator.hidden, after_init, strict=True):
        assert torch.equal(layer.scale, scale)


def test_training_reads_no_label_but_the_labelled_examples():
    """Choosing a balanced set reads every class; training reads only the chosen labels:
    with the same indices, every other label changed, the run is bitwise the same."""
    images, labels = toy_data()
    chosen = [2, 4, 33, 44, 45, 49, 59, 99]
    task = make_task(labelled=chosen)
    train(task, 5, (images, labels))
    scrambled = (labels + 1) % CLASSES
    scrambled[chosen] = labels[chosen]  # every other label wrong
    again = make_task(labelled=chosen)
    train(again, 5, (images, scrambled))
    assert_same(state_of(task), state_of(again))


def test_labelled_set_is_balanced_and_each_tile_reshuffled():
    task = make_task(labelled=8)
    train(task, 1)
    chosen = task.labelled_indices
    _, labels = toy_data()
    assert torch.bincount(labels[chosen], minlength=CLASSES).tolist() == [2, 2, 2, 2]
    stream = task._streams["labelled"]
    tiles = [stream.take(8 * i, 8) for i in range(4)]
    for tile in tiles:  # each pass of the labelled stream is a permutation of the set
        assert sorted(tile.tolist()) == list(range(8))
    assert len({tuple(t.tolist()) for t in tiles}) > 1  # reshuffled, not repeated


def test_labelled_indices_may_be_given():
    task = make_task(labelled=[3, 1, 7, 2])
    train(task, 2)
    assert task.labelled_indices.tolist() == [1, 2, 3, 7]
    with pytest.raises(ValueError, match=r"`labelled` indices must be below the 120 images"):
        train(make_task(labelled=[0, 500]), 1)


def test_gan_loss_option_trains_and_draws_no_second_real_batch():
    task = make_task(generator_loss="gan")
    trainer = train(task, 3)
    assert math.isfinite(trainer.state.metrics["loss_g"])
    assert task.positions["unlabelled"] == 0


def test_unlabelled_weight_zero_is_the_supervised_only_baseline():
    task = make_task(unlabelled_weight=0)
    g_before = {k: v.clone() for k, v in task.generator.state_dict().items()}
    d_before = task.discriminator.logit_layer.direction.clone()
    trainer = train(task, 4)
    assert trainer.state.metrics["loss_unl"] == trainer.state.metrics["loss_g"] == 0.0
    assert trainer.state.metrics["loss_lab"] > 0
    assert_same(g_before, task.generator.state_dict())  # G is not trained, nor even run
    assert not torch.equal(d_before, task.discriminator.logit_layer.direction)
    assert task.positions == {"labelled": 64, "unlabelled": 0}
    assert task.describe().startswith("supervised-only baseline: 4-class D [16, 8] on 8")


def test_the_averaged_d_is_the_bias_corrected_mean_of_d():
    decay = 0.6
    task = make_task(average_decay=decay)
    seen: list[list[torch.Tensor]] = []

    class Record(Callback):
        def on_batch_end(self, trainer, metrics):  # type: ignore[no-untyped-def]
            seen.append([p.detach().clone() for p in task.discriminator.parameters()])

    train(task, 5, callbacks=[Record()])
    weights = [decay ** (len(seen) - 1 - s) for s in range(len(seen))]
    for index, averaged in enumerate(task.averaged.parameters()):
        mean = sum(w * step[index] for w, step in zip(weights, seen, strict=True)) / sum(weights)
        torch.testing.assert_close(averaged, mean, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ resume


def test_resume_mid_epoch_is_bitwise_an_uninterrupted_run(tmp_path):
    def run(
        folder: Path, steps: int, resume: str | None = None
    ) -> tuple[SemiSupervisedTask, ClassificationError]:
        task = make_task()
        images, labels = toy_data()
        error = ClassificationError(images[:40], labels[:40], every_n_steps=3, at_end=False)
        train(
            task,
            steps,
            callbacks=[error, ModelCheckpoint(folder, every_n_steps=2)],
            resume=resume,
        )
        return task, error

    straight, straight_error = run(tmp_path / "a", 11)  # 120 images in 16s: 8 steps an epoch
    run(tmp_path / "b", 4)
    payload = load_checkpoint(tmp_path / "b" / "step-0000004.ckpt")
    assert payload["task"] == "semi-supervised" and payload["task_state"]["initialised"]
    resumed, resumed_error = run(
        tmp_path / "b", 11, resume=str(tmp_path / "b" / "step-0000004.ckpt")
    )
    assert_same(state_of(straight), state_of(resumed))  # networks, Adam, streams, average
    # 120 images in batches of 16: 7 of 16 and one of 8 an epoch; the streams follow.
    assert straight.positions == {"labelled": 8 * 16 - 8 + 3 * 16, "unlabelled": 168}
    assert straight_error.history == resumed_error.history and straight_error.steps == [3, 6, 9]


def test_resume_refuses_another_labelled_choice(tmp_path):
    train(make_task(), 2, callbacks=[ModelCheckpoint(tmp_path, every_n_steps=2)])
    with pytest.raises(
        CheckpointError, match=r"labelled examples \(fingerprint [0-9a-f]{16}\) are not"
    ):
        train(make_task(label_seed=9), 4, resume=str(tmp_path / "last.ckpt"))


def test_an_adversarial_checkpoint_is_refused_by_name(tmp_path):
    pair = tmp_path / "pair.ckpt"
    Trainer(DCGAN(image_size=8, width=4, latent_dim=4), progress=False).save_checkpoint(str(pair))
    with pytest.raises(CheckpointError, match=r"holds a 'adversarial' task, not 'semi-supervised'"):
        train(make_task(), 2, resume=str(pair))
    with pytest.raises(CheckpointError, match=r"holds a 'adversarial' task, not a semi-supervised"):
        load_classifier(pair)


# ------------------------------------------------------------ data checks


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (toy_data()[0], r"must be \(images, labels\) tensors .* got images without labels"),
        (torch.utils.data.TensorDataset(*toy_data()), r"got a Dataset or DataLoader"),
        ((torch.rand(20, 1, 5, 5), torch.arange(20) % 4), r"images must be shaped \(C, H, W\)"),
        ((toy_data()[0], torch.arange(120) % 7), r"labels"),
    ],
)
def test_data_the_task_cannot_train_on_is_refused(data, message):
    trainer = Trainer(make_task(), max_steps=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match=message):
        trainer.fit(data, batch_size=16)


def test_a_count_the_classes_cannot_fill_is_refused():
    with pytest.raises(ValueError, match=r"`count` must be a multiple of the 4 classes, got 6"):
        train(make_task(labelled=6), 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"labelled": 0}, ValueError, r"`labelled` must be >= 1, got 0"),
        ({"labelled": [1, 1]}, ValueError, r"`labelled` indices must be distinct"),
        ({"labelled": [0.5]}, TypeError, r"`labelled` indices must be integers"),
        ({"generator_loss": "hinge"}, ValueError, r"`generator_loss` must be one of"),
        ({"average_decay": 1.0}, ValueError, r"`average_decay` must be in \[0, 1\), got 1.0"),
        ({"unlabelled_weight": -1}, ValueError, r"`unlabelled_weight` must be finite and >= 0"),
        ({"init_size": 1}, ValueError, r"`init_size` must be >= 2, got 1"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_task(**kwargs)


def test_networks_of_other_kinds_or_shapes_are_refused():
    d, g = (
        SemiSupervisedDiscriminator(SHAPE, CLASSES, (4,)),
        SemiSupervisedGenerator(SHAPE, 3, (4,)),
    )
    with pytest.raises(TypeError, match=r"`discriminator` must be a SemiSupervisedDiscriminator"):
        SemiSupervisedTask(nn.Linear(2, 2), g)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`generator` makes images shaped \(1, 5, 5\)"):
        SemiSupervisedTask(d, SemiSupervisedGenerator((1, 5, 5), 3, (4,)))


# --------------------------------------------------- scores and the product


def test_test_error_scores_are_logged_and_best_ckpt_follows_error_avg(tmp_path):
    test_images, test_labels = toy_data(60, seed=9)
    error = ClassificationError(test_images, test_labels, every_n_steps=4, batch_size=25)
    task = make_task()
    trainer = train(
        task,
        10,
        callbacks=[
            error,
            MetricsLogger(tmp_path / "metrics.csv"),
            ModelCheckpoint(tmp_path / "ckpt", every_n_steps=100, monitor="error_avg", mode="min"),
        ],
    )
    assert error.score_names() == ("error", "error_avg")
    assert error.steps == [4, 8, 10]  # and at the last step
    # The last scores are the classifiers' errors on the test images, in percent.
    for averaged, name in ((False, "error"), (True, "error_avg")):
        wrong = (task.classify(test_images, averaged=averaged).argmax(1) != test_labels).sum()
        assert trainer.state.metrics[name] == pytest.approx(100.0 * int(wrong) / 60)
        assert error.history[name][-1] == trainer.state.metrics[name]
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    logged = [(int(r["step"]), float(r["error_avg"])) for r in rows if r["error_avg"]]
    assert logged == list(zip(error.steps, error.history["error_avg"], strict=True))
    best_step, best_value = error.best()  # type: ignore[misc]
    best = load_checkpoint(tmp_path / "ckpt" / "best.ckpt")
    assert best["state"]["step"] == best_step
    assert best_value == min(error.history["error_avg"])


def test_the_test_error_callback_changes_nothing_in_training():
    images, labels = toy_data()
    plain = make_task()
    train(plain, 6)
    scored = make_task()
    train(scored, 6, callbacks=[ClassificationError(images, labels, every_n_steps=1)])
    assert_same(state_of(plain), state_of(scored))


def test_the_test_error_callback_needs_a_classifying_task():
    from cycle_task import TinyCycleTask, domain_pair

    images, labels = toy_data()
    trainer = Trainer(
        TinyCycleTask(),
        max_steps=1,
        progress=False,
        callbacks=[ClassificationError(images, labels)],
    )
    with pytest.raises(TypeError, match=r"ClassificationError needs a task that classifies"):
        trainer.fit(domain_pair(), batch_size=4)


def test_classifier_is_a_plain_module_equal_to_d_without_noise(tmp_path):
    task = make_task()
    train(task, 6, callbacks=[ModelCheckpoint(tmp_path, every_n_steps=6)])
    images = toy_data(30, seed=2)[0]
    for averaged in (False, True):
        plain = task.classifier(averaged=averaged)
        assert isinstance(plain, nn.Sequential) and not plain.training
        assert not any(isinstance(m, WeightNormLinear) for m in plain.modules())
        kinds = {type(m) for m in plain.modules()} - {nn.Sequential}
        assert kinds == {nn.Flatten, nn.Linear, nn.ReLU}
        expected = task.classify(images, averaged=averaged)
        torch.testing.assert_close(plain(images), expected, rtol=1e-4, atol=1e-5)
    loaded = load_classifier(tmp_path / "last.ckpt")
    torch.testing.assert_close(
        loaded(images), task.classify(images, averaged=True), rtol=1e-4, atol=1e-5
    )
    live = load_classifier(tmp_path / "last.ckpt", averaged=False)
    torch.testing.assert_close(live(images), task.classify(images), rtol=1e-4, atol=1e-5)
    assert not torch.equal(loaded(images), live(images))
    assert next(loaded.parameters()).device.type == "cpu"


def test_sample_grids_draw_the_generator_and_leave_it_untouched(tmp_path):
    task = make_task()
    grids = [
        SampleGrid(tmp_path / "train_mode", num_samples=6, nrow=3, every_n_steps=2),
        SampleGrid(tmp_path / "eval_mode", num_samples=6, nrow=3, every_n_steps=2, eval_mode=True),
    ]
    plain = make_task()
    train(plain, 4)
    train(task, 4, callbacks=grids)
    assert_same(state_of(plain), state_of(task))  # the grids changed nothing
    for folder in ("train_mode", "eval_mode"):
        assert (tmp_path / folder / "generated_step_0000004.png").is_file()


def test_the_fast_path_trains_in_float32_and_bf16_is_refused():
    task = make_task()
    trainer = train(task, 3, fast=True, precision="32")
    assert trainer.runtime.fused_optimizers and trainer.precision == "32"
    assert all(math.isfinite(v) for v in trainer.state.metrics.values())
    assert task.optimizers["d_optimizer"].defaults["eps"] == 1e-4  # the reference's Adam
    for precision in ("bf16", "16"):
        with pytest.raises(ValueError, match=r"trains in float32: bf16 autocast measured to break"):
            Trainer(make_task(), precision=precision, device="cpu", progress=False)


def test_adam_settings_are_merged_over_the_reference():
    task = make_task(d_optimizer={"lr": 1e-3})
    train(task, 1)
    d, g = task.d_optimizer.defaults, task.g_optimizer.defaults
    assert (d["lr"], d["betas"], d["eps"]) == (1e-3, (0.5, 0.999), 1e-4)
    assert (g["lr"], g["betas"], g["eps"]) == (3e-3, (0.5, 0.999), 1e-4)


def test_checkpoint_records_the_labelled_choice(tmp_path):
    task = make_task()
    train(task, 2, callbacks=[ModelCheckpoint(tmp_path, every_n_steps=2)])
    state = load_checkpoint(tmp_path / "last.ckpt")["task_state"]
    assert state["labelled_fingerprint"] == fingerprint(task.labelled_indices)
    assert torch.equal(state["labelled_indices"], task.labelled_indices)
    config = load_checkpoint(tmp_path / "last.ckpt")["task_config"]
    assert config["discriminator"] == task.discriminator.config and config["labelled"] == 8


# ------------------------------------------------------------- benchmarks


def run_benchmark(name: str, data_dir: Path, *args: str) -> str:
    import subprocess
    import sys

    from conftest import REPO_ROOT

    command = [sys.executable, str(REPO_ROOT / "benchmarks" / name), "--data-dir", str(data_dir)]
    result = subprocess.run(
        [*command, *args], capture_output=True, text=True, check=True, timeout=300
    )
    return result.stdout


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ganlib.data import fake_mnist

    folder = tmp_path_factory.mktemp("mnist")
    fake_mnist(folder, count=300)
    return folder


def test_step_time_benchmark_times_plain_and_fast(small_mnist):
    out = run_benchmark(
        "semi_supervised_step_time.py",
        small_mnist,
        "--steps",
        "2",
        "--warmup",
        "1",
        "--rounds",
        "1",
    )
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("1 ")]
    assert [row[1] for row in rows] == ["plain", "fast"]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
    assert "# median CPU s per 600-step epoch: plain" in out


def test_fast_check_benchmark_prints_the_error_curve(small_mnist):
    out = run_benchmark("semi_supervised_fast_check.py", small_mnist, "--epochs", "2", "--fast")
    assert out.startswith("# fast: seed 0, runtime: device cpu")
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    assert [row[0] for row in rows] == ["1", "2"]
    assert all(0 <= float(row[1].rstrip("%")) <= 100 for row in rows)

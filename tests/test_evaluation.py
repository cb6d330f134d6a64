"""The Evaluation callback: scores during training, best checkpoint, early stop, exact resume,
and the loggers that show scores logged at some steps only."""

from __future__ import annotations

import csv
import logging
import math

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

import ganlib.runs.build
from conftest import tiny_gan
from ganlib import DCGAN, Trainer
from ganlib.callbacks import (
    EMA,
    Callback,
    EarlyStopping,
    Evaluation,
    MetricsLogger,
    ModelCheckpoint,
    ProgressBar,
)
from ganlib.checkpoint import load_checkpoint
from ganlib.cli import main
from ganlib.data import DataNotFoundError, fake_mnist, load_mnist
from ganlib.data.sources import load_run_data
from ganlib.metrics import FeatureStats, class_scores, embed, frechet_distance
from ganlib.metrics.mnist_classifier import default_weights_path
from ganlib.runs import RunSettings, callbacks_for, evaluation_for
from ganlib.sampling import sample_images
from ganlib.seeding import evaluation_seed
from ganlib.step import METRIC_NAMES


def pooled(images: Tensor) -> Tensor:
    """A toy feature extractor: 3x3 average pooling, (B, 1, 12, 12) -> (B, 16)."""
    return F.avg_pool2d(images, 3).flatten(1)


def data(n: int = 24) -> Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1


def reference() -> Tensor:
    return torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(2)) * 2 - 1


def trainer_with(callbacks, **kwargs) -> Trainer:
    kwargs.setdefault("max_steps", 6)
    return Trainer(tiny_gan(), seed=0, device="cpu", progress=False, callbacks=callbacks, **kwargs)


def evaluation(**kwargs) -> Evaluation:
    kwargs.setdefault("every_n_steps", 2)
    kwargs.setdefault("num_samples", 16)
    kwargs.setdefault("batch_size", 8)
    return Evaluation(pooled, reference(), **kwargs)


class Scripted(Evaluation):
    """An evaluation whose FD at each step is given: 'best' and 'stop' become exact."""

    def __init__(self, fds: dict[int, float], **kwargs) -> None:
        super().__init__(pooled, reference(), **{"every_n_steps": 2, **kwargs})
        self.fds = fds

    def evaluate(self, trainer: Trainer) -> dict[str, float]:
        return {"fd": self.fds[trainer.state.step], "diversity": 1.0}


class Weights(Callback):
    """The generator's weights after every step."""

    def __init__(self) -> None:
        self.at: dict[int, dict[str, Tensor]] = {}

    def on_batch_end(self, trainer, metrics):
        state = trainer.generator.state_dict()
        self.at[trainer.state.step] = {k: v.clone() for k, v in state.items()}


@pytest.fixture
def ganlib_records(caplog):
    """What the ``ganlib`` logger emits (it does not propagate to the root logger)."""
    logger = logging.getLogger("ganlib")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="ganlib")
    yield caplog
    logger.removeHandler(caplog.handler)


# ------------------------------------------------------------------ scores


def test_scores_are_logged_at_evaluation_steps_and_the_last_one(tmp_path):
    ev = evaluation(every_n_steps=3)
    trainer = trainer_with([MetricsLogger(tmp_path / "metrics.csv"), ev], max_steps=7)
    trainer.fit(data(), batch_size=8)
    assert ev.steps == [3, 6, 7]  # 7: the last step
    with (tmp_path / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == [str(s) for s in range(1, 8)]
    scored = [int(r["step"]) for r in rows if r["fd"] != ""]
    assert scored == [3, 6, 7]
    assert [float(rows[s - 1]["fd"]) for s in scored] == ev.history["fd"]
    assert all(r["diversity"] == "" for r in rows if int(r["step"]) not in scored)
    assert trainer.state.metrics["fd"] == ev.history["fd"][-1]  # the last step's metrics

    ev = evaluation(every_n_steps=3, at_end=False)
    trainer_with([ev], max_steps=7).fit(data(), batch_size=8)
    assert ev.steps == [3, 6]


def test_the_scores_are_the_fd_and_diversity_of_the_fixed_sample():
    head = nn.Linear(16, 3)
    torch.nn.init.normal_(head.weight, generator=torch.Generator().manual_seed(3))
    ev = evaluation(head=head, every_n_steps=4, at_end=False, use_ema=False)
    trainer = trainer_with([ev], max_steps=4)
    trainer.fit(data(), batch_size=8)
    # By hand: the same latents (the run's evaluation seed), the same maths.
    images = sample_images(
        trainer.generator, 16, trainer.gan, batch_size=8, seed=evaluation_seed(0)
    )
    features = embed(pooled, images)
    real = embed(pooled, reference())
    with torch.no_grad():
        expected = class_scores(head(features.float()))
    assert ev.history["fd"] == [frechet_distance(features, real)]
    spread = features.var(0).sum() / real.var(0).sum()
    assert ev.history["diversity"][0] == pytest.approx(math.sqrt(float(spread)), rel=1e-12)
    assert ev.history["classes_covered"] == [float(expected["classes_covered"])]
    assert ev.history["kl_to_uniform"] == [expected["kl_to_uniform"]]
    # The same sample at every evaluation: the same weights score the same.
    assert ev.evaluate(trainer) == ev.evaluate(trainer)


class Replay(nn.Module):
    """A "generator" of given images: latent ``z`` picks one of them (``spread`` of them)."""

    def __init__(self, images: Tensor, spread: int) -> None:
        super().__init__()
        self.images, self.spread = images, spread
        self.unused = nn.Parameter(torch.zeros(()))  # (the Trainer's optimizer needs one)

    def forward(self, z: Tensor) -> Tensor:
        index = (z[:, 0].abs() * 1e4).long() % self.spread
        return self.images[index] + 0 * self.unused


@pytest.mark.parametrize(("spread", "low", "high"), [(64, 0.8, 1.25), (1, 0.0, 1e-6)])
def test_diversity_is_about_one_for_real_images_and_zero_for_a_collapse(spread, low, high):
    gan = tiny_gan()
    real = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(6)) * 2 - 1
    gan.generator = Replay(real, spread)
    ev = Evaluation(pooled, reference(), num_samples=200, use_ema=False)
    trainer = Trainer(gan, max_steps=1, seed=0, device="cpu", progress=False, callbacks=[ev])
    ev.on_fit_start(trainer)
    assert low <= ev.evaluate(trainer)["diversity"] <= high


def test_feature_stats_serve_as_the_reference():
    stats = FeatureStats.of(embed(pooled, reference()))
    from_images = evaluation()
    from_stats = Evaluation(pooled, stats, every_n_steps=2, num_samples=16, batch_size=8)
    trainer_with([from_images], max_steps=4).fit(data(), batch_size=8)
    trainer_with([from_stats], max_steps=4).fit(data(), batch_size=8)
    assert from_images.history == from_stats.history


def test_the_mnist_classifier_scores_a_digit_generator(tmp_path):
    gan = DCGAN(28, 1, 8, 4, init_generator=torch.Generator().manual_seed(0))
    digits = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(4)) * 2 - 1
    ev = Evaluation.mnist(digits, every_n_steps=2, num_samples=20, batch_size=10)
    trainer = Trainer(gan, max_steps=2, seed=0, device="cpu", progress=False, callbacks=[ev])
    trainer.fit(digits, batch_size=20)
    assert ev.steps == [2]
    scores = {name: values[0] for name, values in ev.history.items()}
    assert set(scores) == {"fd", "diversity", "classes_covered", "kl_to_uniform"}
    assert scores["fd"] > 0 and scores["diversity"] > 0
    assert 1 <= scores["classes_covered"] <= 10 and 0 <= scores["kl_to_uniform"] <= math.log(10)


@pytest.mark.parametrize(
    ("precision", "owned", "expected"),
    [
        ("32", True, ("32", True)),  # the shipped classifier: channels_last, exact to 1e-6
        ("bf16", True, ("bf16", True)),  # a bf16 run: the classifier in bf16 too
        ("bf16", False, ("32", False)),  # an extractor given: as it is
    ],
)
def test_the_extractor_follows_the_runs_fast_settings_where_measured(precision, owned, expected):
    gan = DCGAN(28, 1, 8, 4, init_generator=torch.Generator().manual_seed(0))
    digits = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(4)) * 2 - 1
    if owned:
        ev = Evaluation.mnist(digits, every_n_steps=2, num_samples=20, batch_size=20, cache=False)
    else:
        ev = Evaluation(lambda x: F.avg_pool2d(x, 7).flatten(1), digits, cache=False)
    trainer = Trainer(gan, max_steps=1, seed=0, device="cpu", precision=precision, callbacks=[ev])
    ev.on_fit_start(trainer)
    assert ev._settings == expected
    if owned:  # the same scores as in fp32, to well within 1%
        fast = ev.evaluate(trainer)
        exact = Evaluation.mnist(digits, num_samples=20, batch_size=20, precision="32", cache=False)
        exact.on_fit_start(trainer)
        slow = exact.evaluate(trainer)
        assert exact._settings == ("32", False)
        assert fast["fd"] == pytest.approx(slow["fd"], rel=0.01)
        assert fast["classes_covered"] == slow["classes_covered"]


def test_an_ema_copy_is_sampled_in_channels_last_and_left_as_it_was():
    gan = DCGAN(12, 1, 8, 4, init_generator=torch.Generator().manual_seed(0))
    ema, auto, exact = EMA(), evaluation(num_samples=16), evaluation(num_samples=16, precision="32")
    trainer = Trainer(gan, max_steps=2, seed=0, device="cpu", progress=False, callbacks=[ema, auto])
    trainer.fit(data(), batch_size=8)
    exact.on_fit_start(trainer)
    assert ema.module is not None
    formats = []
    conv = next(m for m in ema.module.modules() if isinstance(m, nn.ConvTranspose2d))
    ema.module.register_forward_pre_hook(
        lambda *_: formats.append(conv.weight.is_contiguous(memory_format=torch.channels_last))
    )
    fast, slow = auto.evaluate(trainer), exact.evaluate(trainer)
    assert formats == [True, True, False, False]  # two batches each: auto, then "32"
    assert fast["fd"] == pytest.approx(slow["fd"], rel=1e-4)
    assert conv.weight.is_contiguous()  # as it was


def test_a_conditional_generator_is_scored_on_every_class_equally_often():
    seen: list[Tensor] = []
    gan = DCGAN(12, 1, 8, 4, num_classes=3, init_generator=torch.Generator().manual_seed(0))
    ev = evaluation(num_samples=12, batch_size=5, use_ema=False)
    trainer = Trainer(gan, max_steps=1, seed=0, device="cpu", progress=False, callbacks=[ev])
    ev.on_fit_start(trainer)
    # The labels of each generator call, as the evaluation passes them.
    trainer.generator.register_forward_pre_hook(lambda _, args: seen.append(args[1].clone()))
    assert math.isfinite(ev.evaluate(trainer)["fd"])
    assert torch.cat(seen).tolist() == [0, 1, 2] * 4


# ---------------------------------------------------- training is untouched


class GlobalNoise:
    """An extractor that draws from torch's global generator (as a dropout would)."""

    def __call__(self, images: Tensor) -> Tensor:
        return pooled(images) + 0.0 * torch.randn(len(images), 16)


def assert_identical(a, b, where: str = "") -> None:
    """Equal to the bit: tensors, and dicts and lists of them."""
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


@pytest.mark.parametrize(("use_ema", "eval_mode"), [(False, False), (True, False), (True, True)])
def test_a_run_trains_bitwise_the_same_with_and_without_evaluation(use_ema, eval_mode):
    def run(evaluate: bool) -> tuple[Trainer, list[dict[str, float]], Tensor]:
        logged: list[dict[str, float]] = []

        class Log(Callback):
            def on_batch_end(self, trainer, metrics):
                logged.append({k: v for k, v in metrics.items() if k in METRIC_NAMES})

        callbacks: list[Callback] = [Log(), EMA(0.9)]
        if evaluate:
            head = nn.Sequential(nn.Linear(16, 3), nn.Dropout(0.5))  # (in eval mode there)
            callbacks.append(
                Evaluation(
                    GlobalNoise(),
                    reference(),
                    head=head,
                    every_n_steps=2,
                    num_samples=12,
                    batch_size=6,
                    use_ema=use_ema,
                    eval_mode=eval_mode,
                )
            )
        torch.manual_seed(5)
        trainer = trainer_with(callbacks, max_steps=7)
        trainer.fit(data(), batch_size=8)
        return trainer, logged, torch.rand(1)  # (the global stream after the run)

    plain, plain_log, plain_next = run(False)
    scored, scored_log, scored_next = run(True)
    assert plain_log == scored_log
    assert torch.equal(plain_next, scored_next)
    for name in ("generator", "discriminator", "g_optimizer", "d_optimizer", "noise_rng", "rng"):
        assert_identical(plain.state_dict()[name], scored.state_dict()[name], name)
    ema_plain = plain.callback(EMA).module.state_dict()  # type: ignore[union-attr]
    ema_scored = scored.callback(EMA).module.state_dict()  # type: ignore[union-attr]
    assert_identical(ema_plain, ema_scored, "ema")  # BatchNorm statistics included
    assert scored.callback(Evaluation).steps == [2, 4, 6, 7]  # type: ignore[union-attr]


def test_evaluation_runs_after_the_ema_and_before_the_loggers(tmp_path):
    ev, ema, log = evaluation(), EMA(), MetricsLogger(tmp_path / "m.csv")
    trainer = Trainer(tiny_gan(), device="cpu", callbacks=[log, ev, ema])  # progress bar added
    assert [type(c) for c in trainer.callbacks] == [EMA, Evaluation, ProgressBar, MetricsLogger]
    assert trainer.callbacks.score_names() == ["fd", "diversity"]
    prefixed = Evaluation(pooled, reference(), prefix="pool_", head=nn.Linear(16, 2))
    assert prefixed.score_names() == (
        "pool_fd",
        "pool_diversity",
        "pool_classes_covered",
        "pool_kl_to_uniform",
    )
    assert prefixed.state_key == "Evaluation[pool_]" and ev.state_key == "Evaluation"


# ------------------------------------------------------- best and stopping


def test_best_ckpt_holds_the_weights_of_the_best_fd_step(tmp_path):
    fds = {2: 5.0, 4: 3.0, 6: 4.0, 8: 1.0, 10: 2.0, 12: 1.5}
    weights = Weights()
    saver = ModelCheckpoint(
        tmp_path, every_n_steps=5, every_n_epochs=None, keep_last=1, monitor="fd", mode="min"
    )
    trainer = trainer_with([weights, Scripted(fds), saver], max_steps=12)
    trainer.fit(data(), batch_size=8)
    best = load_checkpoint(tmp_path / "best.ckpt")
    assert best["state"]["step"] == 8  # no periodic save at step 8: saved for its score
    assert best["state"]["metrics"]["fd"] == 1.0
    for key, value in weights.at[8].items():
        assert torch.equal(best["generator"][key], value), key
    assert saver.best_score == 1.0
    # keep_last=1 dropped step 8's own file; best.ckpt (a hard link) stays.
    assert not (tmp_path / "step-0000008.ckpt").exists()
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-0000012.ckpt"]


def test_a_metric_of_every_step_is_compared_at_the_saves_only(tmp_path):
    saver = ModelCheckpoint(tmp_path, every_n_steps=3, every_n_epochs=None, monitor="loss_g")
    trainer_with([saver], max_steps=6).fit(data(), batch_size=8)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == [
        "step-0000003.ckpt",
        "step-0000006.ckpt",
    ]
    assert load_checkpoint(tmp_path / "best.ckpt")["state"]["step"] in (3, 6)


def test_early_stopping_after_patience_evaluations_without_improvement(ganlib_records):
    fds = {2: 5.0, 4: 4.0, 6: 4.5, 8: 3.95, 10: 3.0, 12: 1.0}
    ev, stopper = Scripted(fds), EarlyStopping("fd", patience=2, min_delta=0.1)
    trainer = trainer_with([stopper, ev], max_steps=12)  # (the Evaluation runs first)
    state = trainer.fit(data(), batch_size=8)
    # 6: worse; 8: better by less than min_delta: two without improvement, stop at 8.
    assert state.step == 8 and trainer.should_stop
    assert (stopper.best, stopper.best_step, stopper.wait, stopper.stopped_step) == (4.0, 4, 2, 8)
    assert (ev.best, ev.best_step) == (3.95, 8)  # the Evaluation's own best: min_delta 0
    message = [r for r in ganlib_records.records if "stopping at step 8" in r.getMessage()]
    assert [m.getMessage() for m in message] == [
        "EarlyStopping: stopping at step 8: fd has not improved for 2 checks (patience 2, "
        "min_delta 0.1); best 4 at step 4"
    ]


def test_evaluation_patience_is_deprecated_and_still_stops_through_early_stopping():
    fds = {2: 5.0, 4: 4.0, 6: 4.5, 8: 3.95, 10: 3.0, 12: 1.0}
    with pytest.warns(DeprecationWarning, match=r"add EarlyStopping\('fd', patience=2, min_delta"):
        ev = Scripted(fds, patience=2, min_delta=0.1)
    assert isinstance(ev.early_stopping, EarlyStopping) and ev.patience == 2
    trainer = trainer_with([ev], max_steps=12)
    assert trainer.fit(data(), batch_size=8).step == 8
    assert (ev.best, ev.best_step, ev.bad_evaluations, ev.stopped_step) == (4.0, 4, 2, 8)
    # A state of earlier releases (the wait kept as bad_evaluations) resumes the wait.
    old = {k: v for k, v in ev.state_dict().items() if k != "early_stopping"}
    with pytest.warns(DeprecationWarning):
        again = Scripted(fds, patience=2, min_delta=0.1)
    again.load_state_dict({**old, "bad_evaluations": 1, "stopped_step": None})
    assert again.early_stopping is not None
    assert (again.early_stopping.best, again.early_stopping.wait) == (4.0, 1)


def test_mode_max_and_another_monitor():
    class Diversity(Scripted):
        def evaluate(self, trainer):
            return {"fd": 1.0, "diversity": self.fds[trainer.state.step]}

    ev = Diversity({2: 0.5, 4: 0.9, 6: 0.8, 8: 0.7}, monitor="diversity", mode="max")
    stopper = EarlyStopping("diversity", mode="max", patience=2)
    assert trainer_with([ev, stopper], max_steps=10).fit(data(), batch_size=8).step == 8
    assert (ev.best, ev.best_step) == (0.9, 4) == (stopper.best, stopper.best_step)


def test_early_stopping_watches_a_step_metric_every_step():
    class Rising(Callback):
        def on_batch_end(self, trainer, metrics):
            trainer.state.metrics["gap"] = float(trainer.state.step)

    stopper = EarlyStopping("gap", patience=3)  # never better than step 1's
    assert trainer_with([Rising(), stopper], max_steps=10).fit(data(), batch_size=8).step == 4
    assert (stopper.best, stopper.best_step, stopper.stopped_step) == (1.0, 1, 4)


def test_early_stopping_names_a_monitor_nothing_logs():
    stopper = EarlyStopping("FD", patience=2)
    with pytest.raises(
        ValueError,
        match=r"`monitor` must be a logged metric or score, got 'FD'; "
        r"this run logs \['loss_d'.*'fd', 'diversity'\]",
    ):
        trainer_with([evaluation(), stopper], max_steps=2).fit(data(), batch_size=8)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"patience": 0}, ValueError, r"`patience` must be >= 1, got 0"),
        ({"patience": 1.5}, TypeError, r"`patience` must be an integer, got 1.5"),
        ({"mode": "lower"}, ValueError, r"`mode` must be 'min' or 'max', got 'lower'"),
        ({"min_delta": -1}, ValueError, r"`min_delta` must be finite and >= 0, got -1"),
        ({"monitor": 3}, TypeError, r"`monitor` must be a metric name, got 3"),
    ],
)
def test_early_stopping_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        EarlyStopping(**kwargs)


def test_a_coverage_drop_is_warned_about(ganlib_records):
    class Coverage(Scripted):
        def evaluate(self, trainer):
            covered = self.fds[trainer.state.step]
            return {"fd": 1.0, "diversity": 1.0, "classes_covered": covered, "kl_to_uniform": 0.1}

    ev = Coverage({2: 10.0, 4: 10.0, 6: 7.0, 8: 8.0, 10: 6.0}, head=nn.Linear(16, 10))
    trainer_with([ev], max_steps=10).fit(data(), batch_size=8)
    warnings = [r.getMessage() for r in ganlib_records.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Evaluation: classes covered fell from 10 to 7 at step 6 (best 10): the generator "
        "may be collapsing onto fewer modes",
        "Evaluation: classes covered fell from 8 to 6 at step 10 (best 10): the generator "
        "may be collapsing onto fewer modes",
    ]
    lines = [r.getMessage() for r in ganlib_records.records if r.levelno == logging.INFO]
    assert lines[0] == (
        "evaluation at step 2 (generator, 2000 samples): fd 1  diversity 1  classes_covered 10"
        "  kl_to_uniform 0.1  (best fd 1 at step 2)"
    )


# ------------------------------------------------------------------ resume


def test_state_round_trips_through_a_checkpoint(tmp_path):
    ev, stopper = evaluation(), EarlyStopping("fd", patience=5)
    trainer = trainer_with([ev, stopper], max_steps=6)
    trainer.fit(data(), batch_size=8)
    trainer.save_checkpoint(str(tmp_path / "a.ckpt"))
    states = load_checkpoint(tmp_path / "a.ckpt")["callbacks"]
    again, stopper_again = evaluation(), EarlyStopping("fd", patience=5)
    again.load_state_dict(states["Evaluation"])
    stopper_again.load_state_dict(states["EarlyStopping[fd]"])
    assert again.state_dict() == ev.state_dict()
    assert stopper_again.state_dict() == stopper.state_dict()
    assert (again.steps, again.best_step) == ([2, 4, 6], ev.best_step)


class Crash(Callback):
    def on_batch_start(self, trainer, images):
        if trainer.state.step == 7:
            raise RuntimeError("simulated crash")


def test_an_interrupted_run_resumes_to_the_same_scores_and_stop(tmp_path):
    def run(folder, extra=(), ckpt_path=None) -> tuple[Trainer, Evaluation]:
        # Every evaluation after the first is "no improvement": it stops at the third one
        # after the best, so the wait since the best must survive the resume.
        ev, stopper = evaluation(), EarlyStopping("fd", patience=3, min_delta=1e9)
        callbacks = [
            *extra,
            ev,
            stopper,
            MetricsLogger(folder / "metrics.csv"),
            ModelCheckpoint(folder / "ckpt", every_n_steps=2, every_n_epochs=None),
        ]
        trainer = trainer_with(callbacks, max_steps=20)
        trainer.fit(data(), batch_size=8, ckpt_path=ckpt_path)
        return trainer, ev, stopper

    whole, whole_ev, whole_stopper = run(tmp_path / "whole")
    assert whole.state.step == 8 and whole_ev.steps == [2, 4, 6, 8]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "parts", extra=[Crash()])
    assert load_checkpoint(tmp_path / "parts" / "ckpt" / "last.ckpt")["state"]["step"] == 6
    resumed, resumed_ev, resumed_stopper = run(tmp_path / "parts", ckpt_path="last")
    assert resumed.state.step == 8 and resumed_stopper.stopped_step == 8
    assert resumed_ev.state_dict() == whole_ev.state_dict()  # scores, best
    assert resumed_stopper.state_dict() == whole_stopper.state_dict()  # best, wait, stop
    assert (tmp_path / "parts" / "metrics.csv").read_text() == (
        tmp_path / "whole" / "metrics.csv"
    ).read_text()
    for key, value in whole.generator.state_dict().items():
        assert torch.equal(value, resumed.generator.state_dict()[key]), key


# --------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"every_n_steps": 0}, ValueError, r"`every_n_steps` must be >= 1, got 0"),
        ({"num_samples": 1}, ValueError, r"`num_samples` must be >= 2, got 1"),
        ({"patience": 0}, ValueError, r"`patience` must be >= 1, got 0"),
        ({"patience": 1.5}, TypeError, r"`patience` must be an integer, got 1.5"),
        ({"precision": "16"}, ValueError, r"`precision` must be 'auto', '32' or 'bf16', got '16'"),
        ({"mode": "lower"}, ValueError, r"`mode` must be 'min' or 'max', got 'lower'"),
        ({"min_delta": -1}, ValueError, r"`min_delta` must be finite and >= 0, got -1"),
        ({"batch_size": 0}, ValueError, r"`batch_size` must be >= 1, got 0"),
        (
            {"monitor": "classes_covered"},
            ValueError,
            r"`monitor` must be one of \['fd', 'diversity'\] here, got 'classes_covered'",
        ),
        ({"use_ema": "yes"}, ValueError, r"`use_ema` must be True, False or 'auto', got 'yes'"),
        ({"head": 3}, TypeError, r"`head` must map features to class logits .* got int"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        evaluation(**kwargs)


def test_bad_features_and_references_are_named():
    with pytest.raises(TypeError, match=r"`features` must map images to features .* got str"):
        Evaluation("inception", reference())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`reference` must be real images .* got list"):
        Evaluation(pooled, [reference()])  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"at least 2 images shaped \(N, C, H, W\), got shape \(1, 12, 12\)"
    ):
        Evaluation(pooled, reference()[0])
    wrong_size = Evaluation(pooled, torch.zeros(4, 1, 28, 28))
    with pytest.raises(ValueError, match=r"the generator's shape \(1, 12, 12\), got \(1, 28, 28\)"):
        trainer_with([wrong_size]).fit(data(), batch_size=8)
    with pytest.raises(ValueError, match=r"Evaluation\(use_ema=True\) needs an EMA callback"):
        trainer_with([evaluation(use_ema=True)]).fit(data(), batch_size=8)


@pytest.mark.parametrize("use_ema", [True, False])
def test_an_evaluation_scores_the_weights_of_its_step(use_ema):
    # Listed before the EMA, it still scores the average after this step's update.
    ev = evaluation(every_n_steps=3, use_ema=use_ema)
    trainer = trainer_with([ev, EMA(0.5)], max_steps=3)
    trainer.fit(data(), batch_size=8)
    _, source = ev._sampler(trainer)
    assert source == ("ema" if use_ema else "generator")
    assert ev.history["fd"] == [ev.evaluate(trainer)["fd"]]  # (no step since)


# ------------------------------------------------------------------ wiring


def mnist_settings(root, **kwargs) -> RunSettings:
    values = dict(data_dir=str(root), download=False, image_size=28, channels=1)
    return RunSettings(data="mnist", out=str(root / "run"), **{**values, **kwargs})


def test_mnist_runs_evaluate_by_default_and_keep_the_best_fd(tmp_path, ganlib_records, monkeypatch):
    fake_mnist(tmp_path, count=30)
    callbacks = callbacks_for(mnist_settings(tmp_path, early_stop=3))
    (ev,) = [c for c in callbacks if isinstance(c, Evaluation)]
    assert (ev.every_n_steps, ev.num_samples, ev.patience, ev.at_end) == (1000, 2000, 3, True)
    assert ev.head is not None and ev.score_names() == (
        "fd",
        "diversity",
        "classes_covered",
        "kl_to_uniform",
    )
    assert torch.equal(ev._reference, load_mnist(tmp_path, "test", download=False)[0])
    (saver,) = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    assert (saver.monitor, saver.mode) == ("fd", "min")

    # Without the test split (torchvision wants both; fashion-mnist's may lack it): the train
    # split, with a notice.
    def without_test(data, *, split, **kwargs):
        if split == "test":
            raise DataNotFoundError("no test split here")
        return load_run_data(data, split=split, **kwargs)

    monkeypatch.setattr(ganlib.runs.build, "load_run_data", without_test)
    (ev,) = [c for c in callbacks_for(mnist_settings(tmp_path)) if isinstance(c, Evaluation)]
    assert torch.equal(ev._reference, load_mnist(tmp_path, "train", download=False)[0])
    assert "no mnist test split" in ganlib_records.text


def test_other_data_are_not_evaluated_unless_asked(tmp_path):
    fake_mnist(tmp_path, count=30)
    off = mnist_settings(tmp_path, eval_features="none")
    for settings in (off, RunSettings(data=str(tmp_path)), RunSettings(data="fashion-mnist")):
        callbacks = callbacks_for(settings)
        assert not [c for c in callbacks if isinstance(c, Evaluation)]
        assert next(c for c in callbacks if isinstance(c, ModelCheckpoint)).monitor is None
    weights = str(default_weights_path())  # a classifier of the MNIST architecture, by file
    assert evaluation_for(mnist_settings(tmp_path, eval_features=weights)) is not None
    with pytest.raises(ValueError, match=r"`eval_features` 'mnist' scores 28x28 grayscale mnist"):
        evaluation_for(RunSettings(data=str(tmp_path), eval_features="mnist"))
    with pytest.raises(ValueError, match=r"must be auto, mnist, none or a classifier weights"):
        evaluation_for(mnist_settings(tmp_path, eval_features="inception"))


def test_ganlib_train_mnist_logs_scores_and_keeps_best_ckpt(tmp_path, capsys):
    fake_mnist(tmp_path, count=20)
    run = tmp_path / "run"
    flags = ["--width", "4", "--latent-dim", "8", "--batch-size", "10", "--device", "cpu"]
    flags += ["--max-steps", "3", "--eval-every", "2", "--eval-samples", "40"]
    assert (
        main(
            [
                "train",
                "mnist",
                "--data-dir",
                str(tmp_path),
                "--no-download",
                "--out",
                str(run),
                *flags,
            ]
        )
        == 0
    )
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows if r["fd"]] == ["2", "3"]  # every 2 steps, and the last
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")["state"]
    assert best["metrics"]["fd"] == min(float(r["fd"]) for r in rows if r["fd"])
    assert "; best fd " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "mnist", "--eval-samples", "1"])
    assert "--eval-samples: must be >= 2, got 1" in capsys.readouterr().err

"""The built-in callbacks: files they write, their maths and their fallbacks."""

from __future__ import annotations

import builtins
import csv
import io
import json
import math
import re
import signal

import pytest
import torch
from PIL import Image

from conftest import images, tiny_gan, trainer
from ganlib import DCGAN, Trainer
from ganlib.callbacks import (
    EMA,
    Callback,
    LossCurve,
    MetricsLogger,
    ModelCheckpoint,
    NaNGuard,
    NonFiniteLossError,
    ProgressBar,
    RunReport,
    SampleGrid,
    TensorBoardLogger,
)
from ganlib.checkpoint import CHECKSUM_KEY, load_checkpoint, tensor_checksum
from ganlib.losses import BCELoss


def read_image(path: str) -> tuple[int, int, int]:
    """(channels, height, width) of a PNG."""
    with Image.open(path) as image:
        return (len(image.getbands()), image.height, image.width)


def tiny_trainer(callbacks, **kwargs) -> Trainer:
    gan = tiny_gan()
    kwargs.setdefault("max_epochs", 2)
    return Trainer(gan, seed=0, device="cpu", progress=False, callbacks=callbacks, **kwargs)


def data(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_sample_grid_writes_the_recipe_files(tmp_path):
    tiny_trainer([SampleGrid(tmp_path, num_samples=6, nrow=3)]).fit(data(), batch_size=8)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "generated_epoch_001.png",
        "generated_epoch_002.png",
        "overview.png",
        "real_samples.png",
    ]
    grid = read_image(str(tmp_path / "generated_epoch_001.png"))
    # 3 per row, 2 rows of 12-pixel images with 2-pixel padding.
    assert grid[1:] == (2 + 2 * 14, 2 + 3 * 14)
    overview = read_image(str(tmp_path / "overview.png"))
    assert overview[1] > 2 * grid[1]  # both epochs stacked
    with Image.open(tmp_path / "generated_epoch_001.png") as image:
        assert len(image.getcolors(maxcolors=100_000)) > 10  # a picture, not a blank


def test_sample_grid_noise_is_fixed_and_uses_ema(tmp_path):
    grid = SampleGrid(tmp_path, num_samples=4)
    ema = EMA(decay=0.5)
    t = tiny_trainer([ema, grid], max_epochs=1)
    t.fit(data(), batch_size=8)
    noise = grid.noise.clone()
    assert grid._networks(t)["generator"] is ema.module
    t.max_epochs = 2
    t.fit(data(), batch_size=8)
    assert torch.equal(grid.noise, noise)


def test_ema_batchnorm_recompute_fits_the_average_and_leaves_training_alone(tmp_path):
    ema = EMA(decay=0.9)
    t = tiny_trainer([ema, SampleGrid(tmp_path, num_samples=4, eval_mode=True)], max_epochs=1)
    t.fit(data(), batch_size=8)
    live_norm = next(m for m in t.generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
    averaged_norm = next(m for m in ema.module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # SampleGrid(eval_mode=True) recomputed the average's own statistics at the epoch's end.
    assert not torch.equal(live_norm.running_mean, averaged_norm.running_mean)
    noise_state = t.noise_rng.get_state()
    first = averaged_norm.running_mean.clone()
    assert ema.recompute_batchnorm(t) is ema.module
    torch.testing.assert_close(averaged_norm.running_mean, first)  # same latents, same stats
    assert torch.equal(t.noise_rng.get_state(), noise_state)


def test_sample_grid_use_ema_true_needs_ema(tmp_path):
    with pytest.raises(ValueError, match=r"SampleGrid\(use_ema=True\) needs an EMA callback"):
        tiny_trainer([SampleGrid(tmp_path, use_ema=True)]).fit(data(), batch_size=8)


def test_ema_is_the_exponential_average():
    ema = EMA(decay=0.75)
    weights: list[torch.Tensor] = []

    class Track(Callback):  # records the live weight before training and after every step
        def on_fit_start(self, trainer):
            weights.append(trainer.generator.net[0].weight.detach().clone())

        def on_batch_end(self, trainer, metrics):
            weights.append(trainer.generator.net[0].weight.detach().clone())

    t = tiny_trainer([Track(), ema], max_epochs=None, max_steps=3)
    t.fit(data(), batch_size=8)
    expected = weights[0]
    for w in weights[1:]:
        expected = 0.75 * expected + 0.25 * w
    assert torch.allclose(ema.module.net[0].weight, expected, atol=1e-7)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_ema_rejects_bad_decay():
    with pytest.raises(ValueError, match=r"`decay` must be in \[0, 1\), got 1.0"):
        EMA(decay=1.0)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_metrics_logger_writes_every_step(tmp_path, suffix):
    path = tmp_path / f"log.{suffix}"
    tiny_trainer([MetricsLogger(path)]).fit(data(), batch_size=8)
    text = path.read_text()
    if suffix == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        rows = [json.loads(line) for line in text.splitlines()]
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {"step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "d_fake_after"}


def test_nan_guard_names_the_step_and_the_loss(tmp_path):
    class GoesNaN(BCELoss):
        calls = 0

        def generator_loss(self, fake_logits):
            GoesNaN.calls += 1
            loss = super().generator_loss(fake_logits)
            return loss * float("nan") if GoesNaN.calls == 3 else loss

    checkpoints = ModelCheckpoint(tmp_path, every_n_steps=1)
    t = tiny_trainer([NaNGuard(), checkpoints], loss=GoesNaN())
    with pytest.raises(NonFiniteLossError, match=r"loss_g is nan at step 3 \(epoch 2, batch 1\)"):
        t.fit(data(), batch_size=8)
    assert checkpoints.saved[-1].endswith("step-0000002.ckpt")  # the bad step was not saved


def test_model_checkpoint_keeps_the_last_k(tmp_path):
    callback = ModelCheckpoint(tmp_path, every_n_steps=1, every_n_epochs=None, keep_last=2)
    tiny_trainer([callback]).fit(data(), batch_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.ckpt",
        "step-0000007.ckpt",
        "step-0000008.ckpt",
    ]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["state"]["step"] == 8


def test_model_checkpoint_every_epoch_by_default(tmp_path):
    tiny_trainer([ModelCheckpoint(tmp_path, keep_last=None)]).fit(data(), batch_size=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.ckpt",
        "step-0000002.ckpt",
        "step-0000004.ckpt",
    ]


def test_loss_curve_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    tiny_trainer([LossCurve(tmp_path / "loss.png")]).fit(data(), batch_size=8)
    _, height, width = read_image(str(tmp_path / "loss.png"))
    assert height > 100 and width > 100


def test_loss_curve_leaves_the_users_matplotlib_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a backend a user chose (an inline or windowed one, say)
    try:
        tiny_trainer([LossCurve(tmp_path / "loss.png")], max_epochs=1).fit(data(), batch_size=8)
        after = matplotlib.get_backend()
    finally:
        matplotlib.use(before)
    assert after == "svg", f"LossCurve switched the matplotlib backend from 'svg' to {after!r}"
    assert read_image(str(tmp_path / "loss.png"))[1] > 100, "no loss curve drawn"


def _hide(monkeypatch, module: str) -> None:
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            raise ImportError(f"No module named {module!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_loss_curve_without_matplotlib_gives_a_notice(tmp_path, monkeypatch, capsys):
    _hide(monkeypatch, "matplotlib")
    curve = LossCurve(tmp_path / "loss.png")
    tiny_trainer([curve]).fit(data(), batch_size=8)
    assert not (tmp_path / "loss.png").exists()
    assert capsys.readouterr().err.count("matplotlib is not installed") == 1
    assert len(curve.history["loss_d"]) == 4  # still collected


def test_tensorboard_logger_without_tensorboard_gives_a_notice(tmp_path, monkeypatch, capsys):
    _hide(monkeypatch, "torch.utils.tensorboard")
    tiny_trainer([TensorBoardLogger(tmp_path)]).fit(data(), batch_size=8)
    assert "tensorboard is not installed" in capsys.readouterr().err


def test_tensorboard_logger_writes_scalars_grids_and_settings(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    settings = {"lr": 2e-4, "loss": "bce", "betas": (0.5, 0.999)}
    grids = SampleGrid(tmp_path / "grids", num_samples=4, nrow=2)
    tiny_trainer([grids, TensorBoardLogger(tmp_path / "tb", hparams=settings)]).fit(
        data(), batch_size=8
    )
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss_d")] == [1, 2, 3, 4]
    # The newest grid at each epoch's end, once each (not again at the end of training).
    images = events.Images("samples")
    assert [i.step for i in images] == [2, 4], "not one grid per epoch"
    with (
        Image.open(io.BytesIO(images[-1].encoded_image_string)) as logged,
        Image.open(tmp_path / "grids" / "generated_epoch_002.png") as written,
    ):
        assert logged.size == written.size
        assert logged.convert("RGB").tobytes() == written.convert("RGB").tobytes()
    # The settings: a table in the Text tab, values in the HParams tab.
    (text,) = events.Tensors("hparams/text_summary")
    table = text.tensor_proto.string_val[0].decode()
    assert "| lr | 0.0002 |" in table and "| betas | (0.5, 0.999) |" in table, table
    content = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(content)
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["lr"].number_value == pytest.approx(2e-4)
    assert start.session_start_info.hparams["betas"].string_value == "(0.5, 0.999)"


def test_tensorboard_gets_the_grids_drawn_every_n_steps(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    grids = SampleGrid(
        tmp_path / "grids", num_samples=4, nrow=2, every_n_epochs=None, every_n_steps=1
    )
    tiny_trainer([grids, TensorBoardLogger(tmp_path / "tb")]).fit(data(), batch_size=8)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    images = events.Images("samples")
    assert [i.step for i in images] == [1, 2, 3, 4], "not every step's grid"
    with (
        Image.open(io.BytesIO(images[0].encoded_image_string)) as logged,
        Image.open(tmp_path / "grids" / "generated_step_0000001.png") as written,
    ):
        assert logged.convert("RGB").tobytes() == written.convert("RGB").tobytes()


def test_tensorboard_logger_rejects_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="`hparams` must be a mapping, got list"):
        TensorBoardLogger(tmp_path, hparams=[("lr", 1)])
    with pytest.raises(ValueError, match="`every_n_steps` must be >= 1, got 0"):
        TensorBoardLogger(tmp_path, every_n_steps=0)


def test_progress_lines_in_the_recipe_format():
    stream = io.StringIO()
    tiny_trainer([ProgressBar(every_n_steps=2, use_tqdm=False, stream=stream)]).fit(
        data(), batch_size=8
    )
    everything = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"starting at step 0 of 4, epoch 1 \(launched \d+\.\d s ago\)", everything[0]
    )
    # How long the process took to its first step: the time to step 1 of `ganlib train`.
    assert re.fullmatch(
        r"step 1 done \d+\.\d s after launch \(\d+\.\d s after the start line\)", everything[1]
    )
    assert everything[-1].startswith("finished: 4 steps, 0:00:")
    lines = [line for line in everything if line.startswith("epoch")]
    # The first step gets a line at once (a log file shows the run going before step
    # `every_n_steps`), then every second step.
    assert [line.split("  ")[2] for line in lines] == ["step 1", "step 2", "step 4"]
    assert lines[1].startswith("epoch 1/2  batch 2/2  step 2  loss_d ")
    assert "D(x) " in lines[1] and ">>" in lines[1]
    assert " img/s  ETA 0:00:" in lines[1]


def test_progress_bar_is_added_by_default():
    t = Trainer(DCGAN(12, 1, 8, 4), device="cpu")
    assert isinstance(next(iter(t.callbacks)), ProgressBar)


def test_model_checkpoint_skips_a_half_done_step(tmp_path, capsys):
    class Boom(Callback):
        def on_batch_end(self, trainer, metrics):
            if trainer.state.step == 3:
                raise RuntimeError("boom")

    checkpoints = ModelCheckpoint(tmp_path, every_n_steps=1)
    with pytest.raises(RuntimeError, match="boom"):
        tiny_trainer([Boom(), checkpoints]).fit(data(), batch_size=8)
    assert checkpoints.saved[-1].endswith("step-0000002.ckpt")
    assert "in the middle of a step or its hooks" in capsys.readouterr().err


def test_ema_decay_schedule_with_and_without_warmup():
    plain = EMA(decay=0.999, start_step=2)
    assert [plain.decay_at(s) for s in (1, 2, 3, 1000)] == [0.0, 0.0, 0.999, 0.999]
    ramped = EMA(decay=0.999, start_step=2, warmup=True)
    assert ramped.decay_at(2) == 0.0
    assert ramped.decay_at(3) == pytest.approx(2 / 11)  # one step averaged
    assert ramped.decay_at(102) == pytest.approx(101 / 110)
    assert ramped.decay_at(100_000) == 0.999  # capped at decay
    values = [ramped.decay_at(s) for s in range(3, 20_000, 97)]
    assert values == sorted(values)  # never decreases


# ----------------------------------------- scores logged at some steps only


def scores_trainer(callbacks, max_steps: int) -> Trainer:
    return tiny_trainer(callbacks, max_steps=max_steps, max_epochs=None)


def test_callbacks_run_by_order_then_as_given(tmp_path):
    class Early(Callback):
        order = -5

    log, ema, early = MetricsLogger(tmp_path / "m.csv"), EMA(), Early()
    trainer = Trainer(DCGAN(12, 1, 8, 4), device="cpu", callbacks=[log, early, ema])
    # EMA (-20) first, so every later callback samples this step's average.
    assert [type(c) for c in trainer.callbacks] == [EMA, Early, ProgressBar, MetricsLogger]


class Sparse(Callback):
    """Adds a score at every third step, as an evaluation does."""

    def score_names(self):
        return ("score",)

    def on_batch_end(self, trainer, metrics):
        if trainer.state.step % 3 == 0:
            trainer.state.metrics["score"] = float(trainer.state.step)


def test_metrics_logger_gives_a_late_score_a_column_and_resumes(tmp_path):
    path = tmp_path / "m.csv"
    saver = ModelCheckpoint(tmp_path / "ckpt", every_n_steps=2, every_n_epochs=None, keep_last=None)
    scores_trainer([Sparse(), MetricsLogger(path), saver], max_steps=7).fit(data(24), batch_size=8)
    whole = path.read_text()
    rows = list(csv.reader(io.StringIO(whole)))
    assert rows[0][-1] == "score" and all(len(row) == len(rows[0]) for row in rows)
    assert [row[-1] for row in rows[1:]] == ["", "", "3.0", "", "", "6.0", ""]
    # Resumed from step 4: the rows up to it are kept, the column too, the file the same.
    resumed = scores_trainer([Sparse(), MetricsLogger(path)], max_steps=7)
    resumed.fit(data(24), batch_size=8, ckpt_path=str(tmp_path / "ckpt" / "step-0000004.ckpt"))
    assert path.read_text() == whole
    # JSON lines: a row holds the metrics of its step.
    jsonl = tmp_path / "m.jsonl"
    scores_trainer([Sparse(), MetricsLogger(jsonl)], max_steps=3).fit(data(24), batch_size=8)
    logged = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert ["score" in row for row in logged] == [False, False, True]


def test_progress_line_keeps_the_latest_score_with_its_step():
    stream = io.StringIO()
    bar = ProgressBar(every_n_steps=2, use_tqdm=False, stream=stream)
    scores_trainer([Sparse(), bar], max_steps=6).fit(data(24), batch_size=8)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("epoch")]
    lines = lines[1:]  # (the first step's line)
    assert "score" not in lines[0]  # step 2: no score yet
    assert "score 3 (step 3)" in lines[1]  # step 4
    assert "  score 6  " in lines[2] and "(step 6)" not in lines[2]  # step 6: taken now


def test_loss_curve_and_report_plot_a_score_of_some_steps(tmp_path):
    curve, report = LossCurve(tmp_path / "curve.png"), RunReport(tmp_path, every_n_steps=100)
    scores_trainer([Sparse(), curve, report], max_steps=7).fit(data(24), batch_size=8)
    steps, values = curve.history.series()
    assert steps == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]  # one point per step in a short run
    assert {len(column) for column in values.values()} == {7}  # NaN where not logged
    assert curve.history.points("score") == ([3.0, 6.0], [3.0, 6.0])  # at its own steps
    assert curve.history is not report.history and report.history.points("score")[0] == [3, 6]
    if curve.draw():  # (with matplotlib)
        assert (tmp_path / "curve.png").stat().st_size > 0
    html = (tmp_path / "report.html").read_text()
    assert 'aria-label="evaluation: score"' in html
    assert "<h2>Latest evaluation scores</h2>" in html and "taken at step 6" in html
    assert '<table id="evaluation"><tr><th>score</th><td>6</td></tr></table>' in html
    chart = html.split('aria-label="evaluation: score"')[1].split("</svg>")[0]
    path = chart.split('data-name="score" d="')[1].split('"')[0]
    assert path.count("M") == 1 and path.count("L") == 1  # the two points, joined


def test_tensorboard_writes_a_score_whenever_it_is_logged(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, every_n_steps=4)
    scores_trainer([Sparse(), logger], max_steps=8).fit(data(24), batch_size=8)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.step for e in events.Scalars("loss_d")] == [4, 8]
    assert [e.step for e in events.Scalars("score")] == [3, 6]


# ------------------------------------------------------------ the metrics model


def test_metric_kinds_classify_step_metrics_extras_and_scores():
    from ganlib.callbacks.history import MetricKinds

    trainer = Trainer(DCGAN(12, 1, 8, 4), device="cpu", progress=False, callbacks=[Sparse()])
    kinds = MetricKinds.of(trainer)
    assert kinds.groups == {
        "losses": ("loss_d", "loss_g"),
        "D's mean score": ("d_real", "d_fake", "d_fake_after"),
    }
    assert kinds.scores == ("score",)
    logged = ["loss_d", "loss_g", "d_real", "d_fake", "d_fake_after", "real_logit", "score"]
    assert [kinds.kind(n) for n in ("loss_g", "real_logit", "score")] == ["step", "extra", "score"]
    assert kinds.extras(logged) == ["real_logit"]
    assert kinds.ordered(["score", "real_logit", "loss_g", "loss_d"]) == [
        "loss_d",
        "loss_g",
        "real_logit",
        "score",
    ]
    assert kinds.charts(logged) == [
        ("losses", ("loss_d", "loss_g"), "step"),
        ("D's mean score", ("d_real", "d_fake", "d_fake_after"), "step"),
        ("real_logit", ("real_logit",), "extra"),
        ("evaluation: score", ("score",), "score"),
    ]
    # A group none of whose metrics was logged gets no chart.
    assert [c[0] for c in kinds.charts(["loss_d"])] == ["losses"]


def test_any_tasks_metrics_get_charts_progress_lines_and_columns(tmp_path, recwarn):
    """The CycleGAN-shaped task's loss_g, loss_d and cycle: charted by its own groups
    (no empty chart, no matplotlib warning), shown on the progress line, logged."""
    from cycle_task import TinyCycleTask, domain_pair

    stream = io.StringIO()
    curve, report = LossCurve(tmp_path / "curve.png"), RunReport(tmp_path, every_n_steps=100)
    callbacks = [
        ProgressBar(every_n_steps=2, use_tqdm=False, stream=stream),
        curve,
        report,
        MetricsLogger(tmp_path / "m.csv"),
    ]
    trainer = Trainer(TinyCycleTask(), max_steps=4, seed=0, device="cpu", callbacks=callbacks)
    trainer.fit(domain_pair(), batch_size=4)
    assert [(title, names) for title, names, _ in curve.kinds.charts(curve.history.names())] == [
        ("losses", ("loss_g", "loss_d")),
        ("cycle", ("cycle",)),
    ]
    if curve.draw():  # (with matplotlib)
        assert (tmp_path / "curve.png").stat().st_size > 0
    assert not [w for w in recwarn if "No artists with labels" in str(w.message)]
    line = next(x for x in stream.getvalue().splitlines() if "  step 2  " in x)
    assert "step 2  loss_g " in line and "  loss_d " in line and "  cycle " in line
    titles = re.findall(r'class="title">([^<]*)<', (tmp_path / "report.html").read_text())
    assert titles == ["losses", "cycle"]
    assert report.history.names() == curve.history.names() == ["loss_g", "loss_d", "cycle"]


def test_the_loss_curve_keeps_a_bounded_history():
    curve = LossCurve("unused.png", max_points=4)
    for step in range(1, 101):
        curve.history.add(step, {"loss_d": float(step)})
    assert 4 <= len(curve.history) <= 8 and curve.history.stride == 16
    # Each point is the exact mean of its steps.
    steps, values = curve.history.series()
    assert steps == values["loss_d"]
    assert steps[0] == sum(range(1, 17)) / 16


def test_a_loss_curve_resumes_from_an_earlier_releases_per_step_state(tmp_path):
    """Checkpoints of earlier releases hold LossCurve's history as {name: float64 tensor},
    one entry per step, NaN where a metric was not logged."""
    nan = math.nan
    old = {
        "step": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
        "loss_d": torch.tensor([1.5, 1.25, 1.0], dtype=torch.float64),
        "fd": torch.tensor([nan, 40.0, nan], dtype=torch.float64),
    }
    curve = LossCurve(tmp_path / "curve.png")
    curve.load_state_dict(old)
    steps, values = curve.history.series()
    assert steps == [1.0, 2.0, 3.0] and values["loss_d"] == [1.5, 1.25, 1.0]
    assert curve.history.points("fd") == ([2.0], [40.0])
    # ... and through a checkpoint: the resumed run continues that history.
    first = LossCurve(tmp_path / "curve.png")
    saver = ModelCheckpoint(tmp_path / "ckpt", every_n_epochs=1)
    tiny_trainer([first, saver], max_epochs=1).fit(data(), batch_size=8)
    payload = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    key = next(k for k in payload["callbacks"] if k.startswith("LossCurve"))
    steps_then = first.history.series()[0]
    payload["callbacks"][key] = {  # as an earlier release wrote it
        "step": torch.tensor(steps_then, dtype=torch.float64),
        **{
            name: torch.tensor(column, dtype=torch.float64)
            for name, column in first.history.series()[1].items()
        },
    }
    payload[CHECKSUM_KEY] = tensor_checksum(payload)
    torch.save(payload, tmp_path / "ckpt" / "old.ckpt")
    second = LossCurve(tmp_path / "curve.png")
    resumed = tiny_trainer([second, ModelCheckpoint(tmp_path / "ckpt")], max_epochs=2)
    resumed.fit(data(), ckpt_path=str(tmp_path / "ckpt" / "old.ckpt"), batch_size=8)
    assert second.history.series()[0] == [1.0, 2.0, 3.0, 4.0]
    assert second.history["loss_d"][:2] == first.history["loss_d"]


class Log(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    @property
    def state_key(self) -> str:
        return "Log"

    def on_teardown(self, trainer):
        self.events.append("teardown")


def test_a_failing_on_fit_end_still_saves_and_tears_down(tmp_path):
    class Notifier(Callback):
        def on_fit_end(self, trainer):
            raise ConnectionError("slack is down")

    log, ckpt = Log(), ModelCheckpoint(tmp_path, every_n_epochs=None)
    with pytest.raises(ConnectionError, match="slack is down") as caught:
        trainer([Notifier(), log, ckpt]).fit(images(), batch_size=8)
    assert ckpt.saved and ckpt.saved[-1].endswith("step-0000002.ckpt")  # the final save ran
    assert load_checkpoint(ckpt.last_path)["state"]["step"] == 2
    assert log.events == ["teardown"]
    assert "raised by Notifier.on_fit_end" in caught.value.__notes__


def test_a_failing_on_exception_does_not_cost_the_ctrl_c_checkpoint(tmp_path):
    class CtrlC(Callback):
        def on_batch_end(self, trainer, metrics):
            if trainer.state.step == 2:
                trainer._stop.requested = signal.SIGINT  # as the first Ctrl-C does

    class BrokenNotifier(Callback):
        def on_exception(self, trainer, exception):
            raise RuntimeError("notifier broke")

    log, ckpt = Log(), ModelCheckpoint(tmp_path, every_n_epochs=None)
    with pytest.raises(KeyboardInterrupt, match="interrupted by Ctrl-C after step 2") as caught:
        trainer([CtrlC(), BrokenNotifier(), log, ckpt], max_steps=5).fit(images(), batch_size=8)
    assert load_checkpoint(ckpt.last_path)["state"]["step"] == 2
    assert log.events == ["teardown"]
    assert any("notifier broke" in n for n in caught.value.__notes__)


def test_the_final_save_comes_before_the_end_of_run_work(tmp_path):
    # A grid, plot or report that fails at the run's last epoch end (out of memory, disk
    # full) used to cost the whole run's checkpoint: ModelCheckpoint saves after them.
    class FailsAtEpochEnd(Callback):
        def on_epoch_end(self, trainer):
            raise MemoryError("the grid does not fit")

    saver = ModelCheckpoint(tmp_path / "ckpt")
    with pytest.raises(MemoryError, match="does not fit"):
        trainer([FailsAtEpochEnd(), saver], max_steps=None, max_epochs=1).fit(
            images(), batch_size=8
        )
    saved = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert saved["state"]["step"] == 2  # the last step's weights, saved in its on_batch_end
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "last.ckpt",
        "step-0000002.ckpt",
    ]
    # It resumes: the epoch's end runs again, then the next epoch.
    resumed = trainer([ModelCheckpoint(tmp_path / "ckpt")], max_steps=None, max_epochs=2)
    state = resumed.fit(images(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"), batch_size=8)
    assert (state.step, state.epoch) == (4, 2)
    # Without a failure, the epoch's end saves the same step again, with the epoch counted.
    plain = ModelCheckpoint(tmp_path / "plain")
    trainer([plain], max_steps=None, max_epochs=1).fit(images(), batch_size=8)
    assert load_checkpoint(plain.last_path)["state"] == {
        **load_checkpoint(plain.last_path)["state"],
        "step": 2,
        "epoch": 1,
        "batch_in_epoch": 0,
    }


def test_giving_a_step_interval_replaces_the_epoch_default(tmp_path):
    assert ModelCheckpoint(tmp_path, every_n_steps=5).every_n_epochs is None
    assert ModelCheckpoint(tmp_path).every_n_epochs == 1
    both = ModelCheckpoint(tmp_path, every_n_steps=5, every_n_epochs=2)
    assert (both.every_n_steps, both.every_n_epochs) == (5, 2)
    ckpt = ModelCheckpoint(tmp_path / "c", every_n_steps=3, keep_last=None)
    trainer([ckpt], max_steps=4).fit(images(), batch_size=8)  # 2 steps an epoch
    assert sorted(p.name for p in (tmp_path / "c").glob("step-*")) == [
        "step-0000003.ckpt",
        "step-0000004.ckpt",  # the final save, not the epoch ends 2 and 4
    ]


def test_a_run_that_turns_nan_stops_by_default():
    class GoesNaN(BCELoss):
        def generator_loss(self, fake_logits):
            return super().generator_loss(fake_logits) * float("nan")

    with pytest.raises(NonFiniteLossError, match=r"loss_g is nan at step 1"):
        trainer([], loss=GoesNaN()).fit(images(), batch_size=8)
    assert trainer([], loss=GoesNaN(), nan_guard=False).fit(images(), batch_size=8).step == 2


def test_callbacks_must_be_a_list():
    with pytest.raises(TypeError, match=r"`callbacks` must be a list.*callbacks=\[Log\(...\)\]"):
        Trainer(tiny_gan(), callbacks=Log())
    with pytest.raises(TypeError, match=r"got None; write callbacks=\[\]"):
        Trainer(tiny_gan(), callbacks=None)


def test_a_file_callback_named_by_another_path_keeps_its_history(tmp_path, monkeypatch, capsys):
    from ganlib.callbacks import LossCurve

    monkeypatch.chdir(tmp_path)
    first = LossCurve("curve.png")
    t = trainer([first, ModelCheckpoint("ckpt")])
    t.fit(images(), batch_size=8)
    again = LossCurve(tmp_path / "curve.png")  # the same file, as an absolute path
    resumed = trainer([again, ModelCheckpoint("ckpt")], max_steps=4)
    resumed.fit(images(), ckpt_path="last", batch_size=8)
    assert again.history.series()[0] == [1.0, 2.0, 3.0, 4.0]  # the first fit's steps kept
    assert "restoring LossCurve[" in capsys.readouterr().err


def test_model_checkpoint_keeps_the_best_by_a_monitored_metric(tmp_path):
    ckpt = ModelCheckpoint(tmp_path, every_n_steps=1, keep_last=2, monitor="loss_d", mode="min")
    seen: dict[int, float] = {}

    class Record(Callback):
        def on_batch_end(self, trainer, metrics):
            seen[trainer.state.step] = metrics["loss_d"]

    trainer([Record(), ckpt], max_steps=6).fit(images(), batch_size=8)
    best_step = min(seen, key=seen.get)
    assert load_checkpoint(ckpt.best_path)["state"]["step"] == best_step
    assert ckpt.best_score == pytest.approx(seen[best_step])
    assert len(list(tmp_path.glob("step-*.ckpt"))) == 2  # keep_last still holds
    with pytest.raises(ValueError, match=r"`mode` must be 'min' or 'max', got 'least'"):
        ModelCheckpoint(tmp_path, monitor="loss_d", mode="least")  # type: ignore[arg-type]

"""What watching a run costs: the in-run evaluation, the sample grids, the report and the
logging (metrics.csv, the loss curve, the progress line) of a default ``ganlib train
mnist`` run, against the run's own training time.

    python benchmarks/watch_cost.py --data-dir ../shared/data
    python benchmarks/watch_cost.py --data-dir ../shared/data --fast off  # fp32 eager
    python benchmarks/watch_cost.py --data-dir ../shared/data --features  # + extractor precision

The run is built from the settings ``ganlib train mnist`` uses (``ganlib.runs``: its
network, optimizers and callbacks), for its default length: 10 epochs of 60,000 images
at batch 50, 12,000 steps. Measured, in one process:

1. **Steps with and without the watchers**: --steps training steps with none of them
   and with all of them, alternating, --repeats times (machine noise hits both alike);
   the median step time of each. In the run with all of them every hook of every
   callback is timed, which gives each watcher's cost per step (what it does at every
   step: recording, a CSV row, a progress line every 100 steps).
2. **Each watcher's periodic work**, timed --events times in the state the run reached
   (the median taken): an evaluation (2,000 samples drawn and embedded), the reference's
   statistics (embedded afresh, and read from the cache), a sample grid, a report
   rewrite (with 10 grids in the folder), a loss-curve drawing (of a 12,000-step history),
   a checkpoint (not a watcher; shown for scale).
3. **The table**: per watcher, the cost per step times 12,000 plus each periodic cost
   times its count in a default run, and its share of the run's training time (the
   median step without watchers times 12,000).

``--features`` also scores the shipped MNIST classifier's features in fp32, fp32 with
channels_last and bf16 with channels_last: the real-data floor (2,000 train images), real
images with noise, and (``--checkpoint``) a trained generator's 2,000 samples, against the
10k test split embedded the same way; and the time to embed the test split.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from typing_extensions import override

from _machine import cpu_name  # (benchmarks/, beside this script)
from ganlib import Callback, Trainer
from ganlib.callbacks import (
    EMA,
    Evaluation,
    LossCurve,
    MetricsLogger,
    ModelCheckpoint,
    ProgressBar,
    RunReport,
    SampleGrid,
)
from ganlib.data import load_mnist
from ganlib.data.sources import RunData
from ganlib.runs import RunSettings, build_adversarial, callbacks_for
from ganlib.runs.build import resolved_fast

STEPS, EPOCHS = 12_000, 10  # the default run: 10 epochs of 1,200 steps
GROUPS = {
    "evaluation": (Evaluation,),
    "grids": (SampleGrid,),
    "report": (RunReport,),
    "logging": (MetricsLogger, LossCurve, ProgressBar),
    "checkpoints (not a watcher)": (ModelCheckpoint,),
}
HOOKS = ("on_fit_start", "on_batch_start", "on_batch_end", "on_epoch_end", "on_fit_end")


class StepClock(Callback):
    """The wall time of every step, hooks included (between two on_batch_end calls)."""

    order = -100  # first: the time since the previous step's last hook

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    @override
    def on_batch_start(self, trainer: Trainer, images: Any) -> None:
        if self._last is None:
            self._last = time.perf_counter()

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Any) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def time_hooks(callback: Callback, spent: dict[str, list[float]]) -> None:
    """Make every call of a hook of ``callback`` append its seconds to ``spent[hook]``."""
    for hook in HOOKS:
        original = getattr(callback, hook)

        def timed(*args: Any, _original: Callable[..., None] = original, _hook: str = hook) -> None:
            started = time.perf_counter()
            try:
                _original(*args)
            finally:
                spent.setdefault(_hook, []).append(time.perf_counter() - started)

        setattr(callback, hook, timed)


def per_step(spent: dict[str, list[float]]) -> float:
    """A callback's usual cost per step: the median of its per-batch hooks' calls (its
    periodic work, at some steps only, is timed on its own)."""
    hooks = [spent.get("on_batch_start"), spent.get("on_batch_end")]
    return sum(statistics.median(calls) for calls in hooks if calls)


def median_time(action: Callable[[], Any], times: int) -> float:
    values = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        values.append(time.perf_counter() - started)
    return statistics.median(values)


def build(settings: RunSettings, callbacks: list[Callback], steps: int) -> Trainer:
    """The default run's Trainer (its task and switches as ``ganlib.runs.build_trainer``
    makes them), with ``callbacks``, for ``steps``."""
    data = RunData(torch.empty(0), None, 28, 1, None)
    return Trainer(
        build_adversarial(settings, data),
        device="cpu",
        precision=settings.precision,  # type: ignore[arg-type]
        fast=resolved_fast(settings),
        max_steps=steps,
        seed=settings.seed,
        callbacks=callbacks,
        progress=False,
        overwrite=True,
    )


def watchers(settings: RunSettings) -> list[Callback]:
    """The default run's callbacks, the progress line writing to memory."""
    callbacks = [c for c in callbacks_for(settings) if not isinstance(c, ProgressBar)]
    return [ProgressBar(settings.progress_every, use_tqdm=False, stream=io.StringIO()), *callbacks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="./data", help="holds MNIST/raw/*-ubyte")
    parser.add_argument("--steps", type=int, default=60, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=2, help="runs with and without")
    parser.add_argument("--events", type=int, default=3, help="times each periodic cost")
    parser.add_argument(
        "--fast",
        choices=("default", "on", "off"),
        default="default",
        help="the fast path: as `ganlib train` decides (on where bf16 is native), or forced",
    )
    parser.add_argument("--features", action="store_true", help="the extractor-precision table")
    parser.add_argument("--checkpoint", type=Path, help="a trained run's .ckpt for --features")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ganlib-watch-"))
    try:
        os.environ["GANLIB_CACHE"] = str(work / "cache")  # (a fresh statistics cache)
        settings = RunSettings(
            data="mnist", out=str(work / "run"), data_dir=args.data_dir, download=False
        )
        settings.image_size, settings.channels = 28, 1
        settings.fast = {"default": None, "on": True, "off": False}[args.fast]
        settings.choose_network()
        train, _ = load_mnist(args.data_dir, "train", download=False)
        print(
            f"default run: {settings.arch} width {settings.width}, batch 50, {STEPS} steps, "
            f"fast path {resolved_fast(settings)}; {torch.get_num_threads()} thread(s)",
            file=sys.stderr,
        )
        # The first run embeds the reference (filling the cache); the timed ones read it.
        warm = build(settings, watchers(settings), 1)
        warm.fit(train, batch_size=settings.batch_size)

        step_times: dict[str, list[float]] = {"without": [], "with": []}
        spent: dict[str, list[dict[str, list[float]]]] = {}
        trainer: Trainer | None = None
        for round_ in range(args.repeats):
            for variant in ("without", "with"):
                clock = StepClock()
                callbacks: list[Callback] = [clock]
                if variant == "with":
                    shutil.rmtree(work / "run", ignore_errors=True)
                    chosen = watchers(settings)
                    spent = {}
                    for callback in chosen:
                        if not isinstance(callback, EMA):
                            calls: dict[str, list[float]] = {}
                            spent.setdefault(_group(callback), []).append(calls)
                            time_hooks(callback, calls)
                    callbacks += chosen
                else:
                    callbacks += [EMA(settings.ema_decay, warmup=settings.ema_warmup)]
                run = build(settings, callbacks, args.steps)
                run.fit(train, batch_size=settings.batch_size)
                step_times[variant] += clock.times[5:]  # (past the first steps' warm-up)
                if variant == "with":
                    trainer = run
            print(f"round {round_ + 1}/{args.repeats} done", file=sys.stderr)
        assert trainer is not None
        without = statistics.median(step_times["without"])
        with_all = statistics.median(step_times["with"])
        run_seconds = without * STEPS

        events = periodic_costs(trainer, settings, args.events, work)
        print(f"\n## Watching cost of a default `ganlib train mnist` run ({cpu_name()})\n")
        print(f"{trainer.runtime.describe()}\n")
        print(
            f"Step time, median of {len(step_times['without'])} steps each, alternating: "
            f"without watchers {without * 1e3:.1f} ms, with all {with_all * 1e3:.1f} ms "
            f"({with_all / without - 1:+.1%}); the run's training time "
            f"{STEPS} x {without:.3f} s = {run_seconds:.0f} s.\n"
        )
        print("| watcher | per step | periodic work | in a default run | share of the run |")
        print("|---|---|---|---|---|")
        total = 0.0
        for group in GROUPS:
            step_cost = sum(per_step(calls) for calls in spent.get(group, []))
            periodic = [(what, seconds, count) for g, what, seconds, count in events if g == group]
            seconds = step_cost * STEPS + sum(s * c for _, s, c in periodic)
            if not group.startswith("checkpoints"):
                total += seconds
            work_text = "; ".join(f"{what} {s:.2f} s x {c}" for what, s, c in periodic) or "-"
            print(
                f"| {group} | {step_cost * 1e3:.2f} ms | {work_text} | {seconds:.1f} s "
                f"| {seconds / run_seconds:.2%} |"
            )
        print(f"| **all watchers** | | | **{total:.1f} s** | **{total / run_seconds:.2%}** |")
        plain = next(s for g, what, s, _ in events if g == "plain")
        evaluation_now = next(s for g, what, s, _ in events if what.startswith("evaluation of"))
        print(
            f"\nAn evaluation with the extractor and the EMA copy in fp32 as given (Evaluation("
            f"precision='32'), what it did before it took the run's settings): {plain:.2f} s, "
            f"{plain / evaluation_now:.2f}x the {evaluation_now:.2f} s above; "
            f"{plain * sum(c for g, _, _, c in events if g == 'plain') / run_seconds:.2%} "
            "of the run."
        )
        cold = next(s for g, what, s, _ in events if what.startswith("reference, embedded"))
        print(
            f"\nThe evaluation's reference, embedded afresh (an empty cache, once per machine): "
            f"{cold:.1f} s, not counted above."
        )
        if args.features:
            features_table(args.data_dir, args.checkpoint)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _group(callback: Callback) -> str:
    return next((g for g, kinds in GROUPS.items() if isinstance(callback, kinds)), "other")


def periodic_costs(
    trainer: Trainer, settings: RunSettings, times: int, work: Path
) -> list[tuple[str, str, float, int]]:
    """(group, what, median seconds, times in a default run) of each periodic piece."""
    find = {type(c): c for c in trainer.callbacks}
    evaluation, grid = find[Evaluation], find[SampleGrid]
    report, curve, saver = find[RunReport], find[LossCurve], find[ModelCheckpoint]
    assert isinstance(evaluation, Evaluation) and isinstance(curve, LossCurve)
    assert isinstance(report, RunReport)
    every = settings.eval_every
    evaluations = STEPS // every + (STEPS % every != 0)
    test, _ = load_mnist(settings.data_dir, "test", download=False)
    out = []

    def evaluate() -> None:
        trainer.state.step = every  # an evaluation step
        evaluation.on_batch_end(trainer, dict(trainer.state.metrics))

    out.append(
        (
            "evaluation",
            f"evaluation of {evaluation.num_samples}",
            median_time(evaluate, times),
            evaluations,
        )
    )
    # The same evaluation with the extractor and the EMA copy as given (what it did before
    # it took the run's fast settings): the reference in that precision first.
    evaluation._sampling, fast_settings = (False, False), evaluation._settings
    evaluation._settings = ("32", False)
    evaluation._owned.to(memory_format=torch.contiguous_format)  # type: ignore[union-attr]
    evaluation.reference = evaluation._reference_stats(test, trainer.device)
    plain = median_time(evaluate, times)
    out.append(("plain", "evaluation, fp32 as given", plain, evaluations))
    evaluation._sampling, evaluation._settings = evaluation._choose_sampling(trainer), fast_settings
    evaluation._owned.to(memory_format=torch.channels_last)  # type: ignore[union-attr]
    evaluation.reference = evaluation._reference_stats(test, trainer.device)
    cached = median_time(lambda: evaluation._reference_stats(test, trainer.device), times)
    out.append(("evaluation", "reference, from the cache", cached, 1))
    evaluation.cache = False
    cold = median_time(lambda: evaluation._reference_stats(test, trainer.device), 1)
    evaluation.cache = True
    out.append(("cold", "reference, embedded afresh", cold, 0))
    # Ten epochs' grids, so the report embeds what a default run's report embeds.
    grid_times = []
    for epoch in range(EPOCHS):
        trainer.state.epoch = epoch + 1
        started = time.perf_counter()
        grid.on_epoch_end(trainer)
        grid_times.append(time.perf_counter() - started)
    out.append(("grids", "a grid", statistics.median(grid_times), EPOCHS + 1))
    writes = STEPS // report.every_n_steps + EPOCHS + 2
    out.append(
        (
            "report",
            "a rewrite",
            median_time(lambda: report.write(trainer, "running"), times),
            writes,
        )
    )
    # The loss curve of a whole run: 12,000 steps' metrics and the evaluations' scores.
    metrics = {k: v for k, v in trainer.state.metrics.items() if k not in evaluation.score_names()}
    for step in range(1, STEPS + 1):
        logged = dict(metrics)
        if step % every == 0:
            logged.update({name: 1.0 for name in evaluation.score_names()})
        curve.history.add(step, logged)
    out.append(("logging", "a loss-curve drawing", median_time(curve.draw, times), EPOCHS + 1))
    saves = median_time(lambda: saver.on_epoch_end(trainer), times)
    out.append(("checkpoints (not a watcher)", "a checkpoint", saves, EPOCHS))
    return out


def features_table(data_dir: str, checkpoint: Path | None) -> None:
    """FDs of the shipped classifier's features in fp32, fp32 channels_last and bf16."""
    from ganlib.checkpoint import load_gan
    from ganlib.metrics import FeatureStats, embed, frechet_distance, load_mnist_classifier
    from ganlib.sampling import sample_images

    test, _ = load_mnist(data_dir, "test", download=False)
    train, _ = load_mnist(data_dir, "train", download=False)
    rng = torch.Generator().manual_seed(0)
    real = train[torch.randperm(len(train), generator=rng)[:2000]]
    sets = {
        "real 2,000 (the floor)": real,
        "real + noise 0.3": (real + 0.3 * torch.randn(real.shape, generator=rng)).clamp(-1, 1),
    }
    if checkpoint is not None:
        gan = load_gan(checkpoint, ema=True)
        batches = sample_images(gan.generator, 2000, gan, batch_size=500, seed=0)
        sets[f"generator ({checkpoint.name}, EMA)"] = torch.cat(list(batches))
    classifier = load_mnist_classifier()
    variants = {
        "fp32": (False, False),
        "fp32 channels_last": (False, True),
        "bf16 channels_last": (True, True),
    }
    results: dict[str, dict[str, float]] = {}
    for name, (bf16, channels_last) in variants.items():
        classifier.to(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )

        def extract(
            x: torch.Tensor, bf16: bool = bf16, channels_last: bool = channels_last
        ) -> torch.Tensor:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return classifier.embed(x).float()

        with torch.no_grad():
            started = time.perf_counter()
            reference = FeatureStats.of(embed(extract, test))
            results[name] = {"embed": time.perf_counter() - started}
            for label, images in sets.items():
                results[name][label] = frechet_distance(embed(extract, images), reference)
    print("\n## The extractor's precision (shipped MNIST classifier; reference: 10k test split)\n")
    print("| images | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    base = results["fp32"]
    for label in sets:
        cells = [
            f"{results[v][label]:.4f} ({results[v][label] / base[label] - 1:+.2%})"
            for v in variants
        ]
        print(f"| FD: {label} | " + " | ".join(cells) + " |")
    cells = [
        f"{results[v]['embed']:.1f} s ({base['embed'] / results[v]['embed']:.2f}x)"
        for v in variants
    ]
    print("| time to embed 10,000 | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())

"""Progress reporting: a tqdm bar when available, else the recipe's log lines."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from typing_extensions import override

from .._validation import check_int
from .base import Callback
from .history import MetricKinds

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["ProgressBar", "format_metrics", "seconds_since_launch"]

# The adversarial step's metrics, which the recipe's line shows its own way.
_RECIPE = ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_after")


def format_metrics(metrics: Mapping[str, float], kinds: MetricKinds | None = None) -> str:
    """A step's metrics as a progress line shows them, ordered by ``kinds``
    ([`MetricKinds.ordered`][ganlib.callbacks.history.MetricKinds.ordered]: the task's
    own metrics group by group, then the others, then the scores; as given without
    ``kinds``), each as ``name value``; the adversarial step's metrics in the recipe's
    fields: ``loss_d 1.3021  loss_g 0.7410  D(x) 0.521  D(G(z)) 0.480>>0.413``."""
    names = kinds.ordered(metrics) if kinds is not None else list(metrics)
    fields = []
    if all(name in metrics for name in _RECIPE):
        m = metrics
        fields.append(
            f"loss_d {m['loss_d']:.4f}  loss_g {m['loss_g']:.4f}  D(x) {m['d_real']:.3f}  "
            f"D(G(z)) {m['d_fake']:.3f}>>{m['d_fake_after']:.3f}"
        )
        names = [name for name in names if name not in _RECIPE]
    fields += [f"{name} {metrics[name]:.4g}" for name in names]
    return "  ".join(fields)


def seconds_since_launch() -> float | None:
    """Seconds since this process started (Linux: from ``/proc``), or ``None`` where that
    cannot be read."""
    try:
        with open("/proc/self/stat") as stat:  # starttime: field 22, after the ")" of comm
            started = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as uptime:
            now = float(uptime.read().split()[0])
        return max(0.0, now - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar(Callback):
    """Shows training progress.

    With ``tqdm`` installed and a terminal on ``stream``, a bar over all steps
    showing the epoch and the current step's metrics. Otherwise (a log file, a
    pipe) a start line, then a line at the first step (so a log file shows the run going
    at once) and every ``every_n_steps`` steps (every tenth of a run shorter than that)
    in the recipe's format followed by elapsed time, images/s and
    the time left, e.g.
    ``epoch 1/10  batch 100/200  step 100  loss_d 1.3021  loss_g 0.7410  D(x) 0.521``
    ``D(G(z)) 0.480>>0.413  0:00:35  571 img/s  ETA 0:06:45``, and an end summary.

    Any task's metrics are shown: its own (``Task.metric_groups()``) group by group, then
    the others, as ``name value`` (the adversarial step's in the recipe's fields). Scores
    logged at some steps only (an [`Evaluation`][ganlib.callbacks.Evaluation]'s ``fd``)
    stay on the line after their step, with the step they were taken at:
    ``fd 41.2 (step 1000)``.

    The start line says how long the process took to get there (imports, data, networks,
    an evaluation's reference: ``launched 3.1 s ago``), and, without tqdm, a line
    after the first step says when it was done: ``step 1 done 3.4 s after launch (0.3 s
    after the start line)``.

    Args:
        every_n_steps: Steps between log lines.
        use_tqdm: Force (True) or forbid (False) tqdm; ``None`` decides as above.
        stream: Where to write; ``sys.stdout`` when ``None``.
    """

    main_process_only = True  # writes files or prints

    def __init__(
        self, every_n_steps: int = 100, use_tqdm: bool | None = None, stream: TextIO | None = None
    ) -> None:
        self.every_n_steps = check_int("every_n_steps", every_n_steps, 1)
        self.use_tqdm = use_tqdm
        self.stream = stream
        self._bar: Any = None
        self._started = 0.0
        self._first_step = 0
        self._images = 0
        self._scores: dict[str, tuple[float, int]] = {}  # latest score -> (value, step)
        self.kinds = MetricKinds()  # (the trainer's, from on_fit_start)
        self._launched: float | None = None  # seconds since launch, at on_fit_start

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def _print(self, text: str) -> None:
        print(text, file=self._out(), flush=True)

    def _total_steps(self, trainer: Trainer) -> int | None:
        by_epochs = None
        if trainer.max_epochs is not None and trainer.num_batches is not None:
            by_epochs = trainer.max_epochs * trainer.num_batches
        limits = [x for x in (by_epochs, trainer.max_steps) if x is not None]
        return min(limits) if limits else None

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        self._started = time.perf_counter()
        self._launched = seconds_since_launch()
        self.kinds = MetricKinds.of(trainer)
        self._first_step, self._images = trainer.state.step, 0
        self._total = self._total_steps(trainer)
        want = self.use_tqdm
        if want is None:
            want = self._out().isatty()
        if want:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                if self.use_tqdm:
                    print(
                        "ProgressBar: tqdm is not installed; logging lines instead", file=sys.stderr
                    )
            else:
                self._bar = tqdm(
                    total=self._total,
                    initial=trainer.state.step,
                    file=self._out(),
                    unit="step",
                    dynamic_ncols=True,
                )
                return
        of = f" of {self._total}" if self._total is not None else ""
        verb = "resuming at" if trainer.state.step else "starting at"
        setup = f" (launched {self._launched:.1f} s ago)" if self._launched is not None else ""
        self._print(f"{verb} step {trainer.state.step}{of}, epoch {trainer.state.epoch + 1}{setup}")

    @override
    def on_batch_start(self, trainer: Trainer, images: Any) -> None:
        self._images += len(images) * trainer.world.world_size

    def _metrics_text(self, metrics: Mapping[str, float]) -> str:
        """The step's metrics, then the latest of each score not taken at this step."""
        earlier = [
            f"{name} {value:.4g} (step {at})"
            for name, (value, at) in self._scores.items()
            if name not in metrics
        ]
        return "  ".join([format_metrics(metrics, self.kinds), *earlier])

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        step = trainer.state.step
        for name in self.kinds.scores:
            if name in metrics:
                self._scores[name] = (metrics[name], step)
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            epochs = f"/{trainer.max_epochs}" if trainer.max_epochs is not None else ""
            text = f"epoch {trainer.state.epoch + 1}{epochs}  {self._metrics_text(metrics)}"
            self._bar.set_postfix_str(text, refresh=False)  # tqdm redraws at its own pace
            return
        if step == self._first_step + 1:
            self._first_step_done(step)
        every = self.every_n_steps
        if self._total is not None and self._total < every:  # a short run still gets lines
            every = max(1, self._total // 10)
        if step % every == 0 or step == self._total or step == self._first_step + 1:
            epochs = f"/{trainer.max_epochs}" if trainer.max_epochs is not None else ""
            batches = f"/{trainer.num_batches}" if trainer.num_batches is not None else ""
            self._print(
                f"epoch {trainer.state.epoch + 1}{epochs}  "
                f"batch {trainer.state.batch_in_epoch}{batches}  step {step}  "
                + self._metrics_text(metrics)
                + "  "
                + self._pace(step)
            )

    def _first_step_done(self, step: int) -> None:
        took = time.perf_counter() - self._started
        if self._launched is not None:
            self._print(
                f"step {step} done {self._launched + took:.1f} s after launch "
                f"({took:.1f} s after the start line)"
            )

    def _pace(self, step: int, eta: bool = True) -> str:
        elapsed = time.perf_counter() - self._started
        done = step - self._first_step
        rate = self._images / elapsed if elapsed > 0 else 0.0
        pace = f"{_duration(elapsed)}  {rate:.0f} img/s"
        if eta and self._total is not None and done > 0:
            pace += f"  ETA {_duration(elapsed / done * (self._total - step))}"
        return pace

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        if self._bar is None:
            steps = trainer.state.step - self._first_step
            self._print(f"finished: {steps} steps, {self._pace(trainer.state.step, eta=False)}")

    @override
    def on_teardown(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

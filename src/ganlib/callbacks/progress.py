"""Progress reporting: a tqdm bar when available, else the recipe's log lines."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from typing_extensions import override

from .._validation import check_int
from ..step import METRIC_NAMES
from .base import Callback

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["ProgressBar", "format_metrics"]


def format_metrics(metrics: Mapping[str, float]) -> str:
    """The recipe's progress fields (D loss, G loss, D(real), D(fake) before >> after D's
    step), then any other metric (those a loss reports) as ``name value``."""
    fields = []
    if all(name in metrics for name in METRIC_NAMES):
        fields.append(
            f"loss_d {metrics['loss_d']:.4f}  loss_g {metrics['loss_g']:.4f}  "
            f"D(x) {metrics['d_real']:.3f}  "
            f"D(G(z)) {metrics['d_fake']:.3f}>>{metrics['d_fake_after']:.3f}"
        )
        extra = {k: v for k, v in metrics.items() if k not in METRIC_NAMES}
    else:
        extra = dict(metrics)
    fields += [f"{name} {value:.4g}" for name, value in extra.items()]
    return "  ".join(fields)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar(Callback):
    """Shows training progress.

    With ``tqdm`` installed and a terminal on ``stream``, a bar over all steps
    showing the epoch and the current step's metrics. Otherwise (a log file, a
    pipe) a start line, then a line every ``every_n_steps`` steps (every tenth of
    a run shorter than that) in the recipe's format followed by elapsed time, images/s and
    the time left, e.g.
    ``epoch 1/10  batch 100/200  step 100  loss_d 1.3021  loss_g 0.7410  D(x) 0.521``
    ``D(G(z)) 0.480>>0.413  0:00:35  571 img/s  ETA 0:06:45``, and an end summary.

    Scores logged at some steps only (an [`Evaluation`][ganlib.callbacks.Evaluation]'s
    ``fd``) stay on the line after their step, with the step they were taken at:
    ``fd 41.2 (step 1000)``.

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
        self._score_names: list[str] = []

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
        self._score_names = trainer.callbacks.score_names()
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
        self._print(f"{verb} step {trainer.state.step}{of}, epoch {trainer.state.epoch + 1}")

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
        return "  ".join([format_metrics(metrics), *earlier])

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        step = trainer.state.step
        for name in self._score_names:
            if name in metrics:
                self._scores[name] = (metrics[name], step)
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            epochs = f"/{trainer.max_epochs}" if trainer.max_epochs is not None else ""
            text = f"epoch {trainer.state.epoch + 1}{epochs}  {self._metrics_text(metrics)}"
            self._bar.set_postfix_str(text, refresh=False)  # tqdm redraws at its own pace
            return
        every = self.every_n_steps
        if self._total is not None and self._total < every:  # a short run still gets lines
            every = max(1, self._total // 10)
        if step % every == 0 or step == self._total:
            epochs = f"/{trainer.max_epochs}" if trainer.max_epochs is not None else ""
            batches = f"/{trainer.num_batches}" if trainer.num_batches is not None else ""
            self._print(
                f"epoch {trainer.state.epoch + 1}{epochs}  "
                f"batch {trainer.state.batch_in_epoch}{batches}  step {step}  "
                + self._metrics_text(metrics)
                + "  "
                + self._pace(step)
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

"""A self-contained ``report.html`` in the run folder, rewritten as the run goes."""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from .._logging import logger
from .._validation import check_int
from ..runfolder import describe_os_error
from ..signals import TrainingInterrupted
from ._grids import check_after_sample_grid, evenly_spaced, grid_files, grid_label, sample_grid
from ._report_page import Frame, Page, Panel, render
from .base import FileWriter
from .history import MetricHistory, MetricKinds

if TYPE_CHECKING:
    from torch import Tensor

    from ..trainer import Trainer

__all__ = ["RunReport"]

Scores = Callable[["Trainer"], Mapping[str, float]]


def _png(images: Tensor, nrow: int) -> bytes:
    """Images in [0, 1] as one PNG grid."""
    from torchvision.utils import save_image  # (torchvision: only when used)

    buffer = io.BytesIO()
    save_image(images, buffer, nrow=nrow, pad_value=1.0, format="png")
    return buffer.getvalue()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class RunReport(FileWriter):
    """Writes ``report.html`` into ``out_dir``: the run's state, settings and runtime, its
    loss and D-score curves, the sample grids over time with a slider, and the latest
    scores. One file that opens in any browser, offline: curves are inline SVG, images
    are embedded, nothing is fetched.

    It is rewritten atomically every ``every_n_steps`` steps, at each epoch's end, at
    the end of training and when training stops on an exception (saying which), so a
    browser tab on it follows the run (it reloads itself while the run is going). A
    failed write gives a notice and training goes on. Its history is kept in
    checkpoints, so a resumed run's report continues where it was.

    Sample grids come from the trainer's [`SampleGrid`][ganlib.callbacks.SampleGrid] (its
    ``generated_*.png`` files; list RunReport after it), or from ``out_dir`` without
    one: at most ``max_frames``, evenly spaced over the run, the newest included.

    Curves: a chart per group of the task's own metrics (``Task.metric_groups()``), one
    per other metric (what a loss reports), and one per score logged at some steps only
    (an [`Evaluation`][ganlib.callbacks.Evaluation]'s ``fd``, ``diversity``, ...), a
    point per evaluation, with a table of the latest evaluation's scores and the step it
    was taken at ([`MetricKinds`][ganlib.callbacks.history.MetricKinds] says which is
    which; the loss curve draws the same charts from the same
    [`MetricHistory`][ganlib.callbacks.history.MetricHistory]).

    Args:
        out_dir: The run folder; the report is ``out_dir / "report.html"``.
        settings: The run's settings, shown as a table (values as ``str`` shows them).
        every_n_steps: Steps between rewrites.
        max_points: Curves keep between this many and twice this many points; each is
            the mean of equally many steps.
        max_frames: Sample grids embedded at most (they make up most of the file's size).
        scores: Called with the trainer at each epoch's end and at the end of training;
            the returned scores (an FID, say) are shown with the step they were taken at.
        refresh_seconds: While the run is going, the page reloads itself this often;
            ``None``: never.
        title: The page title; by default ``"ganlib run: <folder name>"``.
        resume: The command that continues the run (``ganlib train --resume RUN``),
            shown when Ctrl-C or SIGTERM stops it; ``None``: none shown.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        settings: Mapping[str, Any] | None = None,
        every_n_steps: int = 100,
        max_points: int = 500,
        max_frames: int = 12,
        scores: Scores | None = None,
        refresh_seconds: int | None = 60,
        title: str | None = None,
        resume: str | None = None,
    ) -> None:
        if settings is not None and not isinstance(settings, Mapping):
            raise TypeError(f"`settings` must be a mapping, got {type(settings).__name__}")
        if resume is not None and not isinstance(resume, str):
            raise TypeError(f"`resume` must be a string or None, got {type(resume).__name__}")
        if scores is not None and not callable(scores):
            raise TypeError(f"`scores` must be callable, got {type(scores).__name__}")
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / "report.html"
        self.settings = dict(settings or {})
        self.every_n_steps = check_int("every_n_steps", every_n_steps, 1)
        self.max_frames = check_int("max_frames", max_frames, 1)
        self.refresh_seconds = (
            None if refresh_seconds is None else check_int("refresh_seconds", refresh_seconds, 1)
        )
        self.scores = scores
        self.title = title or f"ganlib run: {self.out_dir.resolve().name}"
        self.resume = resume
        self.history = MetricHistory(max_points)
        self.latest_scores: dict[str, float] = {}
        self.scores_step: int | None = None
        self.evaluation: dict[str, float] = {}  # the latest evaluation's scores
        self.evaluation_step: int | None = None
        self.kinds = MetricKinds()  # (the trainer's, from on_fit_start)
        self.started: str | None = None  # when the run (not this process) started
        self._elapsed_before = 0.0  # training time of earlier fits (resumes)
        self._fit_clock: float | None = None
        self._write_failed = False

    @property
    @override
    def state_key(self) -> str:
        return f"RunReport[{self.path}]"

    def elapsed(self) -> float:
        """Seconds spent in ``fit`` so far, over all resumes."""
        running = 0.0 if self._fit_clock is None else time.monotonic() - self._fit_clock
        return self._elapsed_before + running

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        self._fit_clock = time.monotonic()
        self.kinds = MetricKinds.of(trainer)
        self.started = self.started or datetime.now().isoformat(sep=" ", timespec="seconds")
        check_after_sample_grid(self, trainer)
        self.write(trainer, "running")

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self.history.add(trainer.state.step, metrics)
        taken = {k: float(metrics[k]) for k in self.kinds.scores if k in metrics}
        if taken:
            self.evaluation, self.evaluation_step = taken, trainer.state.step
        if trainer.state.step % self.every_n_steps == 0:
            self.write(trainer, "running")

    @override
    def on_epoch_end(self, trainer: Trainer) -> None:
        self._take_scores(trainer)
        self.write(trainer, "running")

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        self._take_scores(trainer)
        self.write(trainer, "stopped early" if trainer.should_stop else "finished")

    @override
    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self.write(trainer, "stopped", exception)

    @override
    def on_teardown(self, trainer: Trainer) -> None:
        self._elapsed_before = self.elapsed()
        self._fit_clock = None

    def _take_scores(self, trainer: Trainer) -> None:
        if self.scores is not None:
            self.latest_scores = {k: float(v) for k, v in self.scores(trainer).items()}
            self.scores_step = trainer.state.step

    # ----------------------------------------------------------------- output

    def write(self, trainer: Trainer, status: str, exception: BaseException | None = None) -> None:
        """Rewrite the report atomically (a temporary file, then a rename); a failure
        gives one notice and is otherwise ignored, so it never stops training."""
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(render(self.page(trainer, status, exception)), "utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            if not self._write_failed:
                logger.warning(
                    f"RunReport: could not write {self.path}: {describe_os_error(exc)}; "
                    "training goes on"
                )
            self._write_failed = True
        else:
            self._write_failed = False

    def page(self, trainer: Trainer, status: str, exception: BaseException | None = None) -> Page:
        """What the report shows now."""
        steps, values = self.history.series()
        panels = []
        for title, names, kind in self.kinds.charts(self.history.names()):
            if kind == "score":  # a point per evaluation, joined (not a gap between them)
                panels.append(Panel(title, {name: self.history.points(name) for name in names}))
            else:
                panels.append(Panel(title, {name: (steps, values[name]) for name in names}))
        metrics = trainer.state.metrics
        return Page(
            title=self.title,
            status="running" if status == "running" else status.split()[0],
            status_line=self._status_line(trainer, status, exception),
            facts=self._facts(trainer),
            settings=self.settings,
            panels=panels,
            curve_note=(
                "each point: the mean of "
                + (f"{self.history.stride} steps" if self.history.stride > 1 else "1 step")
            ),
            latest=[(k, metrics[k]) for k in self.kinds.step_names if k in metrics],
            other_metrics=[(k, metrics[k]) for k in self.kinds.extras(metrics)],
            evaluation=list(self.evaluation.items()),
            evaluation_note=f"taken at step {self.evaluation_step}",
            scores=list(self.latest_scores.items()),
            scores_note=f"taken at step {self.scores_step}",
            frames=self._frames(trainer),
            real=self._real(trainer),
            checks=self._checks(trainer),
            refresh_seconds=self.refresh_seconds if status == "running" else None,
        )

    def _status_line(self, trainer: Trainer, status: str, exception: BaseException | None) -> str:
        state = trainer.state
        planned = [trainer.max_steps] if trainer.max_steps is not None else []
        if trainer.max_epochs is not None and trainer.num_batches is not None:
            planned.append(trainer.max_epochs * trainer.num_batches)
        where = f"step {state.step}" + (f" of {min(planned)}" if planned else "")
        epochs = f"{state.epoch}" + (f" of {trainer.max_epochs}" if trainer.max_epochs else "")
        where += f" ({epochs} epochs done)"
        if exception is not None:
            lines = str(exception).strip().splitlines()
            reason = lines[0][:200] if lines else ""
            line = f"stopped by {type(exception).__name__} at {where}" + (
                f": {reason}" if reason else ""
            )
            if self.resume is not None and isinstance(exception, TrainingInterrupted):
                line += f"; resume with: {self.resume}"  # (the step was saved)
            return line
        if status == "stopped early":
            return f"stopped early by a callback at {where}"
        return f"{status}: {where}" if status == "running" else f"{status} at {where}"

    def _facts(self, trainer: Trainer) -> list[tuple[str, str]]:
        return [
            ("run folder", str(self.out_dir.resolve())),
            ("runtime", trainer.runtime.describe()),
            ("task", trainer.task.describe()),
            ("seed", str(trainer.seed)),
            ("batches per epoch", str(trainer.num_batches or "unknown")),
            ("started", self.started or ""),
            ("updated", datetime.now().isoformat(sep=" ", timespec="seconds")),
            ("training time", _clock(self.elapsed())),
        ]

    def _grid_folder(self, trainer: Trainer) -> Path:
        grid = sample_grid(trainer)
        return self.out_dir if grid is None else grid.out_dir

    def _frames(self, trainer: Trainer) -> list[Frame]:
        frames = []
        for path in evenly_spaced(grid_files(self._grid_folder(trainer)), self.max_frames):
            with contextlib.suppress(OSError):
                frames.append(Frame(grid_label(path), path.read_bytes()))
        return frames

    def _checks(self, trainer: Trainer) -> list[Frame]:
        """The memorisation checks' pictures (an Evaluation with ``train`` images)."""
        from .evaluation import Evaluation  # (the metrics load only for runs that score)

        frames = []
        for callback in trainer.callbacks.active:
            picture = getattr(callback, "nearest_picture", None)
            if isinstance(callback, Evaluation) and picture is not None:
                score = self.evaluation.get(callback.prefix + "memorisation")
                label = (
                    "the 8 samples closest to a training image (top), their nearest "
                    "training images (middle) and nearest held-out images (bottom)"
                    + (f"; median ratio {score:.3g}" if score is not None else "")
                )
                frames.append(Frame(label, _png(picture, nrow=8)))
        return frames

    def _real(self, trainer: Trainer) -> Frame | None:
        path = self._grid_folder(trainer) / "real_samples.png"
        with contextlib.suppress(OSError):
            return Frame("real images (first batch)", path.read_bytes())
        return None

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history.state_dict(),
            "scores": dict(self.latest_scores),
            "scores_step": self.scores_step,
            "evaluation": dict(self.evaluation),
            "evaluation_step": self.evaluation_step,
            "started": self.started,
            "elapsed": self.elapsed(),
        }

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.history.load_state_dict(state_dict["history"])
        self.latest_scores = dict(state_dict["scores"])
        self.scores_step = state_dict["scores_step"]
        self.evaluation = dict(state_dict.get("evaluation", {}))  # (absent from older ones)
        self.evaluation_step = state_dict.get("evaluation_step")
        self.started = state_dict["started"]
        self._elapsed_before = float(state_dict["elapsed"])
        self._fit_clock = None if self._fit_clock is None else time.monotonic()

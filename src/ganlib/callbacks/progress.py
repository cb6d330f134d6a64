"""Progress reporting: a tqdm bar when available, else the recipe's log lines."""

from __future__ import annotations

import sys
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


class ProgressBar(Callback):
    """Shows training progress.

    With ``tqdm`` installed and a terminal on ``stream``, a bar over all steps
    with the latest metrics; otherwise a line every ``every_n_steps`` steps in
    the recipe's format, e.g.
    ``epoch 1/10  batch 100/200  step 100  loss_d 1.3021  loss_g 0.7410  D(x) 0.521``
    ``D(G(z)) 0.480>>0.413``.

    Args:
        every_n_steps: Steps between log lines (and bar refreshes).
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

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def _total_steps(self, trainer: Trainer) -> int | None:
        by_epochs = None
        if trainer.max_epochs is not None and trainer.num_batches is not None:
            by_epochs = trainer.max_epochs * trainer.num_batches
        limits = [x for x in (by_epochs, trainer.max_steps) if x is not None]
        return min(limits) if limits else None

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
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
                return
            self._bar = tqdm(
                total=self._total_steps(trainer),
                initial=trainer.state.step,
                file=self._out(),
                unit="step",
                dynamic_ncols=True,
            )

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        step = trainer.state.step
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if step % self.every_n_steps == 0 or step == 1:
                self._bar.set_postfix_str(format_metrics(metrics), refresh=False)
            return
        if step % self.every_n_steps == 0:
            epochs = f"/{trainer.max_epochs}" if trainer.max_epochs is not None else ""
            batches = f"/{trainer.num_batches}" if trainer.num_batches is not None else ""
            print(
                f"epoch {trainer.state.epoch + 1}{epochs}  "
                f"batch {trainer.state.batch_in_epoch}{batches}  step {step}  "
                + format_metrics(metrics),
                file=self._out(),
                flush=True,
            )

    @override
    def on_teardown(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

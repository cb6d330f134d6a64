"""The Callback base class and the ordered list the Trainer runs.

Guarantees (documented, tested):
    - Callbacks run in the order given, sorted (stably) by their ``order``: those
      that change the models between steps first (``EMA``, -20), then those that add
      scores to the step's metrics (``Evaluation``, -10), then the rest (0), so every
      callback that reads the metrics sees the step's scores. Those marked
      ``runs_last`` (checkpointing) run after all others, in their own given order.
    - A callback stops training by setting ``trainer.should_stop = True``;
      training ends after the current step and nothing resets the flag.
    - Stateful callbacks return their state from ``state_dict()``; the trainer
      stores it in checkpoints under the callback's ``state_key``, which must
      be unique within one trainer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch.optim import Optimizer

from .._logging import logger

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["Callback", "CallbackList", "FileWriter", "Network", "note", "raise_first"]

Network = Literal["generator", "discriminator"]


def note(exc: BaseException, text: str) -> None:
    """Attach ``text`` to ``exc`` (shown under its traceback, as ``add_note`` does)."""
    notes = getattr(exc, "__notes__", None)
    if not isinstance(notes, list):
        notes = []
        try:
            exc.__notes__ = notes  # type: ignore[attr-defined]
        except AttributeError:  # an exception type that refuses new attributes
            return
    notes.append(text)


def raise_first(errors: list[BaseException]) -> None:
    """Raise the first of ``errors`` (the others noted on it); nothing if there are none."""
    if errors:
        first = errors[0]
        for other in errors[1:]:
            note(first, f"also: {type(other).__name__}: {other}")
        raise first


class Callback:
    """Base class for hooks into [`ganlib.Trainer`][ganlib.Trainer]; override what you need.

    Every hook receives the trainer, which holds the models, optimizers,
    ``state`` (step, epoch, metrics) and ``should_stop``.

    Attributes:
        runs_last: Run after every callback without it (checkpointing does).
        main_process_only: Under distributed training, run only in rank 0 (the
            callbacks that write files, print or plot do).
        order: Where the callback runs among the others (not ``runs_last``): lower
            first, equal ones in the order given. ``EMA`` is -20 (it updates the
            average the others sample), ``Evaluation`` -10 (it adds scores the others
            log); the rest 0.
    """

    runs_last: bool = False
    main_process_only: bool = False
    order: int = 0

    @property
    def state_key(self) -> str:
        """The key of this callback's state in checkpoints; unique per trainer."""
        return type(self).__qualname__

    def score_names(self) -> tuple[str, ...]:
        """The scores this callback adds to ``trainer.state.metrics`` (the dict the later
        callbacks receive as ``metrics``) at some steps only, such as an evaluation's.

        The loggers keep a place for them: a column in ``metrics.csv``, their latest
        value in the progress line and the report, curves of their own, and
        ``ModelCheckpoint(monitor=...)`` saves at each step where such a score improves.
        """
        return ()

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first step (after a checkpoint, if any, was loaded)."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Before the first batch of an epoch (not when resuming mid-epoch)."""

    def on_batch_start(self, trainer: Trainer, images: Any) -> None:
        """Before each training step, with the real images of the batch."""

    def on_before_optimizer_step(
        self, trainer: Trainer, network: Network, optimizer: Optimizer
    ) -> None:
        """After ``network``'s backward pass (gradients unscaled), before its optimizer step."""

    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        """After each training step, with the step's metrics."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """After the last batch of an epoch; ``trainer.state.epoch`` counts it already."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """When training ends normally (epochs or steps done, or stopped by a callback)."""

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        """When training ends with an exception (Ctrl-C included), before it propagates."""

    def on_teardown(self, trainer: Trainer) -> None:
        """Last of all, however training ended: release files, bars and writers here."""

    def output_folders(self) -> list[Path]:
        """The folders this callback writes into: the Trainer checks them writable and
        locks them (one live run per folder) before the first step."""
        return []

    def earlier_outputs(self) -> list[Path]:
        """Files already present that a fresh run of this callback would replace; a fresh
        run refuses to start over them unless ``Trainer(overwrite=True)``.

        Raises:
            ganlib.runfolder.RunFolderError: For an output path that cannot be used.
        """
        return []

    def state_dict(self) -> dict[str, Any]:
        """State to store in checkpoints (tensors and plain Python values only)."""
        return {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what [`state_dict`][ganlib.callbacks.Callback.state_dict] returned."""


class CallbackList:
    """Callbacks in run order, with unique state keys.

    Raises:
        TypeError: If an entry is not a [`Callback`][ganlib.callbacks.Callback].
        ValueError: If two callbacks share a ``state_key``.
    """

    def __init__(self, callbacks: Iterable[Callback], *, main_process: bool = True) -> None:
        given = list(callbacks)
        for index, callback in enumerate(given):
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"`callbacks[{index}]` must be a ganlib.callbacks.Callback, "
                    f"got {type(callback).__name__}"
                )
        # (a stable sort: callbacks of equal order keep the order given)
        self.callbacks = sorted(given, key=lambda c: (c.runs_last, c.order))
        # Hooks run here; a process other than rank 0 skips the main-process-only ones.
        self._active = [c for c in self.callbacks if main_process or not c.main_process_only]
        seen: dict[str, Callback] = {}
        for callback in self.callbacks:
            if callback.state_key in seen:
                raise ValueError(
                    f"two callbacks share the state_key {callback.state_key!r}; give each a "
                    "distinct one so their checkpoint states do not collide"
                )
            seen[callback.state_key] = callback

    @staticmethod
    def as_list(callbacks: Any) -> list[Callback]:
        """The ``callbacks`` argument as a list, refusing ``None`` and a lone callback.

        Raises:
            TypeError: Naming the argument and what to write instead.
        """
        if callbacks is None or isinstance(callbacks, Callback):
            fix = "[]" if callbacks is None else f"[{type(callbacks).__name__}(...)]"
            raise TypeError(
                f"`callbacks` must be a list of Callback objects, got {callbacks!r}; "
                f"write callbacks={fix}"
            )
        return list(callbacks)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    @property
    def active(self) -> list[Callback]:
        """The callbacks whose hooks run in this process."""
        return list(self._active)

    def __len__(self) -> int:
        return len(self.callbacks)

    def score_names(self) -> list[str]:
        """The names every callback's [`score_names`][ganlib.callbacks.Callback.score_names]
        returns, in run order, each once."""
        return list(dict.fromkeys(n for c in self.callbacks for n in c.score_names()))

    def call(self, hook: str, *args: Any) -> None:
        """Run ``hook`` on every callback, in order (skipping main-process-only ones
        outside rank 0); the first exception stops the others."""
        for callback in self._active:
            getattr(callback, hook)(*args)

    def call_all(self, hook: str, *args: Any) -> list[BaseException]:
        """Run ``hook`` on every callback even when some raise (the safety hooks:
        ``on_fit_end``, ``on_exception``, ``on_teardown``), and return what they raised,
        each noted with the callback and hook it came from."""
        errors: list[BaseException] = []
        for callback in self._active:
            try:
                getattr(callback, hook)(*args)
            except Exception as exc:  # (a second Ctrl-C still aborts)
                note(exc, f"raised by {type(callback).__name__}.{hook}")
                errors.append(exc)
        return errors

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {c.state_key: c.state_dict() for c in self.callbacks}

    def load_state_dict(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore each callback whose key is in ``states``; others keep their state.

        A file-writing callback whose key names its path another way than the
        checkpoint's (``runs/a/log.csv`` then ``/home/me/runs/a/log.csv``) is matched
        by the resolved path, with a notice, so its history is not dropped.
        """
        for callback in self.callbacks:
            key = callback.state_key
            if key not in states:
                key = next((k for k in states if _same_file_key(k, key)), key)
                if key in states:
                    logger.info(
                        f"ganlib: restoring {callback.state_key} from the checkpoint's {key} "
                        "(the same file, named another way)"
                    )
            if key in states:
                callback.load_state_dict(states[key])


def _same_file_key(a: str, b: str) -> bool:
    """Whether two ``Name[path]`` state keys name one class and one resolved path."""
    name_a, _, path_a = a.partition("[")
    name_b, _, path_b = b.partition("[")
    if name_a != name_b or not path_a.endswith("]") or not path_b.endswith("]"):
        return False
    return Path(path_a[:-1]).resolve() == Path(path_b[:-1]).resolve()


class FileWriter(Callback):
    """Base of callbacks that write one file, ``self.path``: its folder is checked and
    locked before training, and an earlier run's file there is not clobbered."""

    path: Path
    main_process_only = True  # writes files or prints

    def output_folders(self) -> list[Path]:
        return [self.path.parent]

    def earlier_outputs(self) -> list[Path]:
        from ..runfolder import existing_file

        return existing_file(self.path, f"{type(self).__name__}(path)")

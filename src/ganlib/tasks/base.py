"""The Task contract: what is trained, apart from how the loop runs.

A [`Task`][ganlib.tasks.Task] owns its networks (by name), its optimizers, one training
step that returns one metrics dict, what "a sample" means for it (the grids of
[`SampleGrid`][ganlib.callbacks.SampleGrid]) and its checkpoint state. The
[`Trainer`][ganlib.Trainer] owns everything around it: epochs, batches, stopping,
signals, callbacks, the run's random streams, run folders, DDP and the fast path, and it
hands a task the part of that it needs once, as a [`TaskContext`][ganlib.tasks.TaskContext]:

1. ``Trainer(task)`` puts every network of ``task.networks`` on the device (channels_last
   on the fast path, SyncBatchNorm where asked), then calls ``task.setup(context)``: the
   task builds its optimizers (`build_optimizer` picks the fast path's fused Adam) and
   the callables its step uses (`forward_of`: DDP-wrapped and compiled as the run says).
2. ``fit`` calls ``task.check_data(source)`` before step 1 and ``task.start_run(steps)``
   to settle compiling for the run's length; then, once per batch,
   ``task.training_step(batch, step)``.
3. Checkpoints hold ``task.state_dict()`` beside the loop's state; ``load_state_dict``
   restores it all or nothing (the Trainer restores a backup when it raises).

A task updates its networks through [`optimizer_step`][ganlib.tasks.Task.optimizer_step],
so precision (autocast's grad scaler) and the callbacks' ``on_before_optimizer_step``
hook work the same for every task. Lightning's ``training_step`` with manual optimisation
is the closest relative.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .. import optim
from ..checkpoint import misfit
from ..data.checks import check_not_empty
from ..runtime import CompiledOrEager, Runtime

if TYPE_CHECKING:
    from ..batching import Batch, BatchSource

__all__ = ["GridInputs", "Task", "TaskContext"]

# A grid's fixed inputs by name (latents, labels, input images), kept on the CPU and in
# SampleGrid's checkpoint state, so a resumed run draws the same grid.
GridInputs = dict[str, Tensor | None]


def _identity(module: Any) -> Any:
    return module


@dataclass(frozen=True)
class TaskContext:
    """What the Trainer hands a task at ``setup``: where and how its step runs.

    Attributes:
        runtime: Device, precision (autocast, grad scaler), memory format, compile and
            whether the default Adam is fused ([`Runtime`][ganlib.runtime.Runtime]).
        rng: The run's step stream, on the device: latents, augmentation, penalties,
            pools. The Trainer seeds it, saves it in checkpoints and, under DDP, reseeds
            it per rank and step.
        wrap: Wraps a network for its own updates (DistributedDataParallel under DDP,
            nothing otherwise).
        reduce: Applied to a step's stacked metrics before they are read (DDP averages
            them over the processes).
        before_optimizer_step: Called as ``(network, optimizer)`` after each backward
            (gradients unscaled), before the optimizer steps: the callbacks' hook.
    """

    runtime: Runtime
    rng: torch.Generator
    wrap: Callable[[nn.Module], nn.Module] = field(default=_identity)
    reduce: Callable[[Tensor], Tensor] = field(default=_identity)
    before_optimizer_step: Callable[[str, Optimizer], None] = field(default=optim.no_hook)

    @property
    def device(self) -> torch.device:
        """Where the networks and batches live."""
        return self.runtime.device


class Task(abc.ABC):
    """What is trained: its networks, optimizers, one step, its samples and its state.

    Subclasses set ``networks`` (a name -> module mapping, in a fixed order) in their
    constructor and implement `setup`, `training_step` and `optimizers`; the rest has
    defaults a task overrides where it means something else.

    Attributes:
        kind: The task's name, recorded in checkpoints (``"adversarial"``, ...).
        image_network: The network whose output images the grids show and an
            [`EMA`][ganlib.callbacks.EMA] averages by default (``None``: none).
    """

    kind: ClassVar[str] = ""
    image_network: ClassVar[str | None] = "generator"

    networks: dict[str, nn.Module]
    context: TaskContext
    updates: optim.Updater

    # ------------------------------------------------------------ set up

    def setup(self, context: TaskContext) -> None:
        """Called once by the Trainer, after the networks were placed on the device:
        keep ``context``, build the optimizers and what the step calls. Subclasses call
        this first (it sets ``self.context`` and ``self.updates``)."""
        self.context = context
        self.updates = optim.Updater(context.runtime.grad_scaler(), context.before_optimizer_step)
        self._runtime = context.runtime

    @property
    def runtime(self) -> Runtime:
        """The current run's runtime ([`start_run`][ganlib.tasks.Task.start_run] settles it)."""
        return self._runtime

    @property
    @abc.abstractmethod
    def optimizers(self) -> dict[str, Optimizer]:
        """The optimizers by name (the names checkpoints and resume notices use)."""

    def build_optimizer(self, arg: optim.OptimizerArg, module: nn.Module, name: str) -> Optimizer:
        """``module``'s optimizer from a Trainer-style argument (an optimizer, a function of
        parameters, Adam's settings, or ``None`` for the recipe's Adam), fused on the fast
        path (``ganlib.optim.build_optimizer``)."""
        return optim.build_optimizer(arg, module, name, fused=self.context.runtime.fused_optimizers)

    def forward_of(self, module: nn.Module) -> Callable[..., Tensor]:
        """``module`` as a step calls it for its own update: wrapped for DDP, compiled
        where the runtime compiles. Build these in ``setup`` (a DDP wrapper is made once);
        a network read without being updated (D in G's loss) is called plain instead."""
        wrapped = self.context.wrap(module)
        return CompiledOrEager(wrapped) if self.context.runtime.compile else wrapped

    def start_run(self, steps: int | None) -> Runtime:
        """Settle the runtime for a run of ``steps`` more steps (``None``: unknown) and
        return it: a run too short to pay back compiling drops it
        ([`Runtime.for_run`][ganlib.runtime.Runtime.for_run]). A task that compiles
        switches its callables to the plain modules when the result does not compile."""
        self._runtime = self.context.runtime.for_run(steps)
        return self._runtime

    def optimizer_step(self, loss: Tensor, optimizer: Optimizer, network: str) -> None:
        """Backpropagate ``loss`` and step ``optimizer`` (``network`` names it for the
        callbacks' hook), scaled where the precision needs it."""
        self.updates.step(loss, optimizer, network)

    # ----------------------------------------------------------- training

    def check_data(self, source: BatchSource) -> None:
        """Refuse data this task cannot train on, before step 1.

        Raises:
            ValueError: Naming what is wrong; by default only for data without a batch.
        """
        check_not_empty(source)

    @abc.abstractmethod
    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """Train on one batch and return the step's metrics (plain floats, read from the
        device once).

        Args:
            batch: What the data yields, on the device: ``(images, second)``, where
                ``second`` is the labels, the paired images, or ``None``.
            step: This step's index in the run (0 first); resumed runs continue it.
        """

    def describe(self) -> str:
        """One line saying what is trained (the run report shows it)."""
        return f"{self.kind or type(self).__name__}: {', '.join(self.networks)}"

    def metric_groups(self) -> dict[str, tuple[str, ...]]:
        """The step's own metrics grouped for charts (a group per chart), in order; the
        loggers treat any other logged name as an extra of its own."""
        return {}

    # ------------------------------------------------------------ samples

    def grid_inputs(
        self, count: int, nrow: int, rng: torch.Generator, batch: Batch | None
    ) -> tuple[GridInputs, int] | None:
        """The fixed inputs of the sample grids, and the images per grid row.

        Called at ``on_fit_start`` with ``batch=None``, and, where that returned ``None``,
        with the first training batch (a translation task shows inputs from the data).

        Args:
            count: Images asked for.
            nrow: Images per row asked for.
            rng: The grid's own seeded stream.
            batch: The first batch, or ``None``.
        """
        raise NotImplementedError(f"{type(self).__name__} draws no sample grids")

    def grid(
        self,
        inputs: Mapping[str, Tensor | None],
        networks: Mapping[str, nn.Module],
        eval_mode: bool,
    ) -> Tensor:
        """The grid's images for ``inputs``, in [-1, 1], from ``networks`` (the task's own,
        or with an averaged copy in place of one of them), without touching their state."""
        raise NotImplementedError(f"{type(self).__name__} draws no sample grids")

    def generator_inputs(
        self, n: int, device: torch.device, rng: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        """Inputs of ``image_network`` for ``n`` images (latents, labels), for measuring
        BatchNorm statistics of an averaged copy.

        Raises:
            TypeError: For a task whose image network takes no drawn inputs.
        """
        raise TypeError(f"{type(self).__name__}'s {self.image_network} takes no drawn inputs")

    # ---------------------------------------------------------- state

    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this task (plain values), recorded in checkpoints."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The task's part of a checkpoint: ``task`` (its kind), ``task_config``,
        ``networks``, ``optimizers``, ``scaler`` and ``task_state`` (`extra_state`)."""
        return {
            "task": self.kind,
            "task_config": self.config,
            "networks": {name: net.state_dict() for name, net in self.networks.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scaler": self.updates.scaler.state_dict(),
            "task_state": self.extra_state(),
        }

    def state_problem(self, payload: Mapping[str, Any]) -> str | None:
        """What is wrong with a checkpoint's task entries (before any is used), or ``None``."""
        if payload.get("task") != self.kind:
            return f"it holds a {payload.get('task') or 'adversarial'!r} task, not {self.kind!r}"
        for part, names in (("networks", self.networks), ("optimizers", self.optimizers)):
            entry = payload.get(part)
            if not isinstance(entry, dict) or sorted(entry) != sorted(names):
                found = sorted(entry) if isinstance(entry, dict) else entry
                return f"`{part}` must hold {sorted(names)}, got {found}"
        for name, state in payload["networks"].items():
            if not isinstance(state, dict) or not all(
                isinstance(v, Tensor) for v in state.values()
            ):
                return f"`networks.{name}` is not a state dict of tensors"
        for name, state in payload["optimizers"].items():
            if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list):
                return f"`optimizers.{name}` is not an optimizer state"
        if not isinstance(payload.get("task_state", {}), dict):
            return "`task_state` is not a mapping"
        return None

    def load_state_dict(self, payload: Mapping[str, Any]) -> None:
        """Restore what [`state_dict`][ganlib.tasks.Task.state_dict] wrote.

        Raises:
            CheckpointError, ValueError: For a state of other networks or optimizers (the
                Trainer then restores its backup and names the file).
        """
        for name, state in payload["optimizers"].items():
            optim.check_same_kind(self.optimizers[name], state, name)
        for name, state in payload["networks"].items():
            try:
                self.networks[name].load_state_dict(state)
            except RuntimeError as exc:
                raise misfit("", exc, f"holds a {name} of another shape than this task's") from exc
        for name, state in payload["optimizers"].items():
            self.optimizers[name].load_state_dict(state)
        if payload.get("scaler"):
            self.updates.scaler.load_state_dict(payload["scaler"])
        self.load_extra_state(payload.get("task_state", {}))

    def extra_state(self) -> dict[str, Any]:
        """State of the task beyond networks and optimizers (pools, stream positions,
        adaptive probabilities): tensors and plain values."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what [`extra_state`][ganlib.tasks.Task.extra_state] returned."""
        return None

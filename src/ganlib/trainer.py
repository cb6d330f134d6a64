"""The Trainer: the loop that trains any task, with callbacks and exact resume.

The Trainer owns the loop only: ``fit``, epochs, stopping, signals, the callback
hooks, and the state that checkpoints save and load. What it trains is a task
([`ganlib.tasks.Task`][ganlib.tasks.Task]: networks, optimizers, one step, samples, state;
a GAN pair becomes an [`AdversarialTask`][ganlib.tasks.AdversarialTask]); the rest comes
from the modules that own each concept (docs/design.md): the engineering switches
(``runtime``), DDP (``distributed``), the batches (``batching``), the random streams
(``seeding``), the output folders (``runfolder``) and the file format (``checkpoint``).
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from . import checkpoint, distributed, optim, runfolder, seeding
from ._validation import check_int
from ._version import __version__
from .augment import Augment
from .batching import Batch, BatchSource
from .callbacks.base import Callback, CallbackList, note, raise_first
from .callbacks.guard import check_finite
from .callbacks.progress import ProgressBar
from .device import resolve_device
from .gan import GAN
from .losses import Loss, LossName
from .runtime import Precision, PrecisionName, Runtime, steps_left
from .signals import GracefulStop
from .step import AdversarialStep
from .tasks import AdversarialTask, Task, TaskContext

__all__ = ["DEFAULT_MAX_EPOCHS", "Precision", "Trainer", "TrainerState"]

# The GAN-pair arguments' defaults: a Task given with any other value is refused.
_PAIR_DEFAULTS: dict[str, Any] = {
    "loss": "bce",
    "g_optimizer": None,
    "d_optimizer": None,
    "d_steps": 1,
    "augment": None,
}

# Trains this many epochs when neither max_epochs nor max_steps is given (the recipe's).
DEFAULT_MAX_EPOCHS = 10


@dataclass
class TrainerState:
    """Where training stands.

    Attributes:
        step: Training steps done (one G update each).
        epoch: Epochs completed.
        batch_in_epoch: Batches done in the current epoch.
        metrics: The last step's metrics.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Trains a task: a GAN pair adversarially, or any [`Task`][ganlib.tasks.Task].

    Args:
        task: A [`Task`][ganlib.tasks.Task]; or a GAN pair — a [`ganlib.GAN`][ganlib.GAN]
            (such as ``DCGAN``), an object with ``.generator``, ``.discriminator`` and
            ``.sample_noise``, or a ``(generator, discriminator, latent_dim_or_sampler)``
            tuple — trained as an [`AdversarialTask`][ganlib.tasks.AdversarialTask] with
            the five arguments below (trained on (images, labels) if ``num_classes``).
        loss: ``"bce"`` (the recipe), ``"hinge"``, ``"wgan-gp"``, ``"lsgan"``, or a
            loss object (see [`ganlib.losses`][ganlib.losses]). A GAN pair only, as are
            the next four (a task holds its own).
        g_optimizer: Optimizer for G, a function ``params -> Optimizer``, Adam's settings
            (``{"lr": 1e-4}``), or ``None`` for Adam(lr 2e-4, betas (0.5, 0.999)).
        d_optimizer: The same for D.
        d_steps: D updates per G update, >= 1.
        augment: DiffAugment on all D sees ([`augment`][ganlib.augment]): a policy like
            ``"translation,cutout,color"``, a callable ``(images, rng) -> images``, or ``None``;
            ``"ada"`` or an [`AdaptiveAugment`][ganlib.ada.AdaptiveAugment]: adaptive
            augmentation ([`ganlib.ada`][ganlib.ada]).
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ...
        precision: ``"32"``, ``"bf16"`` (autocast) or ``"16"`` (autocast and a grad
            scaler); ``None``: ``"bf16"`` with ``fast`` where the hardware computes
            in bf16 natively (CUDA, CPUs with AVX512-BF16/AMX), else ``"32"``.
        fast: Turn on the fast path (docs/performance.md): tensor data held on the
            device and gathered there, channels_last, bf16 (see ``precision``),
            ``torch.compile`` of each network's forward (see ``compile``), fused Adam
            (CUDA, CPU), and on CUDA ``cudnn.benchmark``. Checkpoints are the same as
            without it.
        compile: ``torch.compile`` each network's forward; ``None``: with ``fast``, where
            it pays back (on CUDA, unless ``fit`` finds the run too short for that), not
            on a CPU, where compiled steps measured no faster (`COMPILE_PAYBACK_STEPS`).
        channels_last: Keep weights and images channels_last; ``None`` follows ``fast``.
        strategy: ``"auto"``: DistributedDataParallel when launched by ``torchrun``
            with several processes (or in an initialised process group), else one
            process; ``"single"``: always one process; ``"ddp"``: always DDP. Under
            DDP ``batch_size`` is per process (the global batch is ``batch_size *
            world_size``), only rank 0 runs file-writing callbacks and saves
            checkpoints, and logged metrics are averaged over the processes.
        sync_batchnorm: Under DDP on CUDA, turn BatchNorm layers into
            SyncBatchNorm, so they normalise over the global batch.
        callbacks: Run in the order given; checkpointing callbacks run last.
        max_epochs: Stop after this many epochs.
        max_steps: Stop after this many steps. With neither, 10 epochs.
        seed: Seeds data order, latents and penalties (random when ``None``; stored in
            checkpoints). Not the model's initial weights: see ``seed_everything``.
        nan_guard: Stop ([`NonFiniteLossError`][ganlib.callbacks.NonFiniteLossError]) at the first
            step whose metrics are NaN or infinite (before its hooks run), keeping the
            last good checkpoint; ``False`` lets such a run go on.
        overwrite: Let a fresh run replace an earlier run's files in its output folders
            (by default it refuses to start over them; see `ganlib.runfolder`).
        progress: Add a [`ProgressBar`][ganlib.callbacks.ProgressBar] unless one is given, and
            print the runtime line (what ``fast`` and friends chose here, and why) at ``fit``.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    def __init__(
        self,
        task: Any,
        *,
        loss: LossName | Loss = "bce",
        g_optimizer: optim.OptimizerArg = None,
        d_optimizer: optim.OptimizerArg = None,
        d_steps: int = 1,
        augment: str | Augment | None = None,
        device: str | torch.device = "auto",
        precision: PrecisionName | None = None,
        fast: bool = False,
        compile: bool | None = None,
        channels_last: bool | None = None,
        strategy: distributed.Strategy = "auto",
        sync_batchnorm: bool = False,
        callbacks: Iterable[Callback] = (),
        max_epochs: int | None = None,
        max_steps: int | None = None,
        seed: int | None = None,
        progress: bool = True,
        nan_guard: bool = True,
        overwrite: bool = False,
    ) -> None:
        pair_args = dict(
            loss=loss,
            g_optimizer=g_optimizer,
            d_optimizer=d_optimizer,
            d_steps=d_steps,
            augment=augment,
        )
        if isinstance(task, Task):
            given = [k for k, v in pair_args.items() if v != _PAIR_DEFAULTS[k]]
            if given:
                raise TypeError(
                    f"`{given[0]}` configures a GAN pair's training; a task holds its own: "
                    f"pass it to the task ({type(task).__name__}), not to the Trainer"
                )
            self.task: Task = task
        else:
            self.task = AdversarialTask(task, **pair_args)  # type: ignore[arg-type]
        self.fast = bool(fast)
        self.world, device = distributed.setup(strategy, device)
        self.device = resolve_device(device)
        self.runtime = Runtime.resolve(
            self.device,
            fast=self.fast,
            precision=precision,
            compile=compile,
            channels_last=channels_last,
        )
        self.max_epochs = None if max_epochs is None else check_int("max_epochs", max_epochs, 1)
        self.max_steps = None if max_steps is None else check_int("max_steps", max_steps, 1)
        if self.max_epochs is None and self.max_steps is None:
            self.max_epochs = DEFAULT_MAX_EPOCHS
        self.seed = seeding.fresh_seed() if seed is None else seeding.check_seed(seed)
        networks = tuple(self.task.networks.values())
        distributed.prepare_networks(self.world, self.device, networks, sync_batchnorm)
        for network in networks:
            self.runtime.place(network)

        callbacks = CallbackList.as_list(callbacks)
        if progress and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.insert(0, ProgressBar())
        self.callbacks = CallbackList(callbacks, main_process=self.world.is_main)
        self.progress, self.overwrite, self.nan_guard = progress, bool(overwrite), bool(nan_guard)

        self.noise_rng = torch.Generator(device=self.device).manual_seed(self.seed)
        self.task.setup(
            TaskContext(
                runtime=self.runtime,
                rng=self.noise_rng,
                wrap=self._wrap,
                reduce=self.world.mean,
                before_optimizer_step=lambda network, optimizer: self.callbacks.call(
                    "on_before_optimizer_step", self, network, optimizer
                ),
            )
        )
        self.state = TrainerState()
        self.should_stop = False
        self.num_batches: int | None = None
        self.current_batch: Batch | None = None  # the step's batch, as the task receives it
        self._in_step = False
        self._stop = GracefulStop()

    def _wrap(self, module: nn.Module) -> nn.Module:
        return distributed.wrap(self.world, module, self.device)

    # ------------------------------------------------- a GAN pair's views

    def _pair(self, name: str) -> AdversarialTask:
        if not isinstance(self.task, AdversarialTask):
            raise AttributeError(
                f"Trainer.{name} belongs to a GAN pair's training; this trainer trains a "
                f"{type(self.task).__name__}: see trainer.task"
            )
        return self.task

    @property
    def gan(self) -> GAN:
        """The GAN pair trained: an adversarial task's, or any task's that has one (``gan``).

        Raises:
            AttributeError: For a task without a GAN pair.
        """
        gan = getattr(self.task, "gan", None)
        if not isinstance(gan, GAN):
            raise AttributeError(
                f"Trainer.gan: this trainer trains a {type(self.task).__name__}, which has no "
                "GAN pair (`gan`); see trainer.task.networks"
            )
        return gan

    @property
    def generator(self) -> nn.Module:
        """G of the task's GAN pair ([`gan`][ganlib.Trainer.gan])."""
        return self.gan.generator

    @property
    def discriminator(self) -> nn.Module:
        """D of the task's GAN pair ([`gan`][ganlib.Trainer.gan])."""
        return self.gan.discriminator

    @property
    def g_optimizer(self) -> Optimizer:
        """G's optimizer (an adversarial task's)."""
        return self._pair("g_optimizer").g_optimizer

    @property
    def d_optimizer(self) -> Optimizer:
        """D's optimizer (an adversarial task's)."""
        return self._pair("d_optimizer").d_optimizer

    @property
    def loss(self) -> Loss:
        """The adversarial loss (an adversarial task's)."""
        return self._pair("loss").loss

    @property
    def d_steps(self) -> int:
        """D updates per G update (an adversarial task's)."""
        return self._pair("d_steps").d_steps

    @property
    def train_step(self) -> AdversarialStep:
        """The adversarial task's step ([`AdversarialStep`][ganlib.step.AdversarialStep])."""
        return self._pair("train_step").step

    @property
    def num_classes(self) -> int | None:
        """The pair's classes (``None``: unconditional, or a task that is not a pair)."""
        return getattr(self.task, "num_classes", None)

    @property
    def scaler(self) -> torch.amp.GradScaler:
        """The grad scaler of the run's precision (disabled outside fp16)."""
        return self.task.updates.scaler

    @property
    def precision(self) -> Precision:
        """The precision training runs in (see [`Runtime`][ganlib.runtime.Runtime])."""
        return self.runtime.precision

    @property
    def channels_last(self) -> bool:
        """Whether weights and images are kept channels_last."""
        return self.runtime.channels_last

    @property
    def is_main_process(self) -> bool:
        """True in the process that writes files (rank 0; always true in one process)."""
        return self.world.is_main

    # ---------------------------------------------------------------- training

    def fit(
        self,
        data: Any,
        ckpt_path: str | None = None,
        *,
        batch_size: int = 50,
        shuffle: bool = True,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> TrainerState:
        """Train on ``data`` until ``max_epochs``/``max_steps`` or a callback stops it.

        Args:
            data: A DataLoader, a Dataset, a tensor of images (N, C, H, W) in [-1, 1],
                or an (images, labels) pair of tensors.
            ckpt_path: A checkpoint to resume from, exactly where it was saved, or
                ``"last"``: the newest of the trainer's ModelCheckpoint.
            batch_size: Batch size for tensors and Datasets (a DataLoader keeps its own).
            shuffle: Shuffle tensors and Datasets each epoch (a DataLoader keeps its own).
            drop_last: Drop a last, smaller batch (tensors and Datasets).
            num_workers: Loader workers for Datasets.

        Returns:
            The final [`TrainerState`][ganlib.TrainerState].

        Raises:
            ValueError: For empty data, images of the wrong shape, or a checkpoint
                that does not fit; all before any training step runs.
        """
        source = BatchSource(
            data,
            batch_size=check_int("batch_size", batch_size, 1),
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=check_int("num_workers", num_workers, 0),
            seed=self.seed,
            device=self.device,
            dtype=self._dtype(),  # the networks' (float64 too)
            preload=self.runtime.preload,
            rank=self.world.rank,
            world_size=self.world.world_size,
        )
        self.task.check_data(source)
        ckpt_path = distributed.restart_checkpoint(
            ckpt_path, self.world, self.callbacks, self.device
        )
        if ckpt_path == "last":  # the newest checkpoint of this trainer's ModelCheckpoint
            from .callbacks.checkpoint import last_checkpoint

            ckpt_path = last_checkpoint(self.callbacks)
        if ckpt_path is not None:
            self.load_checkpoint(ckpt_path)
        source.seed = self.seed  # a loaded checkpoint brings its own seed
        self.num_batches = None if source.iterable else len(source)
        self._in_step = False
        left = steps_left(self.state, self.max_steps, self.max_epochs, self.num_batches)
        self.runtime = self.task.start_run(left)  # a short run may skip compiling
        self.runtime.activate()
        if self.progress and self.world.is_main:
            print(self.runtime.describe(), flush=True)
        # (an elastic restart before the first checkpoint finds its own failed attempt's files)
        fresh = self.state.step == 0 and not self.overwrite and not distributed.is_elastic_restart()
        agree = functools.partial(self.world.any, device=self.device)  # every rank, or none
        with runfolder.prepared(self.callbacks.active, fresh, agree), self._stop.installed():
            try:
                self.callbacks.call("on_fit_start", self)
                while not self._done():
                    self._run_epoch(source)
                raise_first(self.callbacks.call_all("on_fit_end", self))
            except BaseException as exc:
                # Every callback's safety hooks run; the user sees the original error.
                for other in self.callbacks.call_all("on_exception", self, exc) + (
                    self.callbacks.call_all("on_teardown", self)
                ):
                    note(exc, f"while handling it: {type(other).__name__}: {other}")
                raise
            raise_first(self.callbacks.call_all("on_teardown", self))
        self.world.barrier()  # every process leaves fit once rank 0's final files are written
        return self.state

    def _dtype(self) -> torch.dtype:
        """The floating dtype of the task's weights (batches are cast to it)."""
        for network in self.task.networks.values():
            for parameter in network.parameters():
                if parameter.is_floating_point():
                    return parameter.dtype
        return torch.get_default_dtype()

    def _done(self) -> bool:
        s = self.state
        # A callback may stop one process only; all must stop at the same step.
        self.should_stop = self.world.any(self.should_stop, self.device)
        return (
            self.should_stop
            or (self.max_steps is not None and s.step >= self.max_steps)
            or (self.max_epochs is not None and s.epoch >= self.max_epochs)
        )

    def _run_epoch(self, source: BatchSource) -> None:
        state = self.state
        if state.batch_in_epoch == 0:
            self.callbacks.call("on_epoch_start", self)
        for batch in source.epoch(state.epoch, start=state.batch_in_epoch):
            # A step spans its hooks: until on_batch_end is through, its state is half-made.
            self._in_step = True
            self.current_batch = batch
            self.callbacks.call("on_batch_start", self, batch[0])
            if self.world.distributed:  # latents differ per rank, and resume exactly
                self.noise_rng.manual_seed(
                    seeding.step_seed(self.seed, self.world.rank, state.step)
                )
            metrics = self.task.training_step(batch, state.step)
            state.step += 1
            state.batch_in_epoch += 1
            state.metrics = metrics
            if self.nan_guard:
                check_finite(self, metrics)
            self.callbacks.call("on_batch_end", self, metrics)
            self._in_step = False
            self._stop.check(state.step)
            if self._done():
                if self.num_batches is None or state.batch_in_epoch < self.num_batches:
                    return
                break
        self._in_step = True
        state.epoch += 1
        state.batch_in_epoch = 0
        self.callbacks.call("on_epoch_end", self)
        self._in_step = False
        self._stop.check(state.step)

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Latents for ``n`` images (see [`ganlib.GAN.sample_noise`][ganlib.GAN.sample_noise])."""
        return self.gan.sample_noise(n, self.device, generator or self.noise_rng)

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Labels for ``n`` fakes (see [`ganlib.GAN.sample_labels`][ganlib.GAN.sample_labels])."""
        return self.gan.sample_labels(n, self.device, generator or self.noise_rng)

    def generator_inputs(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        """The image network's inputs for ``n`` images (latents, labels), from the run's
        stream unless ``generator`` is given
        ([`Task.generator_inputs`][ganlib.tasks.Task.generator_inputs])."""
        return self.task.generator_inputs(n, self.device, generator or self.noise_rng)

    def image_shape(self) -> tuple[int, ...]:
        """The generator's output shape (C, H, W)."""
        return tuple(self.gan.image_shape)

    def callback(self, kind: type[Callback]) -> Callback | None:
        """The first callback of class ``kind``, or ``None``."""
        return next((c for c in self.callbacks if isinstance(c, kind)), None)

    @property
    def at_step_boundary(self) -> bool:
        """False while a step or an epoch end is half done, its hooks included (its state
        would then not resume exactly)."""
        return not self._in_step

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """All a resume needs ([`save_checkpoint`][ganlib.Trainer.save_checkpoint])."""
        return {
            checkpoint.FORMAT_KEY: checkpoint.FORMAT_VERSION,
            "ganlib_version": __version__,
            **self.task.state_dict(),
            "state": asdict(self.state),
            "seed": self.seed,
            "world_size": self.world.world_size,
            "noise_rng": {"device": self.device.type, "state": self.noise_rng.get_state()},
            "rng": seeding.capture_rng_state(),
            "callbacks": self.callbacks.state_dict(),
        }

    def save_checkpoint(self, path: str) -> None:
        """Write the task (networks, optimizers, grad scaler, its own state), callback
        states (EMA included), step,
        epoch, position in the epoch and random states, atomically. Under DDP only
        rank 0 writes (the others return at once)."""
        if self.world.is_main:
            payload = self.state_dict()
            payload[checkpoint.CHECKSUM_KEY] = checkpoint.tensor_checksum(payload)
            checkpoint.atomic_save(payload, path)

    def load_checkpoint(self, path: str) -> None:
        """Restore what [`save_checkpoint`][ganlib.Trainer.save_checkpoint] wrote, all or
        nothing: a file that does not fit leaves the trainer as it was. Optimizer settings
        given to this trainer (a new learning rate) win over the checkpoint's, with a notice.

        Raises:
            CheckpointError: If the file is unreadable, malformed, corrupted, or for
                other models or optimizers.
        """
        payload = checkpoint.load_checkpoint(path)
        checkpoint.check_resumable(payload, path)
        problem = self.task.state_problem(payload)
        if problem is not None:
            raise checkpoint.CheckpointError(
                f"checkpoint {str(path)!r} cannot be resumed: {problem}"
            )
        optimizers = self.task.optimizers
        wanted = {name: optim.hyperparameters(o) for name, o in optimizers.items()}
        backup = copy.deepcopy(self.state_dict())
        try:
            self._restore(payload)
            changes = [
                change
                for name, o in optimizers.items()
                for change in optim.keep_hyperparameters(o, wanted[name], name)
            ]
        except Exception as exc:
            self._restore(backup)
            raise checkpoint.misfit(path, exc) from exc
        if changes and self.world.is_main:
            print(f"resuming {path} with your settings: {'; '.join(changes)}", file=sys.stderr)

    def _restore(self, payload: dict[str, Any]) -> None:
        self.task.load_state_dict(payload)
        self.state = TrainerState(**payload["state"])
        self.seed = payload["seed"]
        noise = payload["noise_rng"]
        if noise["device"] == self.device.type:
            self.noise_rng.set_state(noise["state"])
        else:  # a different device family has another generator; continue deterministically
            self.noise_rng.manual_seed(seeding.resume_seed(self.seed, self.state.step))
        seeding.restore_rng_state(payload["rng"])
        self.callbacks.load_state_dict(payload["callbacks"])

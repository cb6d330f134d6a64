"""The Trainer: the loop that runs adversarial steps, with callbacks and exact resume.

The Trainer owns the loop only: ``fit``, epochs, stopping, signals, the callback
hooks, and the state that checkpoints save and load. What it runs comes from the
modules that own each concept (docs/design.md): the pair's contract (``gan``), one
step (``step``), the engineering switches (``runtime``), DDP (``distributed``), the
batches (``batching``), the random streams (``seeding``), the output folders
(``runfolder``) and the file format (``checkpoint``).
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

import torch
from torch import Tensor, nn

from . import checkpoint, distributed, optim, runfolder, seeding
from ._validation import check_int
from ._version import __version__
from .augment import Augment
from .batching import BatchSource
from .callbacks.base import Callback, CallbackList, note, raise_first
from .callbacks.guard import check_finite
from .data.checks import check_data
from .device import resolve_device
from .gan import GAN, as_gan
from .losses import AdversarialLoss, LossName, get_loss
from .runtime import CompiledOrEager, Precision, PrecisionName, Runtime, steps_left  # noqa: F401
from .runtime import native_bf16 as _native_bf16  # noqa: F401  (importable from here, as before)
from .signals import GracefulStop
from .step import AdversarialStep, StepNetworks

__all__ = ["DEFAULT_MAX_EPOCHS", "Precision", "Trainer", "TrainerState"]

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
    """Trains a generator/discriminator pair adversarially.

    Args:
        gan: A [`ganlib.GAN`][ganlib.GAN] (such as ``DCGAN``), an object with ``.generator``,
            ``.discriminator`` and ``.sample_noise``, or a ``(generator, discriminator,
            latent_dim_or_sampler)`` tuple; trained on (images, labels) if ``num_classes``.
        loss: ``"bce"`` (the recipe), ``"hinge"``, ``"wgan-gp"``, ``"lsgan"``, or a
            loss object (see [`ganlib.losses`][ganlib.losses]).
        g_optimizer: Optimizer for G, a function ``params -> Optimizer``, Adam's settings
            (``{"lr": 1e-4}``), or ``None`` for Adam(lr 2e-4, betas (0.5, 0.999)).
        d_optimizer: The same for D.
        d_steps: D updates per G update, >= 1.
        augment: DiffAugment on all D sees ([`augment`][ganlib.augment]): a policy like
            ``"translation,cutout,color"``, a callable ``(images, rng) -> images``, or ``None``.
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
        gan: Any,
        *,
        loss: LossName | AdversarialLoss = "bce",
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
        self.gan: GAN = as_gan(gan)
        self.generator: nn.Module = self.gan.generator
        self.discriminator: nn.Module = self.gan.discriminator
        self.num_classes = self.gan.num_classes
        if isinstance(loss, str):
            self.loss: AdversarialLoss = get_loss(loss)  # type: ignore[arg-type]
        elif isinstance(loss, AdversarialLoss):
            self.loss = loss
        else:
            raise TypeError(
                f"`loss` must be one of {list(get_args(LossName))} or an object with "
                f"discriminator_loss and generator_loss methods, got {type(loss).__name__}"
            )
        self.d_steps = check_int("d_steps", d_steps, 1)
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
        networks = (self.generator, self.discriminator)
        distributed.prepare_networks(self.world, self.device, networks, sync_batchnorm)
        for network in networks:
            self.runtime.place(network)
        build = functools.partial(optim.build_optimizer, fused=self.runtime.fused_optimizers)
        self.g_optimizer = build(g_optimizer, self.generator, "g_optimizer")
        self.d_optimizer = build(d_optimizer, self.discriminator, "d_optimizer")

        callbacks = CallbackList.as_list(callbacks)
        from .callbacks import ProgressBar  # (the callbacks import Trainer types)

        if progress and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.insert(0, ProgressBar())
        self.callbacks = CallbackList(callbacks, main_process=self.world.is_main)
        self.progress, self.overwrite, self.nan_guard = progress, bool(overwrite), bool(nan_guard)

        self.noise_rng = torch.Generator(device=self.device).manual_seed(self.seed)
        self.train_step = AdversarialStep(
            self.gan,
            self.g_optimizer,
            self.d_optimizer,
            self.loss,
            runtime=self.runtime,
            rng=self.noise_rng,
            d_steps=self.d_steps,
            augment=augment,
            networks=StepNetworks.build(self.gan, self.runtime, self._wrap),
            before_optimizer_step=lambda network, optimizer: self.callbacks.call(
                "on_before_optimizer_step", self, network, optimizer
            ),
            reduce=self.world.mean,
        )
        self.scaler = self.train_step.scaler
        self.state = TrainerState()
        self.should_stop = False
        self.num_batches: int | None = None
        self._in_step = False
        self._stop = GracefulStop()

    def _wrap(self, module: nn.Module) -> nn.Module:
        return distributed.wrap(self.world, module, self.device)

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
            preload=self.runtime.preload,
            rank=self.world.rank,
            world_size=self.world.world_size,
        )
        check_data(source, self.gan.image_shape, self.num_classes)
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
        self.runtime = self.train_step.start_run(left)  # a short run may skip compiling
        self.runtime.activate()
        if self.progress and self.world.is_main:
            print(self.runtime.describe(), flush=True)
        fresh = self.state.step == 0 and not self.overwrite
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
        for images, labels in source.epoch(state.epoch, start=state.batch_in_epoch):
            # A step spans its hooks: until on_batch_end is through, its state is half-made.
            self._in_step = True
            self.callbacks.call("on_batch_start", self, images)
            if self.world.distributed:  # latents differ per rank, and resume exactly
                self.noise_rng.manual_seed(
                    seeding.step_seed(self.seed, self.world.rank, state.step)
                )
            labels = labels if self.num_classes is not None else None
            metrics = self.train_step(images, labels, step=state.step)
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
        """The generator's inputs ([`GAN.generator_inputs`][ganlib.GAN.generator_inputs])."""
        return self.gan.generator_inputs(n, self.device, generator or self.noise_rng)

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
            "arch": self.gan.arch or None,
            "gan_config": self.gan.config,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": asdict(self.state),
            "seed": self.seed,
            "world_size": self.world.world_size,
            "noise_rng": {"device": self.device.type, "state": self.noise_rng.get_state()},
            "rng": seeding.capture_rng_state(),
            "callbacks": self.callbacks.state_dict(),
        }

    def save_checkpoint(self, path: str) -> None:
        """Write models, optimizers, grad scaler, callback states (EMA included), step,
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
        wanted = [optim.hyperparameters(self.g_optimizer), optim.hyperparameters(self.d_optimizer)]
        backup = copy.deepcopy(self.state_dict())
        try:
            optim.check_same_kind(self.g_optimizer, payload["g_optimizer"], "g_optimizer")
            optim.check_same_kind(self.d_optimizer, payload["d_optimizer"], "d_optimizer")
            self._restore(payload)
            changes = optim.keep_hyperparameters(self.g_optimizer, wanted[0], "g_optimizer")
            changes += optim.keep_hyperparameters(self.d_optimizer, wanted[1], "d_optimizer")
        except Exception as exc:
            self._restore(backup)
            raise checkpoint.misfit(path, exc) from exc
        if changes and self.world.is_main:
            print(f"resuming {path} with your settings: {'; '.join(changes)}", file=sys.stderr)

    def _restore(self, payload: dict[str, Any]) -> None:
        for name in ("generator", "discriminator"):
            try:
                getattr(self, name).load_state_dict(payload[name])
            except RuntimeError as exc:
                raise checkpoint.misfit(
                    "", exc, f"holds a {name} of another shape than this trainer's"
                ) from exc
        self.g_optimizer.load_state_dict(payload["g_optimizer"])
        self.d_optimizer.load_state_dict(payload["d_optimizer"])
        if payload["scaler"]:
            self.scaler.load_state_dict(payload["scaler"])
        self.state = TrainerState(**payload["state"])
        self.seed = payload["seed"]
        noise = payload["noise_rng"]
        if noise["device"] == self.device.type:
            self.noise_rng.set_state(noise["state"])
        else:  # a different device family has another generator; continue deterministically
            self.noise_rng.manual_seed(seeding.resume_seed(self.seed, self.state.step))
        seeding.restore_rng_state(payload["rng"])
        self.callbacks.load_state_dict(payload["callbacks"])

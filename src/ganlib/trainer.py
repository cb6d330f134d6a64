"""The Trainer: the loop that runs adversarial steps, with callbacks and exact resume.

The Trainer owns the loop only: ``fit``, epochs, stopping, Ctrl-C, the callback
hooks, and the state that checkpoints save and load. What it runs comes from
the modules that own each concept:

- :mod:`ganlib.gan`: the pair's contract (latents, labels, image shape, config);
- :mod:`ganlib.step`: what one step computes (D steps, G step, the metrics);
- :mod:`ganlib.runtime`: what ``fast``, precision, compile and channels_last mean here;
- :mod:`ganlib.distributed`: process group, DDP wrapping, SyncBatchNorm;
- :mod:`ganlib.batching`: the batches of each epoch, resumable and sharded;
- :mod:`ganlib.seeding`: every random stream derived from the seed;
- :mod:`ganlib.checkpoint`: the file format.

A conditional pair (``num_classes`` set, such as ``DCGAN(num_classes=K)``) is
trained on (images, labels) batches. Under ``torchrun`` each process trains on
its shard of every epoch with G and D in DistributedDataParallel (see
docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

import torch
from torch import Tensor, nn

from . import distributed
from ._validation import check_int
from ._version import __version__
from .batching import BatchSource, check_data
from .callbacks.base import Callback, CallbackList
from .checkpoint import FORMAT_KEY, FORMAT_VERSION, CheckpointError, atomic_save, load_checkpoint
from .device import resolve_device
from .gan import GAN, as_gan
from .losses import AdversarialLoss, LossName, get_loss
from .optim import OptimizerArg, build_optimizer
from .runtime import CompiledOrEager, Precision, Runtime  # noqa: F401  (CompiledOrEager: compat)
from .runtime import native_bf16 as _native_bf16  # noqa: F401  (importable from here, as before)
from .seeding import capture_rng_state, fresh_seed, restore_rng_state, resume_seed, step_seed
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
        gan: A :class:`ganlib.DCGAN`, any object with ``.generator``,
            ``.discriminator`` and ``.sample_noise(n, device, generator)``, or a
            tuple ``(generator, discriminator, latent_dim_or_sampler)``. An object
            whose ``num_classes`` is an integer is trained class-conditionally:
            ``generator(z, labels)`` and ``discriminator(images, labels)``.
        loss: ``"bce"`` (the recipe), ``"hinge"``, ``"wgan-gp"``, ``"lsgan"``, or a
            loss object (see :mod:`ganlib.losses`).
        g_optimizer: Optimizer for G, a function ``params -> Optimizer``, or
            ``None`` for Adam(lr 2e-4, betas (0.5, 0.999)).
        d_optimizer: The same for D.
        d_steps: D updates per G update, >= 1.
        augment: DiffAugment on every image D sees (:mod:`ganlib.augment`): a policy
            such as ``"translation,cutout,color"``, a callable ``(images, generator) ->
            images``, or ``None`` (off).
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ...
        precision: ``"32"``, ``"bf16"`` (autocast) or ``"16"`` (autocast and a grad
            scaler); ``None``: ``"bf16"`` with ``fast`` where the hardware computes
            in bf16 natively (CUDA, CPUs with AVX512-BF16/AMX), else ``"32"``.
        fast: Turn on the fast path (docs/performance.md): tensor data held on the
            device and gathered there, channels_last, bf16 (see ``precision``),
            ``torch.compile`` of each network's forward (see ``compile``), and on
            CUDA fused Adam and ``cudnn.benchmark``. Checkpoints are the same as
            without it.
        compile: ``torch.compile`` each network's forward; ``None``: with ``fast``,
            on CUDA or when autocasting (``precision`` not ``"32"``), not on a CPU
            in fp32, where it measured no faster.
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
        seed: Seeds the data order, latents and penalties; random when ``None``
            (and stored in checkpoints, so resume is exact either way). Model
            initialisation happens before the Trainer and is not affected.
        progress: Add a :class:`~ganlib.callbacks.ProgressBar` unless one is given, and
            print the runtime line (what ``fast`` and friends chose here, and why) at ``fit``.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    def __init__(
        self,
        gan: Any,
        *,
        loss: LossName | AdversarialLoss = "bce",
        g_optimizer: OptimizerArg = None,
        d_optimizer: OptimizerArg = None,
        d_steps: int = 1,
        augment: str | Callable[[Tensor, torch.Generator | None], Tensor] | None = None,
        device: str | torch.device = "auto",
        precision: Precision | None = None,
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
        self.seed = fresh_seed() if seed is None else check_int("seed", seed, 0)
        networks = (self.generator, self.discriminator)
        distributed.prepare_networks(self.world, self.device, networks, sync_batchnorm)
        for network in networks:
            self.runtime.place(network)
        fused = self.runtime.fused_optimizers
        self.g_optimizer = build_optimizer(g_optimizer, self.generator, "g_optimizer", fused)
        self.d_optimizer = build_optimizer(d_optimizer, self.discriminator, "d_optimizer", fused)

        callbacks = list(callbacks)
        from .callbacks.progress import ProgressBar  # the callbacks package imports Trainer types

        if progress and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.insert(0, ProgressBar())
        self.callbacks = CallbackList(callbacks, main_process=self.world.is_main)
        self.progress = progress

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
            networks=StepNetworks.build(
                self.gan,
                self.runtime,
                lambda module: distributed.wrap(self.world, module, self.device),
            ),
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
        self._interrupt_requested = False

    @property
    def precision(self) -> Precision:
        """The precision training runs in (see :class:`ganlib.runtime.Runtime`)."""
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
            data: A DataLoader, a Dataset, a tensor of images (N, C, H, W) scaled to
                [-1, 1], or an (images, labels) pair of tensors. Batches may be
                tensors or (images, labels) tuples.
            ckpt_path: A checkpoint to resume from, exactly where it was saved.
            batch_size: Batch size for tensors and Datasets (a DataLoader keeps its own).
            shuffle: Shuffle tensors and Datasets each epoch (a DataLoader keeps its own).
            drop_last: Drop a last, smaller batch (tensors and Datasets).
            num_workers: Loader workers for Datasets.

        Returns:
            The final :class:`TrainerState`.

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
        if ckpt_path is not None:
            self.load_checkpoint(ckpt_path)
        source.seed = self.seed  # a loaded checkpoint brings its own seed
        self.num_batches = None if source.iterable else len(source)
        self._in_step = False
        self.runtime.activate()
        if self.progress and self.world.is_main:
            print(self.runtime.describe(), flush=True)
        with self._deferred_ctrl_c():
            try:
                self.callbacks.call("on_fit_start", self)
                while not self._done():
                    self._run_epoch(source)
            except BaseException as exc:
                self.callbacks.call("on_exception", self, exc)
                self.callbacks.call("on_teardown", self)
                raise
        self.callbacks.call("on_fit_end", self)
        self.callbacks.call("on_teardown", self)
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
                self.noise_rng.manual_seed(step_seed(self.seed, self.world.rank, state.step))
            labels = labels if self.num_classes is not None else None
            metrics = self.train_step(images, labels, step=state.step)
            state.step += 1
            state.batch_in_epoch += 1
            state.metrics = metrics
            self.callbacks.call("on_batch_end", self, metrics)
            self._in_step = False
            self._raise_if_interrupted()
            if self._done():
                if self.num_batches is None or state.batch_in_epoch < self.num_batches:
                    return
                break
        self._in_step = True
        state.epoch += 1
        state.batch_in_epoch = 0
        self.callbacks.call("on_epoch_end", self)
        self._in_step = False
        self._raise_if_interrupted()

    def _raise_if_interrupted(self) -> None:
        if self._interrupt_requested:
            raise KeyboardInterrupt(f"training interrupted by Ctrl-C after step {self.state.step}")

    # The pair's inputs on the trainer's device, from ``generator`` or the trainer's stream.

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Latents for ``n`` images (see :meth:`ganlib.GAN.sample_noise`)."""
        return self.gan.sample_noise(n, self.device, generator or self.noise_rng)

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Labels for ``n`` fakes (see :meth:`ganlib.GAN.sample_labels`)."""
        return self.gan.sample_labels(n, self.device, generator or self.noise_rng)

    def generator_inputs(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        """``(latents,)`` or ``(latents, labels)`` (see :meth:`ganlib.GAN.generator_inputs`)."""
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

    @contextlib.contextmanager
    def _deferred_ctrl_c(self) -> Iterator[None]:
        """First Ctrl-C: finish the current step (or epoch end), then stop through
        ``on_exception``; a second one aborts at once."""
        self._interrupt_requested = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._interrupt_requested:
                raise KeyboardInterrupt
            self._interrupt_requested = True
            print(
                "\nCtrl-C: finishing the current step, then stopping "
                "(press Ctrl-C again to abort at once)",
                file=sys.stderr,
            )

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (see :meth:`save_checkpoint`)."""
        return {
            FORMAT_KEY: FORMAT_VERSION,
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
            "rng": capture_rng_state(),
            "callbacks": self.callbacks.state_dict(),
        }

    def save_checkpoint(self, path: str) -> None:
        """Write models, optimizers, grad scaler, callback states (EMA included), step,
        epoch, position in the epoch and random states, atomically. Under DDP only
        rank 0 writes (the others return at once)."""
        if self.world.is_main:
            atomic_save(self.state_dict(), path)

    def load_checkpoint(self, path: str) -> None:
        """Restore everything :meth:`save_checkpoint` wrote.

        Raises:
            CheckpointError: If the file is unreadable, not ganlib's, or for other models.
        """
        payload = load_checkpoint(path)
        for name, module in (("generator", self.generator), ("discriminator", self.discriminator)):
            try:
                module.load_state_dict(payload[name])
            except RuntimeError as exc:
                raise CheckpointError(
                    f"checkpoint {path!r} holds a {name} of another shape than this trainer's: "
                    + str(exc).split("\n\t", 1)[-1].split("\n")[0]
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
            self.noise_rng.manual_seed(resume_seed(self.seed, self.state.step))
        restore_rng_state(payload["rng"])
        self.callbacks.load_state_dict(payload["callbacks"])

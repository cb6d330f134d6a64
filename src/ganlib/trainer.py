"""The adversarial Trainer: alternating D/G steps, callbacks, exact resume.

One training step, as the reference recipe does it:

1. ``d_steps`` times: D on a real batch and, in a separate forward pass, on
   ``G(z).detach()``; the two losses are summed (plus any penalty) and D steps.
2. G against ``D(G(z))`` on the fakes of the last D step; G steps.

Metrics of every step: ``loss_d``, ``loss_g``, ``d_real``, ``d_fake`` (D's mean
score on real and fake before its step: a probability for BCE, the raw score
otherwise) and ``d_fake_after`` (the same fakes after D's step). If D is not
learning, ``d_fake`` and ``d_fake_after`` stay equal.

A conditional model (one with a ``num_classes`` attribute, such as
``DCGAN(num_classes=K)``) is trained on (images, labels) batches: D sees real
images with their labels, and every batch of fakes is made for labels drawn
uniformly from the trainer's seeded stream.

Under ``torchrun`` each process trains on its shard of every epoch with G and D
wrapped in DistributedDataParallel (see :mod:`ganlib.distributed` and
docs/distributed.md): D's updates go through its DDP wrapper, while G's loss
reads D through the plain module, so every DDP forward is followed by exactly
one backward over that network's parameters.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import secrets
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn
from torch.optim import Adam, Optimizer

from ._validation import check_choice, check_int
from ._version import __version__
from .batching import BatchSource, split_batch
from .callbacks.base import Callback, CallbackList
from .checkpoint import (
    FORMAT_KEY,
    FORMAT_VERSION,
    CheckpointError,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from .device import resolve_device
from .distributed import Strategy, WorldInfo, setup, step_seed
from .losses import AdversarialLoss, LossName, get_loss, penalty_of, score_of
from .models.dcgan import check_labels

__all__ = ["DEFAULT_MAX_EPOCHS", "Precision", "Trainer", "TrainerState"]

Precision = Literal["32", "bf16", "16"]
NoiseSampler = Callable[[int, torch.device, torch.Generator | None], Tensor]
OptimizerArg = Optimizer | Callable[[Iterable[nn.Parameter]], Optimizer] | None
# Trains this many epochs when neither max_epochs nor max_steps is given (the recipe's).
DEFAULT_MAX_EPOCHS = 10
METRIC_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_after")


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


def _unpack_gan(gan: Any) -> tuple[nn.Module, nn.Module, NoiseSampler]:
    """(generator, discriminator, latent sampler) from a DCGAN-like object or a tuple."""
    if all(hasattr(gan, name) for name in ("generator", "discriminator", "sample_noise")):
        return gan.generator, gan.discriminator, gan.sample_noise
    if isinstance(gan, (tuple, list)) and len(gan) == 3:
        generator, discriminator, latent = gan
        if isinstance(generator, nn.Module) and isinstance(discriminator, nn.Module):
            if callable(latent):
                return generator, discriminator, latent
            dim = check_int("latent_dim (third item of `gan`)", latent, 1)
            return (
                generator,
                discriminator,
                lambda n, device, rng: torch.randn(n, dim, device=device, generator=rng),
            )
    raise TypeError(
        "`gan` must provide .generator, .discriminator and .sample_noise (like ganlib.DCGAN), "
        f"or be a (generator, discriminator, latent_dim or sampler) tuple; got {type(gan).__name__}"
    )


class CompiledOrEager:
    """``torch.compile(module)``, falling back to the plain module (with one warning)
    where compiling fails, say on a machine without a C++ compiler."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self._compiled: Callable[..., Tensor] | None = torch.compile(module)
        self._proven = False

    def __call__(self, *args: Any) -> Tensor:
        if self._compiled is None:
            return self.module(*args)
        if self._proven:
            return self._compiled(*args)
        try:
            out = self._compiled(*args)
        except Exception as exc:  # inductor raises many types; none should stop training
            warnings.warn(
                f"torch.compile failed for {type(self.module).__name__} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "training continues uncompiled",
                stacklevel=2,
            )
            self._compiled = None
            return self.module(*args)
        self._proven = True
        return out


def _native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic is native (fast) on ``device``, not emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # oneDNN's own check for AVX512-BF16 / AMX
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def _build_optimizer(
    arg: OptimizerArg, module: nn.Module, name: str, fused: bool = False
) -> Optimizer:
    if arg is None:  # the recipe's Adam
        return Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=fused or None)
    if isinstance(arg, Optimizer):
        owned = {id(p) for p in module.parameters()}
        held = [p for group in arg.param_groups for p in group["params"]]
        if not held or any(id(p) not in owned for p in held):
            network = {"g_optimizer": "generator", "d_optimizer": "discriminator"}[name]
            raise ValueError(
                f"`{name}` must optimise the {network}'s parameters only; it holds "
                f"{sum(id(p) not in owned for p in held)} parameter(s) of another module"
            )
        return arg
    if callable(arg):
        return arg(module.parameters())
    raise TypeError(
        f"`{name}` must be a torch Optimizer, a function of parameters returning one, or None; "
        f"got {type(arg).__name__}"
    )


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
        progress: Add a :class:`~ganlib.callbacks.ProgressBar` unless one is given.

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
        device: str | torch.device = "auto",
        precision: Precision | None = None,
        fast: bool = False,
        compile: bool | None = None,
        channels_last: bool | None = None,
        strategy: Strategy = "auto",
        sync_batchnorm: bool = False,
        callbacks: Iterable[Callback] = (),
        max_epochs: int | None = None,
        max_steps: int | None = None,
        seed: int | None = None,
        progress: bool = True,
    ) -> None:
        self.gan = gan
        self.generator, self.discriminator, self._sample_noise = _unpack_gan(gan)
        num_classes = getattr(gan, "num_classes", None)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, 1)
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
        self.channels_last = fast if channels_last is None else bool(channels_last)
        self.world: WorldInfo
        self.world, device = setup(strategy, device)
        self.device = resolve_device(device)
        if precision is None:
            precision = "bf16" if fast and _native_bf16(self.device) else "32"
        self.precision = check_choice("precision", precision, get_args(Precision))
        if compile is None:
            # On a CPU in fp32, compiling measured no faster than channels_last alone
            # (0.98x; docs/performance.md): the fast path compiles on CUDA and in bf16.
            compile = fast and (self.device.type == "cuda" or self.precision != "32")
        use_compile = bool(compile)
        self.max_epochs = None if max_epochs is None else check_int("max_epochs", max_epochs, 1)
        self.max_steps = None if max_steps is None else check_int("max_steps", max_steps, 1)
        if self.max_epochs is None and self.max_steps is None:
            self.max_epochs = DEFAULT_MAX_EPOCHS
        self.seed = secrets.randbits(62) if seed is None else check_int("seed", seed, 0)
        if sync_batchnorm and self.world.distributed:
            if self.device.type != "cuda":
                raise ValueError(
                    f"`sync_batchnorm` needs CUDA devices (PyTorch's SyncBatchNorm), "
                    f"got {self.device.type!r}"
                )
            nn.SyncBatchNorm.convert_sync_batchnorm(self.generator)
            nn.SyncBatchNorm.convert_sync_batchnorm(self.discriminator)
        for network in (self.generator, self.discriminator):
            network.to(self.device)
            if self.channels_last:
                network.to(memory_format=torch.channels_last)
        fused = fast and self.device.type == "cuda"
        self.g_optimizer = _build_optimizer(g_optimizer, self.generator, "g_optimizer", fused)
        self.d_optimizer = _build_optimizer(d_optimizer, self.discriminator, "d_optimizer", fused)
        # The step calls these; state_dicts and callbacks see the plain modules.
        self._G, self._D, self._D_for_g = self._step_networks(use_compile)
        if fast and self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        callbacks = list(callbacks)
        from .callbacks.progress import ProgressBar  # the callbacks package imports Trainer types

        if progress and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.insert(0, ProgressBar())
        self.callbacks = CallbackList(callbacks, main_process=self.world.is_main)

        autocast_dtype = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[self.precision]
        self._autocast_dtype = autocast_dtype
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "16")
        self._score = score_of(self.loss)
        self._penalty = penalty_of(self.loss)
        self.noise_rng = torch.Generator(device=self.device).manual_seed(self.seed)
        self.state = TrainerState()
        self.should_stop = False
        self.num_batches: int | None = None
        self._in_step = False
        self._interrupt_requested = False

    def _step_networks(
        self, use_compile: bool
    ) -> tuple[Callable[..., Tensor], Callable[..., Tensor], Callable[..., Tensor]]:
        """G and D as the step calls them, and D as G's loss reads it.

        Under DDP, G and D are wrapped (their gradients are averaged over the
        processes); G's loss reads D unwrapped, since D is not updated there and a
        DDP forward must be followed by a backward over its own parameters.
        """
        generator: nn.Module = self.generator
        discriminator: nn.Module = self.discriminator
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # Each rank keeps its own BatchNorm statistics (no per-forward broadcast
            # from rank 0 in the middle of D's two passes); weights stay identical.
            # (PyTorch 2.14 renamed broadcast_buffers to forward_sync_buffers.)
            renamed = (
                "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            )
            options: dict[str, Any] = {
                "device_ids": [self.device.index] if self.device.type == "cuda" else None,
                "forward_sync_buffers" if renamed else "broadcast_buffers": False,
            }
            generator = DistributedDataParallel(generator, **options)
            discriminator = DistributedDataParallel(discriminator, **options)
        if not use_compile:
            return generator, discriminator, self.discriminator
        compiled_d = CompiledOrEager(discriminator)
        # Without DDP, G's loss reads the same compiled D (one compilation, not two).
        plain_d = compiled_d if discriminator is self.discriminator else None
        return (
            CompiledOrEager(generator),
            compiled_d,
            plain_d or CompiledOrEager(self.discriminator),
        )

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
            preload=self.fast,
            rank=self.world.rank,
            world_size=self.world.world_size,
        )
        self._check_data(source)
        if ckpt_path is not None:
            self.load_checkpoint(ckpt_path)
        source.seed = self.seed  # a loaded checkpoint brings its own seed
        self.num_batches = None if source.iterable else len(source)
        self._in_step = False
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
            metrics = self._train_step(images, labels if self.num_classes is not None else None)
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

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Latents for ``n`` images on the trainer's device, drawn from ``generator`` or,
        by default, the trainer's own seeded random stream."""
        return self._sample_noise(n, self.device, generator or self.noise_rng)

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Uniform class labels for ``n`` fakes of a conditional model, drawn from
        ``generator`` or the trainer's own random stream.

        Raises:
            ValueError: For an unconditional model.
        """
        if self.num_classes is None:
            raise ValueError("sample_labels needs a conditional model (one with num_classes)")
        rng = generator or self.noise_rng
        return torch.randint(self.num_classes, (n,), device=self.device, generator=rng)

    def generator_inputs(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        """What the generator takes for ``n`` images: ``(latents,)``, or ``(latents,
        labels)`` for a conditional model, drawn from ``generator`` or the trainer's stream."""
        z = self.sample_noise(n, generator)
        return (z,) if self.num_classes is None else (z, self.sample_labels(n, generator))

    def _optimizer_step(self, loss: Tensor, optimizer: Optimizer, network: str) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.scaler.is_enabled():
            self.scaler.unscale_(optimizer)  # callbacks see true gradients
        self.callbacks.call("on_before_optimizer_step", self, network, optimizer)
        self.scaler.step(optimizer)

    def _train_step(self, real: Tensor, labels: Tensor | None = None) -> dict[str, float]:
        """One D/G step; ``labels`` are the real images' classes for a conditional model."""
        G, D, batch = self._G, self._D, real.shape[0]
        if self.world.distributed:  # latents differ per rank, and resume exactly
            self.noise_rng.manual_seed(step_seed(self.seed, self.world.rank, self.state.step))
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        real_cond = () if labels is None else (labels,)  # extra arguments of D on real images
        penalized_d: Callable[[Tensor], Tensor] = self.discriminator
        if labels is not None:  # interpolates and R1 points are scored with the real labels
            penalized_d = functools.partial(self.discriminator, labels=labels)
        for d_step in range(self.d_steps):
            g_inputs = self.generator_inputs(batch)
            fake_cond = g_inputs[1:]  # the fakes' labels, if any
            with self._autocast():
                # Only the last D step's fakes are reused by G, so only they keep a graph.
                with torch.set_grad_enabled(d_step == self.d_steps - 1):
                    fake = G(*g_inputs)
                # Separate forward passes: BatchNorm never mixes real and fake.
                real_logits = D(real, *real_cond)
                fake_logits = D(fake.detach(), *fake_cond)
                loss_d = self.loss.discriminator_loss(real_logits, fake_logits)
                if self._penalty is not None:
                    # Penalties differentiate twice: the uncompiled network.
                    loss_d = loss_d + self._penalty(penalized_d, real, fake, self.noise_rng)
            self._optimizer_step(loss_d, self.d_optimizer, "discriminator")

        self.discriminator.requires_grad_(False)  # G's backward needs no grads for D's weights
        try:
            with self._autocast():
                after_logits = self._D_for_g(fake, *fake_cond)
                loss_g = self.loss.generator_loss(after_logits)
            self._optimizer_step(loss_g, self.g_optimizer, "generator")
        finally:
            self.discriminator.requires_grad_(True)
        self.scaler.update()
        with torch.no_grad():
            values = self.world.mean(
                torch.stack(
                    [
                        loss_d.detach().float(),
                        loss_g.detach().float(),
                        self._score(real_logits.detach()).float().mean(),
                        self._score(fake_logits.detach()).float().mean(),
                        self._score(after_logits.detach()).float().mean(),
                    ]
                )
            ).tolist()  # one device sync per step
        return dict(zip(METRIC_NAMES, values, strict=True))

    # ------------------------------------------------------------- validation

    def image_shape(self) -> tuple[int, ...]:
        """The generator's output shape (C, H, W)."""
        shape = getattr(self.gan, "image_shape", None)
        if shape is not None:
            return tuple(shape)
        was_training = self.generator.training
        self.generator.eval()
        with torch.no_grad():
            shape = tuple(self.generator(self._sample_noise(2, self.device, None)).shape[1:])
        self.generator.train(was_training)
        return shape

    def _check_data(self, source: BatchSource) -> None:
        if source.dataset_size == 0:
            raise ValueError("`data` is empty: there are no images to train on")
        if not source.iterable and len(source) == 0:
            raise ValueError(
                f"`data` has {source.dataset_size} images, fewer than one batch of "
                f"{source.batch_size} with drop_last=True"
            )
        images, labels = split_batch(source.sample_item())
        if self.num_classes is not None:
            if labels is None:
                raise ValueError(
                    f"the model is conditional (num_classes={self.num_classes}) but `data` has "
                    "no labels: pass (images, labels) tensors or a Dataset of (image, label)"
                )
            # Tensor data: every label, once (the model itself checks only CPU batches).
            all_labels = source.labels if source.labels is not None else labels.reshape(-1)
            check_labels(all_labels, self.num_classes)
        expected = self.image_shape()
        if images.dim() < 3 or tuple(images.shape[-3:]) != expected:
            raise ValueError(
                f"images must be shaped (C, H, W) = {expected} to match the generator's output, "
                f"got {tuple(images.shape[-3:]) if images.dim() >= 3 else tuple(images.shape)} "
                "from `data`"
            )
        if not images.is_floating_point():
            raise ValueError(
                f"images must be floating point and scaled to [-1, 1], got dtype {images.dtype}"
            )
        if images.numel() and (images.min() < -1.0 - 1e-3 or images.max() > 1.0 + 1e-3):
            warnings.warn(
                f"images range over [{images.min().item():.3g}, {images.max().item():.3g}]; "
                "the generator's Tanh output is [-1, 1] (use Normalize((0.5,), (0.5,)))",
                stacklevel=3,
            )

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
            "gan_config": getattr(self.gan, "config", None),
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
            self.noise_rng.manual_seed(self.seed + self.state.step)
        restore_rng_state(payload["rng"])
        self.callbacks.load_state_dict(payload["callbacks"])

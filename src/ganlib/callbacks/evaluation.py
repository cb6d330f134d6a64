"""Scores during training: the Fréchet distance of a fixed sample every N steps and signs
of mode collapse (stopping a run whose score has stopped improving is
[`EarlyStopping`][ganlib.callbacks.EarlyStopping]'s job)."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn
from typing_extensions import override

from .._logging import logger
from .._validation import check_int, check_mode, check_positive_float
from ..metrics.cache import cached_feature_stats
from ..metrics.distances import FeatureStats, frechet_distance
from ..metrics.features import embed
from ..metrics.mnist import class_scores
from ..metrics.mnist_classifier import load_mnist_classifier
from ..metrics.random_features import memorisation
from ..sampling import preserved_state, sample_images
from ..seeding import capture_rng_state, evaluation_seed, restore_rng_state
from .base import Callback
from .early_stopping import EarlyStopping, improves
from .ema import EMA

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["Evaluation"]

Extractor = Callable[[Tensor], Tensor]
ExtractorPrecision = Literal["auto", "32", "bf16"]


def _module_of(function: Any) -> nn.Module | None:
    """The network behind an extractor: itself, or the module a bound method belongs to."""
    if isinstance(function, nn.Module):
        return function
    owner = getattr(function, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


@contextlib.contextmanager
def _global_rng_untouched() -> Iterator[None]:
    """Torch's and Python's global random states as they were, after the block (a user's
    extractor may draw from them, as a dropout does)."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


@contextlib.contextmanager
def _in_eval_mode(module: nn.Module | None) -> Iterator[None]:
    """``module`` in eval mode for the block, then as it was (mode and buffers)."""
    if module is None:
        yield
        return
    with preserved_state(module):
        module.eval()
        yield


class Evaluation(Callback):
    """Every ``every_n_steps`` steps, scores a fixed sample of the generator against
    reference statistics and logs the scores with the step's metrics.

    The sample is ``num_samples`` images drawn from latents seeded by the run's seed
    ([`evaluation_seed`][ganlib.seeding.evaluation_seed]): the same latents at every
    evaluation and after a resume, so the scores compare. It is drawn from the EMA
    generator when the trainer has an [`EMA`][ganlib.callbacks.EMA] callback (``use_ema``),
    else from the live generator, through
    [`sample_images`][ganlib.sampling.sample_images], leaving the networks' modes and
    BatchNorm statistics and every random stream as they were: a run trains bitwise the
    same with this callback as without it.

    Scores, added to ``trainer.state.metrics`` (so ``metrics.csv``, the progress line,
    ``report.html``, TensorBoard and the loss curve show them) under ``prefix`` + name:

    - ``fd``: Fréchet distance to the reference in the extractor's feature space
      ([`frechet_distance`][ganlib.metrics.frechet_distance]); lower is better.
    - ``diversity``: the root mean square distance between two samples' features over
      the same for the reference, ``sqrt(tr Σ_samples / tr Σ_reference)`` (the mean
      squared distance over all pairs is exactly twice the covariance's trace): about 1
      for a healthy generator, far below 1 when it collapses onto a few modes.
    - with ``train`` images: ``memorisation``, the median over the samples of the
      distance to the nearest of those training images over the distance to the nearest
      reference image ([`memorisation`][ganlib.metrics.random_features.memorisation]):
      about 1 when the generator does not copy (``reference`` then being images it
      never saw, as many as ``train``), well below 1 when its samples sit on training
      images. The latest check's closest cases are kept as a picture
      (``nearest_picture``: the 8 samples with the lowest ratio over their nearest
      training and nearest reference images), which the run's report shows.
    - with a classifier ``head``: ``classes_covered`` (classes that get at least a
      quarter of a uniform share of the predictions) and ``kl_to_uniform`` (KL of the
      predicted class histogram to uniform, nats), from
      [`class_scores`][ganlib.metrics.class_scores]; a notice on the ``ganlib`` logger
      when the classes covered drop below the previous evaluation's.

    Reference images are embedded once: their statistics are cached on disk, keyed by
    the images' bytes, the extractor's weights and its precision
    ([`ganlib.metrics.cache`][ganlib.metrics.cache]), so later runs start at once.

    It runs before the callbacks that log the metrics (``order = -10``) and after the
    [`EMA`][ganlib.callbacks.EMA]. With ``ModelCheckpoint(monitor="fd")`` the checkpoint
    is saved at each evaluation whose FD is the best so far, as ``best.ckpt``; to stop a
    run whose FD has stopped improving add
    [`EarlyStopping("fd", patience=...)`][ganlib.callbacks.EarlyStopping] after it. Its
    history and best score are kept in checkpoints.

    Under distributed training every process evaluates (the same latents, the same
    weights, hence the same scores and the same decision to stop; a generator with
    SyncBatchNorm needs every process in its forward pass); rank 0 alone prints.

    Args:
        features: Maps images (B, C, H, W) in [-1, 1] to (B, D) features, such as
            ``MNISTClassifier.embed`` or ``InceptionFeatures()``; a network (or its
            method) runs in eval mode, on its own device.
        reference: Real images (N, C, H, W) in [-1, 1], embedded once (cached on disk
            with ``cache``), or their [`FeatureStats`][ganlib.metrics.FeatureStats].
        every_n_steps: Steps between evaluations.
        num_samples: Images scored at each evaluation, >= 2. FDs compare only at
            equal sample counts (fewer samples read higher).
        head: Maps the features to class logits (``MNISTClassifier.head``), for
            ``classes_covered`` and ``kl_to_uniform``.
        train: Training images of ``reference``'s shape (pass as many), for the
            ``memorisation`` score; needs ``reference`` as images held out of training.
        monitor: The score that decides the best evaluation: ``"fd"``, ``"diversity"``,
            or with a ``head`` ``"classes_covered"`` or ``"kl_to_uniform"``.
        mode: ``"min"`` or ``"max"``: which way ``monitor`` is better.
        patience: Deprecated: add ``EarlyStopping(monitor, patience=...)`` instead (still
            stops the run, through one, with a ``DeprecationWarning``).
        min_delta: An improvement must be larger than this, >= 0.
        at_end: Also evaluate at the run's last step (``max_steps``, or the last batch
            of ``max_epochs``) when it is not an evaluation step.
        use_ema: Sample the EMA generator: ``"auto"`` when an ``EMA`` callback is present.
        eval_mode: Sample with BatchNorm's running statistics (measured afresh for an EMA
            generator, on a copy); by default with the statistics of each batch, as
            the recipe samples.
        batch_size: Images per generator and extractor call (keep it large in train
            mode: BatchNorm normalises each batch by its own statistics).
        prefix: Put before every score's name, to keep two evaluations apart.
        precision: How the extractor and the sampled generator run: ``"32"`` (as
            given), ``"bf16"`` (both under bf16 autocast), or ``"auto"``, the run's fast
            settings where measured to keep the scores: an extractor this callback built
            ([`Evaluation.mnist`][ganlib.callbacks.Evaluation.mnist]) in channels_last,
            and in bf16 when the run trains in bf16 (its FDs within 0.15% of fp32's); an
            EMA copy sampled in channels_last, and the generator in bf16 in a bf16 run (a
            trained MNIST generator's FD moved 0.003% and 0.08%; docs/performance.md); an
            extractor given as it is.
        cache: Keep the reference's statistics in the on-disk cache
            ([`ganlib.metrics.cache`][ganlib.metrics.cache]; ``GANLIB_NO_CACHE=1`` turns
            it off everywhere).

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    order = -10  # after the EMA's update; before every callback that reads the metrics

    def __init__(
        self,
        features: Extractor,
        reference: Tensor | FeatureStats,
        *,
        every_n_steps: int = 1000,
        num_samples: int = 2000,
        head: Extractor | None = None,
        monitor: str = "fd",
        mode: Literal["min", "max"] = "min",
        patience: int | None = None,
        min_delta: float = 0.0,
        at_end: bool = True,
        use_ema: bool | Literal["auto"] = "auto",
        eval_mode: bool = False,
        batch_size: int = 500,
        prefix: str = "",
        precision: ExtractorPrecision = "auto",
        cache: bool = True,
        train: Tensor | None = None,
    ) -> None:
        if not callable(features):
            raise TypeError(
                "`features` must map images to features (a callable), "
                f"got {type(features).__name__}"
            )
        if head is not None and not callable(head):
            raise TypeError(
                f"`head` must map features to class logits (a callable), got {type(head).__name__}"
            )
        if not isinstance(reference, (Tensor, FeatureStats)):
            raise TypeError(
                "`reference` must be real images (N, C, H, W) or their FeatureStats, "
                f"got {type(reference).__name__}"
            )
        if isinstance(reference, Tensor) and (reference.dim() != 4 or len(reference) < 2):
            raise ValueError(
                "`reference` must be at least 2 images shaped (N, C, H, W), "
                f"got shape {tuple(reference.shape)}"
            )
        if train is not None and not (
            isinstance(reference, Tensor)
            and isinstance(train, Tensor)
            and train.dim() == 4
            and tuple(train.shape[1:]) == tuple(reference.shape[1:])
        ):
            raise ValueError(
                "`train` must be training images shaped like `reference`'s, with "
                f"`reference` as images, got {type(train).__name__} "
                f"{tuple(getattr(train, 'shape', ()))} and {type(reference).__name__}"
            )
        if not isinstance(prefix, str):
            raise TypeError(f"`prefix` must be a string, got {type(prefix).__name__}")
        self.features, self.head, self.prefix = features, head, prefix
        self.every_n_steps = check_int("every_n_steps", every_n_steps, 1)
        self.num_samples = check_int("num_samples", num_samples, 2)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.min_delta = check_positive_float("min_delta", min_delta, allow_zero=True)
        check_mode(mode)
        names = ["fd", "diversity"]
        names += ["classes_covered", "kl_to_uniform"] if head is not None else []
        if monitor not in names:
            raise ValueError(f"`monitor` must be one of {names} here, got {monitor!r}")
        if use_ema not in (True, False, "auto"):
            raise ValueError(f"`use_ema` must be True, False or 'auto', got {use_ema!r}")
        if precision not in ("auto", "32", "bf16"):
            raise ValueError(f"`precision` must be 'auto', '32' or 'bf16', got {precision!r}")
        self.monitor, self.mode, self.use_ema = monitor, mode, use_ema
        self.at_end, self.eval_mode = bool(at_end), bool(eval_mode)
        self.precision: ExtractorPrecision = precision
        self.cache = bool(cache)
        self._names = names + (["memorisation"] if train is not None else [])
        self._reference = reference
        # The memorisation check's images (uint8, for its picture) and features.
        self._train = train
        self._nearest: dict[str, Tensor] = {}
        self.nearest_picture: Tensor | None = None  # (3 rows of 8 images, [0, 1])
        self.reference: FeatureStats | None = (
            reference if isinstance(reference, FeatureStats) else None
        )
        self._owned: nn.Module | None = None  # a network built here, moved to the trainer's device
        # The extractor's (precision, channels_last), settled with the reference at fit,
        # and the sampled generator's (bf16, channels_last), settled at each fit.
        self._settings: tuple[str, bool] | None = None
        self._sampling: tuple[bool, bool] = (False, False)
        # Stopping is EarlyStopping's: `patience` (deprecated) adds one, run from here.
        self.early_stopping: EarlyStopping | None = None
        if patience is not None:
            self.early_stopping = EarlyStopping(
                prefix + monitor, patience=patience, min_delta=min_delta, mode=mode
            )
            warnings.warn(
                "Evaluation(patience=...) is deprecated: add "
                f"EarlyStopping({prefix + monitor!r}, patience={patience}, "
                f"min_delta={min_delta}, mode={mode!r}) to the callbacks after the Evaluation",
                DeprecationWarning,
                stacklevel=2,
            )
        # What a checkpoint keeps: every evaluation's scores, the best, the wait since it.
        self.steps: list[int] = []
        self.history: dict[str, list[float]] = {}
        self.best: float | None = None
        self.best_step: int | None = None
        self.bad_evaluations = 0

    @property
    def patience(self) -> int | None:
        """The deprecated ``patience``: that of the EarlyStopping it added, or ``None``."""
        return None if self.early_stopping is None else self.early_stopping.patience

    @property
    def stopped_step(self) -> int | None:
        """The step at which the deprecated ``patience`` stopped the run, or ``None``."""
        return None if self.early_stopping is None else self.early_stopping.stopped_step

    @classmethod
    def mnist(
        cls,
        reference: Tensor | FeatureStats,
        *,
        weights: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Evaluation:
        """Scores in the space of ganlib's shipped MNIST classifier
        ([`load_mnist_classifier`][ganlib.metrics.load_mnist_classifier]), with its head
        for the classes covered: for 28×28 grayscale digits in [-1, 1].

        Args:
            reference: Real digits (normally the 10k test split) or their statistics.
            weights: Other classifier weights of the same architecture (a Fashion-MNIST
                one, say); the shipped ones when ``None``.
            kwargs: The other [`Evaluation`][ganlib.callbacks.Evaluation] arguments.
        """
        classifier = load_mnist_classifier(weights)
        evaluation = cls(classifier.embed, reference, head=classifier.head, **kwargs)
        evaluation._owned = classifier
        return evaluation

    @property
    @override
    def state_key(self) -> str:
        return f"Evaluation[{self.prefix}]" if self.prefix else "Evaluation"

    @override
    def score_names(self) -> tuple[str, ...]:
        return tuple(self.prefix + name for name in self._names)

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        if self._owned is not None:
            self._owned.to(trainer.device)
        if self.use_ema is True and trainer.callback(EMA) is None:
            raise ValueError("Evaluation(use_ema=True) needs an EMA callback in the trainer")
        self._sampling = self._choose_sampling(trainer)
        if self.reference is None:
            assert isinstance(self._reference, Tensor)
            shape = tuple(trainer.gan.image_shape)
            if tuple(self._reference.shape[1:]) != shape:
                raise ValueError(
                    f"`reference` images must have the generator's shape {shape}, "
                    f"got {tuple(self._reference.shape[1:])}"
                )
            self._settings = self._choose_settings(trainer)
            if self._owned is not None and self._settings[1]:
                self._owned.to(memory_format=torch.channels_last)
            if self._train is not None:  # (the images' features, kept for the check)
                self._nearest = {
                    "held_out": self._embed(self._reference, trainer.device),
                    "train": self._embed(self._train, trainer.device),
                    "held_out_images": _as_bytes(self._reference),
                    "train_images": _as_bytes(self._train),
                }
                self._train = None
            self.reference = self._reference_stats(self._reference, trainer.device)
            self._reference = self.reference  # (the images are no longer needed)
        elif self._settings is None:  # statistics given: computed in fp32 unless told
            self._settings = ("32" if self.precision == "auto" else self.precision, False)

    def _choose_settings(self, trainer: Trainer) -> tuple[str, bool]:
        """The extractor's (precision, channels_last) for this run: as asked, or with
        ``"auto"`` the run's fast settings for an extractor built here (measured: within
        0.2% of fp32's FD for the MNIST classifier), fp32 as it is for one given."""
        if self.precision != "auto":
            return self.precision, False
        if self._owned is None:
            return "32", False
        bf16 = trainer.runtime.precision == "bf16"
        return ("bf16" if bf16 else "32"), trainer.device.type in ("cpu", "cuda")

    def _choose_sampling(self, trainer: Trainer) -> tuple[bool, bool]:
        """The sampled generator's (bf16, channels_last): with ``"auto"`` bf16 in a bf16
        run, and an EMA copy in channels_last on a CPU or GPU (measured: the FD of a
        trained MNIST generator's samples moved 0.08% and 0.003%); as it is otherwise."""
        if self.precision != "auto":
            return self.precision == "bf16", False
        channels_last = trainer.device.type in ("cpu", "cuda")
        return trainer.runtime.precision == "bf16", channels_last

    def _reference_stats(self, images: Tensor, device: torch.device) -> FeatureStats:
        """The reference images' statistics, from the on-disk cache where they are there."""
        precision, channels_last = self._settings or ("32", False)

        def compute() -> FeatureStats:
            return FeatureStats.of(self._embed(images, device))

        if not self.cache:
            return compute()
        return cached_feature_stats(
            self.features,
            images,
            compute,
            settings=f"precision {precision}, channels_last {channels_last}",
            what=f"Evaluation reference, {len(images)} images {tuple(images.shape[1:])}",
        )

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        step = trainer.state.step
        if step % self.every_n_steps == 0 or (self.at_end and _last_step(trainer)):
            scores = self.evaluate(trainer)
            # The dict the later callbacks receive as `metrics`: they log the scores.
            trainer.state.metrics.update(scores)
            self._record(trainer, scores)

    # --------------------------------------------------------------- scoring

    def _extractor_device(self, default: torch.device) -> torch.device:
        module = _module_of(self.features)
        parameter = next(module.parameters(), None) if module is not None else None
        return parameter.device if parameter is not None else default

    def _extract(self, images: Tensor) -> Tensor:
        """The extractor on one batch, in the precision and memory format settled at fit."""
        precision, channels_last = self._settings or ("32", False)
        if channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        if precision == "bf16":
            with torch.autocast(images.device.type, dtype=torch.bfloat16):
                return self.features(images).float()
        return self.features(images)

    def _embed(self, images: Any, device: torch.device) -> Tensor:
        with _global_rng_untouched(), _in_eval_mode(_module_of(self.features)):
            return embed(
                self._extract,
                images,
                batch_size=self.batch_size,
                device=self._extractor_device(device),
            )

    def _sampler(self, trainer: Trainer) -> tuple[nn.Module, str]:
        ema = trainer.callback(EMA)
        if self.use_ema and isinstance(ema, EMA) and ema.module is not None:
            return ema.module, "ema"
        return trainer.generator, "generator"

    @torch.no_grad()
    def evaluate(self, trainer: Trainer) -> dict[str, float]:
        """Score the fixed sample now (what each evaluation step does), without touching
        the networks' state or any random stream; returns the scores by name."""
        assert self.reference is not None, "the reference is embedded at on_fit_start"
        module, _ = self._sampler(trainer)
        labels = None
        if trainer.num_classes is not None:  # every class equally often
            labels = torch.arange(self.num_samples) % trainer.num_classes
        bf16, channels_last = self._sampling
        # (the live generator keeps its format: DDP and the optimizers hold its weights)
        channels_last = channels_last and module is not trainer.generator
        with _global_rng_untouched(), _memory_format(module, channels_last):
            with preserved_state(module):
                if self.eval_mode and module is not trainer.generator:
                    ema = trainer.callback(EMA)
                    assert isinstance(ema, EMA)
                    ema.recompute_batchnorm(trainer)  # undone when the block ends
                batches = sample_images(
                    module,
                    self.num_samples,
                    trainer.gan,
                    batch_size=self.batch_size,
                    seed=evaluation_seed(trainer.seed),
                    eval_mode=self.eval_mode,
                    labels=labels,
                )
                drawn = _in_bf16(batches, trainer.device.type) if bf16 else batches
                kept: list[Tensor] = []
                if self._nearest:
                    drawn = _keeping(drawn, kept)
                features = self._embed(drawn, trainer.device)
            stats = FeatureStats.of(features)
            scores = {
                "fd": frechet_distance(stats, self.reference),
                "diversity": math.sqrt(
                    float(stats.cov.trace()) / max(float(self.reference.cov.trace()), 1e-300)
                ),
            }
            if self.head is not None:
                device = self._extractor_device(trainer.device)
                with _in_eval_mode(_module_of(self.head)):
                    logits = self.head(features.to(device=device, dtype=torch.float32)).cpu()
                covered = class_scores(logits)
                scores["classes_covered"] = float(covered["classes_covered"])
                scores["kl_to_uniform"] = float(covered["kl_to_uniform"])
            if self._nearest:
                scores["memorisation"] = self._check_memorisation(features, torch.cat(kept))
        return {self.prefix + name: value for name, value in scores.items()}

    def _check_memorisation(self, features: Tensor, samples: Tensor) -> float:
        """The median ratio of the samples' nearest training and reference distances; keeps
        the picture of the 8 closest cases (samples, nearest training, nearest reference)."""
        near = self._nearest
        result = memorisation(features, near["train"], near["held_out"])
        closest = result.ratio.argsort()[:8]
        rows = (
            samples[closest],
            near["train_images"][result.nearest_train[closest]],
            near["held_out_images"][result.nearest_held_out[closest]],
        )
        self.nearest_picture = torch.cat(rows).float() / 255
        return result.median

    def _record(self, trainer: Trainer, scores: Mapping[str, float]) -> None:
        step = trainer.state.step
        previous = {name: values[-1] for name, values in self.history.items() if values}
        self.steps.append(step)
        for name, value in scores.items():
            self.history.setdefault(name, []).append(value)
        value = scores[self.prefix + self.monitor]
        if improves(value, self.best, self.mode, self.min_delta):
            self.best, self.best_step, self.bad_evaluations = value, step, 0
        else:
            self.bad_evaluations += 1
        if trainer.is_main_process:
            self._report(trainer, scores, previous)
        if self.early_stopping is not None:  # (the deprecated `patience`)
            self.early_stopping.check(trainer, value)

    def _report(
        self, trainer: Trainer, scores: Mapping[str, float], previous: Mapping[str, float]
    ) -> None:
        step, p = trainer.state.step, self.prefix
        _, source = self._sampler(trainer)
        shown = "  ".join(f"{name} {value:.4g}" for name, value in scores.items())
        best = (
            f"{p}{self.monitor} {self.best:.4g} at step {self.best_step}"
            if self.best is not None
            else "none"
        )
        logger.info(
            f"evaluation at step {step} ({source}, {self.num_samples} samples): {shown}  "
            f"(best {best})"
        )
        covered, before = scores.get(p + "classes_covered"), previous.get(p + "classes_covered")
        if covered is not None and before is not None and covered < before:
            most = max(self.history[p + "classes_covered"])
            logger.warning(
                f"Evaluation: classes covered fell from {before:.0f} to {covered:.0f} at step "
                f"{step} (best {most:.0f}): the generator may be collapsing onto fewer modes"
            )

    # ----------------------------------------------------------------- state

    @override
    def state_dict(self) -> dict[str, Any]:
        state = {
            "steps": list(self.steps),
            "history": {name: list(values) for name, values in self.history.items()},
            "best": self.best,
            "best_step": self.best_step,
            "bad_evaluations": self.bad_evaluations,
        }
        if self.early_stopping is not None:
            state["early_stopping"] = self.early_stopping.state_dict()
        return state

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.steps = [int(s) for s in state_dict["steps"]]
        self.history = {k: [float(v) for v in vs] for k, vs in state_dict["history"].items()}
        self.best = state_dict["best"]
        self.best_step = state_dict["best_step"]
        self.bad_evaluations = int(state_dict["bad_evaluations"])
        if self.early_stopping is not None:
            # (earlier releases kept the wait here: the evaluations since the best)
            self.early_stopping.load_state_dict(
                state_dict.get("early_stopping")
                or {
                    "best": self.best,
                    "best_step": self.best_step,
                    "wait": self.bad_evaluations,
                    "stopped_step": state_dict.get("stopped_step"),
                }
            )


@contextlib.contextmanager
def _memory_format(module: nn.Module, channels_last: bool) -> Iterator[None]:
    """``module``'s weights in channels_last for the block (when asked and not already),
    then as they were (the same values: a change of layout only)."""
    weights = [p for p in module.parameters() if p.dim() == 4]
    if not channels_last or all(
        w.is_contiguous(memory_format=torch.channels_last) for w in weights
    ):
        yield
        return
    module.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        module.to(memory_format=torch.contiguous_format)


def _in_bf16(batches: Iterable[Tensor], device_type: str) -> Iterator[Tensor]:
    """Each batch drawn under bf16 autocast, returned in float32."""
    iterator = iter(batches)
    while True:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            batch = next(iterator, None)
        if batch is None:
            return
        yield batch.float()


def _last_step(trainer: Trainer) -> bool:
    """Whether the step just done is the run's last by ``max_steps`` or ``max_epochs``."""
    state = trainer.state
    if trainer.max_steps is not None and state.step >= trainer.max_steps:
        return True
    return (
        trainer.max_epochs is not None
        and trainer.num_batches is not None
        and state.epoch + 1 >= trainer.max_epochs
        and state.batch_in_epoch >= trainer.num_batches
    )


def _as_bytes(images: Tensor) -> Tensor:
    """Images in [-1, 1] as uint8 on the CPU (what a picture of them needs)."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _keeping(batches: Iterable[Tensor], kept: list[Tensor]) -> Iterator[Tensor]:
    """``batches`` passed on, each also kept in ``kept`` as uint8 on the CPU."""
    for batch in batches:
        kept.append(_as_bytes(batch))
        yield batch

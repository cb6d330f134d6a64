"""The semi-supervised GAN (Salimans et al., 2016): its losses, its task, its classifier.

The discriminator is a ``K + 1``-class classifier whose fake class's logit is fixed at 0,
so it returns only the ``K`` real classes' logits ``l``. With ``Z = sum_k exp(l_k)`` its
probability that an image is real is ``D = Z / (Z + 1) = sigmoid(lse(l))``, where
``lse`` is the log-sum-exp over classes: the real/fake game is a binary cross-entropy
on the logit ``lse(l)``, and the class decision is ``argmax l``.

The losses are ``openai/improved-gan``'s ``train_mnist_feature_matching.py``, as pure
functions; each says which line it is, and where it computes the same value in a more
stable form. All return scalar means over the batch.
[`SemiSupervisedTask`][ganlib.tasks.SemiSupervisedTask] trains with them, one Trainer
step per reference iteration; [`load_classifier`][ganlib.tasks.load_classifier] reads
the product, the classifier, back from a run.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from .. import optim
from .._validation import check_choice, check_in_range, check_int, check_positive_float
from ..checkpoint import CheckpointError, load_checkpoint
from ..data.checks import check_data
from ..data.labels import IndexStream, choose_labelled, fingerprint, stream_seed
from ..gan import check_labels
from ..models.semi_supervised import (
    SemiSupervisedDiscriminator,
    SemiSupervisedGenerator,
    SemiSupervisedOutput,
    initialise_from_batch,
)
from ..runtime import Runtime
from ..sampling import generate, preserved_state, recompute_batchnorm
from .base import GridInputs, Task, TaskContext

if TYPE_CHECKING:
    from ..batching import Batch, BatchSource

__all__ = [
    "GENERATOR_LOSSES",
    "REFERENCE_ADAM",
    "SemiSupervisedTask",
    "feature_matching_loss",
    "generator_gan_loss",
    "load_classifier",
    "log_sum_exp",
    "supervised_loss",
    "unsupervised_loss",
]

GeneratorLoss = Literal["feature-matching", "gan"]
GENERATOR_LOSSES: tuple[str, ...] = ("feature-matching", "gan")
# The reference's Adam: lr 3e-3 and beta1 0.5 for both networks; its step divides by
# sqrt(v + 1e-8), which PyTorch's eps 1e-4 (dividing by sqrt(v) + eps) matches within a
# factor sqrt(2) where it matters (gradients below ~1e-4; see the prototype's docstring).
REFERENCE_ADAM: dict[str, Any] = {"lr": 3e-3, "betas": (0.5, 0.999), "eps": 1e-4}
METRIC_NAMES = ("loss_lab", "loss_unl", "loss_g", "train_error")


def log_sum_exp(logits: Tensor) -> Tensor:
    """``log(sum_k exp(logits[:, k]))`` per example: (B, K) -> (B,), the real/fake logit."""
    return torch.logsumexp(logits, dim=1)


def supervised_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the labelled batch over the ``K`` real classes.

    The reference's ``loss_lab = -mean(l_lab[y]) + mean(lse(l_lab))``: the fake class
    drops out of a labelled (hence real) example's class probabilities.

    Args:
        logits: (B, K) logits of labelled images.
        labels: (B,) their classes in [0, K).
    """
    return F.cross_entropy(logits, labels)


def unsupervised_loss(logits_unlabelled: Tensor, logits_fake: Tensor) -> Tensor:
    """The discriminator's real/fake loss in log-sum-exp form, the reference's ``loss_unl``.

    ``0.5 * (-mean(lse(u)) + mean(softplus(lse(u))) + mean(softplus(lse(f))))``: half the
    binary cross-entropy of "unlabelled is real" (``-log D(u)``) and "fake is fake"
    (``-log(1 - D(f))``). The factor 0.5 is the reference's (its total D loss is
    ``loss_lab + unlabeled_weight * loss_unl``). ``-lse + softplus(lse)`` is computed as
    the equal ``softplus(-lse)``, which does not lose digits to cancellation at large
    ``lse``.

    Args:
        logits_unlabelled: (B, K) logits of real unlabelled images.
        logits_fake: (B', K) logits of generated images.
    """
    real = F.softplus(-log_sum_exp(logits_unlabelled)).mean()  # -log D(u)
    fake = F.softplus(log_sum_exp(logits_fake)).mean()  # -log(1 - D(f))
    return 0.5 * (real + fake)


def feature_matching_loss(features_real: Tensor, features_fake: Tensor) -> Tensor:
    """The generator's feature matching loss, the reference's ``loss_gen``.

    ``mean((mean_batch(f_real) - mean_batch(f_fake))^2)``: the squared distance of the
    batches' mean discriminator features, averaged over features.

    Args:
        features_real: (B, F) features of real unlabelled images (no gradient needed).
        features_fake: (B', F) features of generated images.
    """
    return (features_real.mean(dim=0) - features_fake.mean(dim=0)).square().mean()


def generator_gan_loss(logits_fake: Tensor) -> Tensor:
    """The plain (non-saturating) GAN loss for the generator: ``mean(-log D(f))``.

    With ``D = sigmoid(lse(l))`` this is ``mean(softplus(-lse(l_fake)))``. (The
    reference trains its MNIST generator by feature matching only; this is the option
    Salimans et al. compare it with.)

    Args:
        logits_fake: (B, K) logits of generated images.
    """
    return F.softplus(-log_sum_exp(logits_fake)).mean()


class SemiSupervisedTask(Task):
    """The semi-supervised GAN: a ``K``-class discriminator that is also the classifier,
    trained on a few labelled examples, all images unlabelled and a generator's fakes.

    ``Trainer(task).fit((images, labels), batch_size=100)`` trains it on the whole training
    set; training reads the labels of the ``labelled`` examples only (chosen balanced per
    class by ``label_seed``, which reads every example's class, or given as indices;
    [`held_back`][ganlib.tasks.SemiSupervisedTask.held_back] hands the others to an
    evaluation). It trains in float32 (bf16 autocast measured to break its game). One
    Trainer step is one iteration of the reference:

    1. D on ``supervised_loss`` of a labelled batch plus ``unlabelled_weight *
       unsupervised_loss`` of the Trainer's batch (unlabelled) and as many fresh fakes, in
       one pass; then the averaged D moves toward D.
    2. G on ``feature_matching_loss`` against a second unlabelled batch (or the plain GAN
       loss, ``generator_loss="gan"``), D's trained parameters frozen.

    Three data streams feed it: the Trainer's epoch order (D's unlabelled batches), the
    labelled set tiled and each tile reshuffled, and a second, independent order of all
    images for G; the last two are [`IndexStream`][ganlib.data.labels.IndexStream]s of
    ``seed``, so their batches are a pure function of (seed, stream, position) and a
    resumed run draws exactly what an uninterrupted one does. The latents and D's noise
    layers draw from the run's step stream (``TaskContext.rng``). An **epoch** is the
    Trainer's: one pass of its batches over the training images, 600 steps for MNIST's
    60,000 in batches of 100, the reference's epoch.

    Before step 1, D's weight-normalised layers are initialised from ``init_size``
    training images (the reference's data-dependent pass; a resumed run does not redo it).

    The averaged D, the classifier the reference reports, is kept by the task itself (not
    an [`EMA`][ganlib.callbacks.EMA] callback): it is part of the reference's iteration, it
    must start from D after the data-dependent pass (an EMA copies D at ``on_fit_start``,
    before it), its decay is bias-corrected (``decay_t = 1 - (1 - decay) / (1 - decay^t)``:
    the weighted mean of D's weights so far; the reference's average starts at zero and
    holds 95% of that mean only after 30,000 steps), and the product must not depend on a
    callback list. It is in checkpoints (``task_state.average``);
    [`classify`][ganlib.tasks.SemiSupervisedTask.classify] and
    [`load_classifier`][ganlib.tasks.load_classifier] read it.

    Args:
        discriminator: The ``K``-class classifier-discriminator.
        generator: The generator (latents uniform on [0, 1), as the reference draws them).
        labelled: How many training examples keep their labels (a multiple of ``K``,
            balanced per class), or the indices of those examples in the data ``fit`` gets.
        label_seed: Seed of the labelled choice (with a count).
        seed: Seed of the task's two streams and of the initialisation batch; give the
            run's seed.
        generator_loss: ``"feature-matching"`` (the reference's) or ``"gan"`` (the plain
            non-saturating loss, ``-log D(G(z))``).
        unlabelled_weight: Weight of the unsupervised loss in D's loss (the reference's 1);
            0 is the supervised-only baseline: D trains on the labelled batches alone (no
            fakes, no unlabelled batch), G not at all (``loss_unl`` and ``loss_g`` log 0).
        d_optimizer: D's optimizer: Adam's settings over `REFERENCE_ADAM` (``{"lr":
            1e-3}``), ``None`` for `REFERENCE_ADAM`, or an optimizer / a function of
            parameters (which must leave out nothing that D trains).
        g_optimizer: The same for G.
        average_decay: Decay of the averaged D, in [0, 1) (the reference's 0.9999).
        init_size: Training images the data-dependent initialisation sees (500), >= 2.
        class_names: The ``K`` classes' names, recorded for the classifier's users
            (``ganlib classify`` prints them); ``None``: ``"0"``, ``"1"``, ...
        labels: The classes of all training images (N,), where ``fit`` gets the images
            alone (``ganlib train`` passes them so); the labelled examples' are used.

    Raises:
        TypeError, ValueError: For bad arguments, naming the argument.
    """

    kind: ClassVar[str] = "semi-supervised"
    image_network: ClassVar[str | None] = "generator"

    def __init__(
        self,
        discriminator: SemiSupervisedDiscriminator,
        generator: SemiSupervisedGenerator,
        *,
        labelled: int | Tensor | Sequence[int] = 100,
        label_seed: int = 0,
        seed: int = 0,
        generator_loss: GeneratorLoss = "feature-matching",
        unlabelled_weight: float = 1.0,
        d_optimizer: optim.OptimizerArg = None,
        g_optimizer: optim.OptimizerArg = None,
        average_decay: float = 0.9999,
        init_size: int = 500,
        class_names: Sequence[str] | None = None,
        labels: Tensor | Sequence[int] | None = None,
    ) -> None:
        if not isinstance(discriminator, SemiSupervisedDiscriminator):
            raise TypeError(
                "`discriminator` must be a SemiSupervisedDiscriminator (or a subclass), "
                f"got {type(discriminator).__name__}"
            )
        if not isinstance(generator, SemiSupervisedGenerator):
            raise TypeError(
                "`generator` must be a SemiSupervisedGenerator (or a subclass), "
                f"got {type(generator).__name__}"
            )
        if tuple(generator.image_shape) != tuple(discriminator.image_shape):
            raise ValueError(
                f"`generator` makes images shaped {tuple(generator.image_shape)}, but "
                f"`discriminator` takes {tuple(discriminator.image_shape)}"
            )
        self.discriminator, self.generator = discriminator, generator
        self.networks = {"generator": generator, "discriminator": discriminator}
        self.num_classes = discriminator.num_classes
        self.labelled = _check_labelled(labelled)
        self.label_seed = check_int("label_seed", label_seed)
        self.seed = check_int("seed", seed, 0)
        self.generator_loss = check_choice("generator_loss", generator_loss, GENERATOR_LOSSES)
        self.unlabelled_weight = check_positive_float(
            "unlabelled_weight", unlabelled_weight, allow_zero=True
        )
        self.average_decay = check_in_range(
            "average_decay", average_decay, 0.0, 1.0, high_open=True
        )
        self.supervised_only = self.unlabelled_weight == 0.0
        self.init_size = check_int("init_size", init_size, 2)
        names = [str(k) for k in range(self.num_classes)] if class_names is None else class_names
        if isinstance(names, str) or len(names) != self.num_classes:
            raise ValueError(
                f"`class_names` must name the {self.num_classes} classes, got {names!r}"
            )
        self.class_names = [str(name) for name in names]
        self._optimizer_args = {"d_optimizer": d_optimizer, "g_optimizer": g_optimizer}
        # What the data sets at check_data, and what a checkpoint restores.
        self.labelled_indices: Tensor | None = None
        self._labelled: tuple[Tensor, Tensor] | None = None
        self._images: Tensor | None = None
        self._all_labels = torch.empty(0, dtype=torch.int64)
        self._given_labels = None if labels is None else torch.as_tensor(labels)
        self._streams: dict[str, IndexStream] = {}
        self._expected_fingerprint: str | None = None
        self.positions = {"labelled": 0, "unlabelled": 0}
        self.initialised = False
        self.average_count = 0

    # ------------------------------------------------------------ set up

    def setup(self, context: TaskContext) -> None:
        """Build the optimizers (the reference's Adam by default), the averaged D and the
        callables the step uses.

        Raises:
            ValueError: For a precision other than float32.
        """
        if context.runtime.precision != "32":
            raise ValueError(
                "the semi-supervised task trains in float32: bf16 autocast measured to break "
                "its game on MNIST (D wins: loss_unl fell below 1e-3 and loss_g rose past 80 "
                "within 4 epochs; docs/results.md); got precision "
                f"{context.runtime.precision!r}: give precision='32' (--precision 32)"
            )
        super().setup(context)
        self.d_optimizer = self.build_optimizer(
            _over_reference(self._optimizer_args["d_optimizer"]), self.discriminator, "d_optimizer"
        )
        self.g_optimizer = self.build_optimizer(
            _over_reference(self._optimizer_args["g_optimizer"]), self.generator, "g_optimizer"
        )
        # The parameters D trains: the hidden layers' scales stay as the init pass set them,
        # so G's step freezes and unfreezes these only, never the whole of D.
        self._trainable = [p for p in self.discriminator.parameters() if p.requires_grad]
        self.discriminator.draw_noise_from(None)  # (the copy gets no stream of its own)
        self.averaged = copy.deepcopy(self.discriminator).eval().requires_grad_(False)
        # D's noise comes from the run's step stream: seeded by the run, and checkpointed.
        self.discriminator.draw_noise_from(context.rng)
        self._use_callables(context.runtime)

    def _use_callables(self, runtime: Runtime) -> None:
        if runtime.compile:
            self._d_call, self._g_call = (
                self.forward_of(self.discriminator),
                self.forward_of(self.generator),
            )
        else:
            self._d_call, self._g_call = self.discriminator, self.generator

    def start_run(self, steps: int | None) -> Runtime:
        runtime = super().start_run(steps)
        if not runtime.compile:  # a run too short to pay back compiling: the plain modules
            self._use_callables(runtime)
        return runtime

    @property
    def optimizers(self) -> dict[str, Optimizer]:
        return {"d_optimizer": self.d_optimizer, "g_optimizer": self.g_optimizer}

    # ------------------------------------------------------------- data

    def check_data(self, source: BatchSource) -> None:
        """Take the labelled set and all images from ``(images, labels)`` tensor data.

        Raises:
            ValueError: For data that is not (images, labels) tensors, images of another
                shape than D's, labels outside [0, K), several processes, a labelled count
                the classes cannot fill, indices outside the data, or data whose labelled
                choice is not a loaded checkpoint's.
        """
        images = source.images
        labels = source.labels if source.labels is not None else self._given_labels
        if images is None or labels is None:
            got = "a Dataset or DataLoader" if images is None else "images without labels"
            raise ValueError(
                "`data` must be (images, labels) tensors for the semi-supervised task, or "
                "images with the task's `labels` (it draws its labelled batches and G's real "
                f"batches by index), got {got}"
            )
        if len(labels) != len(images):
            raise ValueError(
                f"`labels` must give one class per image: {len(images)} images, "
                f"{len(labels)} labels"
            )
        if source.world_size > 1:
            raise ValueError(
                "the semi-supervised task trains in one process (its streams are not split "
                f"among processes), got world_size {source.world_size}"
            )
        shape = tuple(self.discriminator.image_shape)
        check_data(source, shape, self.num_classes if source.labels is not None else None)
        check_labels(labels, self.num_classes)
        targets = labels.detach().to("cpu", torch.int64)
        if isinstance(self.labelled, int):
            chosen = choose_labelled(
                targets, self.labelled, self.label_seed, num_classes=self.num_classes
            )
        else:
            chosen = self.labelled
            if int(chosen.max()) >= len(images):
                raise ValueError(
                    f"`labelled` indices must be below the {len(images)} images of `data`, "
                    f"got {int(chosen.max())}"
                )
        self._check_fingerprint(fingerprint(chosen), "this data's")
        device = self.context.device
        self.labelled_indices = chosen
        at = chosen.to(images.device)
        self._labelled = images[at].to(device), labels[at].to(device, torch.int64)
        self._images = images  # all of them, where the data lives (the device, preloaded)
        self._all_labels = targets  # (for held_back only: training reads the labelled set's)
        self._streams = {
            "labelled": IndexStream(len(chosen), self.seed, "labelled"),
            "unlabelled": IndexStream(len(images), self.seed, "unlabelled"),
        }

    def held_back(self) -> tuple[Tensor, Tensor]:
        """The training examples outside the labelled set, with their classes, on the CPU:
        where a data set has no test split, the error on these measures the classifier
        (they were trained on as unlabelled images). Training never reads these labels.

        Raises:
            RuntimeError: Before `check_data` has seen the data.
        """
        if self._images is None or self.labelled_indices is None:
            raise RuntimeError("SemiSupervisedTask.held_back: the task has not seen the data")
        keep = torch.ones(len(self._images), dtype=torch.bool)
        keep[self.labelled_indices] = False
        return self._images[keep.to(self._images.device)].cpu(), self._all_labels[keep]

    def _check_fingerprint(self, found: str, whose: str) -> None:
        expected = self._expected_fingerprint
        if self.labelled_indices is not None:
            expected = fingerprint(self.labelled_indices)
        if expected is not None and found != expected:
            raise ValueError(
                f"the checkpoint's labelled examples (fingerprint {expected}) are not "
                f"{whose} (fingerprint {found}): resume with the same data, labels and "
                "label seed"
            )

    def _draw(self, stream: str, count: int) -> Tensor:
        """The next ``count`` indices of ``stream``, advancing its position."""
        indices = self._streams[stream].take(self.positions[stream], count)
        self.positions[stream] += count
        return indices

    def _real(self, indices: Tensor) -> Tensor:
        assert self._images is not None
        return self._images[indices.to(self._images.device)].to(self.context.device)

    def _initialise(self) -> None:
        """The reference's data-dependent pass over ``init_size`` training images."""
        assert self._images is not None
        count = min(self.init_size, len(self._images))
        order = IndexStream(len(self._images), self.seed, "initialisation")
        initialise_from_batch(self.discriminator, self._real(order.take(0, count)).float())
        self.initialised = True

    # --------------------------------------------------------- training

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        unlabelled, _ = batch  # the data's labels are not read: the labelled set is held here
        if self._labelled is None:
            raise RuntimeError("SemiSupervisedTask.check_data must see the data before a step")
        if not self.initialised:
            self._initialise()
        n, device, rng = len(unlabelled), self.context.device, self.context.rng
        labelled = self._draw("labelled", n).to(self._labelled[0].device)
        x_lab, y_lab = self._labelled[0][labelled], self._labelled[1][labelled]
        if self.supervised_only:  # the baseline: D on the labels alone, G untrained
            with self.runtime.autocast():
                logits_lab = self._discriminate(x_lab).logits.float()
            loss_lab = supervised_loss(logits_lab, y_lab)
            self.optimizer_step(loss_lab, self.d_optimizer, "discriminator")
            self._update_average()
            loss_unl = loss_g = torch.zeros((), device=device)
        else:
            with self.runtime.autocast():
                with torch.no_grad():
                    fake = self.generator(self.generator.sample_latents(n, device, rng))
                batch_d = torch.cat([x_lab, unlabelled.to(x_lab.dtype), fake.float()])
                logits = self._discriminate(batch_d).logits.float()
            logits_lab, logits_unl, logits_fake = logits.split(n)
            loss_lab = supervised_loss(logits_lab, y_lab)
            loss_unl = unsupervised_loss(logits_unl, logits_fake)
            loss_d = loss_lab + self.unlabelled_weight * loss_unl
            self.optimizer_step(loss_d, self.d_optimizer, "discriminator")
            self._update_average()
            loss_g = self._generator_step(n)
        wrong = (logits_lab.detach().argmax(dim=1) != y_lab).float().mean() * 100.0
        values = torch.stack([loss_lab.detach(), loss_unl.detach(), loss_g.detach(), wrong])
        numbers = self.context.reduce(values.float()).tolist()
        return dict(zip(METRIC_NAMES, numbers, strict=True))

    def _discriminate(self, images: Tensor) -> SemiSupervisedOutput:
        return cast(SemiSupervisedOutput, self._d_call(images))

    def _generator_step(self, n: int) -> Tensor:
        """G's update against D, whose trained parameters are frozen meanwhile."""
        device, rng = self.context.device, self.context.rng
        for parameter in self._trainable:
            parameter.requires_grad_(False)
        try:
            with self.runtime.autocast():
                fake = self._g_call(self.generator.sample_latents(n, device, rng))
                out = self.discriminator(fake)  # (read, not updated: called plain)
                if self.generator_loss == "feature-matching":
                    real = self._real(self._draw("unlabelled", n))
                    with torch.no_grad():
                        features_real = self.discriminator(real).features
                    loss = feature_matching_loss(features_real.float(), out.features.float())
                else:
                    loss = generator_gan_loss(out.logits.float())
            self.optimizer_step(loss, self.g_optimizer, "generator")
        finally:
            for parameter in self._trainable:
                parameter.requires_grad_(True)
        return loss

    @torch.no_grad()
    def _update_average(self) -> None:
        """Move the averaged D toward D, bias-corrected: after ``t`` updates it is the
        mean of D's weights weighted by ``decay^(t - s)`` (a copy at the first)."""
        self.average_count += 1
        decay = self.average_decay
        rate = (1.0 - decay) / (1.0 - decay**self.average_count)
        averaged: list[Tensor] = list(self.averaged.parameters())
        live = [p.detach() for p in self.discriminator.parameters()]
        if self.average_count == 1:
            torch._foreach_copy_(averaged, live)
        else:
            torch._foreach_lerp_(averaged, live, rate)

    def describe(self) -> str:
        count = self.labelled if isinstance(self.labelled, int) else len(self.labelled)
        if self.supervised_only:
            return (
                f"supervised-only baseline: {self.num_classes}-class D "
                f"{list(self.discriminator.widths)} on {count} labelled examples; averaged D "
                f"(decay {self.average_decay:g})"
            )
        return (
            f"semi-supervised GAN: {self.num_classes}-class D {list(self.discriminator.widths)}, "
            f"G {list(self.generator.widths)} by {self.generator_loss}; {count} labelled "
            f"examples; averaged D (decay {self.average_decay:g})"
        )

    def metric_groups(self) -> dict[str, tuple[str, ...]]:
        return {"losses": METRIC_NAMES[:3], "labelled batch error (%)": METRIC_NAMES[3:]}

    # --------------------------------------------------------- the product

    @torch.no_grad()
    def classify(self, images: Tensor, *, averaged: bool = False) -> Tensor:
        """Class logits (B, K), float32, of images (B, C, H, W) in [-1, 1]: D's, or the
        averaged D's, without noise (eval mode), leaving both as they were."""
        network = self.averaged if averaged else self.discriminator
        with preserved_state(network):
            network.eval()
            device = next(network.parameters()).device
            return network(images.to(device)).logits.float()

    def classifier(self, *, averaged: bool = True) -> nn.Sequential:
        """A plain copy of the classifier (the averaged D's by default), as
        [`SemiSupervisedDiscriminator.classifier`][ganlib.models.semi_supervised.SemiSupervisedDiscriminator.classifier]."""
        return (self.averaged if averaged else self.discriminator).classifier()

    # ------------------------------------------------------------ samples

    def grid_inputs(
        self, count: int, nrow: int, rng: torch.Generator, batch: Batch | None
    ) -> tuple[GridInputs, int]:
        return {"latents": self.generator.sample_latents(count, rng.device, rng).cpu()}, nrow

    def grid(
        self,
        inputs: Mapping[str, Tensor | None],
        networks: Mapping[str, nn.Module],
        eval_mode: bool,
    ) -> Tensor:
        """G's images; in eval mode from a copy whose BatchNorm statistics were measured
        afresh (seeded from ``seed``), so the network is left untouched."""
        generator, latents = networks["generator"], inputs["latents"]
        assert latents is not None
        device = next(generator.parameters()).device
        if eval_mode:
            generator = recompute_batchnorm(
                copy.deepcopy(generator), self, stream_seed(self.seed, "batchnorm", 0)
            )
        return generate(generator, latents.to(device), eval_mode)

    def generator_inputs(
        self, n: int, device: torch.device, rng: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        return (self.generator.sample_latents(n, device, rng),)

    # ---------------------------------------------------------- state

    @property
    def config(self) -> dict[str, Any]:
        labelled = self.labelled if isinstance(self.labelled, int) else len(self.labelled)
        return {
            "discriminator": self.discriminator.config,
            "generator": self.generator.config,
            "labelled": labelled,
            "label_seed": self.label_seed,
            "seed": self.seed,
            "generator_loss": self.generator_loss,
            "unlabelled_weight": self.unlabelled_weight,
            "average_decay": self.average_decay,
            "init_size": self.init_size,
            "class_names": list(self.class_names),
        }

    def extra_state(self) -> dict[str, Any]:
        """The streams' positions, whether D was initialised, the labelled choice and the
        averaged D."""
        indices = self.labelled_indices
        return {
            "initialised": self.initialised,
            "positions": dict(self.positions),
            "labelled_indices": None if indices is None else indices.clone(),
            "labelled_fingerprint": None if indices is None else fingerprint(indices),
            "average": self.averaged.state_dict(),
            "average_count": self.average_count,
        }

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `extra_state` wrote.

        Raises:
            ValueError: For a state without these entries, or a labelled choice other
                than this run's data's.
        """
        missing = {"initialised", "positions", "average", "average_count"} - set(state)
        if missing:
            raise ValueError(f"`task_state` lacks {sorted(missing)}")
        found = state.get("labelled_fingerprint")
        if found is not None:
            self._check_fingerprint(found, "this run's")
        self.averaged.load_state_dict(state["average"])
        self.positions = {name: int(value) for name, value in state["positions"].items()}
        self.initialised = bool(state["initialised"])
        self.average_count = int(state["average_count"])
        self._expected_fingerprint = found


def _check_labelled(labelled: Any) -> int | Tensor:
    if isinstance(labelled, (Tensor, Sequence)) and not isinstance(labelled, str):
        indices = torch.as_tensor(labelled)
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise TypeError(f"`labelled` indices must be integers, got dtype {indices.dtype}")
        if indices.ndim != 1 or len(indices) < 1:
            raise ValueError(
                f"`labelled` indices must be 1-D and non-empty, got shape {tuple(indices.shape)}"
            )
        indices = indices.to("cpu", torch.int64)
        if int(indices.min()) < 0 or len(indices.unique()) != len(indices):
            raise ValueError("`labelled` indices must be distinct and >= 0")
        return indices.sort().values
    return check_int("labelled", labelled, 1)


def _over_reference(arg: optim.OptimizerArg) -> optim.OptimizerArg:
    """Adam's settings over the reference's (an optimizer or a function is kept)."""
    if arg is None or isinstance(arg, Mapping):
        return {**REFERENCE_ADAM, **(arg or {})}
    return arg


def load_classifier(
    run: str | os.PathLike[str],
    *,
    averaged: bool = True,
    checkpoint: Literal["last", "best"] = "last",
) -> nn.Sequential:
    """The classifier a semi-supervised run trained, as a plain ``nn.Module``: images
    (B, C, H, W) in [-1, 1] to ``K`` class logits, noise off, float32 on the CPU.

    It is an ``nn.Sequential`` of ``Flatten``, ``Linear`` and ``ReLU`` layers
    ([`SemiSupervisedDiscriminator.classifier`][ganlib.models.semi_supervised.SemiSupervisedDiscriminator.classifier]),
    with two plain attributes: ``image_shape`` (C, H, W), the images it takes, and
    ``class_names``, the run's names of the ``K`` classes.

    ```python
    from ganlib.tasks import load_classifier

    classifier = load_classifier("runs/ssl")
    predicted = classifier(images).argmax(dim=1)
    ```

    Args:
        run: A run folder, or a checkpoint file of a semi-supervised run.
        averaged: The averaged D's weights (the run's product) where the checkpoint has
            them; ``False``: the live D's.
        checkpoint: For a run folder: ``"last"``, its newest checkpoint (the default: no
            choice made on the evaluation images), or ``"best"``, its ``best.ckpt`` (the
            evaluation with the lowest averaged error).

    Raises:
        CheckpointError: For a file that is not a semi-supervised run's checkpoint, a run
            without such a checkpoint, or weights that do not fit their configuration.
    """
    check_choice("checkpoint", checkpoint, ("last", "best"))
    path = _run_checkpoint(Path(run), checkpoint)
    payload = load_checkpoint(path)
    if payload.get("task") != SemiSupervisedTask.kind:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {payload.get('task') or 'adversarial'!r} task, "
            "not a semi-supervised one: it has no classifier"
        )
    try:
        config = dict(payload["task_config"]["discriminator"])
        with torch.device("meta"):  # count the parameters before allocating them
            planned = sum(p.numel() for p in SemiSupervisedDiscriminator(**config).parameters())
        live = payload["networks"]["discriminator"]
        if planned > 2 * sum(t.numel() for t in live.values()) + 1_000_000:
            raise ValueError(f"its configuration builds {planned:,} parameters, more than it holds")
        state = payload.get("task_state", {})
        use_average = averaged and state.get("average_count", 0) > 0
        with torch.random.fork_rng(devices=[]):  # building initialises: leave the RNG alone
            discriminator = SemiSupervisedDiscriminator(**config)
        discriminator.load_state_dict(state["average"] if use_average else live)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: its discriminator cannot be rebuilt: {exc}"
        ) from exc
    classifier = discriminator.classifier()
    # What a user of the classifier needs to feed it and read it (plain attributes).
    names = payload["task_config"].get("class_names")
    setattr(classifier, "image_shape", tuple(discriminator.image_shape))  # noqa: B010
    if not isinstance(names, list) or len(names) != discriminator.num_classes:
        names = list(range(discriminator.num_classes))
    setattr(classifier, "class_names", [str(name) for name in names])  # noqa: B010
    return classifier


def _run_checkpoint(run: Path, which: str) -> Path:
    """The checkpoint file ``run`` names: itself, or its run folder's last or best."""
    if run.is_file():
        return run
    from ..runs.folder import CHECKPOINTS, RunFolder  # (runs imports the tasks)

    if which == "best":
        for candidate in (run / CHECKPOINTS / "best.ckpt", run / "best.ckpt"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"{str(run)!r} has no best.ckpt (a run tracking its test error saves one)"
        )
    return RunFolder(run).checkpoint()

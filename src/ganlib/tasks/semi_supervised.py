"""The semi-supervised GAN's losses (Salimans et al., 2016), as pure functions.

The discriminator is a ``K + 1``-class classifier whose fake class's logit is fixed at 0,
so it returns only the ``K`` real classes' logits ``l``. With ``Z = sum_k exp(l_k)`` its
probability that an image is real is ``D = Z / (Z + 1) = sigmoid(lse(l))``, where
``lse`` is the log-sum-exp over classes: the real/fake game is a binary cross-entropy
on the logit ``lse(l)``, and the class decision is ``argmax l``.

The formulas are ``openai/improved-gan``'s ``train_mnist_feature_matching.py``; each
function says which line it is, and where it computes the same value in a more stable
form. All return scalar means over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "feature_matching_loss",
    "generator_gan_loss",
    "log_sum_exp",
    "supervised_loss",
    "unsupervised_loss",
]


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

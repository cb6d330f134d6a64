"""Checks on training data before the first step: shape, dtype, values, labels.

Tensor data is checked whole (vectorised: one pass over the images); a Dataset or
DataLoader is checked on its first item, and the Trainer's non-finite guard catches
what later batches bring.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..batching import BatchSource, split_batch
from ..gan import check_labels

__all__ = ["check_data", "check_not_empty"]


def _check_tensor_images(images: Tensor, labels: Tensor | None) -> None:
    if images.dim() != 4:
        hint = {
            3: "; a single image or images without a channel axis? use images.unsqueeze(1) "
            "for (N, H, W), images.unsqueeze(0) for one (C, H, W) image",
            5: "; squeeze the extra axis",
        }.get(images.dim(), "")
        raise ValueError(
            f"`data` images must be a 4-d tensor (N, C, H, W), got shape {tuple(images.shape)}"
            + hint
        )
    if labels is not None and len(labels) != len(images):
        raise ValueError(
            f"`data` labels must hold one class per image: {len(images)} images, "
            f"{len(labels)} labels"
        )
    if images.is_floating_point():
        bad = ~torch.isfinite(images.reshape(len(images), -1)).all(1)
        if bad.any():
            first = int(bad.nonzero()[0])
            raise ValueError(
                f"`data` holds NaN or infinite values in {int(bad.sum())} images "
                f"(the first is image {first}); clean or drop them before training"
            )


def _warn_range(low: float, high: float) -> None:
    if low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
        advice = "use Normalize((0.5,), (0.5,)) after ToTensor, or x / 127.5 - 1 for [0, 255]"
    elif low >= 0.0 and high > 0.5:
        advice = (
            "they look like [0, 1] (ToTensor without Normalize): use Normalize((0.5,), (0.5,)), "
            "or x * 2 - 1"
        )
    else:
        return
    warnings.warn(
        f"images range over [{low:.3g}, {high:.3g}]; the generator's Tanh output is [-1, 1]: "
        + advice,
        stacklevel=4,
    )


def check_not_empty(source: BatchSource) -> None:
    """Refuse data with no batches to train on, before any step runs (every task's check).

    Raises:
        ValueError: Empty data, or fewer images than one batch with ``drop_last``.
    """
    if source.dataset_size == 0:
        raise ValueError("`data` is empty: there are no images to train on")
    if not source.iterable and len(source) == 0:
        raise ValueError(
            f"`data` has {source.dataset_size} images, fewer than one batch of "
            f"{source.batch_size} with drop_last=True"
        )


def check_data(source: BatchSource, image_shape: tuple[int, ...], num_classes: int | None) -> None:
    """Refuse data that cannot train a pair with this image shape and these classes,
    before any step runs, and warn about images outside [-1, 1].

    Raises:
        ValueError: Empty data, fewer images than one batch with ``drop_last``,
            images of the wrong rank or shape, integer images, NaN or infinite
            values, a label count that differs from the image count, missing labels
            for a conditional pair, or labels out of range.
    """
    check_not_empty(source)
    whole = source.images
    if whole is not None:
        _check_tensor_images(whole, source.labels)
    images, labels = split_batch(source.sample_item())
    if num_classes is not None:
        if labels is None:
            raise ValueError(
                f"the model is conditional (num_classes={num_classes}) but `data` has "
                "no labels: pass (images, labels) tensors or a Dataset of (image, label)"
            )
        # Tensor data: every label, once (the model itself checks only CPU batches).
        all_labels = source.labels if source.labels is not None else labels.reshape(-1)
        check_labels(all_labels, num_classes)
    expected = tuple(image_shape)
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
    if whole is None and not bool(torch.isfinite(images).all()):
        raise ValueError("`data`'s first item holds NaN or infinite values")
    checked = whole if whole is not None else images
    if checked.numel():
        _warn_range(float(checked.min()), float(checked.max()))

"""Choosing the labelled examples of a semi-supervised run, naming the choice, and the
seeded streams its batches are drawn from.

``choose_labelled(labels, count, seed)`` takes ``count / K`` examples of each of the
``K`` classes, the same ones for the same seed; ``fingerprint(indices)`` is a short hash
of the chosen indices that a run records beside the seed, so two runs can be seen to
share (or not) their labelled set. ``IndexStream(n, seed, name)`` is an endless order of
``n`` items, pass after pass, each pass a permutation drawn from (seed, name, pass): the
items at any position are a pure function of those, so a run resumes exactly from the
position alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

from .._validation import check_int

__all__ = ["IndexStream", "choose_labelled", "fingerprint", "stream_seed"]


def choose_labelled(
    labels: Tensor | Sequence[int],
    count: int,
    seed: int,
    *,
    num_classes: int | None = None,
) -> Tensor:
    """Indices of ``count`` examples, balanced per class, chosen by ``seed``.

    One seeded permutation of all examples is drawn and each class keeps its first
    ``count / K`` examples in that order (the reference's rule), so a larger ``count``
    with the same seed extends a smaller one's choice.

    Args:
        labels: (N,) integer classes of the whole training set, in [0, K).
        count: How many labelled examples in all; a multiple of ``K``.
        seed: Seed of the choice (any int; the same seed gives the same indices).
        num_classes: ``K``; ``labels.max() + 1`` when ``None``.

    Returns:
        The chosen indices into ``labels``, (count,) int64, sorted ascending.

    Raises:
        TypeError: If ``labels`` is not integer or ``count``/``seed`` not ints.
        ValueError: If ``labels`` is not 1-D and non-empty, holds a class outside [0, K),
            ``count`` is not a positive multiple of ``K``, or a class has fewer than
            ``count / K`` examples.
    """
    targets = torch.as_tensor(labels)
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise TypeError(f"`labels` must hold integer classes, got dtype {targets.dtype}")
    if targets.ndim != 1 or targets.numel() == 0:
        raise ValueError(f"`labels` must be 1-D and non-empty, got shape {tuple(targets.shape)}")
    targets = targets.to(device="cpu", dtype=torch.int64)
    count = check_int("count", count, 1)
    seed = check_int("seed", seed)
    lowest, highest = int(targets.min()), int(targets.max())
    classes = highest + 1 if num_classes is None else check_int("num_classes", num_classes, 1)
    if lowest < 0 or highest >= classes:
        raise ValueError(
            f"`labels` must be classes in [0, {classes}), got values in [{lowest}, {highest}]"
        )
    if count % classes:
        raise ValueError(f"`count` must be a multiple of the {classes} classes, got {count}")
    per_class = count // classes
    sizes = torch.bincount(targets, minlength=classes)
    short = [k for k in range(classes) if int(sizes[k]) < per_class]
    if short:
        k = short[0]
        raise ValueError(
            f"`count` {count} needs {per_class} examples of each class, but class {k} has "
            f"{int(sizes[k])}"
        )
    rng = torch.Generator().manual_seed(seed % 2**63)
    order = torch.randperm(len(targets), generator=rng)  # one permutation, as the reference
    shuffled = targets[order]
    chosen = [order[shuffled == k][:per_class] for k in range(classes)]
    return torch.cat(chosen).sort().values


def fingerprint(indices: Tensor | Sequence[int]) -> str:
    """A short name of a set of indices: the first 16 hex digits of the sha256 of their
    sorted int64 little-endian bytes (so the order they are given in does not matter).

    Raises:
        ValueError: If ``indices`` is not 1-D.
    """
    values = torch.as_tensor(indices)
    if values.ndim != 1:
        raise ValueError(f"`indices` must be 1-D, got shape {tuple(values.shape)}")
    data = values.to(device="cpu", dtype=torch.int64).sort().values.numpy().astype("<i8")
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


def stream_seed(seed: int, name: str, index: int) -> int:
    """A 63-bit seed for pass ``index`` of stream ``name`` of a run seeded ``seed``: the
    first 8 bytes of the sha256 of ``"seed/name/index"`` (the same on every machine and
    Python, unlike ``hash``)."""
    digest = hashlib.sha256(f"{seed}/{name}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**63


class IndexStream:
    """An endless order of ``n`` items: pass 0, pass 1, ..., each a permutation of
    ``range(n)`` seeded by ``stream_seed(seed, name, pass)``.

    ``take(position, count)`` returns the items at positions ``[position, position +
    count)``; a batch may span the end of one pass and the start of the next (so a
    labelled set smaller than a batch is tiled, each tile reshuffled, as the reference
    tiles it). Nothing but the position is state.

    Args:
        n: Items in one pass.
        seed: The run's seed.
        name: The stream's name; streams of one seed with other names are independent.

    Raises:
        ValueError: If ``n`` is below 1.
    """

    def __init__(self, n: int, seed: int, name: str) -> None:
        self.n = check_int("n", n, 1)
        self.seed = check_int("seed", seed)
        self.name = name
        self._cached: tuple[int, Tensor] | None = None

    def permutation(self, index: int) -> Tensor:
        """Pass ``index``'s order, (n,) int64 on the CPU (the latest pass is cached)."""
        if self._cached is None or self._cached[0] != index:
            rng = torch.Generator().manual_seed(stream_seed(self.seed, self.name, index))
            self._cached = index, torch.randperm(self.n, generator=rng)
        return self._cached[1]

    def take(self, position: int, count: int) -> Tensor:
        """The items at positions ``[position, position + count)``, (count,) int64.

        Raises:
            ValueError: For a negative ``position`` or a ``count`` below 1.
        """
        position = check_int("position", position, 0)
        count = check_int("count", count, 1)
        parts, end = [], position + count
        while position < end:
            index, offset = divmod(position, self.n)
            stop = min(self.n, offset + end - position)
            parts.append(self.permutation(index)[offset:stop])
            position += stop - offset
        return torch.cat(parts)

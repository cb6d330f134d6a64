"""Deterministic, resumable batches from a tensor, a Dataset or a DataLoader.

The order of every epoch is a pure function of ``(seed, epoch)``, so training
can resume at any batch of any epoch without replaying the batches before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, RandomSampler

from .seeding import epoch_seed, worker_seed

__all__ = ["Batch", "BatchSource", "epoch_seed", "split_batch"]

# (images, labels or None), on the training device.
Batch = tuple[Tensor, Tensor | None]


def split_batch(batch: Any) -> tuple[Tensor, Tensor | None]:
    """Images and optional labels from a batch that is a tensor or an (images, labels) pair
    (or one Dataset item: an (image, class index) pair).

    Raises:
        TypeError: If the batch is neither.
    """
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Tensor):
        labels = batch[1] if len(batch) > 1 else None
        if isinstance(labels, int) and not isinstance(labels, bool):  # one Dataset item's class
            labels = torch.tensor(labels)
        return batch[0], labels if isinstance(labels, Tensor) else None
    raise TypeError(
        f"batches must be image tensors or (images, labels) pairs, got {type(batch).__name__}"
    )


class BatchSource:
    """Serves the batches of each epoch in a reproducible order.

    Args:
        data: A tensor of images (N, C, H, W), a pair ``(images, labels)`` of
            tensors, a map-style or iterable ``Dataset``, or a ``DataLoader``
            (its dataset, batch size, sampler, collate function and workers are
            kept; its shuffling is re-seeded per epoch).
        batch_size: Batch size for tensors and datasets (a DataLoader keeps its own).
        shuffle: Whether tensors and datasets are shuffled each epoch.
        drop_last: Whether a last, smaller batch is dropped (tensors and datasets).
        num_workers: Loader worker processes for datasets.
        seed: The run's seed; each epoch's order derives from it.
        device: Where batches are delivered.
        dtype: The floating dtype images are delivered in (the networks' own: the Trainer
            passes its discriminator's); floating images of another dtype (numpy's float64,
            fp16, bf16) are cast to it, integer images are left for the data checks.
        preload: Move tensor data to ``device`` once and gather batches there
            (the order is the same as without it).
        rank: This process's rank when training in several processes.
        world_size: Number of processes; above 1, each epoch's order is split
            among them as `DistributedSampler` splits it
            (shuffled from ``seed + epoch``, padded so every rank gets as many
            batches); a DataLoader's own sampler is replaced by that split.

    Raises:
        TypeError: For data of another kind, or a ``dtype`` that is not floating point.
    """

    def __init__(
        self,
        data: Any,
        *,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        num_workers: int,
        seed: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        preload: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.device = device
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"`dtype` must be a floating-point torch.dtype, got {dtype!r}")
        self.dtype = dtype
        self._tensors: tuple[Tensor, Tensor | None] | None = None
        self._loader: DataLoader[Any] | None = None
        self.shuffle = shuffle
        self.batch_size = batch_size
        self.drop_last = drop_last
        if isinstance(data, Tensor) or (
            isinstance(data, (tuple, list))
            and len(data) == 2
            and all(isinstance(t, Tensor) for t in data)
        ):
            images, labels = split_batch(data)
            if images.is_floating_point() and images.dtype != dtype:
                images = images.to(dtype)  # e.g. numpy's float64 for float32 networks
            if preload:
                images = images.to(device)
                labels = None if labels is None else labels.to(device)
            self._tensors = images, labels
            self.dataset_size: int | None = len(self._tensors[0])
        elif isinstance(data, DataLoader):
            self._loader = data
            self.batch_size = data.batch_size or 1
            self.dataset_size = _length(data.dataset)
            if world_size > 1:  # the split replaces the loader's sampler
                self.shuffle = isinstance(data.sampler, RandomSampler)
                self.drop_last = data.drop_last
        elif isinstance(data, Dataset):
            self.dataset_size = _length(data)
            self._loader = DataLoader(
                data,
                batch_size=batch_size,
                # (an empty dataset cannot build a shuffler; the Trainer reports it as empty)
                shuffle=shuffle and bool(self.dataset_size),
                drop_last=drop_last,
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
            )
        else:
            raise TypeError(
                "`data` must be a tensor of images, an (images, labels) pair of tensors, "
                f"a Dataset or a DataLoader, got {type(data).__name__}"
            )
        if world_size > 1 and self.iterable:
            raise ValueError(
                "an iterable-style dataset cannot be split among processes by ganlib; "
                "use a map-style Dataset, or shard it yourself and train with strategy='single'"
            )

    @property
    def labels(self) -> Tensor | None:
        """All labels of tensor data, else ``None``."""
        return self._tensors[1] if self._tensors is not None else None

    @property
    def iterable(self) -> bool:
        """True for iterable-style datasets, whose order the source cannot control."""
        return self._loader is not None and isinstance(self._loader.dataset, IterableDataset)

    def __len__(self) -> int:
        """Batches per epoch (raises ``TypeError`` for iterable datasets without a length)."""
        if self._tensors is not None or self.world_size > 1:
            assert self.dataset_size is not None
            n, b = -(-self.dataset_size // self.world_size), self.batch_size  # per rank
            return n // b if self.drop_last else -(-n // b)
        assert self._loader is not None
        return len(self._loader)

    def sample_item(self) -> Any:
        """One raw item or batch, to check the data before training starts."""
        if self._tensors is not None:
            images, labels = self._tensors
            return images[:1] if labels is None else (images[:1], labels[:1])
        assert self._loader is not None
        if self.iterable:
            try:
                return next(iter(self._loader))
            except StopIteration:
                raise ValueError("`data` is empty: its iterable dataset yields nothing") from None
        return self._loader.dataset[0]

    @property
    def images(self) -> Tensor | None:
        """All images of tensor data, else ``None``."""
        return self._tensors[0] if self._tensors is not None else None

    def _index_batches(self, epoch: int) -> list[Any]:
        if self.world_size > 1:
            return self._shard_batches(epoch)
        if self._tensors is not None:
            n = len(self._tensors[0])
            if self.shuffle:
                rng = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
                order = torch.randperm(n, generator=rng)
            else:
                order = torch.arange(n)
            # Gather where the data lives (on the device when preloaded).
            batches = list(order.to(self._tensors[0].device).split(self.batch_size))
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
            return batches
        # A DataLoader's sampler draws from the global RNG: fork it, seeded per epoch.
        assert self._loader is not None and self._loader.batch_sampler is not None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(epoch_seed(self.seed, epoch))
            return list(iter(self._loader.batch_sampler))

    def _shard_batches(self, epoch: int) -> list[Any]:
        """This rank's batches of ``epoch``: DistributedSampler's split of the data."""
        assert self.dataset_size is not None
        sampler: DistributedSampler[int] = DistributedSampler(
            range(self.dataset_size),  # type: ignore[arg-type]  # (any sized sequence does)
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=self.shuffle,
            seed=self.seed,
        )
        sampler.set_epoch(epoch)
        batches = list(torch.tensor(list(sampler)).split(self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self._tensors is not None:
            return [b.to(self._tensors[0].device) for b in batches]
        return [b.tolist() for b in batches]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` (0-based) from batch index ``start`` on, on the device."""
        if self._tensors is not None:
            images, labels = self._tensors
            for index in self._index_batches(epoch)[start:]:
                yield self._to_device(images[index], None if labels is None else labels[index])
            return
        assert self._loader is not None
        if self.iterable:
            for batch in islice(self._loader, start, None):
                yield self._to_device(*split_batch(batch))
            return
        loader = self._loader
        resumed = DataLoader(
            loader.dataset,
            batch_sampler=self._index_batches(epoch)[start:],
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            worker_init_fn=loader.worker_init_fn,
            # Worker seeds come from this generator, not the global RNG.
            generator=torch.Generator().manual_seed(worker_seed(self.seed, epoch)),
        )
        for batch in resumed:
            yield self._to_device(*split_batch(batch))

    def _to_device(self, images: Tensor, labels: Tensor | None) -> Batch:
        images = images.to(self.device, non_blocking=True)
        if images.is_floating_point() and images.dtype != self.dtype:
            images = images.to(self.dtype)
        if labels is not None:
            labels = labels.to(self.device, non_blocking=True)
        return images, labels


def _length(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        return None

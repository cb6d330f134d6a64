"""A history of generated images (Shrivastava et al., 2017), as CycleGAN's discriminators
see it: half the time an earlier fake in place of a new one, so D does not chase the
generator's latest output alone.

The pool's random draws come from the stream it is given (a task passes its run's step
stream, ``TaskContext.rng``) and its contents are part of the task's checkpoint state, so
a resumed run draws and returns exactly what an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .._validation import check_int

__all__ = ["ImagePool"]


class ImagePool:
    """Up to ``size`` earlier fakes; `query` trades new ones against them.

    The reference's rule (``util/image_pool.py``), image by image in batch order: while
    the pool is not full, an image joins it and is returned as it is; once full, with
    probability 1/2 a uniformly chosen stored image is returned and the new one takes its
    slot, otherwise the new one is returned. ``size=0`` returns every batch as it is.

    Args:
        size: Images kept (the reference: 50 per discriminator).

    Attributes:
        images: The stored images, (count, C, H, W), or ``None`` before the first query.
    """

    def __init__(self, size: int = 50) -> None:
        self.size = check_int("size", size, 0)
        self.images: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    @torch.no_grad()
    def query(self, fakes: Tensor, rng: torch.Generator) -> Tensor:
        """The batch D sees in place of ``fakes`` (B, C, H, W), detached.

        Draws a coin and a slot per image from ``rng`` (on ``fakes``' device) every call,
        full pool or not, so the stream advances by the same amount each step.
        """
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        coins = torch.rand(len(fakes), generator=rng, device=rng.device)
        slots = torch.randint(self.size, (len(fakes),), generator=rng, device=rng.device)
        swaps, picks = (coins > 0.5).tolist(), slots.tolist()  # (one device sync)
        if self.images is not None:  # (a loaded pool, or another precision's)
            self.images = self.images.to(device=fakes.device, dtype=fakes.dtype)
        returned = []
        for image, swap, slot in zip(fakes, swaps, picks, strict=True):
            if len(self) < self.size:
                stored = image[None].clone()
                self.images = stored if self.images is None else torch.cat([self.images, stored])
                returned.append(image)
            elif swap:
                assert self.images is not None
                returned.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self) -> dict[str, Any]:
        """The stored images (a copy), for a checkpoint."""
        return {"images": None if self.images is None else self.images.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what [`state_dict`][ganlib.tasks.ImagePool.state_dict] returned.

        Raises:
            ValueError: For more images than the pool holds.
        """
        images = state.get("images")
        if images is not None and (not isinstance(images, Tensor) or len(images) > self.size):
            found = len(images) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"a pool of {self.size} images cannot hold the saved {found}")
        self.images = None if images is None else images.clone()

"""Every random stream derived from a run's seed, named once, and the global random state.

A run has one integer seed (``Trainer(seed=...)``, stored in its checkpoints).
Every other stream is a pure function of it, so a run resumes exactly at any
step without replaying what came before:

=====================  ==============================  =======================================
stream                 seed                            used by
=====================  ==============================  =======================================
step noise             ``seed``                        latents, fake labels and penalties
                                                       (one generator, saved in checkpoints)
step noise, per rank   ``step_seed(seed, rank, step)`` the same under DDP, re-seeded each step
epoch order            ``epoch_seed(seed, epoch)``     shuffling of tensors and Datasets
loader workers         ``epoch_seed(seed, epoch) + 1`` DataLoader worker base seeds
grid latents           ``grid_seed(seed)``             SampleGrid's fixed latents
BatchNorm recompute    ``batchnorm_seed(seed)``        EMA / ``ganlib sample --ema --eval-mode``
cross-device resume    ``seed + step``                 step noise resumed on another device
                                                       family (its generator state differs)
=====================  ==============================  =======================================

Model initialisation draws from torch's global generator, before any of these.
"""

from __future__ import annotations

import random
import secrets
from typing import Any

import torch

__all__ = [
    "batchnorm_seed",
    "capture_rng_state",
    "epoch_seed",
    "fresh_seed",
    "grid_seed",
    "restore_rng_state",
    "resume_seed",
    "step_seed",
    "worker_seed",
]

_MODULUS = 2**63


def fresh_seed() -> int:
    """A random run seed, for ``seed=None`` (62 bits: every derived seed stays in range)."""
    return secrets.randbits(62)


def epoch_seed(seed: int, epoch: int) -> int:
    """The order of one epoch: a distinct 63-bit seed per (run seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % _MODULUS


def worker_seed(seed: int, epoch: int) -> int:
    """The base seed of one epoch's DataLoader workers."""
    return epoch_seed(seed, epoch) + 1


def step_seed(seed: int, rank: int, step: int) -> int:
    """The latent seed of one process at one step: distinct per rank, and a pure function
    of (seed, rank, step), so a distributed run resumes exactly without storing every
    rank's random state."""
    return (seed * 1_000_003 + rank * 998_244_353 + step * 7_919 + 17) % _MODULUS


def grid_seed(seed: int) -> int:
    """The fixed latents of sample grids."""
    return seed + 1


def batchnorm_seed(seed: int) -> int:
    """The latents that measure an averaged generator's BatchNorm statistics."""
    return seed + 2


def resume_seed(seed: int, step: int) -> int:
    """The step noise of a run resumed on another device family than it was saved on."""
    return seed + step


def capture_rng_state() -> dict[str, Any]:
    """The global random states: Python, torch CPU and every CUDA device."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA only where present)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)

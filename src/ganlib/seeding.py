"""Every random stream derived from a run's seed, named once, and the global random state.

A run has one integer seed (``Trainer(seed=...)``, stored in its checkpoints).
Every other stream is a pure function of it, so a run resumes exactly at any
step without replaying what came before:

| stream | seed | used by |
|---|---|---|
| step noise | `seed` | latents, fake labels, penalties (one generator, checkpointed) |
| step noise, per rank | `step_seed(seed, rank, step)` | the same under DDP, re-seeded each step |
| epoch order | `epoch_seed(seed, epoch)` | shuffling of tensors and Datasets |
| loader workers | `epoch_seed(seed, epoch) + 1` | DataLoader worker base seeds |
| grid latents | `grid_seed(seed)` | SampleGrid's fixed latents |
| BatchNorm recompute | `batchnorm_seed(seed)` | EMA / `ganlib sample --ema --eval-mode` |
| evaluation latents | `evaluation_seed(seed)` | `Evaluation`'s fixed sample (every evaluation) |
| cross-device resume | `seed + step` | step noise resumed on another device family |

Model initialisation (`DCGAN()`) draws from torch's global generator, before the
Trainer exists and outside all of these: [`seed_everything`][ganlib.seed_everything]
seeds it (with Python's and numpy's), so a script that calls it before building its
model is repeatable from end to end.
"""

from __future__ import annotations

import numbers
import random
import secrets
from typing import Any

import torch

__all__ = [
    "batchnorm_seed",
    "capture_rng_state",
    "check_seed",
    "epoch_seed",
    "evaluation_seed",
    "fresh_seed",
    "grid_seed",
    "restore_rng_state",
    "resume_seed",
    "seed_everything",
    "step_seed",
    "worker_seed",
]

_MODULUS = 2**63


def check_seed(value: Any, name: str = "seed") -> int:
    """Return ``value`` if it is a run seed: an integer with ``0 <= value < 2**63``.

    Every stream above derives from the seed modulo ``2**63``, and torch's generators
    take at most 64 bits, so larger and negative seeds are refused rather than
    silently folded onto others.

    Args:
        value: The seed to check.
        name: The argument's name, for the message.

    Returns:
        ``value`` as an ``int``.

    Raises:
        TypeError: If ``value`` is not an integer (``bool`` included).
        ValueError: If ``value`` is negative or ``>= 2**63``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__})")
    seed = int(value)
    if not 0 <= seed < _MODULUS:
        raise ValueError(f"`{name}` must be an integer with 0 <= {name} < 2**63, got {seed}")
    return seed


def seed_everything(seed: int) -> int:
    """Seed every global random generator: Python's ``random``, torch's (CPU and every
    CUDA device) and numpy's, where numpy is installed.

    Call it before building the model: ``Trainer(seed=...)`` seeds the data order,
    latents and penalties, but the weights are drawn earlier, when the model is built,
    from torch's global generator. Like Lightning's ``seed_everything``:

    ```python
    import ganlib

    ganlib.seed_everything(0)
    gan = ganlib.DCGAN(width=8)  # the same weights on every run
    ```

    numpy's global generator takes 32-bit words: a seed below ``2**32`` seeds it as
    ``numpy.random.seed(seed)`` does, a larger one as its two 32-bit halves.

    Args:
        seed: The seed, ``0 <= seed < 2**63`` (what ``Trainer(seed=...)`` accepts).

    Returns:
        The seed, so it can be logged or passed on to the Trainer.

    Raises:
        TypeError: If ``seed`` is not an integer.
        ValueError: If ``seed`` is negative or ``>= 2**63``.
    """
    seed = check_seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)  # CPU, and CUDA lazily (a no-op without it)
    torch.cuda.manual_seed_all(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional
        pass
    else:
        np.random.seed(seed if seed < 2**32 else [seed & 0xFFFF_FFFF, seed >> 32])
    return seed


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


def evaluation_seed(seed: int) -> int:
    """The fixed latents an evaluation scores: the same at every evaluation of a run
    (and after a resume), so its scores compare."""
    return seed + 3


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
    """Restore what `capture_rng_state` captured (CUDA only where present)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)

"""Multi-process training through ``torch.distributed`` (launched with ``torchrun``).

The Trainer calls `setup` once. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the
environment), or with ``strategy="ddp"``, it creates the process group (NCCL on CUDA,
gloo on the CPU), or joins the one the caller (Ray Train, accelerate, Fabric, the
user's own ``init_process_group``) already made, and each process trains on its own
device (``cuda:LOCAL_RANK`` on a CUDA machine). Otherwise nothing happens and
training runs in one process. A group the Trainer created it takes down when the
process exits, every rank together; a group it joined is left to its owner.
"""

from __future__ import annotations

import atexit
import inspect
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .seeding import step_seed

__all__ = [
    "Strategy",
    "WorldInfo",
    "prepare_networks",
    "setup",
    "step_seed",
    "wrap",
]

Strategy = Literal["auto", "single", "ddp"]


@dataclass(frozen=True)
class WorldInfo:
    """Where this process stands among the training processes.

    Attributes:
        rank: This process's index, 0 to ``world_size - 1``.
        world_size: Number of training processes (1: no distribution).
        local_rank: Index of this process on its node (picks its GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    def mean(self, values: Tensor) -> Tensor:
        """``values`` averaged over all processes (unchanged in one process)."""
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.world_size
        return values

    def barrier(self) -> None:
        """Wait for every process (nothing in one process)."""
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process if ``flag`` is true on any (so all stop together)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def _env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def setup(strategy: Strategy, device: str | torch.device) -> tuple[WorldInfo, str | torch.device]:
    """Join the process group if ``strategy`` asks for it, and pick this process's device.

    Args:
        strategy: ``"auto"`` (distributed under torchrun or an initialised process
            group, else single), ``"single"`` (never) or ``"ddp"`` (always; needs
            torchrun's environment or an initialised group).
        device: The Trainer's ``device`` argument. ``"auto"`` and ``"cuda"``
            become ``cuda:LOCAL_RANK`` when distributed on a CUDA machine.

    Returns:
        The world this process is in, and the device to resolve.

    Raises:
        ValueError: For an unknown strategy, or ``"ddp"`` outside torchrun.
    """
    if strategy not in ("auto", "single", "ddp"):
        raise ValueError(f"`strategy` must be 'auto', 'single' or 'ddp', got {strategy!r}")
    initialised = dist.is_available() and dist.is_initialized()
    launched = _env_world_size() > 1 or initialised
    if strategy == "single" or (strategy == "auto" and not launched):
        return WorldInfo(), device
    if not dist.is_available():
        raise ValueError("`strategy` asks for DDP but this PyTorch build has no torch.distributed")
    if not initialised and "MASTER_ADDR" not in os.environ:
        raise ValueError(
            "`strategy='ddp'` needs a process group: launch with "
            "`torchrun --nproc_per_node N script.py`, or call "
            "torch.distributed.init_process_group first"
        )
    local_rank = _local_rank(joined=initialised)
    if str(device) in ("auto", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda", local_rank)  # one GPU per process
    on_cuda = str(device).startswith("cuda")
    if on_cuda:
        torch.cuda.set_device(device)
    if not initialised:
        dist.init_process_group(backend="nccl" if on_cuda else "gloo")
        atexit.register(_destroy, dist.group.WORLD)
    # A joined group keeps its ranks (Ray Train, accelerate and Fabric number the processes).
    world = WorldInfo(dist.get_rank(), dist.get_world_size(), local_rank)
    return world, device


def _local_rank(joined: bool) -> int:
    """This process's index on its node: ``LOCAL_RANK`` (torchrun, Ray Train, accelerate and
    Fabric set it); in a group the script made without it, the GPU the script selected."""
    value = os.environ.get("LOCAL_RANK")
    if value is None:
        return torch.cuda.current_device() if joined and torch.cuda.is_available() else 0
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"`LOCAL_RANK` must be an integer, got {value!r}") from None


def prepare_networks(
    world: WorldInfo, device: torch.device, networks: tuple[nn.Module, ...], sync_batchnorm: bool
) -> None:
    """Turn the networks' BatchNorm layers into SyncBatchNorm (in place) when asked for and
    distributed, so they normalise over the global batch.

    Raises:
        ValueError: ``sync_batchnorm`` under DDP off CUDA (PyTorch's SyncBatchNorm needs it).
    """
    if not (sync_batchnorm and world.distributed):
        return
    if device.type != "cuda":
        raise ValueError(
            f"`sync_batchnorm` needs CUDA devices (PyTorch's SyncBatchNorm), got {device.type!r}"
        )
    for network in networks:
        nn.SyncBatchNorm.convert_sync_batchnorm(network)


def wrap(world: WorldInfo, module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel when distributed (else itself).

    Each rank keeps its own BatchNorm statistics: no per-forward buffer broadcast
    from rank 0 in the middle of D's two passes; the weights stay identical.
    """
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    # PyTorch 2.14 renamed broadcast_buffers to forward_sync_buffers.
    renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    options: dict[str, Any] = {
        "device_ids": [device.index] if device.type == "cuda" else None,
        "forward_sync_buffers" if renamed else "broadcast_buffers": False,
    }
    return DistributedDataParallel(module, **options)


def _destroy(group: object) -> None:
    """At exit: take down the process group `setup` created, if it is still the one in use
    (a group made since by someone else is theirs)."""
    if dist.is_initialized() and dist.group.WORLD is group:
        dist.destroy_process_group()

"""Multi-process training through ``torch.distributed`` (launched with ``torchrun``).

The Trainer calls `setup` once. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the
environment), or with ``strategy="ddp"``, it creates the process group (NCCL on CUDA,
gloo on the CPU), or joins the one the caller (Ray Train, accelerate, Fabric, the
user's own ``init_process_group``) already made, and each process trains on its own
device (``cuda:LOCAL_RANK`` on a CUDA machine). Otherwise nothing happens and
training runs in one process. A group the Trainer created it takes down when the
process exits, every rank together; a group it joined is left to its owner.

On an elastic restart (``torchrun --max-restarts``), `restart_checkpoint` finds the
checkpoint every rank resumes from.
"""

from __future__ import annotations

import atexit
import inspect
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ._logging import logger
from .checkpoint import CheckpointError
from .seeding import step_seed

__all__ = [
    "Strategy",
    "WorldInfo",
    "is_elastic_restart",
    "prepare_networks",
    "restart_checkpoint",
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
        _warn_if_restarts_share_the_store()
        dist.init_process_group(backend="nccl" if on_cuda else "gloo")
        atexit.register(_destroy, dist.group.WORLD)
    # A joined group keeps its ranks (Ray Train, accelerate and Fabric number the processes).
    world = WorldInfo(dist.get_rank(), dist.get_world_size(), local_rank)
    return world, device


def _warn_if_restarts_share_the_store() -> None:
    """torchrun's agent keeps one store for every attempt of a job (torch >= 2.5, unless
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``), and a restarted process group can read the
    failed attempt's addresses there and fail to connect (pytorch/pytorch#135712)."""
    restarts = _env_count("TORCHELASTIC_MAX_RESTARTS")
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if restarts > 0 and shared and os.environ.get("RANK") == "0":
        logger.warning(
            f"ganlib: torchrun may restart this job ({restarts} restarts) but shares one "
            "store among its attempts, where a restarted process group can find the failed "
            "attempt's addresses and fail to connect (pytorch/pytorch#135712); launch "
            "torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment"
        )


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


# ------------------------------------------------------------------ elastic restarts

JOB_MARKER = ".ganlib-elastic-job"  # in the checkpoint folder: when this torchrun job began


def _env_count(name: str) -> int:
    """An elastic agent's count (``TORCHELASTIC_RESTART_COUNT``, ...); 0 when unset."""
    value = os.environ.get(name, "0")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"`{name}` must be an integer (torchrun sets it), got {value!r}") from None


def is_elastic_restart() -> bool:
    """Whether torchrun restarted this process's group after a failure (this node's view):
    the folders then hold the failed attempt's files, which are this run's, not another's."""
    return _env_count("TORCHELASTIC_RESTART_COUNT") > 0


def _file_identity(path: Path) -> tuple[int, int]:
    """``(size, mtime_ns)`` of ``path``, the same on every node that shares its storage;
    ``(-1, -1)`` if it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


def _mark_job_start(folder: Path, run_id: str) -> None:
    """Record in ``folder`` that this job (``run_id``) starts now: a restart resumes only
    from checkpoints written after this mark, never from an earlier job's."""
    marker = folder / JOB_MARKER
    tmp = folder / f"{JOB_MARKER}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"run_id": run_id}))
        os.replace(tmp, marker)  # (a fresh file: its mtime is the job's start)
    except OSError:  # an unwritable folder: the Trainer's folder check names it
        tmp.unlink(missing_ok=True)


def _written_by_job(last: Path, run_id: str) -> bool:
    """Whether ``last`` exists and was saved after this job's start mark."""
    marker = last.parent / JOB_MARKER
    try:
        mark = json.loads(marker.read_text())
        return bool(mark.get("run_id") == run_id) and (
            last.stat().st_mtime_ns >= marker.stat().st_mtime_ns
        )
    except (OSError, ValueError, AttributeError):
        return False


def restart_checkpoint(
    ckpt_path: str | None, world: WorldInfo, callbacks: Iterable[object], device: torch.device
) -> str | None:
    """The checkpoint ``fit`` resumes from: on an elastic restart, this job's newest one.

    ``torchrun --max-restarts N`` starts every process again when one fails, and the
    script runs again from the top with the same arguments. On such a restart, every
    rank resumes from the ``last.ckpt`` of the first
    [`ModelCheckpoint`][ganlib.callbacks.ModelCheckpoint] among ``callbacks``, if it was
    written in this job; otherwise ``ckpt_path`` stays what the script gave. At a job's
    first start rank 0 marks the checkpoint folder (``.ganlib-elastic-job``), so that a
    restart never resumes an earlier job's checkpoint. Outside torchrun's elastic agent
    (``TORCHELASTIC_RUN_ID`` unset), or in one process, ``ckpt_path`` is returned as given.

    A restart is when any rank's ``TORCHELASTIC_RESTART_COUNT`` is above 0 (the agents of
    a multi-node job count their restarts each for itself).

    Args:
        ckpt_path: The checkpoint the script asks to resume from (or ``None``).
        world: This process's place among the training processes.
        callbacks: The trainer's callbacks, on every rank (not only those active here).
        device: Where this process's collectives run (its training device).

    Returns:
        The checkpoint to resume from, or ``None`` to start afresh.

    Raises:
        CheckpointError: If rank 0 resumes from a checkpoint that another rank cannot
            read, or reads as another file (checkpoints on per-node storage).
    """
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if not world.distributed or run_id is None:
        return ckpt_path
    from .callbacks.checkpoint import ModelCheckpoint  # (the callbacks import Trainer types)

    saver = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    restarted = world.any(_env_count("TORCHELASTIC_RESTART_COUNT") > 0, device)
    if saver is None:
        if restarted and world.is_main:
            logger.warning(
                "ganlib: elastic restart, but the trainer has no ModelCheckpoint to resume "
                "from: training starts again from `ckpt_path`"
            )
        return ckpt_path
    last = saver.last_path
    if not restarted:
        if world.is_main and _env_count("TORCHELASTIC_MAX_RESTARTS") > 0:
            _mark_job_start(saver.dirpath, run_id)
        return ckpt_path
    # Rank 0 decides; every other rank must see the very same file.
    mine = _file_identity(last)
    decision = torch.tensor(
        [int(world.is_main and _written_by_job(last, run_id)), *mine], device=device
    )
    dist.broadcast(decision, src=0)
    resume, size, mtime_ns = (int(v) for v in decision.tolist())
    if not resume:
        if world.is_main:
            logger.warning(
                f"ganlib: elastic restart before this job saved a checkpoint in "
                f"{str(saver.dirpath)!r}: training starts again from `ckpt_path` ({ckpt_path})"
            )
        return ckpt_path
    differs = mine != (size, mtime_ns)
    if world.any(differs, device):
        if not differs:
            problem = "another rank does not see the same file"
        elif mine == (-1, -1):
            problem = f"rank {world.rank} cannot read it"
        else:
            problem = f"rank {world.rank} sees another file there (size, mtime differ)"
        raise CheckpointError(
            f"elastic restart: rank 0 resumes from {str(last)!r}, but {problem}; "
            "checkpoints must be on storage that every node shares (docs/distributed.md)"
        )
    if world.is_main:
        logger.info(f"ganlib: elastic restart: every rank resumes from {last}")
    return str(last)

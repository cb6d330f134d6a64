"""Checkpoint files: atomic writes, safe loads, and random-state capture.

Writes go to a temporary file in the same folder, are flushed to disk, then
renamed over the target, so a crash never leaves a half-written file under a
checkpoint's name. Loads use ``torch.load(..., weights_only=True)``: opening a
checkpoint never runs code from it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .gan import GAN, build_gan
from .runfolder import describe_os_error

# (their home is ganlib.seeding; importable from here as in earlier releases)
from .seeding import capture_rng_state, restore_rng_state

__all__ = [
    "EMA_STATE_KEY",
    "FORMAT_KEY",
    "CheckpointError",
    "atomic_link",
    "atomic_save",
    "capture_rng_state",
    "load_checkpoint",
    "load_gan",
    "restore_rng_state",
]

FORMAT_KEY = "ganlib_checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, not ganlib's, or does not fit the models."""


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file, fsync, rename).

    Returns:
        The path written.

    Raises:
        OSError: If the file cannot be written, saying why (disk full, permission
            denied, ...); any earlier file at ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would give
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as exc:
        full = _disk_full(path.parent)  # (measured before the partial file is removed)
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError) or full:
            raise _write_error(path, exc, full) from exc
        raise
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _write_error(path: Path, exc: BaseException, full: bool = False) -> OSError:
    """An OSError that names the file and the cause in words."""
    if isinstance(exc, OSError) and not full:
        cause = describe_os_error(exc)
    else:  # torch reports a full disk as "unexpected pos ..."
        cause = "no space left on the device (disk full)"
    code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.ENOSPC
    return OSError(code, f"could not write checkpoint {str(path)!r}: {cause}")


def atomic_link(source: Path, target: Path) -> None:
    """Make ``target`` an up-to-date copy of ``source`` atomically (a hard link where possible)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # file systems without hard links
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ganlib checkpoint onto the CPU, without running code from the file.

    Raises:
        CheckpointError: If the file is missing, truncated or corrupt, or not a
            ganlib checkpoint of a version this release reads.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(
            f"checkpoint {str(path)!r} could not be read (truncated, corrupt, or not a "
            f"PyTorch file): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(payload, dict) or FORMAT_KEY not in payload:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a ganlib checkpoint (no {FORMAT_KEY!r} entry); "
            "it may be a plain state_dict"
        )
    if payload[FORMAT_KEY] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {payload[FORMAT_KEY]!r}; "
            f"this ganlib reads version {FORMAT_VERSION}"
        )
    return payload


# The state key of the EMA callback, whose "module" entry holds the averaged generator.
EMA_STATE_KEY = "EMA"


def load_gan(path: str | os.PathLike[str], *, ema: bool = False) -> GAN:
    """The GAN a Trainer checkpoint holds, on the CPU, ready to sample from.

    The pair is rebuilt by the architecture name the checkpoint records (see
    :func:`ganlib.gan.register_architecture`); checkpoints written before names
    were recorded are DCGANs.

    Args:
        path: A checkpoint written by :meth:`ganlib.Trainer.save_checkpoint` or
            :class:`~ganlib.callbacks.ModelCheckpoint`.
        ema: Put the EMA generator's weights (from an
            :class:`~ganlib.callbacks.EMA` callback) in the generator.

    Raises:
        CheckpointError: If the file is not a readable ganlib checkpoint, records
            no configuration or an unregistered architecture, or has no EMA
            weights when ``ema`` is asked for.
    """
    payload = load_checkpoint(path)
    config = payload.get("gan_config")
    if not isinstance(config, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not record a DCGAN configuration, nor any "
            "registered architecture's (it was trained with custom networks); register the "
            "architecture (ganlib.gan.register_architecture) or rebuild the networks and load "
            "payload['generator'] yourself"
        )
    arch = payload.get("arch") or "dcgan"
    try:
        with torch.random.fork_rng(devices=[]):  # building initialises: leave the RNG alone
            gan = build_gan(arch, config)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: {exc}") from exc
    gan.discriminator.load_state_dict(payload["discriminator"])
    generator_state = payload["generator"]
    if ema:
        averaged = payload["callbacks"].get(EMA_STATE_KEY, {}).get("module")
        if averaged is None:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has no EMA generator (train with the EMA callback)"
            )
        generator_state = averaged
    gan.generator.load_state_dict(generator_state)
    return gan

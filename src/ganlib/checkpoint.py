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
import zlib
from pathlib import Path
from typing import Any

import torch

from .gan import GAN, build_gan
from .runfolder import describe_os_error

__all__ = [
    "EMA_STATE_KEY",
    "FORMAT_KEY",
    "CheckpointError",
    "atomic_link",
    "atomic_save",
    "check_resumable",
    "load_checkpoint",
    "load_gan",
    "misfit",
    "tensor_checksum",
]

FORMAT_KEY = "ganlib_checkpoint"
FORMAT_VERSION = 1
CHECKSUM_KEY = "checksum"
# load_gan refuses a configuration that builds more parameters than this.
MAX_LOAD_PARAMETERS = 2_000_000_000


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
    if path.is_dir():
        inside = [
            p for p in (path / "last.ckpt", path / "checkpoints" / "last.ckpt") if p.is_file()
        ]
        hint = f" (did you mean {str(inside[0])!r}?)" if inside else ""
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file{hint}")
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
    expected = payload.get(CHECKSUM_KEY)
    if expected is not None and expected != tensor_checksum(payload):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: its tensor data does not match the "
            "checksum written with it"
        )
    return payload


def tensor_checksum(payload: Any) -> str:
    """A CRC-32 of every tensor's bytes in ``payload`` (dicts walked in key order), written
    with each checkpoint so flipped bytes are caught when it is read back."""
    crc = 0

    def walk(value: Any) -> None:
        nonlocal crc
        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            crc = zlib.crc32(data.numpy().tobytes(), crc)
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                if key != CHECKSUM_KEY:
                    walk(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(payload)
    return f"crc32:{crc:08x}"


def _problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with the loop's entries of a Trainer checkpoint, or ``None`` (the
    task checks its own: [`Task.state_problem`][ganlib.tasks.Task.state_problem])."""
    state = payload.get("state")
    if not isinstance(state, dict):
        return "`state` is missing"
    for key in ("step", "epoch", "batch_in_epoch"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"`state.{key}` must be an integer >= 0, got {value!r}"
    seed = payload.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        return f"`seed` must be an integer >= 0, got {seed!r}"
    noise = payload.get("noise_rng")
    if not isinstance(noise, dict) or not isinstance(noise.get("state"), torch.Tensor):
        return "`noise_rng` is missing its state"
    rng = payload.get("rng")
    if not isinstance(rng, dict) or not isinstance(rng.get("torch"), torch.Tensor):
        return "`rng` is missing the global random state"
    callbacks = payload.get("callbacks")
    if not isinstance(callbacks, dict) or not all(isinstance(v, dict) for v in callbacks.values()):
        return "`callbacks` is not a mapping of callback states"
    if not isinstance(payload.get("scaler", {}), dict):
        return "`scaler` is not a grad-scaler state"
    return None


def check_resumable(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Check every entry the loop restores, before any of them is used.

    Raises:
        CheckpointError: Naming the file and the first malformed entry.
    """
    problem = _problem(payload)
    if problem is not None:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be resumed: {problem}")


def misfit(
    path: str, exc: BaseException, what: str = "does not fit this trainer"
) -> CheckpointError:
    """``exc`` (raised while restoring a checkpoint) as a one-line CheckpointError."""
    if isinstance(exc, CheckpointError):
        return exc
    detail = str(exc).split("\n\t", 1)[-1].split("\n")[0]
    where = f"checkpoint {path!r}" if path else "checkpoint"
    return CheckpointError(f"{where} {what}: {detail}")


def _tensors(payload: dict[str, Any], name: str) -> list[torch.Tensor]:
    entry = payload.get(name)
    if not isinstance(entry, dict):
        return []
    return [t for t in entry.values() if isinstance(t, torch.Tensor)]


# The state key of the EMA callback, whose "module" entry holds the averaged generator.
EMA_STATE_KEY = "EMA"


def load_gan(path: str | os.PathLike[str], *, ema: bool = False) -> GAN:
    """The GAN a Trainer checkpoint holds, on the CPU, ready to sample from.

    The pair is rebuilt by the architecture name the checkpoint records (see
    [`ganlib.gan.register_architecture`][ganlib.register_architecture]); checkpoints written before
    names
    were recorded are DCGANs.

    Args:
        path: A checkpoint written by
            [`ganlib.Trainer.save_checkpoint`][ganlib.Trainer.save_checkpoint] or
            [`ModelCheckpoint`][ganlib.callbacks.ModelCheckpoint].
        ema: Put the EMA generator's weights (from an
            [`EMA`][ganlib.callbacks.EMA] callback) in the generator.

    Raises:
        CheckpointError: If the file is not a readable ganlib checkpoint, records
            no configuration or an unregistered architecture, or has no EMA
            weights when ``ema`` is asked for.
    """
    payload = load_checkpoint(path)
    config = payload.get("gan_config")
    if not isinstance(config, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not record an architecture's configuration (it "
            "was trained with custom networks or by another task); register the "
            "architecture (ganlib.gan.register_architecture) or rebuild the networks and load "
            "payload['generator'] yourself"
        )
    arch = payload.get("arch") or "dcgan"
    try:
        with torch.device("meta"):  # count the parameters without allocating them
            planned = sum(p.numel() for p in build_gan(arch, config).parameters())
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: {exc}") from exc
    held = sum(
        t.numel() for name in ("generator", "discriminator") for t in _tensors(payload, name)
    )
    if planned > MAX_LOAD_PARAMETERS or planned > 2 * held + 1_000_000:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has a configuration ({config}) that builds {planned:,} "
            f"parameters, but the file holds {held:,}: it was edited or damaged"
        )
    with torch.random.fork_rng(devices=[]):  # building initialises: leave the RNG alone
        gan = build_gan(arch, config)
    generator_state = payload.get("generator")
    if ema:
        callbacks = payload.get("callbacks")
        averaged = callbacks.get(EMA_STATE_KEY, {}) if isinstance(callbacks, dict) else {}
        generator_state = averaged.get("module") if isinstance(averaged, dict) else None
        if generator_state is None:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has no EMA generator (train with the EMA callback)"
            )
    try:
        gan.discriminator.load_state_dict(payload["discriminator"])
        gan.generator.load_state_dict(generator_state)  # type: ignore[arg-type]
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: its weights do not fit its configuration {config}: "
            + str(exc).split("\n\t", 1)[-1].split("\n")[0]
        ) from exc
    return gan

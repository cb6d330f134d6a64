"""Weights files fetched once into ganlib's cache folder, checked against the hash in their name."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import urllib.request
from pathlib import Path

from .._logging import logger

__all__ = ["CACHE_ENV", "cache_dir", "fetch"]

CACHE_ENV = "GANLIB_CACHE"
# Seconds any one network operation (connect, read) may take: offline fails fast.
TIMEOUT_S = 10.0
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


def cache_dir() -> Path:
    """The folder downloaded weights live in.

    ``$GANLIB_CACHE`` where set, else ``$XDG_CACHE_HOME/ganlib``, else ``~/.cache/ganlib``.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ganlib"


def hash_prefix(filename: str) -> str:
    """The SHA-256 prefix a weights file carries in its name (torch.hub's convention).

    ``pt_inception-2015-12-05-6726825d.pth`` -> ``"6726825d"``.

    Raises:
        ValueError: If the name carries none.
    """
    match = _HASH_IN_NAME.search(filename)
    if match is None:
        raise ValueError(
            f"`filename` must end in -<SHA-256 prefix, 8+ hex digits>.<ext>, got {filename!r}"
        )
    return match.group(1)


def fetch(url: str, what: str, *, download: bool = True) -> Path:
    """The cached copy of ``url``, downloaded first if it is not in `cache_dir` yet.

    The file is written under a temporary name, its SHA-256 checked against the
    prefix in its name, then renamed into place, so the cache never holds a
    partial or corrupted file.

    Args:
        url: Where the file is published; its last path part is the file name.
        what: What the file is, for messages (``"FID Inception weights"``).
        download: Whether a missing file may be downloaded.

    Returns:
        The path of the cached file.

    Raises:
        FileNotFoundError: If the file is not cached and cannot be downloaded
            (offline, or ``download=False``); the message says where to put it.
        ValueError: If the download's SHA-256 does not start with the name's prefix.
    """
    filename = url.rsplit("/", 1)[-1]
    expected = hash_prefix(filename)
    target = cache_dir() / filename
    if target.is_file():
        return target
    advice = (
        f"On a machine with internet, download {url} and put the file at {target} "
        f"(the cache folder is ${CACHE_ENV}, else ~/.cache/ganlib), or pass its path as `weights`."
    )
    if not download:
        raise FileNotFoundError(f"{what} not found at {target} and `download` is False. {advice}")
    logger.info(f"ganlib: downloading {what} from {url} to {target}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(prefix=f".{filename}.", dir=target.parent)
    except OSError as exc:
        raise FileNotFoundError(f"{what} not found at {target} ({exc}). {advice}") from exc
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(descriptor, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as src,
        ):
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:  # URLError, timeouts and disk errors are all OSErrors
        Path(partial).unlink(missing_ok=True)
        raise FileNotFoundError(
            f"{what} not found at {target} and downloading {url} failed ({exc}). {advice}"
        ) from exc
    if not digest.hexdigest().startswith(expected):
        Path(partial).unlink(missing_ok=True)
        raise ValueError(
            f"the SHA-256 of {url} must start with {expected} (the prefix in its name), "
            f"got {digest.hexdigest()}; the download was not kept"
        )
    with contextlib.suppress(OSError):
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide the cache from other users
    os.replace(partial, target)
    return target

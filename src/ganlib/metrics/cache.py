"""Reference statistics computed once and kept on disk, shared by every run that asks for
the same ones.

The statistics of a reference set (the 10k MNIST test images through the shipped
classifier, say) depend only on the images, the feature extractor's weights and the
precision it ran in, so [`cached_feature_stats`][ganlib.metrics.cache.cached_feature_stats]
keys them by a SHA-256 of exactly that and stores them as a small ``.pt`` file under
``$GANLIB_CACHE/stats`` (else ``$XDG_CACHE_HOME/ganlib/stats``, else
``~/.cache/ganlib/stats``, the folder downloaded weights use).

- **Atomic, safe to share:** a file is written under a temporary name in the same folder
  and renamed into place, so concurrent runs never read half a file; two runs that
  compute the same statistics at once both write the same content.
- **Damage tolerated:** a file that cannot be read, or holds other statistics than its
  name says, is recomputed and replaced (with a notice), never trusted.
- **Never in the way:** a folder that cannot be written gives one notice and the run
  goes on uncached.
- **Off switch:** ``GANLIB_NO_CACHE=1`` in the environment, or ``cache=False`` where an
  API takes it ([`Evaluation`][ganlib.callbacks.Evaluation]).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._logging import logger
from ._download import cache_dir
from .distances import FeatureStats

__all__ = [
    "NO_CACHE_ENV",
    "cached",
    "cached_feature_stats",
    "caching_enabled",
    "extractor_fingerprint",
    "stats_folder",
    "stats_key",
    "tensor_fingerprint",
]

NO_CACHE_ENV = "GANLIB_NO_CACHE"
_FORMAT = "ganlib-feature-stats-1"
_warned: set[str] = set()  # folders already reported unwritable


def caching_enabled() -> bool:
    """False when ``$GANLIB_NO_CACHE`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get(NO_CACHE_ENV, "") in ("", "0")


def stats_folder() -> Path:
    """Where cached statistics live: ``<cache folder>/stats``."""
    return cache_dir() / "stats"


def tensor_fingerprint(tensor: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (hex)."""
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    data = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _module_of(function: Any) -> nn.Module | None:
    if isinstance(function, nn.Module):
        return function
    owner = getattr(function, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def extractor_fingerprint(extractor: Callable[[Tensor], Tensor]) -> str | None:
    """SHA-256 (hex) of what a feature extractor computes: its network's class, the method
    called and every parameter and buffer (names, dtypes, shapes, bytes); ``None`` for an
    extractor that is no network or a network's method (its results cannot be keyed)."""
    module = _module_of(extractor)
    if module is None:
        return None
    method = getattr(extractor, "__name__", "forward") if extractor is not module else "forward"
    kind = f"{type(module).__module__}.{type(module).__qualname__}.{method}"
    digest = hashlib.sha256(kind.encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor_fingerprint(tensor).encode())
    return digest.hexdigest()


def stats_key(
    extractor: Callable[[Tensor], Tensor], images: Tensor, settings: str = ""
) -> str | None:
    """The cache key of ``images``' statistics through ``extractor`` under ``settings`` (a
    precision, say), or ``None`` where the extractor cannot be fingerprinted."""
    weights = extractor_fingerprint(extractor)
    if weights is None:
        return None
    parts = (_FORMAT, weights, tensor_fingerprint(images), settings)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _read(path: Path, key: str, valid: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The tensors in ``path`` if it holds those of ``key`` and they pass ``valid``;
    ``None`` if it is missing, damaged or other (with a notice when it exists)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        ok = isinstance(payload, dict) and payload.get("key") == key and valid(payload)
    except Exception:  # torch raises several types for damaged files
        ok = False
    if not ok:
        logger.info(f"ganlib: the cached statistics {path} are damaged; computing them afresh")
        return None
    return dict(payload)


def _write(path: Path, key: str, tensors: dict[str, Any], what: str) -> None:
    """Store ``tensors`` at ``path`` atomically; a failure gives one notice per folder."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "wb") as out:
            torch.save({**tensors, "key": key, "what": what}, out)
        os.replace(temporary, path)
    except OSError as exc:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        if str(path.parent) not in _warned:
            _warned.add(str(path.parent))
            logger.warning(
                f"ganlib: cannot cache statistics in {path.parent} "
                f"({exc.strerror or exc}); going on without the cache"
            )


def cached(
    extractor: Callable[[Tensor], Tensor],
    images: Tensor,
    compute: Callable[[], dict[str, Any]],
    *,
    settings: str = "",
    what: str = "",
    folder: str | os.PathLike[str] | None = None,
    valid: Callable[[dict[str, Any]], bool] = lambda payload: True,
) -> dict[str, Any]:
    """What ``compute()`` returns for ``images`` through ``extractor`` (a dict of tensors
    and plain numbers), read from the cache where an earlier run stored it, else
    computed and stored. A stored file ``valid`` refuses is recomputed and replaced.
    [`cached_feature_stats`][ganlib.metrics.cache.cached_feature_stats] is this for
    feature statistics; the arguments are the same."""
    key = stats_key(extractor, images, settings) if caching_enabled() else None
    if key is None:
        return compute()
    path = Path(folder if folder is not None else stats_folder()) / f"{key[:40]}.pt"
    payload = _read(path, key, valid)
    if payload is None:
        payload = compute()
        _write(path, key, payload, what)
    return {k: v for k, v in payload.items() if k not in ("key", "what")}


def _valid_stats(payload: dict[str, Any]) -> bool:
    mean, cov, count = payload.get("mean"), payload.get("cov"), payload.get("count")
    return (
        isinstance(mean, Tensor)
        and isinstance(cov, Tensor)
        and isinstance(count, int)
        and mean.dim() == 1
        and tuple(cov.shape) == (len(mean), len(mean))
        and count >= 2
        and bool(torch.isfinite(mean).all() and torch.isfinite(cov).all())
    )


def cached_feature_stats(
    extractor: Callable[[Tensor], Tensor],
    images: Tensor,
    compute: Callable[[], FeatureStats],
    *,
    settings: str = "",
    what: str = "",
    folder: str | os.PathLike[str] | None = None,
) -> FeatureStats:
    """The statistics of ``images`` through ``extractor``: read from the cache where an
    earlier run stored them, else ``compute()``-d and stored.

    Example::

        def compute():
            return FeatureStats.of(embed(classifier.embed, test_images))

        stats = cached_feature_stats(classifier.embed, test_images, compute)

    Args:
        extractor: The feature extractor (a network or a network's method, such as
            ``classifier.embed``): its class, method and weights are part of the key.
        images: The reference images: their bytes are part of the key.
        compute: Computes the statistics on a miss (the caller's own embedding: its
            device, batch size, eval mode).
        settings: Anything else the statistics depend on (``"precision 32"``).
        what: A description stored with the file (``"MNIST test split, 10,000 images"``).
        folder: Where to keep them; [`stats_folder`][ganlib.metrics.cache.stats_folder]
            when ``None``.

    Returns:
        The statistics; computed without the cache when ``$GANLIB_NO_CACHE`` is set or
        the extractor cannot be fingerprinted (a plain function).
    """

    def as_tensors() -> dict[str, Any]:
        stats = compute()
        return {"mean": stats.mean, "cov": stats.cov, "count": int(stats.count)}

    payload = cached(
        extractor,
        images,
        as_tensors,
        settings=settings,
        what=what,
        folder=folder,
        valid=_valid_stats,
    )
    return FeatureStats(payload["mean"].double(), payload["cov"].double(), int(payload["count"]))

"""Choosing the training device."""

from __future__ import annotations

import torch

__all__ = ["TRAINING_DEVICE_TYPES", "resolve_device"]

# The device types ganlib trains on. torch knows many more ("meta" holds no data,
# "xla", "xpu", "hpu", ... need backends and an autocast ganlib does not handle).
TRAINING_DEVICE_TYPES = ("cpu", "cuda", "mps")
_ACCEPTED = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA, then MPS, then CPU) or an explicit name into a device.

    Args:
        device: ``"auto"``, or a CPU, CUDA or MPS device (a name or a ``torch.device``).

    Raises:
        ValueError: If the name is not a device, is a device type ganlib does not train
            on (``"meta"``, ``"xla"``, ...), or names CUDA/MPS where it is absent.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"`device` must be {_ACCEPTED}, got {device!r}") from exc
    if resolved.type not in TRAINING_DEVICE_TYPES:
        raise ValueError(
            f"`device` must be {_ACCEPTED}, got {str(device)!r} "
            f"(ganlib does not train on {resolved.type!r} devices)"
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {str(device)!r} but CUDA is not available on this machine")
    if resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"`device` is {str(device)!r} but MPS is not available on this machine"
            )
    return resolved

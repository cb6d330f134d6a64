"""Argument checks shared across ganlib, with messages that name the argument,
the rule and the value received."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal, cast

__all__ = [
    "check_batch_shape",
    "check_choice",
    "check_in_range",
    "check_int",
    "check_mode",
    "check_positive_float",
]


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """Return ``value`` if it is an integer (not a bool) of at least ``minimum``.

    Raises:
        TypeError: If ``value`` is not an integer.
        ValueError: If ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return int(value)


def check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a real number > 0 (or >= 0).

    Raises:
        TypeError: If ``value`` is not a real number.
        ValueError: If ``value`` is negative (or zero when not allowed) or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)  # type: ignore[arg-type]
    rule = ">= 0" if allow_zero else "> 0"
    if not (value >= 0.0 if allow_zero else value > 0.0) or value == float("inf"):
        raise ValueError(f"`{name}` must be finite and {rule}, got {value}")
    return value


def check_in_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is a finite real number in the interval from
    ``low`` to ``high`` (each end excluded where it is open: ``[0, 1)``, ``(0, 1]``).

    Raises:
        TypeError: If ``value`` is not a finite real number (or is a bool).
        ValueError: If it lies outside the interval.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))  # type: ignore[arg-type]
    ):
        raise TypeError(f"`{name}` must be a finite number, got {value!r}")
    value = float(value)  # type: ignore[arg-type]
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be in {interval}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        ValueError: If it is not.
    """
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")
    return str(value)


def check_mode(mode: Any) -> Literal["min", "max"]:
    """Return ``mode`` if it says which way a monitored score improves.

    Raises:
        ValueError: If it is not ``"min"`` or ``"max"``.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"`mode` must be 'min' or 'max', got {mode!r}")
    return cast(Literal["min", "max"], mode)


def check_batch_shape(value: Any, trailing: tuple[int, ...], described: str) -> Any:
    """Return ``value`` if it is a tensor shaped ``(N, *trailing)``.

    Raises:
        ValueError: ``"{described} shaped (N, ...), got {shape}"``.
    """
    from torch import Tensor

    if (
        not isinstance(value, Tensor)
        or tuple(value.shape[1:]) != trailing
        or (value.dim() != len(trailing) + 1)
    ):
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        rule = ", ".join(map(str, trailing))
        raise ValueError(f"{described} shaped (N, {rule}), got {shape}")
    return value

"""Presets: named settings shipped as TOML files (``ganlib/runs/presets/NAME.toml``)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from .config import parse_toml

__all__ = ["load_preset", "presets"]


def presets() -> list[str]:
    """The shipped presets' names."""
    folder = resources.files("ganlib.runs") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """The ``[run]`` table of the shipped preset ``name``.

    Raises:
        ValueError: For an unknown name, listing the known ones.
    """
    if name not in presets():
        raise ValueError(f"unknown preset {name!r}; shipped: {presets()}")
    text = (resources.files("ganlib.runs") / "presets" / f"{name}.toml").read_text()
    return dict(parse_toml(text, f"preset {name!r}")["run"])

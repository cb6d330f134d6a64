"""``config.toml``: a run's settings as they ran, the versions, the data's fingerprint.

Written when the run starts (after every check, with the run folder locked), read back by
``ganlib train --resume`` and ``--config``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from .settings import RunSettings

__all__ = ["parse_toml", "read_config", "save_json", "write_config"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string (JSON's escapes are TOML's)


def write_config(
    settings: RunSettings,
    fingerprint: dict[str, Any],
    path: Path,
    chosen: dict[str, str] | None = None,
) -> None:
    """Write the fully resolved settings, versions and data fingerprint as TOML (atomic);
    ``chosen``: what the run chose for itself and why (the ``[chosen]`` table, for
    people: ``--config`` and ``--resume`` read ``[run]`` only)."""
    lines = ["# Written by ganlib train; `ganlib train --config` reads it back.", "[run]"]
    for name, value in settings.as_dict().items():
        if value is not None:  # (TOML has no null: a missing key means None)
            lines.append(f"{name} = {_toml_value(value)}")
    if chosen:
        lines += ["", "[chosen]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in chosen.items()]
    lines += ["", "[data_fingerprint]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in fingerprint.items()]
    lines += ["", "[versions]", f"ganlib = {_toml_value(__version__)}"]
    lines += [f"torch = {_toml_value(torch.__version__)}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """``text`` parsed as TOML.

    Raises:
        ValueError: If it is not TOML, naming ``source``.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found, no-redef]
        except ImportError as exc:
            raise ValueError(
                f"reading {source} needs Python >= 3.11 or `pip install tomli`"
            ) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source} is not valid TOML: {exc}") from exc


def read_config(path: Path, table: str = "run") -> dict[str, Any]:
    """A table of a config file: ``[run]`` (the settings; a file without tables is read
    as one) or ``[data_fingerprint]`` (empty when absent).

    Raises:
        ValueError: If the file is missing or not TOML, or the table is not a table.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read config {str(path)!r}: {exc.strerror or exc}") from exc
    document = parse_toml(text, f"config {str(path)!r}")
    values = document.get(table, document if table == "run" else {})
    if not isinstance(values, dict):
        raise ValueError(f"config {str(path)!r} has no [{table}] table")
    return values


def save_json(path: Path, values: dict[str, Any]) -> None:
    """``values`` as indented JSON at ``path``, atomically (summary.json, metrics.json)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(values, indent=2))
    os.replace(tmp, path)

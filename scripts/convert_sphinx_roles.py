"""Rewrite Sphinx roles in ganlib's docstrings as mkdocstrings cross-references.

The API reference is rendered by mkdocstrings, which shows a Sphinx role such as
``:class:`GAN``` as raw text. This script rewrites each role as an autorefs
reference, ``[`GAN`][ganlib.GAN]``, pointing at the entry the API page really has
(read from the built site's ``objects.inv``), and as plain code (```GAN```) where the
API page has no entry for the target (private helpers, modules, torch objects), so
the strict build never meets a dangling reference.

Short names are resolved as Sphinx resolves them: in the enclosing class first, then
in the module (``:meth:`describe``` inside ``class Runtime`` is ``Runtime.describe``).
Written text follows Sphinx: ``~a.b.C`` shows ``C``, ``a.b.C`` shows ``a.b.C``, and
``Title <target>`` shows ``Title``.

Usage, from the repository root::

    python scripts/convert_sphinx_roles.py src/ganlib/trainer.py src/ganlib/callbacks/*.py
    python scripts/convert_sphinx_roles.py --check src/ganlib   # exit 1 if any role is left

Without ``--inventory`` it builds the site (``mkdocs build``) into a temporary folder to
read ``objects.inv``. A rewritten line that grows past the line length is reported, to
be re-wrapped by hand (``ruff check`` would flag it).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import os
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|exc|obj|const):`([^`]+)`")
LINE_LENGTH = 100


def read_inventory(path: Path) -> dict[str, str]:
    """Every name in a Sphinx ``objects.inv`` (version 2) -> the anchor it links to.

    mkdocstrings lists each rendered object under its documented name (priority 1,
    anchor ``$``: the name itself) and under its aliases, such as where it is defined
    or imported (priority 2, anchor: the documented name).
    """
    raw = path.read_bytes()
    header_end = 0
    for _ in range(4):  # four header lines, then the zlib-compressed body
        header_end = raw.index(b"\n", header_end) + 1
    anchors = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        match = re.match(r"(\S+)\s+\S+\s+-?\d+\s+(\S*)", line)
        if match:
            name, uri = match.groups()
            anchor = uri.split("#", 1)[1] if "#" in uri else name
            anchors[name] = name if anchor in ("$", "") else anchor.replace("$", name)
    return anchors


def build_inventory() -> Path:
    """Build the site into a temporary folder and return its ``objects.inv``."""
    site = Path(tempfile.mkdtemp(prefix="ganlib-site-"))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    config = str(REPO_ROOT / "mkdocs.yml")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-q", "-f", config, "--site-dir", str(site)],
        check=True,
        env=env,
    )
    return site / "objects.inv"


def _lookup(path: str) -> tuple[Any, str] | None:
    """The object at a dotted path and its canonical path (where it is defined)."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        canonical = obj.__name__
        for name in parts[split:]:
            parent = obj
            try:
                obj = getattr(parent, name)
            except AttributeError:
                # A dataclass field or annotated attribute has no class attribute.
                if inspect.isclass(parent) and name in getattr(parent, "__annotations__", {}):
                    return None, f"{canonical}.{name}"
                return None
            if inspect.ismodule(obj):
                canonical = obj.__name__
            elif inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj):
                canonical = f"{obj.__module__}.{obj.__qualname__}"
            else:  # properties, constants, aliases: named where they are found
                canonical = f"{canonical}.{name}"
        return obj, canonical
    return None


def documented_names(inventory: dict[str, str]) -> dict[str, str]:
    """Every path an object may be written by -> its entry on the API page: the inventory's
    names and aliases, and the canonical path (where it is defined) of each entry."""
    names = dict(inventory)
    for name, anchor in inventory.items():
        found = _lookup(name)
        if found is not None:
            names.setdefault(found[1], anchor)
    return names


def module_name(path: Path) -> str:
    """``src/ganlib/data/folder.py`` -> ``ganlib.data.folder``."""
    parts = list(path.resolve().relative_to(REPO_ROOT / "src").with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _class_chains(source: str) -> list[tuple[int, int, list[str]]]:
    """(first line, last line, enclosing class names) of every class in ``source``."""
    chains: list[tuple[int, int, list[str]]] = []

    def visit(node: ast.AST, outer: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                chain = [*outer, child.name]
                chains.append((child.lineno, child.end_lineno or child.lineno, chain))
                visit(child, chain)
            else:
                visit(child, outer)

    visit(ast.parse(source), [])
    return chains


def resolve(
    role: str, target: str, module: str, classes: list[str], documented: dict[str, str]
) -> str | None:
    """The API page's name for ``target`` as written in ``module`` inside ``classes``.

    A method or attribute is looked up in the enclosing classes first, anything else in
    the module first (``:func:`check_labels``` in a class means the module's function).
    """
    target = target.lstrip(".")
    if target.split(".")[0] in ("ganlib", "torch", "torchvision", "numpy"):
        candidates = [target]
    else:
        scopes = [".".join([module, *classes[:k]]) for k in range(len(classes), -1, -1)]
        if role not in ("meth", "attr", "obj"):
            scopes = [module, *scopes[:-1]]
        candidates = [f"{scope}.{target}" for scope in scopes]
    for candidate in candidates:
        if candidate in documented:
            return documented[candidate]
        found = _lookup(candidate)
        if found is not None and found[1] in documented:
            return documented[found[1]]
    return None


def convert_text(
    source: str, module: str, documented: dict[str, str]
) -> tuple[str, list[tuple[int, str, str]]]:
    """``source`` with every role rewritten, and (line, role, replacement) for each."""
    chains = _class_chains(source)
    changes: list[tuple[int, str, str]] = []
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def replace(match: re.Match[str]) -> str:
        line = next(i for i, start in enumerate(starts) if start > match.start())
        classes = max(
            (chain for first, last, chain in chains if first <= line <= last),
            key=len,
            default=[],
        )
        written = match.group(2).strip()
        titled = re.fullmatch(r"(.+?)\s*<([^>]+)>", written)
        if titled:
            text, target = titled.group(1), titled.group(2)
        elif written.startswith("~"):
            target = written[1:]
            text = target.rsplit(".", 1)[-1]
        else:
            text = target = written
        name = resolve(match.group(1), target, module, classes, documented)
        new = f"[`{text}`][{name}]" if name else f"`{text}`"
        changes.append((line, match.group(0), new))
        return new

    return ROLE.sub(replace, source), changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="Python files or folders")
    parser.add_argument("--inventory", type=Path, help="objects.inv of a built site")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT / "src"))
    files = sorted(f for p in args.paths for f in ([p] if p.is_file() else sorted(p.rglob("*.py"))))
    pending = [f for f in files if ROLE.search(f.read_text())]
    if not pending:
        print("no Sphinx roles left")
        return 0
    if args.check:
        for f in pending:
            print(f"{f}: Sphinx roles left")
        return 1
    documented = documented_names(read_inventory(args.inventory or build_inventory()))
    for f in pending:
        new, changes = convert_text(f.read_text(), module_name(f), documented)
        f.write_text(new)
        for line, old, replacement in changes:
            print(f"{f}:{line}: {old} -> {replacement}")
        for number, text in enumerate(new.splitlines(), 1):
            if len(text) > LINE_LENGTH and any(number == line for line, _, _ in changes):
                print(f"{f}:{number}: now {len(text)} characters long: re-wrap it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The documentation site as a reader meets it: it builds strictly from any directory, the
API page shows cross-references (not raw Sphinx roles), every public name has an API entry,
and the guides link to the entries they describe.

One strict ``mkdocs build`` (a few seconds) serves every test that needs the built site;
they skip cleanly where the ``docs`` extra is not installed."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
CONFIG = REPO_ROOT / "mkdocs.yml"
RAW_ROLE = re.compile(r":(class|func|meth|mod|data|attr|exc|obj):(`|<code>)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built with --strict from a directory outside the repository."""
    for plugin in ("mkdocs", "mkdocstrings", "material", "pymdownx"):
        if importlib.util.find_spec(plugin) is None:
            pytest.skip(f"{plugin} is not installed (pip install -e '.[docs]')")
    cwd = tmp_path_factory.mktemp("elsewhere")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(CONFIG),
            "-d",
            str(cwd / "site"),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return cwd / "site"


def test_the_site_builds_strictly_from_another_directory(site):
    changelog = (site / "changelog" / "index.html").read_text()
    first_entry = (REPO_ROOT / "CHANGELOG.md").read_text().split("\n- ", 1)[1].split()[0]
    assert "Unreleased" in changelog and first_entry in changelog  # the snippet was found
    assert (site / "api" / "index.html").exists()


def test_the_api_page_shows_no_raw_sphinx_roles(site):
    pages = sorted((site / "api").rglob("*.html"))
    assert pages
    for page in pages:
        html = page.read_text()
        raw = sorted(
            {
                m.group(0) + html[m.end() : m.end() + 40].split("<")[0]
                for m in RAW_ROLE.finditer(html)
            }
        )
        assert not raw, (
            f"{page.relative_to(site)} shows {len(raw)} raw Sphinx roles, e.g. {raw[:5]}: "
            "run scripts/convert_sphinx_roles.py on the files they come from"
        )

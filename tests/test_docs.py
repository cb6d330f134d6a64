"""The documentation as a user reads it: every snippet runs, generated tables are current.

Blocks marked ```python run; blocks marked ```py need files a user supplies (such as
Inception weights) and are only illustrations. The site itself is built by
``mkdocs build --strict`` in .ci/run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

PAGES = [
    "README.md",
    *sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "docs").glob("*.md")),
]
WITH_SNIPPETS = [page for page in PAGES if "```python\n" in (REPO_ROOT / page).read_text()]


def _snippets(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO_ROOT / page).read_text(), re.S)


def test_the_guides_have_snippets():
    for page in (
        "README.md",
        "docs/index.md",
        "docs/quickstart.md",
        "docs/training.md",
        "docs/models.md",
        "docs/metrics.md",
        "docs/data.md",
    ):
        assert page in WITH_SNIPPETS, f"{page} has no python snippet"


@pytest.mark.parametrize("page", WITH_SNIPPETS)
def test_snippets_run_and_run_again(page, tmp_path, monkeypatch):
    # Twice, in the same folder: a user reruns a snippet as written (issue 31 B). Each
    # round as in a fresh interpreter: names a snippet registers are forgotten between.
    from ganlib import gan

    monkeypatch.chdir(tmp_path)  # snippets write under runs/
    registered = dict(gan._ARCHITECTURES)
    for _ in range(2):
        for code in _snippets(page):
            exec(compile(code, page, "exec"), {"__name__": "__snippet__"})
        gan._ARCHITECTURES.clear()
        gan._ARCHITECTURES.update(registered)


def test_every_page_is_in_the_site_navigation():
    nav = (REPO_ROOT / "mkdocs.yml").read_text()
    for page in PAGES[1:]:
        assert f" {page.removeprefix('docs/')}\n" in nav, f"{page} is missing from mkdocs.yml's nav"


@pytest.mark.parametrize("family", ["dcgan", "resnet"])
def test_layer_tables_match_the_built_networks(family):
    tables = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "layer_tables.py"), family],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert tables in (REPO_ROOT / "docs" / "models.md").read_text()


def test_docs_home_gives_the_readme_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    home = (REPO_ROOT / "docs" / "index.md").read_text()
    assert all(command in home for command in commands)


def _train_commands(page: str) -> list[str]:
    """The ``ganlib train`` commands a page shows: lines of its shell blocks (continuations
    joined) and its inline code."""
    text = (REPO_ROOT / page).read_text()
    fence = re.compile(r"```(\w*)\n(.*?)```", re.S)
    lines = [
        line
        for language, block in fence.findall(text)
        if language in ("bash", "sh", "")
        for line in block.replace("\\\n", " ").splitlines()
    ]
    inline = re.findall(r"`([^`]+)`", fence.sub("", text))
    return [c.replace("\n", " ") for c in lines + inline if "ganlib train " in c]


@pytest.mark.parametrize("page", PAGES)
def test_train_commands_that_set_a_width_name_the_network(page):
    # Without --arch, ganlib train picks the network for the data (ResNetGAN for small
    # grayscale images), so a --width meant for a DCGAN would build another network.
    for command in _train_commands(page):
        if "--width" in command:
            assert "--arch" in command, f"{page}: {command.strip()}"


def test_the_design_page_names_every_module_and_the_home_page_every_guide():
    design = (REPO_ROOT / "docs" / "design.md").read_text()
    for package in ("tasks", "runs", "models", "cli"):
        for path in sorted((REPO_ROOT / "src" / "ganlib" / package).glob("[!_]*.py")):
            named = f"`{path.stem}`" if package == "cli" else f"`{path.name}`"
            assert named in design, f"docs/design.md does not name ganlib/{package}/{path.name}"
    home = (REPO_ROOT / "docs" / "index.md").read_text()
    for page in PAGES[1:]:
        name = page.removeprefix("docs/")
        if name != "index.md":
            assert f"]({name}" in home, f"docs/index.md does not link {name}"

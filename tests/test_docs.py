"""The Python snippets of the README and the guides run as written.

Blocks marked ```python run; blocks marked ```py need files a user supplies (such as
Inception weights) and are only illustrations."""

from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT

PAGES = ["README.md", "docs/training.md", "docs/metrics.md", "docs/data.md"]


def _snippets(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO_ROOT / page).read_text(), re.S)


@pytest.mark.parametrize("page", PAGES)
def test_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets write under runs/
    snippets = _snippets(page)
    assert snippets, f"{page} has no python snippet"
    for code in snippets:
        exec(compile(code, page, "exec"), {"__name__": "__snippet__"})

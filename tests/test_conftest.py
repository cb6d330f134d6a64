"""tests/conftest.py: the skips CI must not take are failures under CI."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_required_tests_skip_here_but_fail_under_ci(tmp_path):
    # The suite's conftest in a folder without shared/ beside it, with a test that needs
    # the real MNIST and one that needs a pytorch-fid module that is not there.
    (tmp_path / "conftest.py").write_text((REPO_ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_needs.py").write_text(
        "import pytest\n\n"
        "def test_digits(mnist_root):\n    pass\n\n"
        "def test_reference():\n    pytest.importorskip('pytorch_fid.not_installed')\n\n"
        "def test_optional():\n    pytest.importorskip('not_a_required_module')\n"
    )

    def outcome(ci: str) -> str:
        env = {**os.environ, "CI": ci}
        command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "."]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
        return done.stdout

    here = outcome("")
    assert "3 skipped" in here, here
    ci = outcome("true")
    assert "1 failed, 1 skipped, 1 error" in ci, ci  # (a fixture's failure is an error)
    assert "CI must run this test, but it skipped: real MNIST not found" in ci
    assert "(CI needs pytorch-fid (the dev extra))" in ci

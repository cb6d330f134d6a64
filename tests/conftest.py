"""Shared test configuration: hypothesis profiles, real-data locations, and the tiny
builders the test files share (``from conftest import tiny_gan``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from ganlib import DCGAN, Trainer

# Model-building examples are slow-ish and vary in cost, so no per-example deadline.
settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

torch.set_num_threads(min(2, torch.get_num_threads()))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Under CI (the environment variable CI set, as CI sets it for .ci/run) these skips are
# failures: CI installs the dev extra, which holds pytorch-fid, in a clone with the
# project's shared/ folder beside it, which holds the real MNIST. A skip there means the
# setup broke, and the tests that compare with pytorch-fid or read real digits did not run.
# (Elsewhere, a developer without them gets a clean skip.)
REQUIRED_UNDER_CI = {
    "real MNIST not found": "the real MNIST (shared/data beside the clone)",
    "could not import 'pytorch_fid": "pytorch-fid (the dev extra)",
}


@pytest.fixture
def mnist_root() -> Path:
    """The real MNIST in torchvision's layout, or a clean skip when it is absent (a
    failure under CI)."""
    if not (SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST not found under {SHARED_DATA}")
    return SHARED_DATA


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CI, a skip for something CI must have (`REQUIRED_UNDER_CI`) fails the test."""
    outcome = yield
    report = outcome.get_result()
    if not (os.environ.get("CI") and report.skipped and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    needed = next((what for key, what in REQUIRED_UNDER_CI.items() if key in reason), None)
    if needed is not None:
        report.outcome = "failed"
        report.longrepr = f"CI must run this test, but it skipped: {reason} (CI needs {needed})"


# ------------------------------------------------------------------ tiny builders
# (ganlib is imported on use: collecting the suite imports nothing more than before)


def tiny_gan(
    seed: int = 0,
    image_size: int = 12,
    channels: int = 1,
    *,
    width: int = 4,
    num_classes: int | None = None,
) -> DCGAN:
    """The small DCGAN most tests train: 12x12, one channel, latent_dim 8, width 4, its
    weights initialised from a generator seeded with ``seed``."""
    from ganlib import DCGAN

    return DCGAN(
        image_size,
        channels,
        latent_dim=8,
        width=width,
        num_classes=num_classes,
        init_generator=torch.Generator().manual_seed(seed),
    )


def images(n: int = 16, seed: int = 1) -> torch.Tensor:
    """``n`` uniform 12x12 one-channel images in [-1, 1], seeded."""
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def trainer(callbacks: list | None = None, **kwargs) -> Trainer:
    """A Trainer of ``tiny_gan()`` (or ``gan=``) for two steps, seed 0, no progress bar,
    on the default device; keyword arguments override."""
    from ganlib import Trainer

    kwargs.setdefault("max_steps", 2)
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("progress", False)
    return Trainer(kwargs.pop("gan", None) or tiny_gan(), callbacks=callbacks or [], **kwargs)


# ------------------------------------------------------- commands as a user runs them


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``python *args`` in the repository root, its output captured."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """The command failed as an argument error (exit 2) whose last line holds ``needles``,
    with no traceback."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert all(n in lines[-1] for n in needles), lines[-1]

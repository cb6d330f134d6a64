"""ganlib.signals: SIGTERM and a terminal's Ctrl-C end a run after the current step, saved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import REPO_ROOT
from ganlib.checkpoint import load_checkpoint

WORKER = REPO_ROOT / "tests" / "resume_worker.py"


def test_sigterm_finishes_the_step_saves_and_exits(tmp_path):
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path), "--steps", "1000", "--slow", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == "step 3":
                break
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0
    assert "TrainingInterrupted: training interrupted by SIGTERM after step" in stderr
    step = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")["state"]["step"]
    assert 3 <= step < 1000


def test_a_terminal_ctrl_c_prints_one_notice_with_dataloader_workers(tmp_path):
    # A terminal's Ctrl-C reaches the whole process group: workers included.
    command = [sys.executable, str(WORKER), str(tmp_path), "--steps", "1000", "--slow", "0.1"]
    process = subprocess.Popen(
        [*command, "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == "step 3":
                break
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert stderr.count("Ctrl-C: finishing the current step") == 1, stderr
    assert "TrainingInterrupted: training interrupted by Ctrl-C" in stderr

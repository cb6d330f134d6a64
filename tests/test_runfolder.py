"""ganlib.runfolder: a run's output folders: a rerun, a setup failure, an unwritable
folder, a second live run and its lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import images, trainer
from ganlib.callbacks import Callback, MetricsLogger, ModelCheckpoint
from ganlib.runfolder import LOCK_NAME, RunFolderError, hold_locks


def test_a_fresh_run_refuses_an_earlier_runs_files_and_overwrite_replaces_them(tmp_path):
    log = tmp_path / "metrics.csv"
    trainer([MetricsLogger(log), ModelCheckpoint(tmp_path / "ckpt")]).fit(images(), batch_size=8)
    first = log.read_text()
    last = (tmp_path / "ckpt" / "last.ckpt").read_bytes()
    with pytest.raises(RunFolderError, match=r"hold an earlier run's files \(.*metrics.csv"):
        trainer([MetricsLogger(log), ModelCheckpoint(tmp_path / "ckpt")]).fit(images())
    assert log.read_text() == first  # untouched: nothing was written
    assert (tmp_path / "ckpt" / "last.ckpt").read_bytes() == last
    again = trainer([MetricsLogger(log), ModelCheckpoint(tmp_path / "ckpt")], overwrite=True)
    assert again.fit(images(), batch_size=8).step == 2
    # Resuming the earlier run is not a rerun.
    resumed = trainer([MetricsLogger(log), ModelCheckpoint(tmp_path / "ckpt")], max_steps=4)
    assert resumed.fit(images(), ckpt_path="last", batch_size=8).step == 4


def test_a_setup_failure_writes_no_untrained_checkpoint(tmp_path):
    (tmp_path / "log.csv").mkdir()  # a log path that is a folder
    ckpt = ModelCheckpoint(tmp_path / "ckpt")
    with pytest.raises(RunFolderError, match=r"MetricsLogger\(path\): '.*log.csv' is a folder"):
        trainer([MetricsLogger(tmp_path / "log.csv"), ckpt]).fit(images(), batch_size=8)
    assert not list((tmp_path / "ckpt").glob("*.ckpt"))

    class FailsAtStart(Callback):
        def on_fit_start(self, trainer):
            raise RuntimeError("no webhook")

    with pytest.raises(RuntimeError, match="no webhook"):
        trainer([FailsAtStart(), ckpt]).fit(images(), batch_size=8)
    assert not list((tmp_path / "ckpt").glob("*.ckpt"))  # nothing trained, nothing saved


def test_an_unwritable_checkpoint_folder_fails_before_step_one(tmp_path):
    (tmp_path / "ckpt").write_text("a file in the way")
    steps: list[int] = []

    class Count(Callback):
        def on_batch_end(self, trainer, metrics):
            steps.append(trainer.state.step)

    with pytest.raises(RunFolderError, match=r"ModelCheckpoint: cannot write to '.*ckpt': a file"):
        trainer([Count(), ModelCheckpoint(tmp_path / "ckpt")]).fit(images(), batch_size=8)
    assert steps == []


def test_a_second_live_run_is_refused_and_a_dead_runs_lock_is_taken_over(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        (tmp_path / LOCK_NAME).write_text(
            json.dumps({"pid": holder.pid, "host": os.uname().nodename, "started": 0})
        )
        with pytest.raises(RunFolderError, match=rf"another run \(pid {holder.pid} on "):
            trainer([MetricsLogger(tmp_path / "m.csv")]).fit(images(), batch_size=8)
        assert not (tmp_path / "m.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder is dead now: its lock is stale.
    assert trainer([MetricsLogger(tmp_path / "m.csv")]).fit(images(), batch_size=8).step == 2
    assert "taking over the lock" in capsys.readouterr().err
    assert not (tmp_path / LOCK_NAME).exists()  # released at the end


def test_locks_are_reentrant_in_one_process_and_released(tmp_path):
    with hold_locks([tmp_path, tmp_path]), hold_locks([tmp_path]):
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()

"""Nothing lost, nothing silently wrong: ganlib under the mistakes real users make.

Run folders (rerun, setup failure, a second live run), failing callbacks, SIGTERM,
failed saves, resume with new settings, bad data, malformed or corrupted checkpoints,
and the evaluator's input checks."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import IterableDataset

from conftest import REPO_ROOT
from ganlib import DCGAN, CheckpointError, Trainer, load_gan
from ganlib.callbacks import Callback, MetricsLogger, ModelCheckpoint, NonFiniteLossError
from ganlib.checkpoint import atomic_save, load_checkpoint
from ganlib.losses import BCELoss
from ganlib.metrics import MNISTEvaluator
from ganlib.runfolder import LOCK_NAME, RunFolderError, hold_locks
from ganlib.sampling import generate

WORKER = REPO_ROOT / "tests" / "resume_worker.py"


def tiny_gan(seed: int = 0) -> DCGAN:
    return DCGAN(12, 1, latent_dim=8, width=4, init_generator=torch.Generator().manual_seed(seed))


def images(n: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def trainer(callbacks: list | None = None, **kwargs) -> Trainer:
    kwargs.setdefault("max_steps", 2)
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("progress", False)
    return Trainer(kwargs.pop("gan", None) or tiny_gan(), callbacks=callbacks or [], **kwargs)


# ----------------------------------------------------------------- run folders


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


# ----------------------------------------------------------- failing callbacks


class Log(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    @property
    def state_key(self) -> str:
        return "Log"

    def on_teardown(self, trainer):
        self.events.append("teardown")


def test_a_failing_on_fit_end_still_saves_and_tears_down(tmp_path):
    class Notifier(Callback):
        def on_fit_end(self, trainer):
            raise ConnectionError("slack is down")

    log, ckpt = Log(), ModelCheckpoint(tmp_path, every_n_epochs=None)
    with pytest.raises(ConnectionError, match="slack is down") as caught:
        trainer([Notifier(), log, ckpt]).fit(images(), batch_size=8)
    assert ckpt.saved and ckpt.saved[-1].endswith("step-0000002.ckpt")  # the final save ran
    assert load_checkpoint(ckpt.last_path)["state"]["step"] == 2
    assert log.events == ["teardown"]
    assert "raised by Notifier.on_fit_end" in caught.value.__notes__


def test_a_failing_on_exception_does_not_cost_the_ctrl_c_checkpoint(tmp_path):
    class CtrlC(Callback):
        def on_batch_end(self, trainer, metrics):
            if trainer.state.step == 2:
                trainer._stop.requested = signal.SIGINT  # as the first Ctrl-C does

    class BrokenNotifier(Callback):
        def on_exception(self, trainer, exception):
            raise RuntimeError("notifier broke")

    log, ckpt = Log(), ModelCheckpoint(tmp_path, every_n_epochs=None)
    with pytest.raises(KeyboardInterrupt, match="interrupted by Ctrl-C after step 2") as caught:
        trainer([CtrlC(), BrokenNotifier(), log, ckpt], max_steps=5).fit(images(), batch_size=8)
    assert load_checkpoint(ckpt.last_path)["state"]["step"] == 2
    assert log.events == ["teardown"]
    assert any("notifier broke" in n for n in caught.value.__notes__)


def test_the_final_save_comes_before_the_end_of_run_work(tmp_path):
    # A grid, plot or report that fails at the run's last epoch end (out of memory, disk
    # full) used to cost the whole run's checkpoint: ModelCheckpoint saves after them.
    class FailsAtEpochEnd(Callback):
        def on_epoch_end(self, trainer):
            raise MemoryError("the grid does not fit")

    saver = ModelCheckpoint(tmp_path / "ckpt")
    with pytest.raises(MemoryError, match="does not fit"):
        trainer([FailsAtEpochEnd(), saver], max_steps=None, max_epochs=1).fit(
            images(), batch_size=8
        )
    saved = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert saved["state"]["step"] == 2  # the last step's weights, saved in its on_batch_end
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "last.ckpt",
        "step-0000002.ckpt",
    ]
    # It resumes: the epoch's end runs again, then the next epoch.
    resumed = trainer([ModelCheckpoint(tmp_path / "ckpt")], max_steps=None, max_epochs=2)
    state = resumed.fit(images(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"), batch_size=8)
    assert (state.step, state.epoch) == (4, 2)
    # Without a failure, the epoch's end saves the same step again, with the epoch counted.
    plain = ModelCheckpoint(tmp_path / "plain")
    trainer([plain], max_steps=None, max_epochs=1).fit(images(), batch_size=8)
    assert load_checkpoint(plain.last_path)["state"] == {
        **load_checkpoint(plain.last_path)["state"],
        "step": 2,
        "epoch": 1,
        "batch_in_epoch": 0,
    }


def test_grids_are_drawn_in_batches():
    gan = tiny_gan()
    sizes: list[int] = []
    gan.generator.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    latents = gan.sample_noise(2500, generator=torch.Generator().manual_seed(0))
    images = generate(gan.generator, latents)
    assert sizes == [1000, 1000, 500] and images.shape == (2500, 1, 12, 12)
    with torch.no_grad():  # up to a batch, the same images as one call (train-mode BatchNorm)
        one_call = gan.generator(latents[:700]).float()
    assert torch.equal(generate(gan.generator, latents[:700]), one_call)


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


def test_giving_a_step_interval_replaces_the_epoch_default(tmp_path):
    assert ModelCheckpoint(tmp_path, every_n_steps=5).every_n_epochs is None
    assert ModelCheckpoint(tmp_path).every_n_epochs == 1
    both = ModelCheckpoint(tmp_path, every_n_steps=5, every_n_epochs=2)
    assert (both.every_n_steps, both.every_n_epochs) == (5, 2)
    ckpt = ModelCheckpoint(tmp_path / "c", every_n_steps=3, keep_last=None)
    trainer([ckpt], max_steps=4).fit(images(), batch_size=8)  # 2 steps an epoch
    assert sorted(p.name for p in (tmp_path / "c").glob("step-*")) == [
        "step-0000003.ckpt",
        "step-0000004.ckpt",  # the final save, not the epoch ends 2 and 4
    ]


# ------------------------------------------------------------------ saving


def test_a_failed_save_records_nothing_and_names_the_cause(tmp_path, monkeypatch, capsys):
    ckpt = ModelCheckpoint(tmp_path, every_n_steps=1)
    t = trainer([ckpt], max_steps=3)
    t.fit(images(), batch_size=8)
    assert ckpt.newest.endswith("step-0000003.ckpt")
    (tmp_path / ".step-0000009.ckpt.x1y2.tmp").write_bytes(b"left by a killed save")

    def disk_full(obj, handle):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    t.max_steps = 4
    with pytest.raises(OSError, match=r"could not write checkpoint .*disk full"):
        t.fit(images(), batch_size=8)
    monkeypatch.undo()
    assert ckpt.newest.endswith("step-0000003.ckpt")  # the failed file is not recorded
    assert load_checkpoint(ckpt.last_path)["state"]["step"] == 3  # still loadable
    assert "newest checkpoint: " in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp"))  # stale and partial temporary files are gone


# ------------------------------------------------------------------ resuming


def test_resume_applies_the_users_new_learning_rate_with_a_notice(tmp_path, capsys):
    t = trainer([])
    t.fit(images(), batch_size=8)
    t.save_checkpoint(str(tmp_path / "a.ckpt"))
    gan = tiny_gan()
    faster = torch.optim.Adam(gan.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    resumed = trainer([], gan=gan, g_optimizer=faster, max_steps=3)
    resumed.fit(images(), str(tmp_path / "a.ckpt"), batch_size=8)
    assert resumed.g_optimizer.param_groups[0]["lr"] == 1e-3
    assert "g_optimizer lr: 0.0002 -> 0.001" in capsys.readouterr().err


def test_loading_is_all_or_nothing(tmp_path):
    sgd = trainer([], g_optimizer=lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9))
    sgd.fit(images(), batch_size=8)
    sgd.save_checkpoint(str(tmp_path / "sgd.ckpt"))
    adam = trainer([], gan=tiny_gan(seed=3))
    before = {k: v.clone() for k, v in adam.generator.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"does not fit this trainer: .*another kind of opt"):
        adam.load_checkpoint(str(tmp_path / "sgd.ckpt"))
    assert all(torch.equal(v, adam.generator.state_dict()[k]) for k, v in before.items())
    assert adam.state.step == 0 and adam.seed == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.pop("state"), r"`state` is missing"),
        (lambda p: p.pop("callbacks"), r"`callbacks` is not a mapping"),
        (lambda p: p.pop("rng"), r"`rng` is missing"),
        (lambda p: p["state"].update(step="12"), r"`state.step` must be an integer >= 0, got '12'"),
        (lambda p: p.update(seed=-3), r"`seed` must be an integer >= 0, got -3"),
        (lambda p: p.update(generator=[1, 2]), r"`generator` is not a state dict"),
    ],
)
def test_a_malformed_checkpoint_is_refused_before_anything_changes(tmp_path, edit, message):
    t = trainer([])
    t.fit(images(), batch_size=8)
    payload = t.state_dict()
    edit(payload)
    atomic_save(payload, tmp_path / "bad.ckpt")
    fresh = trainer([], gan=tiny_gan(seed=3))
    before = [p.clone() for p in fresh.generator.parameters()]
    with pytest.raises(CheckpointError, match=message):
        fresh.load_checkpoint(str(tmp_path / "bad.ckpt"))
    assert all(torch.equal(a, b) for a, b in zip(before, fresh.generator.parameters(), strict=True))


def test_flipped_bytes_and_inflated_configs_are_caught(tmp_path):
    t = trainer([])
    t.fit(images(), batch_size=8)
    path = tmp_path / "run.ckpt"
    t.save_checkpoint(str(path))
    assert load_checkpoint(path)["checksum"].startswith("crc32:")
    payload = torch.load(path, weights_only=True)
    payload["generator"]["net.0.weight"][0, 0, 0, 0] += 1.0  # one changed number
    torch.save(payload, tmp_path / "flipped.ckpt")
    with pytest.raises(CheckpointError, match="corrupted: its tensor data does not match"):
        load_checkpoint(tmp_path / "flipped.ckpt")
    payload = torch.load(path, weights_only=True)
    payload.pop("checksum")
    payload["gan_config"]["image_size"] = 4096  # would be a multi-gigabyte network
    torch.save(payload, tmp_path / "inflated.ckpt")
    with pytest.raises(CheckpointError, match=r"builds [\d,]+ parameters, but the file holds"):
        load_gan(tmp_path / "inflated.ckpt")
    with pytest.raises(CheckpointError, match=r"is a folder, not a file"):
        load_checkpoint(tmp_path)


# --------------------------------------------------------------------- data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (images(8).squeeze(1), r"4-d tensor \(N, C, H, W\), got shape \(8, 12, 12\).*unsqueeze"),
        (images(8)[:, None], r"4-d tensor \(N, C, H, W\), got shape \(8, 1, 1, 12, 12\)"),
        (images(1)[0], r"got shape \(1, 12, 12\); a single image"),
        ((images(40), torch.zeros(20, dtype=torch.long)), r"40 images, 20 labels"),
        ((images(40), torch.zeros(80, dtype=torch.long)), r"40 images, 80 labels"),
    ],
)
def test_tensor_data_of_the_wrong_form_is_refused_before_step_one(data, message):
    with pytest.raises(ValueError, match=message):
        trainer([]).fit(data, batch_size=8)


def test_non_finite_images_anywhere_are_refused():
    data = images(40)
    data[20, 0, 3, 3] = float("nan")
    with pytest.raises(
        ValueError, match=r"NaN or infinite values in 1 images \(the first is image 20"
    ):
        trainer([]).fit(data, batch_size=8)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_are_cast(dtype):
    assert trainer([]).fit(images().to(dtype), batch_size=8).step == 2


def test_range_is_checked_on_every_image():
    data = images(40)
    data[30] = data[30] * 127.5 + 127.5  # one image in [0, 255]
    with pytest.warns(UserWarning, match=r"images range over \[-1, 2"):
        trainer([]).fit(data, batch_size=8)
    with pytest.warns(UserWarning, match=r"they look like \[0, 1\]"):
        trainer([]).fit((images(16) + 1) / 2, batch_size=8)


def test_an_empty_iterable_dataset_is_named():
    class Empty(IterableDataset):
        def __iter__(self):
            return iter([])

    with pytest.raises(ValueError, match="`data` is empty"):
        trainer([]).fit(Empty(), batch_size=8)


def test_a_run_that_turns_nan_stops_by_default():
    class GoesNaN(BCELoss):
        def generator_loss(self, fake_logits):
            return super().generator_loss(fake_logits) * float("nan")

    with pytest.raises(NonFiniteLossError, match=r"loss_g is nan at step 1"):
        trainer([], loss=GoesNaN()).fit(images(), batch_size=8)
    assert trainer([], loss=GoesNaN(), nan_guard=False).fit(images(), batch_size=8).step == 2


def test_callbacks_must_be_a_list():
    with pytest.raises(TypeError, match=r"`callbacks` must be a list.*callbacks=\[Log\(...\)\]"):
        Trainer(tiny_gan(), callbacks=Log())
    with pytest.raises(TypeError, match=r"got None; write callbacks=\[\]"):
        Trainer(tiny_gan(), callbacks=None)


# ---------------------------------------------------------------- evaluator


@pytest.fixture(scope="module")
def evaluator() -> MNISTEvaluator:
    return MNISTEvaluator(torch.rand(20, 1, 28, 28) * 2 - 1)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (torch.rand(4, 1, 64, 64) * 2 - 1, r"shaped \(N, 1, 28, 28\), got \(4, 1, 64, 64\)"),
        (torch.rand(4, 1, 8, 8) * 2 - 1, r"got \(4, 1, 8, 8\)"),
        (torch.rand(4, 3, 28, 28) * 2 - 1, r"got \(4, 3, 28, 28\)"),
        (torch.rand(4, 1, 28, 28) * 255, r"must lie in \[-1, 1\]"),
        ((torch.rand(4, 1, 28, 28) * 255).to(torch.uint8), r"floating point.*x / 127.5 - 1"),
        (torch.full((4, 1, 28, 28), float("nan")), r"NaN or infinite"),
    ],
)
def test_the_evaluator_names_what_is_wrong_with_its_images(evaluator, batch, message):
    with pytest.raises(ValueError, match=message):
        evaluator.score(batch)


def test_the_evaluator_refuses_a_reference_in_0_1():
    with pytest.raises(
        ValueError, match=r"must lie in \[-1, 1\].*for \[0, 1\] images use x \* 2 - 1"
    ):
        MNISTEvaluator(torch.rand(20, 1, 28, 28))


def test_the_evaluator_accepts_float64(evaluator):
    assert evaluator.score((torch.rand(6, 1, 28, 28) * 2 - 1).double()).num_samples == 6


# --------------------------------------------------------- CLI and example


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert all(n in lines[-1] for n in needles), lines[-1]


def test_ganlib_sample_errors_name_the_flag(tmp_path):
    t = trainer([])
    t.fit(images(), batch_size=8)
    ckpt = str(tmp_path / "run.ckpt")
    t.save_checkpoint(ckpt)
    cli = ["-m", "ganlib", "sample"]
    one_line_error(run(*cli, ckpt, "--num", "10000000"), "--num", "must be at most 10,000")
    one_line_error(run(*cli, ckpt, "--out", str(tmp_path)), "--out", "is a folder")
    one_line_error(run(*cli, ckpt, "--seed", "-1"), "--seed", "must be >= 0")
    one_line_error(
        run(*cli, str(tmp_path)), "has no checkpoint yet: it has no checkpoints/last.ckpt"
    )
    result = run(*cli, ckpt, "--num", "4", "--out", str(tmp_path / "grid"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "grid.png").is_file()
    version = run("-m", "ganlib", "--version")
    assert version.returncode == 0 and version.stdout.startswith("ganlib ")


EXAMPLE = str(REPO_ROOT / "examples" / "mnist.py")


def example_args(data: Path, out: Path) -> list[str]:
    return [
        *("--data-dir", str(data), "--out", str(out), "--device", "cpu", "--no-download"),
        *("--width", "4", "--latent-dim", "8", "--batch-size", "20", "--score-samples", "0"),
    ]


def example(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(EXAMPLE, *example_args(data, out), *extra)


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    from ganlib.data import fake_mnist

    root = tmp_path_factory.mktemp("data")
    fake_mnist(root, count=60)
    return root


def test_the_example_never_clobbers_an_earlier_run(fake_data, tmp_path):
    out = tmp_path / "run"
    assert example(fake_data, out, "--max-steps", "2").returncode == 0
    log = (out / "metrics.csv").read_text()
    one_line_error(example(fake_data, out, "--max-steps", "2"), "--resume", "--overwrite")
    assert (out / "metrics.csv").read_text() == log
    resumed = example(fake_data, out, "--max-steps", "4", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "checkpoints" / "last.ckpt")["state"]["step"] == 4
    again = example(fake_data, out, "--max-steps", "1", "--overwrite")
    assert again.returncode == 0, again.stderr


def test_the_example_checks_its_flags_before_training(fake_data, tmp_path):
    one_line_error(example(fake_data, tmp_path / "a", "--score-samples", "1"), "--score-samples")
    one_line_error(example(fake_data, tmp_path / "b", "--seed", "-1"), "--seed", ">= 0")
    (tmp_path / "file").write_text("x")
    one_line_error(example(fake_data, tmp_path / "file"), "--out", "is a file")


def test_the_example_ends_on_sigterm_with_one_line_and_143(fake_data, tmp_path):
    out = tmp_path / "run"
    args = [*example_args(fake_data, out), "--epochs", "1000"]
    process = subprocess.Popen(
        [sys.executable, EXAMPLE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("runtime:"):
                break
        while not (out / "checkpoints" / "last.ckpt").exists():  # an epoch is 3 steps
            if process.poll() is not None:
                break
            subprocess.run(["sleep", "0.2"], check=False)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "stopped: training interrupted by SIGTERM" in stderr.strip().splitlines()[-1]


def test_a_file_callback_named_by_another_path_keeps_its_history(tmp_path, monkeypatch, capsys):
    from ganlib.callbacks import LossCurve

    monkeypatch.chdir(tmp_path)
    first = LossCurve("curve.png")
    t = trainer([first, ModelCheckpoint("ckpt")])
    t.fit(images(), batch_size=8)
    again = LossCurve(tmp_path / "curve.png")  # the same file, as an absolute path
    resumed = trainer([again, ModelCheckpoint("ckpt")], max_steps=4)
    resumed.fit(images(), ckpt_path="last", batch_size=8)
    assert again.history.series()[0] == [1.0, 2.0, 3.0, 4.0]  # the first fit's steps kept
    assert "restoring LossCurve[" in capsys.readouterr().err


def test_model_checkpoint_keeps_the_best_by_a_monitored_metric(tmp_path):
    ckpt = ModelCheckpoint(tmp_path, every_n_steps=1, keep_last=2, monitor="loss_d", mode="min")
    seen: dict[int, float] = {}

    class Record(Callback):
        def on_batch_end(self, trainer, metrics):
            seen[trainer.state.step] = metrics["loss_d"]

    trainer([Record(), ckpt], max_steps=6).fit(images(), batch_size=8)
    best_step = min(seen, key=seen.get)
    assert load_checkpoint(ckpt.best_path)["state"]["step"] == best_step
    assert ckpt.best_score == pytest.approx(seen[best_step])
    assert len(list(tmp_path.glob("step-*.ckpt"))) == 2  # keep_last still holds
    with pytest.raises(ValueError, match=r"`mode` must be 'min' or 'max', got 'least'"):
        ModelCheckpoint(tmp_path, monitor="loss_d", mode="least")  # type: ignore[arg-type]


# ------------------------------------------------------- the suite itself under CI


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

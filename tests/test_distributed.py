"""Distributed training: torchrun with 2 CPU processes (gloo), sharding, rank-0 outputs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import IterableDataset, TensorDataset

from conftest import REPO_ROOT
from ddp_worker import identifiable_images, tiny_gan
from ganlib import DCGAN, Trainer
from ganlib.batching import BatchSource
from ganlib.callbacks import Callback, MetricsLogger, ModelCheckpoint
from ganlib.callbacks.base import CallbackList
from ganlib.checkpoint import CheckpointError, load_checkpoint
from ganlib.distributed import (
    JOB_MARKER,
    WorldInfo,
    _warn_if_restarts_share_the_store,
    restart_checkpoint,
    setup,
    step_seed,
)

WORKER = REPO_ROOT / "tests" / "ddp_worker.py"


def test_torchrun_two_processes_train_in_step_and_resume_both_ways(tmp_path):
    images = identifiable_images()  # 48 images, batch 6
    # 1. One process, one epoch (8 steps), then a checkpoint.
    torch.manual_seed(0)
    single = Trainer(tiny_gan(), max_epochs=1, seed=0, progress=False, strategy="single")
    single.fit(images, batch_size=6)
    single.save_checkpoint(str(tmp_path / "single.ckpt"))

    # 2. torchrun, 2 processes, resumes it for a second epoch (24 images, 4 steps per rank).
    # One launch, no retry: the worker takes its process group down in a `finally`.
    out, probe = tmp_path / "out", tmp_path / "probe"
    probe.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(WORKER), str(out), str(probe)]
    command += [str(tmp_path / "single.ckpt"), "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(probe / f"rank{r}.pt") for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["main"] for r in ranks] == [True, False]
    assert [r["step"] for r in ranks] == [12, 12]
    # DDP made the differently seeded weights equal and kept them equal.
    for name, value in ranks[0]["parameters"].items():
        assert torch.equal(value, ranks[1]["parameters"][name]), name
    # Logged metrics are averaged over the ranks, so both see the same figures; both
    # evaluated at the last step, to the same scores.
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    assert {"fd", "diversity"} <= set(ranks[0]["metrics"])
    # Each rank saw its own half of the epoch: disjoint, together every image once.
    seen = [set(r["seen"]) for r in ranks]
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 24
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 48

    # One set of outputs, written by rank 0 alone.
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["step", "9", "10", "11", "12"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "last.ckpt",
        "step-0000012.ckpt",
    ]
    assert (out / "generated_epoch_002.png").exists()
    payload = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert payload["world_size"] == 2
    for name, value in ranks[0]["parameters"].items():
        network, key = name.split(".", 1)
        assert torch.equal(payload[network][key], value), name

    # 3. The DDP checkpoint resumes in one process for a third epoch.
    resumed = Trainer(tiny_gan(), max_epochs=3, seed=0, progress=False, strategy="single")
    state = resumed.fit(images, str(out / "checkpoints" / "last.ckpt"), batch_size=6)
    assert (state.epoch, state.step) == (3, 20)


def split_source(data, rank: int, world_size: int) -> BatchSource:
    return BatchSource(
        data,
        batch_size=4,
        shuffle=True,
        drop_last=False,
        num_workers=0,
        seed=5,
        device=torch.device("cpu"),
        rank=rank,
        world_size=world_size,
    )


def shards(data, world_size: int) -> list[BatchSource]:
    return [split_source(data, rank, world_size) for rank in range(world_size)]


def values_seen(source: BatchSource, epoch: int) -> list[float]:
    return [v for images, _ in source.epoch(epoch) for v in images.flatten().tolist()]


def test_sharding_splits_every_epoch_evenly_and_reproducibly():
    values = torch.arange(11.0)[:, None, None, None]  # 11 images: 4 per rank of 3, padded
    for data in (values, TensorDataset(values)):
        sources = shards(data, 3)
        assert [len(s) for s in sources] == [1, 1, 1]
        for epoch in (0, 1):
            seen = [values_seen(s, epoch) for s in sources]
            assert [len(v) for v in seen] == [4, 4, 4]
            assert set().union(*seen) == set(range(11))  # one image is repeated as padding
            assert values_seen(shards(data, 3)[1], epoch) == seen[1]  # reproducible
        assert seen != [values_seen(s, 0) for s in sources]  # (seen: epoch 1) reshuffled


def test_iterable_datasets_cannot_be_split():
    class Stream(IterableDataset):
        def __iter__(self):
            yield torch.zeros(1, 12, 12)

    with pytest.raises(ValueError, match="iterable-style dataset cannot be split"):
        split_source(Stream(), rank=0, world_size=2)


def test_strategy_outside_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    world, device = setup("auto", "cpu")
    assert (world.rank, world.world_size, world.is_main, device) == (0, 1, True, "cpu")
    with pytest.raises(ValueError, match="needs a process group: launch with `torchrun"):
        setup("ddp", "cpu")
    with pytest.raises(ValueError, match="`strategy` must be 'auto', 'single' or 'ddp', got 'dp'"):
        Trainer(tiny_gan(), strategy="dp")  # type: ignore[arg-type]
    # Without DDP, sync_batchnorm changes nothing.
    trainer = Trainer(tiny_gan(), sync_batchnorm=True, progress=False)
    assert trainer.is_main_process
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in trainer.generator.modules())


def test_other_ranks_skip_callbacks_that_write(tmp_path):
    class Counter(Callback):
        calls = 0

        def on_fit_start(self, trainer):
            self.calls += 1

    counter, logger = Counter(), MetricsLogger(tmp_path / "m.csv")
    CallbackList([counter, logger], main_process=False).call("on_fit_start", None)
    assert counter.calls == 1 and not (tmp_path / "m.csv").exists()


def test_step_seeds_differ_per_rank_and_step():
    seeds = {step_seed(7, rank, step) for rank in range(4) for step in range(100)}
    assert len(seeds) == 400


# ---------------------------------------------------------------- launchers and engines

LAUNCH_WORKER = REPO_ROOT / "tests" / "launch_worker.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
# What a launcher sets for its processes: the own-group test starts them without any.
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_together(commands: list[list[str]], env: dict[str, str]) -> list[tuple[int, str]]:
    """Start every command at once and wait for all: the exit code and output of each."""
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c in commands
    ]
    outputs = []
    for process in processes:
        try:
            output, _ = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        outputs.append((process.returncode, output))
    return outputs


def launched(tmp_path: Path, commands: list[list[str]], *worker_args: str, env=None) -> list[dict]:
    """Run each launcher command with the worker (OUT ``tmp_path/run``) and load what the
    two ranks left; every command must succeed."""
    out, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    commands = [[*c, str(LAUNCH_WORKER), str(out), str(probe), *worker_args] for c in commands]
    env = env or {**os.environ, "OMP_NUM_THREADS": "1"}
    results = run_together(commands, env)
    for code, output in results:
        assert code == 0, output[-3000:]
    return [torch.load(probe / f"rank{r}.pt") for r in (0, 1)]


@pytest.fixture(scope="module")
def one_node_run(tmp_path_factory) -> list[dict]:
    """The reference: torchrun, one node of two processes, from scratch."""
    tmp_path = tmp_path_factory.mktemp("one-node")
    return launched(tmp_path, [[*TORCHRUN, "--standalone", "--nproc-per-node", "2"]])


def assert_trained_like(ranks: list[dict], reference: list[dict]) -> None:
    assert [r["rank"] for r in ranks] == [0, 1]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["step"] for r in ranks] == [6, 6]
    for rank in ranks:
        for name, value in reference[0]["parameters"].items():
            assert torch.equal(rank["parameters"][name], value), name


def initial_parameters() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # rank 0's weights, which DDP copies to every rank
    return dict(DCGAN(image_size=8, width=4, latent_dim=4).named_parameters())


def test_one_node_reference_trains_every_rank_alike(one_node_run):
    assert_trained_like(one_node_run, one_node_run)
    start = initial_parameters()
    assert all(r["started_at"] == 0 and r["restart_count"] == 0 for r in one_node_run)
    assert not all(torch.equal(one_node_run[0]["parameters"][k], v) for k, v in start.items())


def test_two_nodes_through_c10d_rendezvous_train_like_one_node(tmp_path, one_node_run):
    rendezvous = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]
    node = [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", *rendezvous, "--rdzv-id", "two"]
    nodes = [[*node, "--node-rank", str(rank)] for rank in (0, 1)]  # (c10d ignores it)
    ranks = launched(tmp_path, nodes)
    assert_trained_like(ranks, one_node_run)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["step", "1", "2", "3", "4", "5", "6"]


def test_elastic_restart_resumes_every_rank_from_the_newest_checkpoint(tmp_path, one_node_run):
    # Rank 1 kills itself after step 5 of the first attempt; the newest checkpoint is
    # step 4's (every 2 steps, none saved on the exception).
    torchrun = [*TORCHRUN, "--standalone", "--nproc-per-node", "2", "--max-restarts", "1"]
    # A fresh store for each attempt (the shared one can hand the restarted ranks the failed
    # attempt's gloo addresses: pytorch/pytorch#135712, one restart in 7 with torch 2.14.1).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    ranks = launched(tmp_path, [torchrun], "--kill-rank", "1", "--kill-at", "5", env=env)
    assert [(r["restart_count"], r["started_at"]) for r in ranks] == [(1, 4), (1, 4)]
    assert_trained_like(ranks, one_node_run)
    # Rank 0's files hold each step once: the killed attempt's step 5 was taken back.
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["step", "1", "2", "3", "4", "5", "6"]
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert saved == ["last.ckpt", "step-0000002.ckpt", "step-0000004.ckpt", "step-0000006.ckpt"]


def test_a_process_group_made_by_the_script_is_joined_and_left_alive(tmp_path, one_node_run):
    # Two plain processes, no launcher: the script makes the group, ranks from its arguments.
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    port = str(free_port())
    out, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    commands = [
        [sys.executable, str(LAUNCH_WORKER), str(out), str(probe), "--own-group", port, str(rank)]
        for rank in (0, 1)
    ]
    for code, output in run_together(commands, {**env, "OMP_NUM_THREADS": "1"}):
        assert code == 0, output[-3000:]
    ranks = [torch.load(probe / f"rank{r}.pt") for r in (0, 1)]
    assert all(r["group_kept"] and r["backend"] == "gloo" for r in ranks)
    assert_trained_like(ranks, one_node_run)


def test_accelerate_launch_runs_the_trainer_in_its_process_group(tmp_path, one_node_run):
    pytest.importorskip("accelerate")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2"]
    ranks = launched(tmp_path, [[*launch, "--multi_gpu"]], "--accelerate")
    assert all(r["group_kept"] and r["backend"] == "gloo" for r in ranks)
    assert_trained_like(ranks, one_node_run)


SBATCH = REPO_ROOT / "examples" / "slurm" / "train.sbatch"


def test_the_slurm_script_starts_one_torchrun_per_node(tmp_path):
    """A dry run: fake srun and scontrol on the PATH, SLURM's variables made up."""
    assert subprocess.run(["bash", "-n", str(SBATCH)]).returncode == 0
    bin = tmp_path / "bin"
    bin.mkdir()
    (bin / "scontrol").write_text(
        '#!/bin/sh\n[ "$1 $2 $3" = "show hostnames gpu-a[01-02]" ] || exit 1\n'
        'printf "gpu-a01\\ngpu-a02\\n"\n'
    )
    (bin / "srun").write_text(
        '#!/bin/sh\necho "fresh store: $TORCH_DISABLE_SHARE_RDZV_TCP_STORE"\n'
        'for arg in "$@"; do echo "$arg"; done\n'
    )
    for tool in bin.iterdir():
        tool.chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu-a[01-02]", "SLURM_NNODES": "2"}
    env = {"PATH": f"{bin}:/usr/bin:/bin", **slurm, "SLURM_GPUS_ON_NODE": "4", "MAX_RESTARTS": "3"}
    script = ["bash", str(SBATCH), "train.py", "--out", "/shared/runs/gan"]
    result = subprocess.run(script, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ganlib: 2 nodes x 4 processes, rendezvous at gpu-a01:29500",
        "fresh store: 1",
        *["--nodes", "2", "--ntasks-per-node", "1"],  # srun: one torchrun per node
        *["python", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "4"],
        *["--rdzv-backend", "c10d", "--rdzv-endpoint", "gpu-a01:29500"],
        *["--rdzv-id", "ganlib-4242", "--max-restarts", "3"],
        *["train.py", "--out", "/shared/runs/gan"],
    ]
    # Without a script, or outside a SLURM job: one line on stderr, exit 2.
    for args, variables, message in [
        ([], env, "usage: sbatch"),
        (script[2:], {"PATH": env["PATH"]}, "SLURM_JOB_ID and SLURM_JOB_NODELIST are unset"),
    ]:
        result = subprocess.run([*script[:2], *args], env=variables, capture_output=True, text=True)
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert message in result.stderr


# ---------------------------------------------------------------- restart_checkpoint alone


@pytest.fixture
def elastic(monkeypatch, tmp_path):
    """One process posing as a rank of a 2-process torchrun job: the collectives are
    stubbed (``any``: this rank's flag; ``broadcast``: rank 0's decision, as given)."""
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-1")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "1")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    monkeypatch.setattr(WorldInfo, "any", lambda self, flag, device: flag)
    rank0 = {}  # what rank 0 broadcasts, when this rank is not rank 0

    def broadcast(tensor, src):
        if rank0:
            tensor.copy_(torch.tensor(rank0["decision"]))

    monkeypatch.setattr(torch.distributed, "broadcast", broadcast)
    saver = ModelCheckpoint(tmp_path / "checkpoints")
    return saver, rank0


def save_last(saver: ModelCheckpoint, text: str = "weights") -> None:
    saver.dirpath.mkdir(parents=True, exist_ok=True)
    (saver.dirpath / "step-0000004.ckpt").write_text(text)
    saver.last_path.unlink(missing_ok=True)
    os.link(saver.dirpath / "step-0000004.ckpt", saver.last_path)


CPU = torch.device("cpu")


def test_restart_checkpoint_first_start_marks_the_folder_and_keeps_ckpt_path(elastic, monkeypatch):
    saver, _ = elastic
    main = WorldInfo(rank=0, world_size=2)
    assert restart_checkpoint("given.ckpt", main, [saver], CPU) == "given.ckpt"
    assert json.loads((saver.dirpath / JOB_MARKER).read_text()) == {"run_id": "job-1"}
    # Not under torchrun's agent, or in one process: nothing is looked at or written.
    other = ModelCheckpoint(saver.dirpath.parent / "other")
    assert restart_checkpoint(None, WorldInfo(), [other], CPU) is None
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    assert restart_checkpoint(None, main, [other], CPU) is None
    assert not other.dirpath.exists()


def test_restart_checkpoint_resumes_only_from_this_jobs_checkpoint(elastic, monkeypatch):
    saver, _ = elastic
    main = WorldInfo(rank=0, world_size=2)
    save_last(saver, "an earlier job's")  # already there when this job starts
    old = saver.last_path.stat().st_mtime_ns
    restart_checkpoint(None, main, [saver], CPU)  # the first start marks the folder
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    os.utime(saver.last_path, ns=(old - 10**9, old - 10**9))
    assert restart_checkpoint("given.ckpt", main, [saver], CPU) == "given.ckpt"
    save_last(saver, "this job's")  # saved after the mark
    assert restart_checkpoint("given.ckpt", main, [saver], CPU) == str(saver.last_path)
    assert restart_checkpoint(None, main, [], CPU) is None  # no ModelCheckpoint: as given
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-2")  # another job's mark
    assert restart_checkpoint(None, main, [saver], CPU) is None


def test_restart_checkpoint_refuses_a_checkpoint_other_ranks_cannot_read(elastic, monkeypatch):
    saver, rank0 = elastic
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    second = WorldInfo(rank=1, world_size=2)
    rank0["decision"] = [1, 7, 123]  # rank 0 resumes from its last.ckpt (7 bytes, mtime 123)
    with pytest.raises(CheckpointError, match=r"rank 1 cannot read it; checkpoints must be on"):
        restart_checkpoint(None, second, [saver], CPU)
    save_last(saver, "another")  # per-node storage: another file under the same name
    with pytest.raises(CheckpointError, match=r"rank 1 sees another file there"):
        restart_checkpoint(None, second, [saver], CPU)
    stat = saver.last_path.stat()
    rank0["decision"] = [1, stat.st_size, stat.st_mtime_ns]  # the file rank 0 has
    assert restart_checkpoint(None, second, [saver], CPU) == str(saver.last_path)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "one")
    with pytest.raises(ValueError, match="`TORCHELASTIC_RESTART_COUNT` must be an integer"):
        restart_checkpoint(None, second, [saver], CPU)


def test_a_restartable_job_on_the_shared_store_gets_a_warning(monkeypatch, capsys):
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "2")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("RANK", "0")
    _warn_if_restarts_share_the_store()
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in capsys.readouterr().err
    # No restarts, a store per attempt, or another rank than 0: nothing.
    for name, value in [
        ("TORCHELASTIC_MAX_RESTARTS", "0"),
        ("TORCHELASTIC_USE_AGENT_STORE", "False"),
        ("RANK", "1"),
    ]:
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            _warn_if_restarts_share_the_store()
        assert capsys.readouterr().err == ""

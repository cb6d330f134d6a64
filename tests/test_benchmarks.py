"""The benchmark scripts still run against the current API (figures are not checked:
timing belongs to the scripts, not to tests)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT
from ganlib.runtime import Runtime


def test_throughput_benchmark_prints_its_table_and_ceiling():
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "throughput.py")]
    command += ["--steps", "1", "--rounds", "1", "--warmup", "1", "--batch-size", "8"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("| ") and "variant" not in line
    }
    assert set(rows) == {"a_recipe_loop", "b_trainer", "c_trainer_fast"}
    # The recipe's loop does D's weight gradients in G's step too: more FLOPs per step.
    flops = {name: float(row.split("|")[6]) for name, row in rows.items()}
    assert flops["a_recipe_loop"] > flops["b_trainer"] > 0
    assert flops["c_trainer_fast"] == pytest.approx(flops["b_trainer"], rel=0.01)
    # Each row says what it ran with: the Trainer's from its Runtime, as fit settled it
    # for the run the benchmark plans (2,000 steps by default).
    ran_with = {name: row.split("|")[10].strip() for name, row in rows.items()}
    cpu = torch.device("cpu")
    assert ran_with["a_recipe_loop"].startswith("precision 32, compile off, channels_last off")
    assert ran_with["b_trainer"] == Runtime.resolve(cpu).summary()
    assert ran_with["c_trainer_fast"] == Runtime.resolve(cpu, fast=True).for_run(2000).summary()
    assert "channels_last on" in ran_with["c_trainer_fast"]
    assert re.search(
        r"no fp32 fast path beats \(a\) by more than \d+\.\d+x|fp32 ceiling: none", result.stdout
    )
    assert re.search(r"convolutions alone: \d+% of \(c\)'s step", result.stdout)


def test_variants_speed_benchmark_prints_every_variant():
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "variants_speed.py")]
    command += ["--steps", "1", "--rounds", "1", "--warmup", "0", "--batch-size", "4"]
    command += ["--resnet-widths", "8"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("| ") and "variant" not in line
    }
    assert set(rows) == {
        f"{name}{aug}" for name in ("dcgan", "dcgan_sn", "resnet_w8") for aug in ("", "+diffaug")
    }
    assert result.stdout.startswith("cpu: ")
    flops = {name: float(row.split("|")[4]) for name, row in rows.items()}
    assert flops["dcgan_sn"] == pytest.approx(flops["dcgan"], rel=0.01)


def test_variants_speed_compares_plain_and_fast_side_by_side():
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "variants_speed.py")]
    command += ["--steps", "1", "--rounds", "1", "--warmup", "0", "--batch-size", "4"]
    command += ["--resnet-widths", "8", "--no-augment", "--compare-fast"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and "variant" not in line
    }
    names = ("dcgan", "dcgan_sn", "resnet_w8")
    assert set(rows) == {f"{name}{path}" for name in names for path in ("", " fast")}
    for name in names:
        plain, fast = rows[name], rows[f"{name} fast"]
        assert plain[-1] == "" and fast[-1].endswith("x")  # the speed-up, on the fast row
        ratio = float(fast[3]) / float(plain[3])  # images/s
        assert float(fast[-1][:-1]) == pytest.approx(ratio, rel=0.02, abs=0.01)
        assert float(plain[-3]) > 0 and float(plain[-2]) > 0  # CPU ms/image, GFLOP/s


def test_compile_cost_benchmark_times_a_first_step_and_finds_the_break_even():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        from compile_cost import break_even
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    # 3 first steps 20 s slower, each later step 50 ms faster: even after 3 + 400 steps.
    assert break_even(3, 20.0, 0.05) == "403"
    assert break_even(3, 20.0, -0.01).startswith("never")
    # One fresh-process measurement, uncompiled (compiling would take this test ~40 s).
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "compile_cost.py")]
    command += ["--child", "first", "--width", "8", "--first-steps", "1", "--batch-size", "4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seconds = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(seconds) == {"wall", "cpu"} and seconds["wall"] > 0


def test_fast_step_pieces_benchmark_prints_the_pieces_and_the_variants():
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "fast_step_pieces.py")]
    command += ["--variants", "fast,defaults", "--width", "8", "--batch-size", "4"]
    command += ["--rounds", "1", "--steps", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"convolutions +\d+\.\d%", result.stdout)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| fast |")]
    fast = Runtime.resolve(torch.device("cpu"), fast=True).summary().replace(", fused Adam", "")
    assert len(rows) == 1 and f"{fast}, fused Adam" in rows[0]
    assert "data path:" in result.stdout


def test_stacked_mnist_benchmark_trains_scores_and_rescores(tmp_path):
    from ganlib.data import fake_mnist

    fake_mnist(tmp_path / "data", count=40)
    run, script = tmp_path / "run", str(REPO_ROOT / "benchmarks" / "stacked_mnist.py")
    tiny = ["--data-dir", str(tmp_path / "data"), "--samples", "64", "--floor-samples", "32"]
    command = [sys.executable, script, *tiny, "--out", str(run), "--max-steps", "2"]
    command += ["--batch-size", "8", "--width", "8", "--no-fast"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((run / "stacked_mnist.json").read_text())
    assert report["step"] == 2 and report["train_seconds"] > 0
    assert set(report["samples"]) == {"ema", "generator"}
    for scores in report["samples"].values():
        assert scores["num_samples"] == 64 and 1 <= scores["modes"] <= 64
        assert 0 <= scores["kl_to_uniform"] <= math.log(1000) + 1e-9
    assert report["floor"]["num_samples"] == 32
    assert (run / "stacked_samples.png").is_file() and "| ema |" in result.stdout
    # --score-only rescores the run folder to the same figures (samples are seeded).
    again = tmp_path / "again.json"
    command = [sys.executable, script, *tiny, "--score-only", str(run), "--json", str(again)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rescored = json.loads(again.read_text())
    assert rescored["samples"] == report["samples"] and rescored["train_seconds"] is None


def test_compare_runs_plots_each_runs_logged_points_and_refuses_mistakes(tmp_path):
    pytest.importorskip("matplotlib")
    for name, fds in (("a", ["", "4.0", "", "1.5"]), ("b", ["", "3.0", "", "nan"])):
        run = tmp_path / name
        run.mkdir()
        rows = ["step,loss_d,fd"] + [f"{s},0.5,{fd}" for s, fd in enumerate(fds, 1)]
        (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    script = str(REPO_ROOT / "benchmarks" / "compare_runs.py")

    def compare(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)

    out = tmp_path / "fd.png"
    result = compare(str(tmp_path / "a"), str(tmp_path / "b"), "--labels", "A,B", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "A (2 points), B (1 points)" in result.stdout  # logged, finite values only
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = compare(str(tmp_path / "a"), "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr  # never overwritten
    missing = compare(str(tmp_path / "a"), "--metric", "kid", "--out", str(tmp_path / "k.png"))
    assert missing.returncode == 2 and "has no column 'kid'" in missing.stderr
    labels = compare(str(tmp_path / "a"), "--labels", "A,B", "--out", str(tmp_path / "l.png"))
    assert labels.returncode == 2 and "--labels has 2 names for 1 runs" in labels.stderr


def test_gloo_teardown_probe_counts_threads_in_every_case():
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "gloo_teardown.py")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    assert sorted(rows) == ["collective", "ddp", "ddp-deleted", "trainer"]
    counts = {case: [int(n) for n in row] for case, row in rows.items()}
    # A group without DDP is taken down: its threads go with it.
    before, during, after = counts["collective"]
    assert during > before and after == before


def test_score_folder_run_scores_a_folder_run_against_its_held_out_images(tmp_path):
    from ganlib.cli import main
    from ganlib.data.shapes import make_shapes

    folder = make_shapes(tmp_path / "shapes", count=240, image_size=12)
    run = tmp_path / "run"
    args = ["train", str(folder), "--out", str(run), "--max-steps", "2", "--eval-every", "0"]
    args += ["--eval-features", "auto", "--width", "4", "--latent-dim", "8", "--device", "cpu"]
    assert main(args) == 0  # (no evaluation: nothing held out)
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "score_folder_run.py"), str(run)]
    result = subprocess.run([*command, "--samples", "64"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads((run / "folder_scores.json").read_text())
    assert scores["reference"] == "240 images, all of the folder" and "memorisation" not in scores
    assert scores["fd"] > scores["floor_fd"] > 0 and scores["samples"] == 64
    held_run = tmp_path / "held"
    args[3] = str(held_run)
    assert main([*args[:6], "--width", "4", "--latent-dim", "8", "--device", "cpu"]) == 0
    result = subprocess.run([*command[:2], str(held_run), "--samples", "64"], capture_output=True)
    assert result.returncode == 0
    scores = json.loads((held_run / "folder_scores.json").read_text())
    assert scores["reference"] == "24 held-out images" and scores["memorisation"] > 0
    result = subprocess.run(
        [*command[:2], str(held_run), "--reference", "all"], capture_output=True
    )
    assert result.returncode == 0
    scores = json.loads((held_run / "folder_scores.json").read_text())
    assert scores["reference"] == "240 images, all of the folder" and "memorisation" not in scores


def test_same_training_tells_equal_runs_from_different_ones(tmp_path):
    from ganlib.cli import main
    from ganlib.data.shapes import make_shapes

    folder = make_shapes(tmp_path / "shapes", count=40, image_size=12)
    args = ["train", str(folder), "--max-steps", "2", "--width", "4", "--latent-dim", "8"]
    args += ["--device", "cpu", "--no-report"]
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert main([*args, "--out", str(tmp_path / name), "--seed", seed]) == 0
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "same_training.py")]
    same = subprocess.run(
        [*command, str(tmp_path / "a"), str(tmp_path / "b")], capture_output=True, text=True
    )
    assert same.returncode == 0, same.stdout + same.stderr[-2000:]
    assert "generator" in same.stdout and same.stdout.rstrip().endswith("same training")
    other = subprocess.run(
        [*command, str(tmp_path / "a"), str(tmp_path / "c")], capture_output=True, text=True
    )
    assert other.returncode == 1 and "NOT the same training" in other.stdout
    lines = {line.split()[0]: line for line in other.stdout.splitlines()[2:-1]}
    assert "differs at /net.0.weight" in lines["generator"] and "differs" in lines["rng"]
    assert "no tensors (not compared)" in lines["seed"]


def test_d_overfitting_measures_adas_ratios_on_a_folder_run(tmp_path):
    from ganlib.cli import main
    from ganlib.data.shapes import make_shapes

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        from d_overfitting import overfitting
    finally:
        sys.path.pop(0)
    outputs = torch.tensor([1.0, 1.0, 1.0, -1.0]), torch.zeros(2), torch.full((2,), -1.0)
    figures = overfitting(*outputs)
    # Means 0.5, 0 and -1: held-out images a third of the way from training ones to fakes.
    assert figures["r_v"] == pytest.approx(1 / 3) and figures["r_t"] == 0.5
    assert figures["r_t_held_out"] == 0.0 and figures["mean_generated"] == -1.0
    # Shifting every output alike moves r_t but not r_v.
    shifted = overfitting(*(t + 1.5 for t in outputs))
    assert shifted["r_v"] == pytest.approx(1 / 3) and shifted["r_t"] == 1.0

    folder = make_shapes(tmp_path / "shapes", count=240, image_size=12)
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "d_overfitting.py")]
    args = ["train", str(folder), "--max-steps", "2", "--width", "4", "--latent-dim", "8"]
    args += ["--device", "cpu", "--no-report"]
    assert main([*args, "--out", str(tmp_path / "held")]) == 0
    result = subprocess.run(
        [*command, str(tmp_path / "held"), "--samples", "40"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads((tmp_path / "held" / "d_overfitting.json").read_text())
    assert written["images"] == {"train": 40, "held_out": 24, "generated": 40}
    assert -1.0 <= written["r_t"] <= 1.0 and written["r_v"] == written["r_v"]  # (not NaN)
    assert main([*args, "--out", str(tmp_path / "all"), "--holdout", "0"]) == 0
    refused = subprocess.run([*command, str(tmp_path / "all")], capture_output=True, text=True)
    assert refused.returncode == 1 and "held no images out" in refused.stderr

"""benchmarks/score_run.py and ganlib.metrics.quality_report on a tiny `ganlib train` run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch

from conftest import REPO_ROOT
from ganlib import DCGAN, seed_everything
from ganlib.cli import main as ganlib_main
from ganlib.data import fake_mnist
from ganlib.metrics import MNISTClassifier, MNISTEvaluator, quality_report

TINY = ["--width", "4", "--latent-dim", "8", "--batch-size", "10", "--device", "cpu"]
SCORES = {
    "fd",
    "classes_covered",
    "kl_to_uniform",
    "mean_confidence",
    "classifier_score",
    "num_samples",
    "conditional_accuracy",
}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "score_run", REPO_ROOT / "benchmarks" / "score_run.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


score_run = load_script()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A 2-step `ganlib train mnist` run (EMA on, its default) on stand-in MNIST, and an
    untrained classifier saved as scripts/train_mnist_classifier.py saves one."""
    root = tmp_path_factory.mktemp("score")
    data = root / "data"
    fake_mnist(data, count=40)
    run = root / "run"
    argv = ["train", "mnist", "--data-dir", str(data), "--out", str(run), "--max-steps", "2"]
    assert ganlib_main([*argv, "--no-download", *TINY]) == 0
    torch.manual_seed(0)
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in MNISTClassifier().state_dict().items()
    }
    weights = root / "classifier.pt"
    torch.save({"state_dict": state, "test_accuracy": 0.25}, weights)
    return run, data, weights


def score(run: Path, data: Path, weights: Path, *extra: str) -> int:
    counts = ["--samples", "30", "--floor-samples", "20"]
    return score_run.main(
        [str(run), "--data-dir", str(data), "--weights", str(weights), *counts, *extra]
    )


def test_a_run_folder_gets_its_scores_table_and_metrics_json(tiny_run, capsys):
    run, data, weights = tiny_run
    assert score(run, data, weights, "--dataset", "mnist") == 0
    report = json.loads((run / "metrics.json").read_text())
    assert report["scored_by"] == "benchmarks/score_run.py"
    assert report["checkpoint"] == str(run / "checkpoints" / "last.ckpt")
    assert (report["step"], report["dataset"], report["headline"]) == (2, "mnist", "ema")
    assert report["classifier"] == {"weights": str(weights), "test_accuracy": 0.25}
    assert report["reference"] == "mnist test split (40 images)"
    assert set(report["samples"]) == {"ema", "generator"}
    assert set(report["floor"]) == SCORES and report["floor"]["num_samples"] == 20
    for name, scores in report["samples"].items():
        assert set(scores) == SCORES and scores["num_samples"] == 30
        assert scores["conditional_accuracy"] is None
        assert report["fd_over_floor"][name] == pytest.approx(scores["fd"] / report["floor"]["fd"])
    table = capsys.readouterr().out
    assert "| sampler | FD | floor | FD / floor | classes covered | KL to uniform |" in table
    assert table.index("| ema |") < table.index("| generator |")  # the headline first
    # Rerunning replaces its own file; scoring a checkpoint finds the same folder.
    assert score(run / "checkpoints" / "last.ckpt", data, weights, "--dataset", "mnist") == 0
    assert json.loads((run / "metrics.json").read_text())["samples"] == report["samples"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "fashion-mnist"], "says the run trained on mnist"),
        (["--dataset", "mnist", "--json", "{other}"], "holds other scores: pass --overwrite"),
    ],
)
def test_mistakes_are_one_line_errors(tiny_run, tmp_path, capsys, extra, message):
    run, data, weights = tiny_run
    other = tmp_path / "metrics.json"
    other.write_text(json.dumps({"preset": "recipe"}))  # examples/mnist.py's, say
    extra = [arg.format(other=other) for arg in extra]
    assert score(run, data, weights, *extra) == 2
    assert message in capsys.readouterr().err
    assert json.loads(other.read_text()) == {"preset": "recipe"}


def test_fashion_mnist_needs_its_own_classifier(tmp_path, capsys):
    gan_run = tmp_path / "checkpoints"
    gan_run.mkdir()
    (gan_run / "last.ckpt").write_bytes(b"")
    assert score_run.main([str(tmp_path), "--dataset", "fashion-mnist"]) == 2
    assert "--weights is required for fashion-mnist" in capsys.readouterr().err


def test_quality_report_reads_each_sampler_against_the_floor():
    seed_everything(0)
    reference, real = torch.rand(2, 40, 1, 28, 28) * 2 - 1
    evaluator = MNISTEvaluator(reference, MNISTClassifier(), batch_size=20)
    gan = DCGAN(width=4, latent_dim=8)
    samplers = {"generator": (gan.generator, False), "generator_eval": (gan.generator, True)}
    report = quality_report(evaluator, real, samplers, gan, 20, floor_samples=100)
    assert report["headline"] == "generator"  # no EMA: the first sampler
    assert report["floor"]["num_samples"] == 40  # at most the real images given
    assert list(report["samples"]) == ["generator", "generator_eval"]
    floor = report["floor"]["fd"]
    for name, scores in report["samples"].items():
        assert report["fd_over_floor"][name] == scores["fd"] / floor
    with pytest.raises(ValueError, match="`samplers` must name at least one generator"):
        quality_report(evaluator, real, {}, gan, 20)
    with pytest.raises(ValueError, match="`num_samples` must be >= 2, got 1"):
        quality_report(evaluator, real, samplers, gan, 1)

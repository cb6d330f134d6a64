"""Starting fast: what ``import ganlib`` and the ``ganlib`` command import (no timing here:
benchmarks/startup.py times them), and the lazily loaded names still work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

# (tqdm is not among them: `import torch` imports it)
HEAVY = ("torchvision", "matplotlib", "tensorboard", "torch.utils.tensorboard")


def imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def test_import_ganlib_loads_no_trainer_callbacks_metrics_or_plotting():
    modules = imported_after("import ganlib")
    assert not heavy(modules)
    assert not {"ganlib.trainer", "ganlib.callbacks", "ganlib.metrics"} & modules


def test_ganlib_help_imports_no_subcommand():
    code = "from ganlib.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    modules = imported_after(code)
    assert not heavy(modules)
    assert not {"ganlib.cli.train", "ganlib.cli.sample", "ganlib.cli.fid"} & modules


def test_a_sample_error_needs_no_torchvision(tmp_path):
    code = (
        "from ganlib.cli import main\n"
        f"assert main(['sample', {str(tmp_path / 'missing.ckpt')!r}]) == 2"
    )
    modules = imported_after(code)
    assert "ganlib.cli.sample" in modules and not heavy(modules)


def test_the_train_command_its_help_and_argument_errors_need_no_torchvision():
    """``ganlib train`` imports torchvision only when it reads images or saves a grid."""
    modules = imported_after("import ganlib.cli.train")
    assert {"ganlib.cli.train", "ganlib.data", "ganlib.callbacks.samples"} <= modules
    assert not heavy(modules)
    for argv, status in ((["train", "mnist", "--batch-size", "0"], 2), (["train", "--help"], 0)):
        code = (
            "from ganlib.cli import main\ncode = None\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as stop:\n    code = stop.code\n"
            f"assert code == {status}, code"
        )
        modules = imported_after(code)
        assert "ganlib.cli.train" in modules and not heavy(modules), argv


def test_the_command_list_shows_each_commands_own_help_line():
    from ganlib.cli import COMMANDS, build_parser

    parser = build_parser()  # every subcommand built from its module
    (subparsers,) = [a for a in parser._actions if a.dest == "command"]
    own = {action.dest: action.help for action in subparsers._choices_actions}
    assert own == COMMANDS


def test_the_help_and_errors_still_work(capsys):
    from ganlib.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "train" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "mnist", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "--batch-size: must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nonsense"])
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_lazy_names_load_on_use():
    import ganlib
    import ganlib.metrics
    from ganlib import DCGAN, Trainer  # noqa: F401  (loaded on first use)
    from ganlib.cli import positive_int

    assert positive_int("3") == 3
    assert ganlib.metrics.frechet_distance is not None and ganlib.callbacks.EarlyStopping
    assert {"Trainer", "metrics", "callbacks"} <= set(dir(ganlib))
    assert "run_quality_report" in dir(ganlib.metrics)
    with pytest.raises(AttributeError, match="module 'ganlib' has no attribute 'Trainr'"):
        ganlib.Trainr  # noqa: B018
    with pytest.raises(AttributeError, match=r"module 'ganlib\.metrics' has no attribute 'fid'"):
        ganlib.metrics.fid  # noqa: B018


def test_the_startup_benchmark_runs(tmp_path):
    """benchmarks/startup.py without the training runs (no MNIST needed), one round."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "startup.py"),
            "--skip-train",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| ganlib --help |" in result.stdout and "| import torch |" in result.stdout

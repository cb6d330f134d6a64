"""`ganlib sample` (ganlib.cli.sample) as a user runs it: its errors, one line each."""

from __future__ import annotations

from conftest import images, one_line_error, run, trainer


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

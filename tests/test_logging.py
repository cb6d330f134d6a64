"""The ``ganlib`` logger: notices on stderr by default, under the user's control otherwise."""

from __future__ import annotations

import builtins
import logging

import pytest

import ganlib  # noqa: F401  (importing ganlib sets the logger up)
from ganlib.callbacks import LossCurve

LOGGER = logging.getLogger("ganlib")
NOTICE = "matplotlib is not installed"


@pytest.fixture(autouse=True)
def restore_logger():
    saved = (LOGGER.level, LOGGER.propagate, list(LOGGER.handlers))
    yield
    LOGGER.setLevel(saved[0])
    LOGGER.propagate = saved[1]
    LOGGER.handlers[:] = saved[2]


def notice_from_a_callback(tmp_path, monkeypatch) -> None:
    """A real library notice: LossCurve without matplotlib."""
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.partition(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    curve = LossCurve(tmp_path / "curve.png")
    curve.history = {"step": [1.0], "loss_d": [0.5]}
    assert curve.draw() is False


def test_notices_reach_stderr_with_the_bare_message_when_nothing_is_configured(
    tmp_path, monkeypatch, capsys
):
    notice_from_a_callback(tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert err.startswith(f"LossCurve: {NOTICE}"), f"no bare notice on stderr: {err!r}"
    assert err.count(NOTICE) == 1, f"the notice was printed {err.count(NOTICE)} times"


def test_a_level_above_the_notices_silences_them(tmp_path, monkeypatch, capsys):
    LOGGER.setLevel(logging.ERROR)
    notice_from_a_callback(tmp_path, monkeypatch)
    assert NOTICE not in capsys.readouterr().err, "setLevel(ERROR) did not silence the notice"


def test_a_users_handler_in_place_of_the_default_one_gets_the_notices(
    tmp_path, monkeypatch, capsys
):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    LOGGER.handlers.clear()
    LOGGER.addHandler(handler)
    notice_from_a_callback(tmp_path, monkeypatch)
    notices = [r for r in records if NOTICE in r.getMessage()]
    assert [r.levelno for r in notices] == [logging.WARNING], "the user's handler got nothing"
    assert NOTICE not in capsys.readouterr().err, "the removed default handler still printed"


def test_propagating_routes_notices_to_the_root_handlers_only(
    tmp_path, monkeypatch, capsys, caplog
):
    LOGGER.propagate = True
    notice_from_a_callback(tmp_path, monkeypatch)
    assert any(NOTICE in r.getMessage() for r in caplog.records), "the root handlers got nothing"
    assert NOTICE not in capsys.readouterr().err, "the default handler printed as well"


def test_a_notice_during_a_progress_bar_gets_its_own_line(capsys):
    tqdm = pytest.importorskip("tqdm")
    import sys

    capsys.readouterr()
    bar = tqdm.tqdm(total=10, file=sys.stderr, unit="step", mininterval=0)
    bar.update(3)
    LOGGER.info("ModelCheckpoint: saved runs/x/checkpoints/step-0000003.ckpt")
    bar.close()
    err = capsys.readouterr().err
    before, after = err.split("ModelCheckpoint:")
    assert "3/10" in before  # the bar was drawn
    # What the terminal shows left of the notice: the text after the last carriage return
    # or newline. tqdm.write blanks the bar's line first; a plain write lands after it.
    left = before.replace("\r", "\n").rsplit("\n", 1)[-1]
    assert left.strip() == "", f"the notice follows {left!r} on its line"
    assert "3/10" in after  # the bar drawn again below it

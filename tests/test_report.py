"""RunReport: a self-contained report.html, checked as parsed HTML and in a real browser.

The browser test drives Debian's chromium (``apt-get install chromium``) through
Playwright (``pip install playwright``; never ``playwright install``, which downloads a
browser). Without them it skips, or fails when the environment variable CI is set.
"""

from __future__ import annotations

import base64
import html.parser
import io
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from PIL import Image
from torch import Tensor

from conftest import tiny_gan
from ganlib import RunFolderError, Trainer
from ganlib.callbacks import Callback, ModelCheckpoint, RunReport, SampleGrid
from ganlib.callbacks.history import MetricHistory
from ganlib.losses import BCELoss

SETTINGS = {"lr": 0.0002, "loss": "bce", "note": "<b>not a tag</b>"}


def tiny_trainer(callbacks, **kwargs) -> Trainer:
    gan = tiny_gan()
    kwargs.setdefault("max_epochs", 3)
    return Trainer(gan, seed=0, device="cpu", progress=False, callbacks=callbacks, **kwargs)


def data(n: int = 16) -> Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)


class Tree(html.parser.HTMLParser):
    """The page as nested elements (enough for these checks)."""

    VOID: ClassVar[set[str]] = {"meta", "link", "img", "input", "rect", "line", "path"}

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("root", {})
        self.stack = [self.root]
        self.all: list[Element] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        self.all.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        self.all.append(element)

    def handle_endtag(self, tag):
        if tag not in self.VOID and len(self.stack) > 1:
            assert self.stack[-1].tag == tag, f"<{tag}> closes <{self.stack[-1].tag}>"
            self.stack.pop()

    def handle_data(self, data):
        for element in self.stack[1:]:
            element.text += data

    def find(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.all
            if e.tag == tag and all(e.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]


def png_size(src: str) -> tuple[int, int]:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), f"an image is not an inline PNG: {src[:60]!r}"
    with Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :]))) as image:
        image.load()
        return image.size


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A tiny finished run: 3 epochs of 2 steps, SampleGrid then RunReport."""
    folder = tmp_path_factory.mktemp("run")
    callbacks = [
        SampleGrid(folder, num_samples=4, nrow=2),
        RunReport(folder, settings=SETTINGS, every_n_steps=1),
    ]
    tiny_trainer(callbacks).fit(data(), batch_size=8)
    return folder / "report.html"


def test_the_report_is_one_self_contained_page(finished_run):
    page = finished_run.read_text()
    tree = Tree(page)
    status = tree.find("span", id="status")
    assert [s.text for s in status] == ["finished at step 6 of 6 (3 of 3 epochs done)"]
    # Two charts: losses and D's scores, a non-empty path per metric.
    charts = tree.find("svg", class_="chart")
    assert len(charts) == 2, f"expected 2 charts, found {len(charts)}"
    paths = {p.attrs["data-name"]: p.attrs["d"] for p in tree.find("path", class_="series")}
    assert set(paths) == {"loss_d", "loss_g", "d_real", "d_fake", "d_fake_after"}
    for name, d in paths.items():
        assert len(re.findall(r"[ML][\d.]+,[\d.]+", d)) == 6, f"{name}'s path has not 6 points: {d}"
    # Every image is an inline PNG: three epochs' grids and the real batch.
    images = tree.find("img")
    sizes = [png_size(i.attrs["src"]) for i in images]
    with Image.open(finished_run.parent / "generated_epoch_001.png") as grid:
        assert sizes[:3] == [grid.size] * 3
    assert [i.attrs["alt"] for i in images] == [
        "epoch 1",
        "epoch 2",
        "epoch 3",
        "real images (first batch)",
    ]
    frames = [f for f in tree.find("figure") if "data-label" in f.attrs]
    assert ["hidden" in f.attrs for f in frames] == [True, True, False], "not the newest shown"
    (slider,) = tree.find("input", id="frame-slider")
    assert (slider.attrs["min"], slider.attrs["max"], slider.attrs["value"]) == ("0", "2", "2")
    # Settings and the runtime line, escaped.
    (settings,) = tree.find("table", id="settings")
    assert "<b>not a tag</b>" in settings.text and not tree.find("b")
    assert "runtime: device cpu" in tree.find("table", id="facts")[0].text
    # Nothing is loaded from anywhere: no URL, scripts inline, every src/href a data: URI.
    assert not re.search(r"https?://", page), "the page references a network resource"
    assert all("src" not in s.attrs for s in tree.find("script"))
    for element in tree.all:
        for name in ("src", "href"):
            value = element.attrs.get(name)
            assert value is None or value.startswith("data:"), f"<{element.tag} {name}={value!r}>"
    assert not tree.find("meta", **{"http-equiv": "refresh"}), "a finished run's page reloads"


def _need(what: str) -> None:
    """Skip, or fail under CI, saying what to install."""
    message = (
        f"the browser test needs {what}, which is missing: install Playwright with "
        "`pip install playwright` (do not run `playwright install`, which downloads a browser) "
        "and Debian's chromium with `apt-get install chromium`, or name another Chromium in "
        "GANLIB_CHROMIUM"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("ci", ["", "1"])
def test_a_missing_browser_skips_but_fails_under_ci(ci, monkeypatch):
    monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match=r"needs chromium, .*apt-get install chromium"):
        _need("chromium")


def _chromium() -> str:
    """The system chromium's path (Playwright drives it), or skip/fail naming what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need("playwright")
    executable = (
        os.environ.get("GANLIB_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not executable:
        _need("chromium")
    return str(executable)


def test_the_report_in_a_real_browser(request):
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    finished_run: Path = request.getfixturevalue("finished_run")  # trained only when needed
    problems: list[str] = []
    started = time.perf_counter()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "request",
                lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(r.url),
            )
            page.goto(finished_run.as_uri())
            # Every image decodes.
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert len(widths) == 4 and all(w > 0 for w in widths), f"image widths: {widths}"
            # Every curve is drawn: a path of some length and extent.
            lengths = page.eval_on_selector_all(
                "svg.chart path.series",
                "els => els.map(e => [e.getTotalLength(), e.getBBox().width])",
            )
            assert len(lengths) == 5 and all(a > 0 and b > 0 for a, b in lengths), lengths
            assert page.inner_text("#status") == "finished at step 6 of 6 (3 of 3 epochs done)"
            # The slider shows one frame at a time; the keyboard moves it.
            shown = page.locator("#frames figure:visible")
            assert shown.count() == 1 and shown.get_attribute("data-label") == "epoch 3"
            newest = shown.locator("img").get_attribute("src")
            page.focus("#frame-slider")
            page.keyboard.press("Home")
            assert shown.count() == 1 and shown.get_attribute("data-label") == "epoch 1"
            assert shown.locator("img").get_attribute("src") != newest, "the image did not change"
            assert page.inner_text("#frame-label") == "epoch 1 (1 of 3)"
            page.keyboard.press("ArrowRight")
            assert shown.get_attribute("data-label") == "epoch 2"
            assert shown.locator("img").evaluate("e => e.getBoundingClientRect().width") > 0
        finally:
            browser.close()
    assert not problems, f"console errors or network requests: {problems}"
    elapsed = time.perf_counter() - started
    assert elapsed < 20, f"the browser part took {elapsed:.1f} s"


class ReportingBCE(BCELoss):
    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        self.report("real_logit", real_logits.mean())
        return super().discriminator_loss(real_logits, fake_logits)


class Evaluate(Callback):
    """An evaluator that puts its score into the trainer's metrics at each epoch's end."""

    def on_epoch_end(self, trainer):
        trainer.state.metrics["kid"] = 0.125


def test_scores_other_metrics_and_a_losss_own_metric_are_shown(tmp_path):
    report = RunReport(tmp_path, scores=lambda trainer: {"fid": 12.5}, every_n_steps=100)
    tiny_trainer([Evaluate(), report], loss=ReportingBCE(), max_epochs=1).fit(data(), batch_size=8)
    tree = Tree(report.path.read_text())
    assert tree.find("table", id="scores")[0].text == "fid12.5"
    other = tree.find("table", id="other-metrics")[0].text
    assert "kid0.125" in other and "real_logit" in other
    assert "loss_d" not in other, "a step metric is listed among the other metrics"
    titles = [t.text for t in tree.find("text", class_="title")]
    assert titles == ["losses", "D's mean score", "real_logit"]  # the task's groups, an extra
    assert [p.attrs["data-name"] for p in tree.find("path")][-1] == "real_logit"
    assert "taken at step 2" in report.path.read_text()


def test_a_resumed_runs_report_continues_its_history(tmp_path):
    first = RunReport(tmp_path, every_n_steps=1)
    saver = ModelCheckpoint(tmp_path / "ckpt", every_n_epochs=1)
    tiny_trainer([first, saver], max_epochs=1).fit(data(), batch_size=8)
    started = first.started
    time.sleep(0.01)
    second = RunReport(tmp_path, every_n_steps=1)
    resumed = tiny_trainer([second, ModelCheckpoint(tmp_path / "ckpt")], max_epochs=2)
    resumed.fit(data(), ckpt_path="last", batch_size=8)
    steps, values = second.history.series()
    assert steps == [1.0, 2.0, 3.0, 4.0], f"the resumed history lost its first steps: {steps}"
    assert len(values["loss_d"]) == 4
    assert second.started == started
    assert second.elapsed() >= first.elapsed() > 0
    assert "finished at step 4 of 4" in second.path.read_text()


def test_an_exception_is_named_with_the_step(tmp_path):
    class Boom(Callback):
        def on_batch_end(self, trainer, metrics):
            if trainer.state.step == 3:
                raise RuntimeError("boom\nsecond line")

    report = RunReport(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        tiny_trainer([report, Boom()]).fit(data(), batch_size=8)
    (status,) = Tree(report.path.read_text()).find("span", id="status")
    assert status.attrs["class"] == "stopped"
    assert status.text == "stopped by RuntimeError at step 3 of 6 (1 of 3 epochs done): boom"


def test_an_exception_without_a_message_is_named_by_its_type(tmp_path):
    class Blank(Callback):
        def on_batch_end(self, trainer, metrics):
            raise ValueError("  ")

    report = RunReport(tmp_path)
    with pytest.raises(ValueError):
        tiny_trainer([report, Blank()]).fit(data(), batch_size=8)
    (status,) = Tree(report.path.read_text()).find("span", id="status")
    assert status.text == "stopped by ValueError at step 1 of 6 (0 of 3 epochs done)"


def test_a_running_report_reloads_itself_and_says_where_it_is(tmp_path):
    class Look(Callback):
        def on_batch_end(self, trainer, metrics):
            if trainer.state.step == 2:
                self.page = report.path.read_text()

    report, look = RunReport(tmp_path, every_n_steps=2, refresh_seconds=30), Look()
    tiny_trainer([report, look], max_steps=3).fit(data(), batch_size=8)
    tree = Tree(look.page)
    assert tree.find("meta", **{"http-equiv": "refresh", "content": "30"})
    assert tree.find("span", id="status")[0].text == "running: step 2 of 3 (0 of 3 epochs done)"


def test_frames_are_bounded_evenly_spaced_and_include_the_newest(tmp_path):
    for i in range(30):
        path = tmp_path / f"generated_step_{i + 1:07d}.png"
        Image.new("L", (4 + i, 4)).save(path)
        os.utime(path, ns=(10**9 * (i + 1), 10**9 * (i + 1)))
    report = RunReport(tmp_path, max_frames=5)
    tiny_trainer([report], max_steps=1).fit(data(), batch_size=8)
    images = Tree(report.path.read_text()).find("img")
    assert [i.attrs["alt"] for i in images] == ["step 1", "step 8", "step 15", "step 23", "step 30"]
    assert png_size(images[-1].attrs["src"]) == (33, 4), "the newest frame is not the newest file"


def test_the_history_stays_bounded_and_keeps_the_means():
    history = MetricHistory(max_points=10)
    for step in range(1, 1001):
        history.add(step, {"loss": float(step) if step != 500 else math.nan})
    steps, values = history.series()
    assert 10 <= len(steps) <= 21, f"{len(steps)} points kept"
    assert history.stride in (64, 128), history.stride
    assert steps == sorted(steps) and steps[-1] > 1000 - history.stride
    for step, value in zip(steps, values["loss"], strict=True):
        assert abs(step - value) < history.stride, "a point's mean is off its steps"
    restored = MetricHistory(max_points=10)
    restored.load_state_dict(history.state_dict())
    assert restored.series() == (steps, values)


def test_merged_points_are_exact_means_and_a_score_keeps_its_steps():
    history = MetricHistory(max_points=4)
    for step in range(1, 65):  # a score every 16 steps, the loss at every step
        metrics = {"loss": float(step % 2)}
        if step % 16 == 0:
            metrics["fd"] = 100.0 / step
        history.add(step, metrics)
    assert history.stride == 16 and len(history) == 4
    assert history["loss"] == [0.5] * 4  # each point: the exact mean of its 16 steps
    assert history.points("fd") == (
        [16.0, 32.0, 48.0, 64.0],
        [100 / 16, 100 / 32, 100 / 48, 100 / 64],
    )
    restored = MetricHistory(max_points=4)
    restored.load_state_dict(history.state_dict())
    assert restored.series() == history.series() and restored.points("fd") == history.points("fd")


def test_an_earlier_releases_report_history_loads():
    """RunReport's history as earlier releases saved it: means per point, the open one's sums."""
    nan = math.nan
    old = {
        "stride": 2,
        "steps": torch.tensor([1.5, 3.5], dtype=torch.float64),
        "values": {
            "loss": torch.tensor([1.5, 3.5], dtype=torch.float64),
            "fd": torch.tensor([nan, 3.0], dtype=torch.float64),
        },
        "open": {"count": 1, "step_sum": 5.0, "sums": {"loss": [5.0, 1.0]}},
    }
    history = MetricHistory()
    history.load_state_dict(old)
    assert history.series()[0] == [1.5, 3.5, 5.0] and history["loss"] == [1.5, 3.5, 5.0]
    assert history.points("fd") == ([3.5], [3.0])
    history.add(6, {"loss": 6.0})  # closes the open point as the old history would
    assert history.series()[0] == [1.5, 3.5, 5.5] and history["loss"] == [1.5, 3.5, 5.5]
    with pytest.raises(ValueError, match="a metric history must hold"):
        MetricHistory().load_state_dict({"loss": torch.zeros(2)})


def test_a_fresh_run_refuses_an_earlier_report(tmp_path):
    report = RunReport(tmp_path)
    assert report.output_folders() == [tmp_path]
    assert report.earlier_outputs() == []
    (tmp_path / "report.html").write_text("an earlier run's report")
    assert report.earlier_outputs() == [tmp_path / "report.html"]
    with pytest.raises(RunFolderError, match=r"report\.html"):
        tiny_trainer([report]).fit(data(), batch_size=8)
    assert (tmp_path / "report.html").read_text() == "an earlier run's report"


def test_a_report_before_the_sample_grid_gives_a_notice(tmp_path, capsys):
    callbacks = [RunReport(tmp_path), SampleGrid(tmp_path, num_samples=4)]
    tiny_trainer(callbacks, max_steps=1).fit(data(), batch_size=8)
    assert "RunReport: it runs before SampleGrid" in capsys.readouterr().err


def test_a_failed_write_gives_one_notice_and_training_goes_on(tmp_path, capsys):
    (tmp_path / ".report.html.tmp").mkdir()  # the temporary file cannot be written
    state = tiny_trainer([RunReport(tmp_path, every_n_steps=1)]).fit(data(), batch_size=8)
    assert state.step == 6
    err = capsys.readouterr().err
    assert err.count("RunReport: could not write") == 1, err
    assert not (tmp_path / "report.html").exists()


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="`every_n_steps` must be >= 1, got 0"):
        RunReport(tmp_path, every_n_steps=0)
    with pytest.raises(TypeError, match="`settings` must be a mapping, got list"):
        RunReport(tmp_path, settings=[("lr", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`scores` must be callable, got dict"):
        RunReport(tmp_path, scores={"fid": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`max_points` must be >= 2, got 1"):
        RunReport(tmp_path, max_points=1)
    with pytest.raises(TypeError, match="`resume` must be a string or None, got list"):
        RunReport(tmp_path, resume=["ganlib", "train"])  # type: ignore[arg-type]


def test_no_chart_label_is_cut_in_a_real_browser(tmp_path):
    """A crowded chart (eight series, as CycleGAN's losses; tiny values; long runs): every
    label, tick and legend entry lies inside its chart."""
    from playwright.sync_api import sync_playwright

    from ganlib.callbacks._report_page import Page, Panel, render

    executable = _chromium()
    names = ["loss_g", "loss_d", "gan_ab", "gan_ba", "cycle_a", "cycle_b"]
    names += ["identity_a", "identity_b_with_a_long_name"]
    steps = [float(s) for s in range(0, 120_001, 10_000)]
    series = {
        n: (steps, [-1.234567e-5 * (i + 1) * (1 + s / 1e5) for s in steps])
        for i, n in enumerate(names)
    }
    panels = [Panel("losses", series), Panel("one", {"fd": ([1.0], [123456.789])})]
    page = Page("run", "finished", "finished", [], {}, panels, "", [], [], [], "")
    path = tmp_path / "report.html"
    path.write_text(render(page))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            tab.goto(path.as_uri())
            outside = tab.eval_on_selector_all(
                "svg.chart",
                """charts => charts.flatMap(svg => {
                    const box = svg.getBoundingClientRect();
                    return [...svg.querySelectorAll("text")].map(t => {
                        const r = t.getBoundingClientRect();
                        return [t.textContent, r.left - box.left, r.right - box.right,
                                r.top - box.top, r.bottom - box.bottom];
                    }).filter(([, l, r, t, b]) => l < 0 || r > 0 || t < 0 || b > 0);
                })""",
            )
            shown = tab.eval_on_selector_all("svg.chart text.legend", "els => els.length")
        finally:
            browser.close()
    assert shown == len(names) + 1
    assert not outside, f"labels outside their chart (text, left, right, top, bottom): {outside}"

"""The HTML of [`RunReport`][ganlib.callbacks.RunReport]: one self-contained page.

Curves are inline SVG drawn here, images are ``data:`` URIs, and the frame slider is a
few lines of inline JavaScript: the page loads nothing from anywhere, so it opens from
a copied folder, an archive or a machine without network.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

__all__ = ["Frame", "Page", "Panel", "line_chart", "render"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")


@dataclass
class Panel:
    """One chart: named series of ``(steps, values)`` sharing the axes."""

    title: str
    series: dict[str, tuple[list[float], list[float]]]


@dataclass
class Frame:
    """One sample grid: its caption and its PNG bytes."""

    label: str
    png: bytes


@dataclass
class Page:
    """Everything the report shows."""

    title: str
    status: str  # "running", "finished" or "stopped": the status badge's class
    status_line: str
    facts: list[tuple[str, str]]
    settings: Mapping[str, Any]
    panels: list[Panel]
    curve_note: str
    latest: list[tuple[str, float]]
    other_metrics: list[tuple[str, float]]
    scores: list[tuple[str, float]]
    scores_note: str
    evaluation: list[tuple[str, float]] = field(default_factory=list)
    evaluation_note: str = ""
    frames: list[Frame] = field(default_factory=list)
    real: Frame | None = None
    checks: list[Frame] = field(default_factory=list)
    refresh_seconds: int | None = None


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


# The charts' label font (``.tick`` and ``.legend``: 11px): a generous width per character,
# so margins computed from it hold the labels in any browser's sans-serif.
CHAR_WIDTH = 7
LEGEND_ROW = 14  # pixels between the legend's rows


def _text_width(text: str) -> int:
    return CHAR_WIDTH * len(text)


def _legend_rows(names: list[str], start: int, end: int) -> list[list[tuple[str, int]]]:
    """The legend's entries (a 14-pixel line, then the name) placed left to right in rows
    that fit between ``start`` and ``end``: each row's names and their x."""
    rows: list[list[tuple[str, int]]] = [[]]
    x = start
    for name in names:
        entry = 18 + _text_width(name) + 12
        if rows[-1] and x + entry > end:
            rows.append([])
            x = start
        rows[-1].append((name, x))
        x += entry
    return rows


def _chart_start(title: str, width: int, height: int, left: int) -> str:
    """The chart's ``<svg>`` opening tag and its title."""
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">'
        f'<text x="{left}" y="16" class="title">{escape(title)}</text>'
    )


def line_chart(panel: Panel, width: int = 460, height: int = 260) -> str:
    """An SVG line chart: one ``<path class="series">`` per series; non-finite values
    leave gaps."""
    points = [
        (x, y)
        for xs, ys in panel.series.values()
        for x, y in zip(xs, ys, strict=True)
        if math.isfinite(x) and math.isfinite(y)
    ]
    if not points:
        note = f'<text x="58" y="{height / 2}">no data yet</text></svg>'
        return _chart_start(panel.title, width, height, 58) + note
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    if y_high == y_low:
        pad = abs(y_low) * 0.1 or 1.0
        y_low, y_high = y_low - pad, y_high + pad

    def step_label(x: float) -> str:  # whole steps unless the axis spans only a few
        return f"{x:.0f}" if x_high - x_low >= 8 else f"{x:.3g}"

    # Margins wide enough for the labels (none is cut): the y labels' widest on the left,
    # half the last step label on the right, the legend's rows on top.
    y_labels = [_number(y_low + (y_high - y_low) * i / 4) for i in range(5)]
    left = max(58, _text_width(max(y_labels, key=len)) + 10)
    right = max(12, _text_width(step_label(x_high)) // 2 + 4)
    legend = _legend_rows(list(panel.series), left, width - right)
    top = 44 + LEGEND_ROW * (len(legend) - 1)
    bottom = 34
    plot_w, plot_h = width - left - right, max(height - top - bottom, 40)
    height = top + plot_h + bottom
    parts = [_chart_start(panel.title, width, height, left)]

    def sx(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    # Axes, four grid lines each way, and their labels.
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    for i in range(5):
        y = y_low + (y_high - y_low) * i / 4
        x = x_low + (x_high - x_low) * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            f'class="grid"/><text x="{left - 4}" y="{sy(y) + 4:.1f}" class="tick" '
            f'text-anchor="end">{_number(y)}</text>'
            f'<text x="{sx(x):.1f}" y="{top + plot_h + 14}" class="tick" '
            f'text-anchor="middle">{step_label(x)}</text>'
        )
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" class="tick">step</text>')
    legend_places = {
        name: (x, 36 + LEGEND_ROW * row)
        for row, entries in enumerate(legend)
        for name, x in entries
    }
    for index, (name, (xs, ys)) in enumerate(panel.series.items()):
        color = COLORS[index % len(COLORS)]
        commands, pen_down = [], False
        for x, y in zip(xs, ys, strict=True):
            if not (math.isfinite(x) and math.isfinite(y)):
                pen_down = False  # a gap
                continue
            commands.append(f"{'L' if pen_down else 'M'}{sx(x):.1f},{sy(y):.1f}")
            pen_down = True
        if len(commands) == 1:  # one point: a dot, so it shows
            commands.append("h0.01")
        parts.append(
            f'<path class="series" data-name="{escape(name)}" d="{" ".join(commands)}" '
            f'stroke="{color}"/>'
        )
        legend_x, legend_y = legend_places[name]
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 14}" y1="{legend_y - 4}" '
            f'y2="{legend_y - 4}" stroke="{color}" stroke-width="2"/><text x="{legend_x + 18}" '
            f'y="{legend_y}" class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: Sequence[tuple[str, Any]], css_id: str) -> str:
    body = "".join(
        f"<tr><th>{escape(str(k))}</th><td>"
        f"{escape(_number(v) if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in rows
    )
    return f'<table id="{css_id}">{body}</table>'


def _image(frame: Frame) -> str:
    data = base64.b64encode(frame.png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(frame.label)}">'


def _samples(page: Page) -> str:
    if not page.frames and page.real is None:
        return "<p>No sample grids yet (a SampleGrid callback draws them).</p>"
    parts = []
    if page.frames:
        last = len(page.frames) - 1
        figures = "".join(
            f'<figure data-label="{escape(f.label)}"{" hidden" if i != last else ""}>'
            f"{_image(f)}<figcaption>{escape(f.label)}</figcaption></figure>"
            for i, f in enumerate(page.frames)
        )
        parts.append(f'<div class="timeline"><div id="frames">{figures}</div>')
        if len(page.frames) > 1:
            parts.append(
                f'<p class="slider"><input type="range" id="frame-slider" min="0" max="{last}" '
                f'value="{last}" step="1" aria-label="sample grid shown"> '
                f'<span id="frame-label">{escape(page.frames[-1].label)}</span></p>'
            )
        parts.append("</div>")
    if page.real is not None:
        parts.append(
            f'<figure id="real">{_image(page.real)}<figcaption>{escape(page.real.label)}'
            "</figcaption></figure>"
        )
    return "".join(parts)


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1500px;color:#222;padding:0 1em}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.2em 0 .4em}
#status{font-weight:600;padding:.3em .6em;border-radius:4px;display:inline-block}
.running{background:#e8f0fe} .finished{background:#e6f4ea} .stopped{background:#fce8e6}
table{border-collapse:collapse;margin:.3em 0} th,td{text-align:left;padding:2px 10px 2px 0;
vertical-align:top} th{font-weight:500;color:#555} td{font-family:ui-monospace,monospace}
.charts{display:flex;flex-wrap:wrap;gap:8px}
svg.chart{background:#fff;border:1px solid #ddd} .frame{fill:none;stroke:#999}
.grid{stroke:#eee} .tick,.legend{font-size:11px;fill:#444} .title{font-size:13px;fill:#222}
path.series{fill:none;stroke-width:1.4;stroke-linejoin:round;stroke-linecap:round}
.samples{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0} figure img{image-rendering:pixelated;width:100%;max-width:520px;min-width:200px}
figcaption{color:#555} .note{color:#666;font-size:12px}
"""

_SCRIPT = """
(function () {
  var slider = document.getElementById("frame-slider");
  if (!slider) { return; }
  var frames = document.querySelectorAll("#frames figure");
  var label = document.getElementById("frame-label");
  function show(index) {
    for (var k = 0; k < frames.length; k++) { frames[k].hidden = k !== index; }
    label.textContent = frames[index].getAttribute("data-label") +
      " (" + (index + 1) + " of " + frames.length + ")";
  }
  slider.addEventListener("input", function () { show(Number(slider.value)); });
  show(Number(slider.value));
})();
"""


def render(page: Page) -> str:
    """The whole page as one string."""
    refresh = (
        f'<meta http-equiv="refresh" content="{page.refresh_seconds}">'
        if page.refresh_seconds
        else ""
    )
    charts = "".join(line_chart(panel) for panel in page.panels)
    sections = [
        f"<h1>{escape(page.title)}</h1>",
        f'<p><span id="status" class="{escape(page.status)}">{escape(page.status_line)}</span></p>',
        _table(page.facts, "facts"),
        f'<h2>Curves</h2><div class="charts">{charts}</div>'
        f'<p class="note">{escape(page.curve_note)}</p>',
        '<h2>Samples</h2><div class="samples">' + _samples(page) + "</div>",
    ]
    if page.evaluation:
        sections.append(
            "<h2>Latest evaluation scores</h2>"
            + _table(page.evaluation, "evaluation")
            + f'<p class="note">{escape(page.evaluation_note)}</p>'
        )
    if page.checks:
        sections.append(
            '<h2>Memorisation check</h2><div class="samples" id="checks">'
            + "".join(
                f"<figure>{_image(f)}<figcaption>{escape(f.label)}</figcaption></figure>"
                for f in page.checks
            )
            + '</div><p class="note">Distances in the evaluation\'s feature space; a ratio '
            "near 1 means a held-out image is as close as a training one (no copying), one "
            "near 0 a sample that sits on a training image.</p>"
        )
    if page.latest:
        sections.append("<h2>Last step</h2>" + _table(page.latest, "latest"))
    if page.other_metrics:
        sections.append("<h2>Other metrics</h2>" + _table(page.other_metrics, "other-metrics"))
    if page.scores:
        sections.append(
            "<h2>Scores</h2>"
            + _table(page.scores, "scores")
            + f'<p class="note">{escape(page.scores_note)}</p>'
        )
    settings = [(k, v) for k, v in page.settings.items()]
    sections.append(
        "<h2>Settings</h2>" + (_table(settings, "settings") if settings else "<p>none given</p>")
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width">{refresh}'
        f'<link rel="icon" href="data:,"><title>{escape(page.title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )

"""Small inline SVG charts for the HTML report: no scripts, no external assets.

Each chart is an ``<svg role="img">`` with a ``<title>`` and ``<desc>`` that
screen readers announce; the report puts a data table next to each one.
Colours are the Okabe-Ito palette, distinguishable with colour blindness.
Every series element carries a class (``s0``...``s7``) as well as its fill,
so a page's stylesheet can recolour it: :func:`series_css` swaps the black
series for the palette's yellow under ``prefers-color-scheme: dark``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from html import escape

from otm.report.units import sig

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999999")
DARK_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
"""The series on a dark background: black would vanish, Okabe-Ito's yellow takes its place."""
ON_LIGHT = ("#fff", "#000", "#fff", "#000", "#000", "#fff", "#fff", "#000")
"""Label colour on a bar of each series (light palette)."""
ON_DARK = ("#fff", "#000", "#fff", "#000", "#000", "#fff", "#000", "#000")


def series_slot(i: int) -> int:
    """The palette slot (and CSS class ``s<slot>``) of series ``i``."""
    return i % len(PALETTE)


def series_css(scope: str = "svg.chart") -> str:
    """Rules that colour the series by class, with a dark-mode palette (for the page's <style>)."""

    def rules(palette: tuple[str, ...], on: tuple[str, ...]) -> str:
        out = []
        for i, (colour, text) in enumerate(zip(palette, on)):
            out.append(f"{scope} .s{i} {{ fill: {colour}; }}")
            out.append(f"{scope} .s{i}.hollow {{ fill: none; stroke: {colour}; }}")
            out.append(f"{scope} .on-s{i} {{ fill: {text}; }}")
        return "\n".join(out)

    return (
        rules(PALETTE, ON_LIGHT)
        + "\n@media (prefers-color-scheme: dark) {\n"
        + rules(DARK_PALETTE, ON_DARK)
        + "\n}\n"
    )
FONT = 12
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _num(x: float) -> str:
    return f"{x:.1f}"


def tick_label(x: float) -> str:
    """An axis label: plain decimals, trailing zeros dropped (``0.0001``, ``2.5``, ``10,000``)."""
    return sig(x, 4, trim=True)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.5:
        ticks.append(round(t, 12))
        t += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    a = math.floor(math.log10(lo))
    b = math.ceil(math.log10(hi))
    step = max(1, (b - a) // 6)
    return [10.0**e for e in range(a, b + 1, step)]


def _open(width: int, height: int, title: str, desc: str) -> tuple[list[str], str]:
    tid, did = _id("t"), _id("d")
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="{tid} {did}" class="chart" font-size="{FONT}">'
        ),
        f'<title id="{tid}">{escape(title)}</title>',
        f'<desc id="{did}">{escape(desc)}</desc>',
    ]
    return parts, tid


def _empty(width: int, height: int, title: str, desc: str, message: str) -> str:
    parts, _ = _open(width, height, title, desc)
    parts.append(
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">{escape(message)}</text></svg>'
    )
    return "".join(parts)


_TIME_STEPS = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)


def time_ticks(lo: float, hi: float, n: int = 6) -> tuple[list[float], float]:
    """Tick times on round clock values (seconds, minutes, hours, days) and the step."""
    raw = max(hi - lo, 1e-3) / max(n - 1, 1)
    step = next((s for s in _TIME_STEPS if s >= raw), None)
    if step is None:
        step = 86400.0 * math.ceil(raw / 86400.0)
    start = math.ceil(lo / step) * step
    ticks = []
    t = start
    while t <= hi + 1e-9:
        ticks.append(t)
        t += step
    return ticks, step


def time_label(t: float, step: float) -> str:
    """A UTC clock label precise enough for ticks ``step`` seconds apart."""
    if step < 1:
        decimals = max(1, math.ceil(-math.log10(step) - 1e-9))
        frac = f"{t % 1:.{decimals}f}"[1:]
        return time.strftime("%H:%M:%S", time.gmtime(t)) + frac
    if step < 60:
        return time.strftime("%H:%M:%S", time.gmtime(t))
    if step < 86400:
        return time.strftime("%m-%d %H:%M" if step >= 3600 else "%H:%M", time.gmtime(t))
    return time.strftime("%Y-%m-%d", time.gmtime(t))


class _Axis:
    """Maps data values to pixels, linear or logarithmic."""

    def __init__(self, lo: float, hi: float, a: float, b: float, log: bool = False) -> None:
        self.log = log
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi <= lo:
            hi = lo + 1.0
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(max(v, 10**self.lo))
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _wants_log(values: Sequence[float]) -> bool:
    """Log scale when values span over two decades (zeros then sit on the axis floor)."""
    pos = [v for v in values if v > 0]
    return len(pos) > 1 and len(pos) >= 0.5 * len(values) and max(pos) / min(pos) > 100


def scatter(
    points: Sequence[tuple[float, float, int]],
    *,
    title: str,
    desc: str,
    x_label: str,
    y_label: str,
    series: Sequence[str] = (),
    x_is_time: bool = False,
    log_x: bool | None = None,
    log_y: bool | None = None,
    width: int = 720,
    height: int = 300,
) -> str:
    """Points ``(x, y, series_index)``; log axes chosen automatically for wide spans."""
    if not points:
        return _empty(width, height, title, desc, "No data")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    log_x = (not x_is_time and _wants_log(xs)) if log_x is None else log_x
    log_y = _wants_log(ys) if log_y is None else log_y
    if log_x and max(xs) <= 0:
        log_x = False
    if log_y and max(ys) <= 0:
        log_y = False
    left, right, top = 64, 16, 16
    legend = _legend_layout(series, left, width - right) if len(series) > 1 else []
    lines = 1 + max((row for _, row, _ in legend), default=0) if legend else 0
    height += max(lines - 1, 0) * LEGEND_LINE
    legend_h = 22 + (lines - 1) * LEGEND_LINE if lines else 0
    bottom = height - 44 - legend_h
    parts, _ = _open(width, height, title, desc)

    def span(values: list[float], log: bool) -> tuple[float, float]:
        # On a log axis the range starts at the smallest positive value.
        lo = min(v for v in values if v > 0) if log else min(values)
        return lo, max(values)

    def ticks(lo: float, hi: float, log: bool) -> list[float]:
        return log_ticks(lo, hi) if log else nice_ticks(lo, hi)

    x_lo, x_hi = span(xs, log_x)
    step = 0.0
    if x_is_time:
        pad = max((x_hi - x_lo) * 0.03, 0.01)
        x_lo, x_hi = x_lo - pad, x_hi + pad
        xt, step = time_ticks(x_lo, x_hi)
    else:
        xt = ticks(x_lo, x_hi, log_x)
        x_lo, x_hi = min(xt[0], x_lo), max(xt[-1], x_hi)
    y_min, y_max = span(ys, log_y)
    yt = log_ticks(y_min, y_max) if log_y else nice_ticks(min(0.0, y_min), y_max)
    y_lo, y_hi = min(yt[0], y_min), max(yt[-1], y_max)
    X = _Axis(x_lo, x_hi, left, width - right, log_x)
    Y = _Axis(y_lo, y_hi, bottom, top, log_y)

    parts.append('<g class="grid">')
    for t in yt:
        y = Y(t)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}"/>')
    parts.append('</g><g class="axis">')
    for t in yt:
        parts.append(
            f'<text x="{left - 6}" y="{_num(Y(t) + 4)}" text-anchor="end">{tick_label(t)}</text>'
        )
    for t in xt:
        label = time_label(t, step) if x_is_time else tick_label(t)
        parts.append(
            f'<text x="{_num(X(t))}" y="{bottom + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{bottom}" y2="{bottom}" class="base"/>'
    )
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{bottom + 34}" text-anchor="middle" class="label">'
        f"{escape(x_label)}{' (log scale)' if log_x else ''}</text>"
    )
    parts.append(
        f'<text transform="translate(14 {(top + bottom) / 2}) rotate(-90)" text-anchor="middle" class="label">'
        f"{escape(y_label)}{(' (log, hollow = 0)' if min(ys) <= 0 else ' (log)') if log_y else ''}</text></g>"
    )
    parts.append('<g class="points">')
    for x, y, s in points:
        k = series_slot(s)
        if (log_y and y <= 0) or (log_x and x <= 0):
            # Zero has no place on a log axis: drawn hollow on the axis floor.
            paint = f'class="s{k} hollow" fill="none" stroke="{PALETTE[k]}"'
        else:
            paint = f'class="s{k}" fill="{PALETTE[k]}"'
        parts.append(f'<circle cx="{_num(X(x))}" cy="{_num(Y(y))}" r="3" {paint}/>')
    parts.append("</g>")
    if legend:
        parts.append(_legend(legend, height - 14 - (lines - 1) * LEGEND_LINE))
    parts.append("</svg>")
    return "".join(parts)


LEGEND_LINE = 18
"""Height of one line of a wrapped legend."""


def _legend_layout(names: Sequence[str], x0: float, x_max: float) -> list[tuple[float, int, str]]:
    """(x, line, name) for each series, wrapping onto new lines at the chart's right edge."""
    out: list[tuple[float, int, str]] = []
    x, row = x0, 0
    for name in names:
        w = 24 + 7 * len(name)
        if x > x0 and x + w > x_max:
            x, row = x0, row + 1
        out.append((x, row, name))
        x += w
    return out


def _legend(layout: Sequence[tuple[float, int, str]], y0: float) -> str:
    out = ['<g class="legend">']
    for i, (x, row, name) in enumerate(layout):
        k = series_slot(i)
        y = y0 + row * LEGEND_LINE
        out.append(
            f'<rect x="{_num(x)}" y="{y - 9}" width="10" height="10" class="s{k}" fill="{PALETTE[k]}"/>'
        )
        out.append(f'<text x="{_num(x + 14)}" y="{y}">{escape(name)}</text>')
    out.append("</g>")
    return "".join(out)


def range_bars(
    items: Sequence[tuple[str, float, float, float]],
    *,
    title: str,
    desc: str,
    unit: str,
    width: int = 720,
    colour: int = 0,
) -> str:
    """Horizontal bars ``(label, value, low, high)`` with a whisker for the range.

    ``colour`` is a series index (a palette colour that follows the page's dark mode).
    """
    slot = series_slot(colour)
    row_h = 28
    label_w = min(260, 24 + 7 * max((len(i[0]) for i in items), default=4))
    height = 40 + row_h * max(len(items), 1) + 24
    if not items:
        return _empty(width, height, title, desc, "No data")
    top = 12
    right = 90
    hi = max(max(i[3], i[1]) for i in items) or 1.0
    ticks = nice_ticks(0.0, hi, 5)
    X = _Axis(0.0, max(ticks[-1], hi), label_w, width - right)
    bottom = top + row_h * len(items)
    parts, _ = _open(width, height, title, desc)
    parts.append('<g class="grid">')
    for t in ticks:
        parts.append(f'<line x1="{_num(X(t))}" x2="{_num(X(t))}" y1="{top}" y2="{bottom}"/>')
    parts.append('</g><g class="axis">')
    for t in ticks:
        parts.append(
            f'<text x="{_num(X(t))}" y="{bottom + 16}" text-anchor="middle">{tick_label(t)}</text>'
        )
    parts.append(
        f'<text x="{(label_w + width - right) / 2}" y="{bottom + 34}" text-anchor="middle" class="label">'
        f"{escape(unit)} (bar: central estimate; whisker: range)</text></g>"
    )
    for k, (label, value, low, high) in enumerate(items):
        y = top + k * row_h
        mid = y + row_h / 2
        shown = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{_num(mid + 4)}" text-anchor="end">{escape(shown)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{_num(y + 6)}" width="{_num(max(X(value) - label_w, 1))}" '
            f'height="{row_h - 12}" class="s{slot}" fill="{PALETTE[slot]}" opacity="0.85"><title>{escape(label)}: '
            f"{sig(value)} {escape(unit)} (range {sig(low)}–{sig(high)})</title></rect>"
        )
        parts.append(
            f'<g class="whisker"><line x1="{_num(X(low))}" x2="{_num(X(high))}" y1="{_num(mid)}" y2="{_num(mid)}"/>'
            f'<line x1="{_num(X(low))}" x2="{_num(X(low))}" y1="{_num(mid - 6)}" y2="{_num(mid + 6)}"/>'
            f'<line x1="{_num(X(high))}" x2="{_num(X(high))}" y1="{_num(mid - 6)}" y2="{_num(mid + 6)}"/></g>'
        )
        parts.append(
            f'<text x="{_num(X(high) + 6)}" y="{_num(mid + 4)}" class="value">{sig(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(
    parts_in: Sequence[tuple[str, float]],
    *,
    title: str,
    desc: str,
    unit: str,
    width: int = 720,
) -> str:
    """One bar split into its shares, labelled with name and percentage, legend below."""
    total = sum(max(v, 0.0) for _, v in parts_in)
    left, right, top, bar_h, line_h = 8, 8, 8, 30, 20
    # Lay the legend out first: it wraps onto as many lines as it needs.
    legend: list[tuple[float, float, str]] = []
    lx, ly = float(left), float(top + bar_h + 24)
    for name, value in parts_in:
        share = max(value, 0.0) / total if total > 0 else 0.0
        text = f"{name}: {sig(value)} {unit} ({share:.1%})"
        w = 26 + 6.8 * len(text)
        if lx > left and lx + w > width - right:
            lx, ly = float(left), ly + line_h
        legend.append((lx, ly, text))
        lx += w
    height = int(ly + 14)
    if total <= 0:
        return _empty(width, height, title, desc, "No data")
    parts, _ = _open(width, height, title, desc)
    x = float(left)
    span = width - left - right
    for i, ((name, value), (lx, ly, text)) in enumerate(zip(parts_in, legend)):
        share = max(value, 0.0) / total
        w = share * span
        k = series_slot(i)
        label = f"{name} {share:.0%}"
        parts.append(
            f'<rect x="{_num(x)}" y="{top}" width="{_num(w)}" height="{bar_h}" class="s{k}" '
            f'fill="{PALETTE[k]}"><title>{escape(text)}</title></rect>'
        )
        if w > 7.5 * len(label) + 8:
            parts.append(
                f'<text x="{_num(x + w / 2)}" y="{top + 20}" text-anchor="middle" class="on-s{k}" '
                f'fill="{ON_LIGHT[k]}">{escape(label)}</text>'
            )
        parts.append(
            f'<rect x="{_num(lx)}" y="{_num(ly - 9)}" width="10" height="10" class="s{k}" fill="{PALETTE[k]}"/>'
        )
        parts.append(f'<text x="{_num(lx + 14)}" y="{_num(ly)}">{escape(text)}</text>')
        x += w
    parts.append("</svg>")
    return "".join(parts)

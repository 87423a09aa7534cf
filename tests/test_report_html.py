"""The HTML report's charts: bars ranked by their own value, every series visible in dark mode.

Checked on the generated HTML (the SVG's order and classes, the page's CSS
for ``prefers-color-scheme: dark``, WCAG contrast of each series against the
background) and, where Chromium is installed, on screenshots of the page in
light and dark mode.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from otm.report.html import render_html
from otm.report.rows import Row
from otm.report.summary import Aggregator, Summary

# model -> (requests, Wh per request, output tokens per request): the totals rank
# the models in another order than the per-request and per-token figures do
MODELS = {
    "many-cheap": (40, 0.5, 400),
    "few-costly": (3, 4.0, 100),
    "middle": (10, 1.5, 2000),
    **{f"extra-{i}": (2 + i, 0.1 * (i + 1) + 0.03, 50 * (i + 1) + 7) for i in range(7)},
}


def _summary() -> Summary:
    agg = Aggregator(name="charts")
    seq = 0
    for model, (n, wh, out) in MODELS.items():
        for _ in range(n):
            seq += 1
            row = Row()
            row.seq = seq
            row.time = 1_700_000_000.0 + seq
            row.end_time = row.time + 2.0
            row.model = model
            row.provider = "openai"
            row.energy = (wh, wh / 2, wh * 2)
            row.carbon = (wh * 0.4, wh * 0.2, wh * 0.8)
            row.water = (wh * 2, wh, wh * 4)
            row.breakdown_wh = {"accelerator": wh * 0.6, "host": wh * 0.25, "idle": wh * 0.1, "facility": wh * 0.05}
            row.carbon_breakdown_g = {"operational": wh * 0.36, "embodied": wh * 0.04}
            row.water_breakdown_ml = {"onsite": wh * 0.6, "offsite": wh * 1.4}
            row.input_tokens = 100 + seq
            row.output_tokens = out
            row.latency_s = 1.0
            row.ttft_s = 0.3
            agg.add(row)
    return agg.summary()


class _Charts(HTMLParser):
    """Per SVG: its title, the bar labels in drawing order, and the series classes it uses."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict] = []
        self._in_title = False
        self._in_label = False
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "style":
            self._in_style = True
        if tag == "svg":
            self.charts.append({"title": "", "labels": [], "classes": set()})
        if not self.charts:
            return
        chart = self.charts[-1]
        if tag == "title" and not chart["title"]:
            self._in_title = True
        if tag == "text" and a.get("text-anchor") == "end" and "class" not in a:
            self._in_label = True
        for cls in (a.get("class") or "").split():
            if re.fullmatch(r"s\d+", cls):
                chart["classes"].add(int(cls[1:]))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        self._in_title = self._in_label = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data
        elif self._in_title:
            self.charts[-1]["title"] += data
        elif self._in_label:
            self.charts[-1]["labels"].append(data)


def _parse(html: str) -> _Charts:
    p = _Charts()
    p.feed(html)
    p.close()
    return p


def _chart(p: _Charts, title: str) -> dict:
    return next(c for c in p.charts if c["title"].startswith(title))


def test_models_are_ranked_by_each_charts_own_figure() -> None:
    s = _summary()
    p = _parse(render_html(s))
    by_total = [m.model for m in s.by_model]
    per_request = [m.model for m in sorted(s.by_model, key=lambda m: -m.energy_per_request_wh.value)]
    per_token = [m.model for m in sorted(s.by_model, key=lambda m: -m.energy_per_1k_output_wh.value)]
    assert by_total[:3] == ["many-cheap", "middle", "few-costly"]  # the summary's own order
    assert per_request[:2] == ["few-costly", "middle"] and per_request[-1] != "many-cheap"
    assert per_request.index("many-cheap") > per_request.index("middle")
    assert _chart(p, "Energy per request, by model")["labels"] == per_request
    assert _chart(p, "Energy per 1 000 output tokens, by model")["labels"] == per_token


# ---------------------------------------------------------------------- colours


def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    rgb = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _css_blocks(style: str) -> tuple[str, str]:
    """(rules outside any media query, rules inside prefers-color-scheme: dark)."""
    dark = []
    for m in re.finditer(r"@media \(prefers-color-scheme: dark\) \{", style):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(style[i], 0)
            i += 1
        dark.append(style[m.end() : i - 1])
    light = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", style)
    return light, "".join(dark)


def _var(block: str, name: str) -> str:
    return re.search(rf"--{name}:\s*(#[0-9A-Fa-f]{{3,6}})", block).group(1)


def _series_colours(block: str, prefix: str = "s") -> dict[int, str]:
    return {
        int(k): v
        for k, v in re.findall(rf"svg\.chart \.{prefix}(\d+) \{{ fill: (#[0-9A-Fa-f]{{3,6}}); \}}", block)
    }


def test_every_series_is_visible_in_dark_and_light_mode() -> None:
    p = _parse(render_html(_summary()))
    light, dark = _css_blocks(p.style)
    light_bg, dark_bg = _var(light, "bg"), _var(dark, "bg")
    assert _luminance(dark_bg) < 0.05 < 0.9 < _luminance(light_bg)
    used = set().union(*(c["classes"] for c in p.charts))
    assert used >= set(range(8)), used  # 7 models + "other models": every slot of the palette
    light_fill, dark_fill = _series_colours(light), _series_colours(dark)
    for k in sorted(used):
        # WCAG 1.4.11 asks 3:1 for graphics; Okabe-Ito's light colours sit near 2:1 on white
        assert contrast(dark_fill[k], dark_bg) >= 3.0, (k, dark_fill[k])
        assert contrast(light_fill[k], light_bg) >= 2.0, (k, light_fill[k])
    # labels drawn on a bar stay readable on it, in both modes
    for block in (light, dark):
        fills, on = _series_colours(block), _series_colours(block, "on-s")
        for k in fills:
            assert contrast(on[k], fills[k]) >= 3.0, (k, fills[k], on[k])


# ---------------------------------------------------------------------- in a browser


def _screenshot(browser: str, html: Path, png: Path, tmp: Path, dark: bool) -> None:
    profile = tmp / f"profile-{'dark' if dark else 'light'}"
    profile.mkdir()
    args = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1280,2600",
    ]
    if dark:  # prefers-color-scheme: dark
        args += ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]
    subprocess.run([*args, html.as_uri()], capture_output=True, timeout=120, check=False)
    assert png.exists(), "chromium wrote no screenshot"


def test_dark_mode_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless Chromium on this machine")
    image = pytest.importorskip("PIL.Image")
    html = tmp_path / "r.html"
    html.write_text(render_html(_summary()), encoding="utf-8")
    shots = {}
    for dark in (False, True):
        png = tmp_path / f"{'dark' if dark else 'light'}.png"
        _screenshot(browser, html, png, tmp_path, dark)
        shots[dark] = image.open(png).convert("RGB")

    def near(img, rgb: tuple[int, int, int], tol: int = 24) -> int:
        px = np.asarray(img, dtype=np.int16)
        return int((np.abs(px - np.array(rgb, dtype=np.int16)) <= tol).all(axis=2).sum())

    light, dark = shots[False], shots[True]
    assert sum(light.getpixel((5, 5))) > 700 and sum(dark.getpixel((5, 5))) < 120  # white, near-black page
    yellow, black = (0xF0, 0xE4, 0x42), (0, 0, 0)
    # the seventh series: black dots on white, yellow dots (not black ones) on the dark page
    assert near(dark, yellow) > 100, "the dark palette's yellow series is not on the page"
    assert near(light, yellow) < 20 and near(light, black, 8) > 100

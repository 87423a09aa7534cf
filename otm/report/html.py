"""The self-contained HTML report: one file, inline CSS and SVG, no scripts, no network.

Sections: headline figures, the sentence for a paper, energy and carbon per
request over time, models compared (per request and per 1 000 output
tokens), where the energy, carbon and water go, prompt efficiency, latency,
SCI-for-AI intensities and the method. Every chart has a title and a
description for screen readers and a data table beside it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from otm.impact import Range
from otm.report import svg
from otm.report.summary import Summary, Totals
from otm.report.units import (
    fmt,
    fmt_cost,
    fmt_int,
    fmt_percent,
    fmt_seconds,
    fmt_span,
    plural,
    scale_for,
    sig,
)

_CSS = """
:root { --fg:#1b1f24; --muted:#57606a; --bg:#ffffff; --panel:#f6f8fa; --line:#d0d7de; --accent:#0072B2; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#e6edf3; --muted:#9da7b1; --bg:#0d1117; --panel:#161b22; --line:#30363d; --accent:#56B4E9; }
}
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 32px 24px 64px; }
h1 { font-size: 1.9rem; margin: 0 0 4px; line-height:1.25; }
h2 { font-size: 1.35rem; margin: 44px 0 8px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 24px 0 6px; }
p { margin: 8px 0; max-width: 78ch; }
.muted, .meta { color: var(--muted); }
.meta { margin: 0 0 20px; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 12px; margin: 20px 0; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
.card .k { font-size: .85rem; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 1.6rem; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.card .r { font-size: .9rem; color: var(--muted); font-variant-numeric: tabular-nums; }
blockquote.paper { margin: 12px 0; padding: 14px 18px; background: var(--panel); border-left: 4px solid var(--accent);
  border-radius: 0 8px 8px 0; font-family: Georgia, "Times New Roman", serif; font-size: 1.02rem; max-width: none; }
figure { margin: 16px 0 8px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { width: 100%; height: auto; display:block; background: var(--bg); }
svg.chart text { fill: var(--fg); font-family: inherit; }
svg.chart text.muted { fill: var(--muted); }
svg.chart .grid line { stroke: var(--line); stroke-width: 1; }
svg.chart .axis text { fill: var(--muted); }
svg.chart .axis text.label { fill: var(--fg); }
svg.chart line.base { stroke: var(--muted); }
svg.chart .whisker line { stroke: var(--fg); stroke-width: 1.5; }
svg.chart .points circle { opacity: .75; }
svg.chart text.value { fill: var(--fg); font-variant-numeric: tabular-nums; }
details { margin: 4px 0 16px; }
summary { cursor: pointer; color: var(--accent); }
a { color: var(--accent); }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: .92rem; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 16ch; text-align: left; }
th:first-child, td:first-child { text-align: left; }
td.text, th.text { text-align: left; }
thead th { border-bottom: 2px solid var(--line); white-space: normal; vertical-align: bottom; }
.wide { overflow-x: auto; }
.rng { display: block; font-size: .8rem; color: var(--muted); }
code { font-size: .9em; }
footer { margin-top: 48px; color: var(--muted); font-size: .9rem; }
@media print { details { display: none; } h2 { break-after: avoid; } figure { break-inside: avoid; } }
""" + svg.series_css()

MAX_SERIES = 7
MAX_MODEL_BARS = 15


class _Raw(str):
    """Markup built here from escaped parts; table cells insert it as is."""


def _h(x: Any) -> str:
    return x if isinstance(x, _Raw) else escape(str(x))


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    text_cols: int = 1,
    wrap_last: bool = False,
) -> str:
    text_cls = ' class="text"'
    head = "".join(
        f'<th scope="col"{text_cls if i < text_cols or (wrap_last and i == len(header) - 1) else ""}>'
        f"{_h(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            if i == 0:
                cells.append(f'<th scope="row">{_h(c)}</th>')
            else:
                cls = ' class="text"' if i < text_cols else ""
                if wrap_last and i == len(row) - 1:
                    cls = ' class="wrap"'
                cells.append(f"<td{cls}>{_h(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f'<caption class="muted">{_h(caption)}</caption>' if caption else ""
    return f'<div class="wide"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _details(table: str, label: str = "Data table") -> str:
    return f"<details><summary>{_h(label)}</summary>{table}</details>"


def _figure(title: str, chart: str, table: str | None = None, note: str | None = None) -> str:
    parts = [f"<figure><figcaption>{_h(title)}</figcaption>{chart}"]
    if note:
        parts.append(f'<p class="muted">{_h(note)}</p>')
    parts.append("</figure>")
    if table:
        parts.append(_details(table))
    return "".join(parts)


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}"


def _cell(r: Range | None) -> str:
    """A central value over its range, for table cells."""
    if r is None:
        return "–"
    return _Raw(
        f'{escape(sig(r.value))}<span class="rng">{escape(fmt_span(r.low, r.high))}</span>'
    )


# ---------------------------------------------------------------------- sections


def _header(s: Summary) -> str:
    t = s.totals
    title = f"LLM impact report: {s.name}" if s.name else "LLM impact report"
    meta = [plural(t.requests, "request")]
    if s.started is not None and s.ended is not None:
        meta.append(
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(s.started))} – "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(s.ended))} UTC"
        )
    meta.append(f"otm v{s.otm_version}")
    tags = ""
    if s.tags:
        tags = (
            '<p class="muted">Tags: '
            + ", ".join(f"<code>{_h(k)}={_h(v)}</code>" for k, v in s.tags.items())
            + "</p>"
        )
    return f'<header><h1>{_h(title)}</h1><p class="meta">{_h(" · ".join(meta))}</p>{tags}</header>'


def _cards(s: Summary) -> str:
    t = s.totals

    def card(label: str, kind: str, r: Range) -> str:
        factor, unit = scale_for(kind, r.value)
        return (
            f'<div class="card"><div class="k">{_h(label)}</div>'
            f'<div class="v">{_h(sig(r.value / factor))} {_h(unit)}</div>'
            f'<div class="r">range {_h(fmt_span(r.low, r.high, factor=factor))} {_h(unit)}</div></div>'
        )

    cost = fmt_cost(t.cost_usd)
    tokens = (
        f'<div class="card"><div class="k">Tokens</div><div class="v">{_h(fmt_int(t.tokens))}</div>'
        f'<div class="r">{_h(fmt_int(t.input_tokens))} in · {_h(fmt_int(t.output_tokens))} out · cost {_h(cost)}</div></div>'
    )
    missing = ""
    if t.estimated < t.requests:
        missing = (
            f'<p class="muted">{_h(fmt_int(t.requests - t.estimated))} of '
            f"{_h(plural(t.requests, 'request'))} could not be estimated and are not in these figures.</p>"
        )
    return (
        '<section aria-label="Headline figures"><div class="cards">'
        + card("Energy", "energy", t.energy_wh)
        + card("Carbon", "carbon", t.carbon_g)
        + card("Water", "water", t.water_ml)
        + tokens
        + "</div>"
        + missing
        + "</section>"
    )


def _paper(s: Summary) -> str:
    return (
        '<section><h2 id="paper">For your paper</h2>'
        '<p class="muted">Ready to paste into a methods or results section.</p>'
        f'<blockquote class="paper">{_h(s.sentence)}</blockquote></section>'
    )


def _series_index(names: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    counts = Counter(names)
    top = [m for m, _ in counts.most_common(MAX_SERIES)]
    labels = list(top)
    index = {m: i for i, m in enumerate(top)}
    if len(counts) > len(top):
        labels.append("other models")
    return labels, index


def _chart_unit(kind: str, values: Iterable[float]) -> tuple[float, str]:
    """(factor, unit) for a chart's axis: the unit of its largest value (``mWh`` rather than 0.000x Wh)."""
    top = max((abs(v) for v in values), default=0.0)
    return scale_for(kind, top)


def _over_time(s: Summary) -> str:
    pts = [p for p in s.points if p["time"] is not None]
    labels, index = _series_index(p["model"] for p in pts)
    other = len(labels) - 1
    note = None
    if s.points_sampled:
        note = f"A uniform sample of {fmt_int(len(s.points))} of {plural(s.totals.estimated, 'request')} is shown."
    out = ['<section><h2 id="time">Energy and carbon per request over time</h2>']
    for key, what, kind in (
        ("energy_wh", "Energy per request", "energy"),
        ("carbon_g", "Carbon per request", "carbon"),
    ):
        factor, unit = _chart_unit(kind, (p[key] for p in pts))
        label = f"{what} ({unit})"
        data = [(p["time"], p[key] / factor, index.get(p["model"], other)) for p in pts]
        desc = (
            f"Scatter plot of {what.lower()} ({unit}) against start time (UTC) for "
            f"{plural(len(data), 'request')}"
            + (f", coloured by model: {', '.join(labels)}." if labels else ".")
        )
        chart = svg.scatter(
            data,
            title=label + " over time",
            desc=desc,
            x_label="request start time (UTC)",
            y_label=label,
            series=labels,
            x_is_time=True,
        )
        rows = [
            (_utc(p["time"]), p["model"], p["status"], sig(p["energy_wh"]), sig(p["carbon_g"]))
            for p in pts[:200]
        ]
        table = _table(
            ["Start (UTC)", "Model", "Status", "Energy (Wh)", "Carbon (gCO2e)"],
            rows,
            caption="First 200 plotted requests" if len(pts) > 200 else None,
            text_cols=3,
        )
        out.append(_figure(label + " over time", chart, table if kind == "energy" else None, note))
        note = None
    out.append("</section>")
    return "".join(out)


def _ranked(items: Iterable[tuple[str, Range | None]]) -> list[tuple[str, float, float, float]]:
    """(model, value, low, high), largest value first: a bar chart reads from the top."""
    bars = [(name, r.value, r.low, r.high) for name, r in items if r is not None]
    return sorted(bars, key=lambda b: (-b[1], b[0]))


def _range_bars(
    bars: list[tuple[str, float, float, float]], *, title: str, per: str, colour: int = 0
) -> str:
    factor, unit = _chart_unit("energy", (b[3] for b in bars))
    return svg.range_bars(
        [(n, v / factor, lo / factor, hi / factor) for n, v, lo, hi in bars],
        title=f"{title} ({unit})",
        unit=f"{unit} per {per}",
        colour=colour,
        desc="Bar chart, largest first: "
        + "; ".join(
            f"{n}: {sig(v / factor)} {unit} (range {fmt_span(lo, hi, factor=factor)})"
            for n, v, lo, hi in bars
        ),
    )


def _models(s: Summary) -> str:
    models = s.by_model[:MAX_MODEL_BARS]
    out = [
        '<section><h2 id="models">Models compared</h2>',
        (
            '<p class="muted">Energy per request and per 1 000 output tokens, by model, largest first. '
            "Bars show the central estimate, whiskers the range. Use it to pick a model for a task: "
            "the per-token figure separates the model's efficiency from how much it writes.</p>"
        ),
    ]
    per_req = _ranked((m.model, m.energy_per_request_wh) for m in models)
    per_tok = _ranked((m.model, m.energy_per_1k_output_wh) for m in models)
    out.append(
        _figure(
            "Energy per request, by model",
            _range_bars(per_req, title="Energy per request, by model", per="request"),
        )
    )
    out.append(
        _figure(
            "Energy per 1 000 output tokens, by model",
            _range_bars(
                per_tok,
                title="Energy per 1 000 output tokens, by model",
                per="1 000 output tokens",
                colour=2,
            ),
        )
    )
    rows = [m.table_row(_cell) for m in s.by_model]
    out.append(
        _table(
            [
                "Model",
                "Provider",
                "Requests",
                "Output tokens",
                "Energy (Wh)",
                "Wh / request",
                "Wh / 1k output",
                "Carbon (gCO2e)",
                "Water (mL)",
                "p50 latency",
            ],
            rows,
            caption="Central estimate, with its range below",
            text_cols=2,
        )
    )
    out.append("</section>")
    return "".join(out)


def _breakdown(s: Summary) -> str:
    out = ['<section><h2 id="breakdown">Where it goes</h2>']
    specs = (
        (
            "Energy by component",
            s.breakdown_wh,
            "Wh",
            "Accelerators, host (CPUs, memory, network), idle reserve capacity and facility overhead (PUE).",
        ),
        (
            "Carbon: operational and embodied",
            s.carbon_breakdown_g,
            "gCO2e",
            "Operational: electricity times grid intensity. Embodied: manufacturing emissions amortised over the hardware's life.",
        ),
        (
            "Water: on-site and off-site",
            s.water_breakdown_ml,
            "mL",
            "On-site: data-centre cooling. Off-site: water used to generate the electricity.",
        ),
    )
    for title, parts, unit, explain in specs:
        items = list(parts.items())
        total = sum(v for _, v in items) or 1.0
        desc = (
            f"{title}: "
            + "; ".join(f"{k} {sig(v)} {unit} ({fmt_percent(v / total)})" for k, v in items)
            + "."
        )
        chart = svg.stacked_bar(items, title=title, desc=desc, unit=unit)
        table = _table(
            ["Component", f"{unit}", "Share"], [(k, sig(v), fmt_percent(v / total, 1)) for k, v in items]
        )
        out.append(_figure(title, chart, table, explain))
    out.append("</section>")
    return "".join(out)


def _efficiency(s: Summary) -> str:
    e = s.efficiency
    pts = [p for p in s.points if p["input_tokens"] > 0 and p["output_tokens"] > 0]
    labels, index = _series_index(p["model"] for p in pts)
    other = len(labels) - 1
    data = [(p["input_tokens"], p["output_tokens"], index.get(p["model"], other)) for p in pts]
    chart = svg.scatter(
        data,
        title="Output tokens against input tokens",
        x_label="input tokens",
        y_label="output tokens",
        desc=f"Scatter plot of output against input tokens for {plural(len(data), 'request')}. Requests far to the right "
        "spend most of their work reading the prompt.",
        series=labels,
    )
    out = [
        '<section><h2 id="efficiency">Prompt efficiency</h2>',
        (
            '<p class="muted">Where trimming a prompt or capping an answer saves the most. '
            "“Useful” tokens are visible output tokens (reasoning tokens excluded).</p>"
        ),
        _figure("Output tokens against input tokens", chart),
    ]
    n_none = e["no_useful_output_requests"]
    if n_none:
        share = fmt_percent(e["no_useful_output_share"], 1)
        used = fmt("energy", e["no_useful_output_energy_wh"])
        what = "request" if n_none == 1 else "requests"
        verb = "it" if n_none == 1 else "they"
        out.append(
            f"<p>{_h(fmt_int(n_none))} {what} produced no visible output (failed, cancelled, or "
            f"reasoning only); {verb} used {_h(used)} ({_h(share)} of the total).</p>"
        )

    listed = e["most_energy_per_useful_token"] + e["most_output_per_input"]
    prompts = any(i["prompt"] for i in listed)  # only when the user opted in to capturing them

    def rows(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (
                i["request"],
                i["model"],
                fmt_int(i["input_tokens"]),
                fmt_int(i["output_tokens"]),
                "–" if i["output_per_input"] is None else sig(i["output_per_input"]),
                sig(i["energy_wh"]),
                "–"
                if i["energy_per_useful_token_wh"] is None
                else sig(i["energy_per_useful_token_wh"] * 1000),
                *((i["prompt"] or "",) if prompts else ()),
            )
            for i in items
        ]

    header = [
        "Request",
        "Model",
        "Input tokens",
        "Output tokens",
        "Output / input",
        "Energy (Wh)",
        "mWh / useful token",
        *(("Prompt (start)",) if prompts else ()),
    ]
    out.append("<h3>Most energy per useful token</h3>")
    out.append(
        _table(header, rows(e["most_energy_per_useful_token"]), text_cols=2, wrap_last=prompts)
    )
    out.append("<h3>Most output per input token</h3>")
    out.append(_table(header, rows(e["most_output_per_input"]), text_cols=2, wrap_last=prompts))
    out.append("</section>")
    return "".join(out)


def _split_rows(split: dict[str, Totals]) -> list[tuple[Any, ...]]:
    return [
        (
            k,
            fmt_int(v.requests),
            fmt_int(v.output_tokens),
            _cell(v.energy_wh),
            _cell(v.carbon_g),
            _cell(v.water_ml),
            fmt_cost(v.cost_usd),
        )
        for k, v in split.items()
    ]


def _latency_and_splits(s: Summary) -> str:
    out = ['<section><h2 id="latency">Latency and requests</h2>']
    rows = [
        (name, *(fmt_seconds(p.get(k)) for k in ("p50", "p90", "p99", "mean")), fmt_int(p.get("n")))
        for name, p in (
            ("Latency (start to last token)", s.latency_s),
            ("Time to first token", s.ttft_s),
        )
    ]
    out.append(_table(["", "p50", "p90", "p99", "mean", "requests"], rows))
    header = [
        "",
        "Requests",
        "Output tokens",
        "Energy (Wh)",
        "Carbon (gCO2e)",
        "Water (mL)",
        "Cost",
    ]
    for title, split in (
        ("By status", s.by_status),
        ("By provider", s.by_provider),
        ("By tag", s.by_tag),
        ("By tracked run", s.by_run),
    ):
        if split:
            out.append(f"<h3>{_h(title)}</h3>" + _table(header, _split_rows(split)))
    out.append("</section>")
    return "".join(out)


def _sci(s: Summary) -> str:
    sci = s.sci
    rows = [
        ("gCO2e per request", _cell(sci["gco2e_per_request"])),
        ("gCO2e per 1 000 tokens (input + output)", _cell(sci["gco2e_per_1k_tokens"])),
        ("gCO2e per 1 000 output tokens", _cell(sci["gco2e_per_1k_output_tokens"])),
        ("Wh per 1 000 tokens (input + output)", _cell(sci["wh_per_1k_tokens"])),
    ]
    return (
        '<section><h2 id="sci">SCI for AI</h2>'
        "<p>Software Carbon Intensity: carbon per functional unit (a request; 1 000 tokens).</p>"
        + _table(["Intensity", "Estimate (range)"], rows)
        + f"<p><strong>Boundary:</strong> {_h(sci['boundary'])}.</p></section>"
    )


def _method(s: Summary) -> str:
    parts = [
        '<section><h2 id="method">Method</h2>',
        (
            "<p>Figures are estimated per request by otm from what the client observed (start, first and last "
            "token times, token counts), the model's size, the serving hardware and the grid of the serving "
            "region. Each has a central value and a plausible range.</p>"
        ),
        (
            "<p><strong>How ranges add up.</strong> Central values are summed. Requests that share provider, "
            "model, deployment and region share their unknowns, so within such a group lows and highs are summed "
            "(fully correlated); the groups' half-widths then combine in quadrature (independent). The total range "
            "always contains the central value.</p>"
        ),
    ]
    if s.warnings:
        parts.append("<h3>Estimator warnings</h3><ul>")
        parts += [
            f'<li>{_h(w)} <span class="muted">({_h(plural(n, "request"))})</span></li>'
            for w, n in s.warnings
        ]
        parts.append("</ul>")
    if s.skipped_lines:
        parts.append(f"<p>{_h(plural(s.skipped_lines, 'unreadable log line'))} skipped.</p>")
    parts.append("</section>")
    return "".join(parts)


_NAV = (
    '<nav aria-label="Sections"><p class="muted">'
    + " · ".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label in (
            ("paper", "For your paper"),
            ("time", "Over time"),
            ("models", "Models"),
            ("breakdown", "Where it goes"),
            ("efficiency", "Prompt efficiency"),
            ("latency", "Latency"),
            ("sci", "SCI"),
            ("method", "Method"),
        )
    )
    + "</p></nav>"
)


def render_html(s: Summary) -> str:
    """The report as one HTML document (UTF-8), with no external resources."""
    title = f"otm report: {s.name}" if s.name else "otm report"
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(s.generated_at))
    body = [_header(s)]
    if s.totals.requests:
        body.append(_NAV)
    body += [_cards(s), _paper(s)]
    if s.totals.requests:
        body += [
            _over_time(s),
            _models(s),
            _breakdown(s),
            _efficiency(s),
            _latency_and_splits(s),
            _sci(s),
        ]
    body.append(_method(s))
    body.append(
        f"<footer>Generated by otm v{_h(s.otm_version)} on {_h(generated)}. "
        "Estimates, not measurements: see the method above.</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{_h(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )

"""How an Impact and a Record show themselves: ``print``, notebooks and rich terminals.

``str`` gives the figures with units and ranges, ``repr`` one short line,
``_repr_html_`` a small table for Jupyter (colours inherited, so light and
dark themes both work) and ``__rich__`` a ``rich`` table. Numbers go through
:mod:`otm.units`. Reports' own objects (Summary, Experiment) build on the
helpers here in :mod:`otm.report.display`.

Nothing here runs on a call's path: only when a user looks at a result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from otm.units import (
    DASH,
    fmt,
    fmt_cost,
    fmt_int,
    fmt_percent,
    fmt_range,
    fmt_seconds,
    fmt_span,
    sig,
)

if TYPE_CHECKING:
    from otm.impact import Impact
    from otm.record import Record

FIGURES = (
    ("energy", "energy_wh", "Energy"),
    ("carbon", "carbon_g", "Carbon"),
    ("water", "water_ml", "Water"),
)
"""(unit kind, Impact attribute, label) of the three figures, in the order they are shown."""

ESTIMATE_NOTE = "estimates: central value (low–high), from client-side timings and token counts"

# Inline styles only: notebooks strip <style> blocks in some viewers, and
# colours are inherited so the table reads in light and dark themes alike.
_TABLE = 'style="border-collapse:collapse;font-variant-numeric:tabular-nums;margin:4px 0"'
_TH = 'style="text-align:left;padding:2px 12px 2px 0;font-weight:600"'
_TD = 'style="text-align:right;padding:2px 12px 2px 0"'
_TD_TEXT = 'style="text-align:left;padding:2px 12px 2px 0"'
_MUTED = 'style="opacity:.75;font-size:.92em"'


# ---------------------------------------------------------------------- shared pieces


def figure_rows(impact: Impact) -> list[tuple[str, str, str]]:
    """(label, central value with unit, range with unit) for energy, carbon, water and cost."""
    rows = []
    for kind, attr, label in FIGURES:
        r = getattr(impact, attr)
        rows.append((label, *split_range(kind, r)))
    rows.append(("Cost", fmt_cost(impact.cost_usd) if impact.cost_usd is not None else DASH, ""))
    return rows


def split_range(kind: str, r: Any) -> tuple[str, str]:
    """``("0.312 Wh", "0.120–0.850 Wh")``: the value and its range in the value's unit."""
    from otm.units import scale_for

    factor, unit = scale_for(kind, r.value)
    return f"{sig(r.value / factor)} {unit}", f"{fmt_span(r.low, r.high, factor=factor)} {unit}"


def html_table(
    header: Sequence[str] | None, rows: Iterable[Sequence[str]], *, text_cols: int = 1
) -> str:
    """A small inline-styled table; every cell is escaped."""
    head = ""
    if header:
        head = (
            "<thead><tr>"
            + "".join(
                f"<th {_TH if i < text_cols else _TD}>{escape(h)}</th>"
                for i, h in enumerate(header)
            )
            + "</tr></thead>"
        )
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            if i == 0:
                cells.append(f'<th scope="row" {_TH}>{escape(str(c))}</th>')
            else:
                cells.append(f"<td {_TD_TEXT if i < text_cols else _TD}>{escape(str(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table {_TABLE}>{head}<tbody>{''.join(body)}</tbody></table>"


def html_block(title: str, subtitle: str, body: str, *, css_class: str) -> str:
    return (
        f'<div class="{css_class}" style="line-height:1.4">'
        f"<div><strong>{escape(title)}</strong> <span {_MUTED}>{escape(subtitle)}</span></div>"
        f"{body}</div>"
    )


def html_note(text: str) -> str:
    return f"<div {_MUTED}>{escape(text)}</div>"


def rich_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, show_header: bool = True
) -> Any:
    """A ``rich.table.Table`` (rich is imported only when something is shown with it)."""
    from rich import box
    from rich.table import Table

    table = Table(show_header=show_header, header_style="bold", box=box.SIMPLE_HEAD)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    return table


def rich_block(title: str, subtitle: str, *parts: Any, notes: Sequence[str] = ()) -> Any:
    """A bold title line, the renderables, then dimmed notes (they wrap to the console, not the table)."""
    from rich.console import Group
    from rich.text import Text

    head = Text(title, style="bold")
    if subtitle:
        head.append(f"  {subtitle}", style="dim")
    return Group(head, *parts, *(Text(n, style="dim") for n in notes))


def _range_dict(d: Any) -> str:
    """``"12.5 (3.70–100)"`` from an assumptions entry ``{"value", "low", "high"}`` (or a number)."""
    if isinstance(d, Mapping) and "value" in d:
        v = d.get("value")
        lo, hi = d.get("low", v), d.get("high", v)
        if lo == hi:
            return sig(v)
        return f"{sig(v)} ({fmt_span(lo, hi)})"
    if isinstance(d, (int, float)):
        return sig(d)
    return DASH if d is None else str(d)


# ---------------------------------------------------------------------- Impact


def assumption_rows(impact: Impact) -> list[tuple[str, str]]:
    """The few resolved assumptions worth a glance (all of them: ``impact.assumptions``)."""
    a = impact.assumptions or {}
    rows: list[tuple[str, str]] = []
    model = a.get("model")
    if isinstance(model, Mapping):
        size = model.get("active_params_b")
        what = str(model.get("id") or model.get("name") or DASH)
        if size is not None:
            what += f", {_range_dict(size)}B active parameters"
        if model.get("size_estimated") or model.get("size") == "estimated":
            what += " (size estimated)"
        rows.append(("model", what))
    dep = a.get("deployment")
    if isinstance(dep, Mapping) and dep.get("accelerator"):
        count = dep.get("count")
        rows.append(("hardware", f"{dep['accelerator']} × {_range_dict(count)}"))
    site = a.get("site")
    if isinstance(site, Mapping) and site.get("region"):
        grid = site.get("grid_gco2e_per_kwh")
        where = str(site.get("region_name") or site["region"])
        if grid is not None:
            where += f", grid {_range_dict(grid)} gCO2e/kWh"
        if site.get("pue") is not None:
            where += f", PUE {_range_dict(site['pue'])}"
        rows.append(("region", where))
    if a.get("method"):
        rows.append(("method", str(a["method"])))
    if a.get("effective_batch") is not None:
        rows.append(("effective batch", _range_dict(a["effective_batch"])))
    return rows


def breakdown_rows(impact: Impact) -> list[tuple[str, str, str]]:
    """(part, amount, share) of the energy, carbon and water breakdowns."""
    rows = []
    for kind, parts, total in (
        ("energy", impact.breakdown_wh, impact.energy_wh.value),
        ("carbon", impact.carbon_breakdown_g, impact.carbon_g.value),
        ("water", impact.water_breakdown_ml, impact.water_ml.value),
    ):
        for name, v in parts.items():
            rows.append(
                (f"{kind}: {name}", fmt(kind, v), fmt_percent(v / total) if total else DASH)
            )
    return rows


def impact_text(impact: Impact) -> str:
    """What ``print(impact)`` shows: one line per figure, value and range with units."""
    lines = [
        f"{label.lower():<7} {value} ({span})" if span else f"{label.lower():<7} {value}"
        for label, value, span in figure_rows(impact)
    ]
    for w in impact.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def impact_repr(impact: Impact) -> str:
    figures = ", ".join(
        f"{kind} {fmt_range(kind, getattr(impact, attr), short=True)}" for kind, attr, _ in FIGURES
    )
    return f"<otm.Impact {figures}>"


def impact_body_html(impact: Impact) -> str:
    """The figures table and a collapsed breakdown/assumptions section."""
    parts = [html_table(("", "estimate", "range"), figure_rows(impact))]
    details = [html_table(("", "amount", "share"), breakdown_rows(impact))]
    assumptions = assumption_rows(impact)
    if assumptions:
        details.append(html_table(None, assumptions, text_cols=2))
    warnings = impact.warnings
    if warnings:
        details.append(
            '<ul style="margin:4px 0">'
            + "".join(f"<li>{escape(w)}</li>" for w in warnings)
            + "</ul>"
        )
    label = "Breakdown and assumptions" + (
        f" ({len(warnings)} warnings)" if len(warnings) > 1 else " (1 warning)" if warnings else ""
    )
    parts.append(f"<details><summary>{escape(label)}</summary>{''.join(details)}</details>")
    return "".join(parts)


def impact_html(impact: Impact) -> str:
    return html_block("otm impact", ESTIMATE_NOTE, impact_body_html(impact), css_class="otm-impact")


def impact_parts_rich(impact: Impact) -> list[Any]:
    """The figures table, then the estimator's warnings."""
    from rich.text import Text

    table = rich_table(("", "estimate", "range"), figure_rows(impact))
    return [table, *(Text(f"warning: {w}", style="yellow") for w in impact.warnings)]


def impact_rich(impact: Impact) -> Any:
    return rich_block("otm impact", "", *impact_parts_rich(impact), notes=(ESTIMATE_NOTE,))


# ---------------------------------------------------------------------- Record


def record_title(record: Record) -> str:
    t = record.telemetry
    return f"{t.provider or 'unknown'}/{t.model or 'unknown'}"


def record_subtitle(record: Record) -> str:
    t = record.telemetry
    bits = ["streamed" if t.streamed else "not streamed", t.status]
    if record.region:
        bits.append(f"region {record.region}")
    if record.tags:
        bits.append(", ".join(f"{k}={v}" for k, v in record.tags.items()))
    return " · ".join(bits)


def record_facts(record: Record) -> str:
    """Tokens and timings as the client saw them."""
    t = record.telemetry
    tokens = f"{fmt_int(t.input_tokens)} input"
    if t.cached_input_tokens:
        tokens += f" ({fmt_int(t.cached_input_tokens)} cached)"
    tokens += f", {fmt_int(t.output_tokens)} output"
    if t.reasoning_tokens:
        tokens += f" ({fmt_int(t.reasoning_tokens)} reasoning)"
    tokens += " tokens" + (" (estimated from text)" if t.tokens_estimated else "")
    bits = [tokens]
    if t.ttft_s is not None:
        bits.append(f"time to first token {fmt_seconds(t.ttft_s)}")
    if t.duration_s is not None:
        bits.append(f"total {fmt_seconds(t.duration_s)}")
    if t.output_tps is not None:
        bits.append(f"{sig(t.output_tps)} tokens/s")
    return "; ".join(bits)


def record_text(record: Record) -> str:
    """What ``print(response.otm)`` shows: who, what the client saw, and the figures."""
    head = f"otm: {record_title(record)} ({record_subtitle(record)})"
    impact = record.impact
    body = (
        "no estimate (the estimator failed; see the 'otm' log)"
        if impact is None
        else impact_text(impact)
    )
    indented = "\n".join("  " + line for line in body.splitlines())
    return f"{head}\n  {record_facts(record)}\n{indented}\n  {ESTIMATE_NOTE}"


def record_repr(record: Record) -> str:
    t = record.telemetry
    impact = record.impact
    fig = ""
    if impact is not None:
        fig = (
            f" energy {fmt_range('energy', impact.energy_wh, short=True)}"
            f" carbon {fmt('carbon', impact.carbon_g.value)}"
        )
    return (
        f"<otm.Record {record_title(record)} {t.status} "
        f"in={fmt_int(t.input_tokens)} out={fmt_int(t.output_tokens)}{fig}>"
    )


def record_html(record: Record) -> str:
    impact = record.impact
    body = html_note(record_facts(record))
    if impact is None:
        body += html_note("No estimate: the estimator failed (see the 'otm' log).")
    else:
        body = impact_body_html(impact) + body
    return html_block(record_title(record), record_subtitle(record), body, css_class="otm-record")


def record_rich(record: Record) -> Any:
    impact = record.impact
    facts = record_facts(record)
    if impact is None:
        notes: tuple[str, ...] = (facts, "no estimate: the estimator failed (see the 'otm' log)")
        return rich_block(record_title(record), record_subtitle(record), notes=notes)
    return rich_block(
        record_title(record),
        record_subtitle(record),
        *impact_parts_rich(impact),
        notes=(facts, ESTIMATE_NOTE),
    )

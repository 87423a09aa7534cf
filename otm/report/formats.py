"""Reports as files: CSV (one row per request), Markdown, LaTeX, JSON, plain text.

:func:`write_reports` makes all requested files in one streaming pass: each
row goes to the CSV as it is read and into the aggregator; the summary-level
formats (Markdown, LaTeX, JSON, HTML) are rendered from the aggregate at the
end.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from otm.impact import Range
from otm.report.rows import Row
from otm.report.sink import open_private
from otm.report.summary import Aggregator, Summary, Totals
from otm.report.units import (
    BASE_UNIT,
    fmt,
    fmt_cost,
    fmt_int,
    fmt_percent,
    fmt_range,
    fmt_seconds,
    fmt_span,
    plain,
    plural,
    sig,
)

PathLike = str | os.PathLike[str]

CSV_COLUMNS = (
    "request_id",
    "time",
    "model",
    "provider",
    "status",
    "environment",
    "tags",
    "runs",
    "cost_usd",
    "carbon_gco2e",
    "carbon_gco2e_low",
    "carbon_gco2e_high",
    "energy_wh",
    "energy_wh_low",
    "energy_wh_high",
    "water_ml",
    "water_ml_low",
    "water_ml_high",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "latency_s",
    "ttft_s",
    "region",
    "prompt",
)
"""Columns of the per-request CSV. ``prompt`` is filled only for calls whose
prompt was captured (an opt-in); ``environment`` is the ``environment`` (or
``env``) tag, ``tags`` the others as ``key=value`` pairs joined by ``; ``."""

ENV_TAGS = ("environment", "env")


def iso_time(t: float | None) -> str:
    if t is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> str:
    """A text cell that a spreadsheet will not run as a formula.

    Model names come from servers and tags from anywhere: a cell starting with
    ``= + - @``, a tab or a carriage return is a formula (or becomes one) in
    Excel, LibreOffice and Google Sheets. Such a cell gets a leading ``'``,
    which spreadsheets show as text and hide. A carriage return anywhere becomes
    a line feed: the writer quotes fields holding those, not ones holding a
    bare CR, which readers would take for the end of the row.
    """
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _f(x: float | None) -> str:
    # Six significant figures: far finer than any estimate's range, and readable
    # (plain decimals: 0.0000198, not 1.98e-05).
    return plain(x, 6)


# ---------------------------------------------------------------------- CSV


class CsvWriter:
    """Writes one row per request as rows stream past."""

    def __init__(self, stream: IO[str], *, include_prompts: bool = True) -> None:
        self._w = csv.writer(stream, lineterminator="\n")
        self._w.writerow(CSV_COLUMNS)
        self.include_prompts = include_prompts

    def write(self, row: Row) -> None:
        env = next((row.tags[k] for k in ENV_TAGS if k in row.tags), "")
        others = "; ".join(f"{k}={v}" for k, v in sorted(row.tags.items()) if k not in ENV_TAGS)
        e, c, w = row.energy, row.carbon, row.water
        self._w.writerow(
            (
                csv_text(row.request_id),
                iso_time(row.time),
                csv_text(row.model),
                csv_text(row.provider),
                csv_text(row.status),
                csv_text(env),
                csv_text(others),
                csv_text("; ".join(row.runs)),
                _f(row.cost_usd),
                *(_f(x) for x in (c or (None, None, None))),
                *(_f(x) for x in (e or (None, None, None))),
                *(_f(x) for x in (w or (None, None, None))),
                row.input_tokens,
                row.cached_input_tokens,
                row.output_tokens,
                row.reasoning_tokens,
                _f(row.latency_s),
                _f(row.ttft_s),
                csv_text(row.region),
                csv_text(row.prompt) if self.include_prompts else "",
            )
        )


# ---------------------------------------------------------------------- Markdown


_MD_SPECIALS = frozenset("\\`*_[]<>|#!&~")


def _md(text: Any) -> str:
    """Text that Markdown shows as is: no link, image, HTML, emphasis, table cell or heading.

    Names in reports come from servers and users; each Markdown punctuation
    character that could start markup is backslash-escaped, and line breaks
    (which could start a heading or end a table row) become spaces.
    """
    out = " ".join(str(text).splitlines())
    return "".join("\\" + ch if ch in _MD_SPECIALS else ch for ch in out)


def _cell(r: Range | None, n: int = 3) -> str:
    if r is None:
        return "–"
    return f"{sig(r.value, n)} ({fmt_span(r.low, r.high, n)})"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]], align: str = "") -> list[str]:
    header = list(header)
    spec = [("---:" if (align[i : i + 1] or "r") == "r" else ":---") for i in range(len(header))]
    out = ["| " + " | ".join(_md(h) for h in header) + " |", "| " + " | ".join(spec) + " |"]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return out


def _span(s: Summary) -> str:
    if s.started is None:
        return ""
    end = iso_time(s.ended)[:19].replace("T", " ") if s.ended is not None else "?"
    return f"{iso_time(s.started)[:19].replace('T', ' ')} to {end} UTC"


def render_markdown(s: Summary) -> str:
    t = s.totals
    title = f"otm report: {s.name}" if s.name else "otm report"
    lines = [f"# {_md(title)}", ""]
    meta = [plural(t.requests, "request")]
    if _span(s):
        meta.append(_span(s))
    meta.append(f"otm v{s.otm_version}")
    lines += [" · ".join(meta), ""]
    if s.tags:
        lines += ["Tags: " + ", ".join(_md(f"{k}={v}") for k, v in s.tags.items()), ""]

    lines += ["## Totals", ""]
    lines += _table(
        ["", "Estimate", "Low", "High"],
        [
            ["Energy (Wh)", sig(t.energy_wh.value), sig(t.energy_wh.low), sig(t.energy_wh.high)],
            ["Carbon (gCO2e)", sig(t.carbon_g.value), sig(t.carbon_g.low), sig(t.carbon_g.high)],
            ["Water (mL)", sig(t.water_ml.value), sig(t.water_ml.low), sig(t.water_ml.high)],
            ["Cost (USD)", fmt_cost(t.cost_usd), "", ""],
        ],
        align="lrrr",
    )
    lines += [
        "",
        (
            f"Tokens: {fmt_int(t.input_tokens)} input ({fmt_int(t.cached_input_tokens)} cached), "
            f"{fmt_int(t.output_tokens)} output ({fmt_int(t.reasoning_tokens)} reasoning)."
        ),
        "",
    ]
    if t.estimated < t.requests:
        lines += [
            f"{plural(t.requests - t.estimated, 'request')} could not be estimated and "
            "are not in the figures.",
            "",
        ]

    lines += ["## For your paper", "", "> " + _md(s.sentence), ""]

    lines += ["## By model", ""]
    lines += _table(
        [
            "Model",
            "Provider",
            "Requests",
            "Output tokens",
            "Energy (Wh)",
            "Wh / request",
            "Wh / 1k output tokens",
            "Carbon (gCO2e)",
            "Water (mL)",
            "p50 latency",
        ],
        [m.table_row(_cell) for m in s.by_model],
        align="ll",
    )
    lines += [""]
    for title, split in (
        ("By provider", s.by_provider),
        ("By status", s.by_status),
        ("By tag", s.by_tag),
        ("By tracked run", s.by_run),
    ):
        if not split or (title == "By provider" and len(split) < 2):
            continue
        lines += [f"## {title}", ""] + _split_table(split) + [""]

    lines += ["## Latency", ""]
    lines += _table(
        ["", "p50", "p90", "p99", "mean", "n"],
        [
            [
                name,
                *(fmt_seconds(p.get(k)) for k in ("p50", "p90", "p99", "mean")),
                fmt_int(p.get("n")),
            ]
            for name, p in (
                ("Latency (start to last token)", s.latency_s),
                ("Time to first token", s.ttft_s),
            )
        ],
        align="l",
    )
    lines += ["", "## SCI for AI", ""]
    sci = s.sci
    lines += [
        f"- gCO2e per request: {_cell(sci['gco2e_per_request'])}",
        f"- gCO2e per 1 000 tokens (input + output): {_cell(sci['gco2e_per_1k_tokens'])}",
        f"- gCO2e per 1 000 output tokens: {_cell(sci['gco2e_per_1k_output_tokens'])}",
        f"- Wh per 1 000 tokens: {_cell(sci['wh_per_1k_tokens'])}",
        f"- Boundary: {sci['boundary']}.",
        "",
    ]
    lines += ["## Where it goes", ""]
    for label, parts, unit in (
        ("Energy", s.breakdown_wh, "Wh"),
        ("Carbon", s.carbon_breakdown_g, "gCO2e"),
        ("Water", s.water_breakdown_ml, "mL"),
    ):
        if parts:
            total = sum(parts.values()) or 1.0
            lines.append(
                f"- {label}: "
                + ", ".join(f"{k} {sig(v)} {unit} ({fmt_percent(v / total)})" for k, v in parts.items())
            )
    lines += [
        "",
        "## How the ranges combine",
        "",
        (
            "Central values are summed. Requests sharing provider, model, deployment and region share "
            "their unknowns, so within such a group lows and highs are summed (fully correlated); the "
            "groups' half-widths then combine in quadrature (independent)."
        ),
        "",
    ]
    if s.warnings:
        lines += ["## Estimator warnings", ""]
        lines += [f"- {_md(w)} ({plural(n, 'request')})" for w, n in s.warnings]
        lines += [""]
    if s.skipped_lines:
        lines += [f"{plural(s.skipped_lines, 'unreadable log line')} skipped.", ""]
    return "\n".join(lines)


def _split_table(split: Mapping[str, Totals]) -> list[str]:
    return _table(
        [
            "",
            "Requests",
            "Input tokens",
            "Output tokens",
            "Energy (Wh)",
            "Carbon (gCO2e)",
            "Water (mL)",
            "Cost (USD)",
        ],
        [
            [
                k,
                fmt_int(v.requests),
                fmt_int(v.input_tokens),
                fmt_int(v.output_tokens),
                _cell(v.energy_wh),
                _cell(v.carbon_g),
                _cell(v.water_ml),
                "–" if v.cost_usd is None else sig(v.cost_usd),
            ]
            for k, v in split.items()
        ],
        align="l",
    )


# ---------------------------------------------------------------------- LaTeX

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def latex_escape(text: Any) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _tex_num(x: float | None) -> str:
    return "--" if x is None else sig(x).replace(",", "{,}")


def _tex_int(x: int) -> str:
    return f"{x:,}".replace(",", "{,}")


def _tex_range(r: Range | None) -> str:
    if r is None:
        return "--"
    return f"{_tex_num(r.value)} [{_tex_num(r.low)}, {_tex_num(r.high)}]"


def render_latex(s: Summary) -> str:
    """A booktabs table of the per-model figures with a total row (needs ``\\usepackage{booktabs}``)."""
    name = latex_escape(s.name) if s.name else "this experiment"
    label = (
        "".join(ch if ch.isalnum() else "-" for ch in (s.name or "experiment")).strip("-").lower()
    )
    rows = []
    for m in s.by_model:
        t = m.totals
        rows.append(
            f"{latex_escape(m.model)} & {_tex_int(t.requests)} & {_tex_int(t.input_tokens)} & "
            f"{_tex_int(t.output_tokens)} & {_tex_range(t.energy_wh)} & {_tex_range(t.carbon_g)} & "
            f"{_tex_range(t.water_ml)} \\\\"
        )
    t = s.totals
    lines = [
        f"% Generated by otm v{s.otm_version}; requires \\usepackage{{booktabs}}",
        r"\begin{table}[ht]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{lrrrrrr}",
        r"\toprule",
        r"Model & Requests & Input tokens & Output tokens & Energy (Wh) & Carbon (gCO$_2$e) & Water (mL) \\",
        r"\midrule",
        *rows,
        r"\midrule",
        (
            f"Total & {_tex_int(t.requests)} & {_tex_int(t.input_tokens)} & {_tex_int(t.output_tokens)} & "
            f"{_tex_range(t.energy_wh)} & {_tex_range(t.carbon_g)} & {_tex_range(t.water_ml)} \\\\"
        ),
        r"\bottomrule",
        r"\end{tabular}",
        (
            f"\\caption{{Estimated energy, carbon and water of the LLM API calls in {name} "
            "(central estimate [low, high]), from client-side timings and token counts with otm "
            f"v{latex_escape(s.otm_version)}. Boundary: {latex_escape(s.sci['boundary'])}.}}"
        ),
        f"\\label{{tab:otm-{label}}}",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------- JSON and text


def render_json(s: Summary) -> str:
    return json.dumps(s.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def render_text(s: Summary) -> str:
    """A plain-text summary for terminals without ``rich``."""
    t = s.totals
    out = [
        f"otm report{': ' + s.name if s.name else ''}  ({plural(t.requests, 'request')}"
        + (f", {_span(s)}" if _span(s) else "")
        + ")",
        "",
        f"  Energy   {fmt_range('energy', t.energy_wh)}",
        f"  Carbon   {fmt_range('carbon', t.carbon_g)}",
        f"  Water    {fmt_range('water', t.water_ml)}",
        f"  Cost     {fmt_cost(t.cost_usd)}",
        f"  Tokens   {fmt_int(t.input_tokens)} in / {fmt_int(t.output_tokens)} out",
        (
            f"  Latency  p50 {fmt_seconds(s.latency_s.get('p50'))}, p90 {fmt_seconds(s.latency_s.get('p90'))}, "
            f"p99 {fmt_seconds(s.latency_s.get('p99'))}"
        ),
        "",
    ]
    if s.by_model:
        width = max(len(m.model) for m in s.by_model)
        out.append(
            f"  {'model':<{width}}  {'requests':>9}  {'energy':>12}  {'Wh/request':>11}  {'carbon':>13}"
        )
        for m in s.by_model:
            out.append(
                f"  {m.model:<{width}}  {fmt_int(m.totals.requests):>9}  {fmt('energy', m.totals.energy_wh.value):>12}  "
                f"{sig(m.energy_per_request_wh.value) if m.energy_per_request_wh else '–':>11}  "
                f"{fmt('carbon', m.totals.carbon_g.value):>13}"
            )
        out.append("")
    out.append(s.sentence)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- all at once


def _rows(source: Any, region: str | None) -> tuple[Iterator[Row], Any]:
    from otm.report.reader import LogReader

    if isinstance(source, (str, os.PathLike)):
        source = LogReader(source, region=region)
    if isinstance(source, LogReader):
        return source.rows(), source

    def convert() -> Iterator[Row]:
        for item in source:
            yield item if isinstance(item, Row) else Row.from_record(item)

    return convert(), None


STDOUT = "-"
"""A report path that means standard output (``otm report --md -``)."""


def _write_private(path: PathLike, text: str) -> None:
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with os.fdopen(open_private(Path(path), append=False), "w", encoding="utf-8") as f:
        f.write(text)


def write_reports(
    source: Any,
    *,
    html: PathLike | None = None,
    csv: PathLike | None = None,
    md: PathLike | None = None,
    latex: PathLike | None = None,
    json: PathLike | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    region: str | None = None,
    include_prompts: bool = True,
) -> Summary:
    """Write the requested reports from a log path, a ``LogReader`` or records, in one pass.

    Files are created owner-only (0600) like the log, since the CSV can hold
    captured prompts; a path of ``"-"`` writes that report to standard output.
    Returns the summary.
    """
    rows, reader = _rows(source, region)
    agg = Aggregator(name=name, tags=tags)
    csv_file: IO[str] | None = None
    try:
        if csv is not None:
            csv_file = (
                sys.stdout
                if str(csv) == STDOUT
                else os.fdopen(
                    open_private(Path(csv), append=False), "w", encoding="utf-8", newline=""
                )
            )
            writer = CsvWriter(csv_file, include_prompts=include_prompts)
            for row in rows:
                agg.add(row)
                writer.write(row)
        else:
            agg.add_all(rows)
    finally:
        if csv_file is not None and csv_file is not sys.stdout:
            csv_file.close()
        elif csv_file is not None:
            csv_file.flush()
    if reader is not None:
        agg.skipped_lines = reader.skipped
        if agg.name is None:
            agg.name = reader.experiment
    summary = agg.summary()
    if md is not None:
        _write_private(md, render_markdown(summary))
    if latex is not None:
        _write_private(latex, render_latex(summary))
    if json is not None:
        _write_private(json, render_json(summary))
    if html is not None:
        from otm.report.html import render_html

        _write_private(html, render_html(summary))
    return summary


__all__ = [
    "BASE_UNIT",
    "CSV_COLUMNS",
    "CsvWriter",
    "csv_text",
    "latex_escape",
    "render_json",
    "render_latex",
    "render_markdown",
    "render_text",
    "write_reports",
]

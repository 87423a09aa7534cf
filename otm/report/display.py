"""How a Summary, an Experiment and a Run show themselves in notebooks and rich terminals.

The same pieces as :mod:`otm.display` (inline-styled HTML tables, rich
tables), filled from a :class:`~otm.report.summary.Summary`: the headline
figures with ranges, the per-model table and the sentence for a paper.
``otm report`` prints the same rich view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otm.display import (
    ESTIMATE_NOTE,
    html_block,
    html_note,
    html_table,
    rich_block,
    rich_table,
    split_range,
)
from otm.units import (
    DASH,
    fmt_cost,
    fmt_int,
    fmt_seconds,
    plural,
)

if TYPE_CHECKING:
    from otm.report.experiment import Experiment
    from otm.report.summary import ModelStats, Summary
    from otm.report.track import Run

MODEL_ROWS = 15
"""Models listed in a display (the reports list them all)."""

_MODEL_HEADER = ("model", "requests", "energy", "energy range", "per request", "carbon", "water")


def headline_rows(s: Summary) -> list[tuple[str, str, str]]:
    """(label, value, range) for the totals."""
    t = s.totals
    statuses = ", ".join(f"{fmt_int(n)} {k}" for k, n in t.by_status.items())
    rows = [("Requests", fmt_int(t.requests), statuses)]
    for kind, r, label in (
        ("energy", t.energy_wh, "Energy"),
        ("carbon", t.carbon_g, "Carbon"),
        ("water", t.water_ml, "Water"),
    ):
        rows.append((label, *split_range(kind, r)))
    rows.append(
        ("Cost", fmt_cost(t.cost_usd), "known prices only" if t.cost_usd is not None else "")
    )
    rows.append(
        (
            "Tokens",
            fmt_int(t.tokens),
            f"{fmt_int(t.input_tokens)} in / {fmt_int(t.output_tokens)} out",
        )
    )
    p = s.latency_s
    if p.get("p50") is not None:
        rows.append(
            (
                "Latency",
                f"p50 {fmt_seconds(p.get('p50'))}",
                f"p90 {fmt_seconds(p.get('p90'))}, p99 {fmt_seconds(p.get('p99'))}",
            )
        )
    return rows


def _model_row(m: ModelStats) -> tuple[str, ...]:
    t = m.totals
    value, span = split_range("energy", t.energy_wh)
    per = m.energy_per_request_wh
    return (
        m.model,
        fmt_int(t.requests),
        value,
        span,
        DASH if per is None else split_range("energy", per)[0],
        split_range("carbon", t.carbon_g)[0],
        split_range("water", t.water_ml)[0],
    )


def model_rows(s: Summary) -> list[tuple[str, ...]]:
    return [_model_row(m) for m in s.by_model[:MODEL_ROWS]]


def _more_models(s: Summary) -> list[str]:
    extra = len(s.by_model) - MODEL_ROWS
    return [f"… and {plural(extra, 'more model')}"] if extra > 0 else []


def summary_subtitle(s: Summary) -> str:
    bits = [plural(s.requests, "request"), plural(len(s.by_model), "model")]
    if s.duration_s is not None:
        bits.append(f"over {fmt_seconds(s.duration_s)}")
    return " · ".join(bits)


def summary_title(s: Summary) -> str:
    return f"otm summary: {s.name}" if s.name else "otm summary"


def summary_body_html(s: Summary) -> str:
    if s.requests == 0:
        return html_note("No LLM API calls recorded.")
    parts = [html_table(("", "estimate", "range"), headline_rows(s))]
    if s.by_model:
        parts.append(html_table(_MODEL_HEADER, model_rows(s)))
        parts += [html_note(n) for n in _more_models(s)]
    parts.append(f'<p style="font-style:italic;max-width:80ch">{_h(s.sentence)}</p>')
    parts.append(html_note(ESTIMATE_NOTE))
    return "".join(parts)


def _h(text: str) -> str:
    from html import escape

    return escape(text)


def summary_html(s: Summary) -> str:
    return html_block(
        summary_title(s), summary_subtitle(s), summary_body_html(s), css_class="otm-summary"
    )


def summary_parts_rich(s: Summary) -> list[Any]:
    from rich.text import Text

    if s.requests == 0:
        return [Text("No LLM API calls recorded.")]
    parts: list[Any] = [rich_table(("", "estimate", "range"), headline_rows(s), show_header=False)]
    if s.by_model:
        parts.append(rich_table(_MODEL_HEADER, model_rows(s)))
        parts += [Text(n, style="dim") for n in _more_models(s)]
    parts.append(Text(s.sentence, style="italic"))
    return parts


def summary_rich(s: Summary) -> Any:
    return rich_block(
        summary_title(s), summary_subtitle(s), *summary_parts_rich(s), notes=(ESTIMATE_NOTE,)
    )


def summary_repr(s: Summary) -> str:
    name = f" {s.name!r}" if s.name else ""
    if s.requests == 0:
        return f"<otm.Summary{name} 0 requests>"
    from otm.units import fmt, fmt_range

    t = s.totals
    return (
        f"<otm.Summary{name} {plural(t.requests, 'request')}, "
        f"energy {fmt_range('energy', t.energy_wh, short=True)}, "
        f"carbon {fmt('carbon', t.carbon_g.value)}, water {fmt('water', t.water_ml.value)}>"
    )


# ---------------------------------------------------------------------- collections of calls


def _experiment_subtitle(exp: Experiment) -> str:
    if exp.started is None:
        state = "not started"
    elif exp.ended is None:
        state = "running"
    else:
        state = f"finished in {fmt_seconds(exp.duration_s)}"
    bits = [plural(exp.requests, "call"), state]
    if exp.path is not None:
        bits.append(f"in {exp.path}")
    return " · ".join(bits)


def experiment_html(exp: Experiment) -> str:
    s = exp.summary()
    return html_block(
        f"otm experiment: {exp.name}",
        _experiment_subtitle(exp),
        summary_body_html(s),
        css_class="otm-experiment",
    )


def experiment_rich(exp: Experiment) -> Any:
    s = exp.summary()
    return rich_block(
        f"otm experiment: {exp.name}",
        _experiment_subtitle(exp),
        *summary_parts_rich(s),
        notes=(ESTIMATE_NOTE,),
    )


def _run_subtitle(run: Run) -> str:
    state = f"took {fmt_seconds(run.duration_s)}" if run.finished else "running"
    bits = [plural(len(run.records), "call"), state]
    if run.error:
        bits.append(f"raised {run.error}")
    return " · ".join(bits)


def run_html(run: Run) -> str:
    return html_block(
        f"otm run: {run.name}",
        _run_subtitle(run),
        summary_body_html(run.summary()),
        css_class="otm-run",
    )


def run_rich(run: Run) -> Any:
    return rich_block(
        f"otm run: {run.name}",
        _run_subtitle(run),
        *summary_parts_rich(run.summary()),
        notes=(ESTIMATE_NOTE,),
    )


__all__ = [
    "experiment_html",
    "experiment_rich",
    "headline_rows",
    "model_rows",
    "run_html",
    "run_rich",
    "summary_html",
    "summary_repr",
    "summary_rich",
]

"""One number formatter for every figure otm shows: no exponents, ranges in parentheses, plurals.

Property tests over the whole float range (hypothesis) and over reports
rendered from rows of any magnitude; a figure never prints as ``1.98e-05``.
"""

from __future__ import annotations

import csv
import io
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otm.impact import Impact, Range
from otm.report.formats import CsvWriter, render_latex, render_markdown, render_text
from otm.report.html import render_html
from otm.report.rows import Row
from otm.report.summary import Aggregator, describe_totals
from otm.units import (
    fmt,
    fmt_cost,
    fmt_int,
    fmt_range,
    fmt_seconds,
    fmt_span,
    plain,
    plural,
    scale_for,
    sig,
)

EXPONENT = re.compile(r"\d\.?[eE][+-]?\d")
"""A number in scientific notation: ``1.98e-05``, ``1e+02``, ``2E5``."""
KINDS = ("energy", "carbon", "water", "cost")

any_float = st.floats(allow_nan=True, allow_infinity=True)
finite = st.floats(allow_nan=False, allow_infinity=False)
# the magnitudes figures take in practice, and far beyond
figure = st.floats(min_value=1e-30, max_value=1e30, allow_nan=False, allow_infinity=False)
digits = st.integers(min_value=1, max_value=6)


def _no_exponent(text: str) -> None:
    found = EXPONENT.search(text)
    assert found is None, text[max(found.start() - 80, 0) : found.end() + 80]


@given(any_float, digits)
def test_sig_never_prints_an_exponent(x: float, n: int) -> None:
    _no_exponent(sig(x, n))
    _no_exponent(sig(x, n, trim=True))
    _no_exponent(plain(x, n))


@given(figure, digits)
def test_sig_keeps_n_significant_figures(x: float, n: int) -> None:
    shown = sig(x, n).replace(",", "")
    if shown == "≈0":  # more decimals than otm prints: not a figure otm makes
        from otm.units import _TINY_DIGITS

        assert abs(x) < 10.0 ** (n - _TINY_DIGITS), (x, n)
        return
    assert math.isclose(float(shown), x, rel_tol=10.0 ** (1 - n))
    p6 = plain(x, 6)
    if p6 != "≈0":  # (six figures of a tiny value can pass the decimals otm prints)
        assert math.isclose(float(p6), x, rel_tol=1e-5)


@given(st.sampled_from(KINDS), any_float, digits)
def test_fmt_never_prints_an_exponent(kind: str, x: float, n: int) -> None:
    _no_exponent(fmt(kind, x, n))
    _no_exponent(fmt_cost(x, n))
    _no_exponent(fmt_seconds(x))
    _no_exponent(fmt_int(x))


@given(st.sampled_from(KINDS[:3]), st.lists(finite, min_size=3, max_size=3), digits)
def test_ranges_print_in_parentheses_without_exponents(kind: str, xs: list[float], n: int) -> None:
    lo, v, hi = sorted(xs)
    r = Range(value=v, low=lo, high=hi)
    for text in (fmt_range(kind, r, n), fmt_range(kind, r, n, short=True), str(r), repr(r)):
        _no_exponent(text)
    assert str(r) == f"{sig(v)} ({fmt_span(lo, hi)})"
    factor, unit = scale_for(kind, v, n)
    assert fmt_range(kind, r, n).endswith(f"({fmt_span(lo, hi, n, factor)} {unit})")


def test_the_examples_of_the_issue() -> None:
    assert str(Range(value=12.0, low=3.7, high=100.0)) == "12.0 (3.70–100)"
    assert fmt_span(3.7, 100.0, trim=True) == "3.7–100"
    assert fmt_cost(1.98e-05) == "$0.0000198"
    assert fmt_cost(1234.5) == "$1,234.50"
    assert fmt("energy", 0.0009999) == "1.00 mWh"  # the unit follows the rounded value
    assert fmt("energy", 1.98e-05) == "19.8 µWh"
    assert plain(1.98e-05) == "0.0000198"
    assert sig(99.95) == "100" and sig(1234.5) == "1,230" and sig(0.25, 4, trim=True) == "0.25"
    assert plural(1, "request") == "1 request"
    assert plural(2, "request") == "2 requests"
    assert plural(0, "request") == "0 requests"
    assert plural(1000, "request") == "1,000 requests"


# ---------------------------------------------------------------------- reports


def _row(i: int, e: float, cost: float | None, model: str) -> Row:
    row = Row()
    row.seq = i
    row.request_id = f"req-{i}"
    row.time = 1_700_000_000.0 + i
    row.end_time = row.time + 1.0
    row.model = model
    row.provider = "openai"
    row.energy = (e, e * 0.5, e * 120.0)  # a range spanning two decades
    row.carbon = (e * 0.4, e * 0.1, e * 50.0)
    row.water = (e * 2.0, e, e * 300.0)
    row.breakdown_wh = {"accelerator": e * 0.6, "host": e * 0.3, "idle": e * 0.05, "facility": e * 0.05}
    row.carbon_breakdown_g = {"operational": e * 0.36, "embodied": e * 0.04}
    row.water_breakdown_ml = {"onsite": e * 0.6, "offsite": e * 1.4}
    row.cost_usd = cost
    row.input_tokens = 10 + i
    row.output_tokens = 1 + i
    row.latency_s = 0.0004 * (i + 1)
    row.ttft_s = 0.0002 * (i + 1)
    return row


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=1e-12, max_value=1e9),
            st.one_of(st.none(), st.floats(min_value=1e-12, max_value=1e6)),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_no_report_prints_an_exponent(figures: list[tuple[float, float | None]]) -> None:
    rows = [_row(i, e, c, f"model-{i % 3}") for i, (e, c) in enumerate(figures)]
    summary = Aggregator(name="magnitudes").add_all(rows).summary()
    out = io.StringIO()
    writer = CsvWriter(out)
    for row in rows:
        writer.write(row)
    for text in (
        render_text(summary),
        render_markdown(summary),
        render_latex(summary),
        describe_totals(summary.totals),
        out.getvalue(),
    ):
        _no_exponent(text)
    # the HTML: text, tick labels, tooltips and SVG coordinates alike
    _no_exponent(re.sub(r"#[0-9A-Fa-f]{3,8}\b", "#colour", render_html(summary)))


def test_csv_cells_are_plain_decimals_that_parse_back() -> None:
    out = io.StringIO()
    CsvWriter(out).write(_row(0, 1.98e-05, 1.98e-05, "m"))
    line = list(csv.DictReader(io.StringIO(out.getvalue())))[0]
    assert line["energy_wh"] == "0.0000198"
    assert line["cost_usd"] == "0.0000198"
    assert float(line["energy_wh_high"]) == pytest.approx(1.98e-05 * 120)


def test_plurals_in_reports() -> None:
    one = Aggregator(name="one").add_all([_row(0, 1.0, None, "m")]).summary()
    two = Aggregator(name="two").add_all([_row(0, 1.0, None, "m"), _row(1, 1.0, None, "m")]).summary()
    assert "1 request ·" in render_markdown(one) and "1 requests" not in render_markdown(one)
    assert "(1 request" in render_text(one)
    assert "1 request ·" in render_html(one)
    assert describe_totals(one.totals).startswith("1 request,")
    assert "The 1 LLM API call in" in one.sentence
    assert "2 requests ·" in render_markdown(two)
    assert "The 2 LLM API calls in" in two.sentence


def test_impact_and_range_reprs_are_short_and_plain() -> None:
    r = Range(value=123456.0, low=0.0000123, high=1e7)
    assert repr(r) == "Range(123,500, low=0.0000123, high=10,000,000)"
    assert f"{r:.1f}" == "123456.0 (0.0–10000000.0)"
    imp = Impact(
        energy_wh=Range(value=1.98e-05, low=1e-05, high=3e-05),
        carbon_g=Range.point(0.0),
        water_ml=Range.point(0.0),
        breakdown_wh={},
        carbon_breakdown_g={},
        water_breakdown_ml={},
    )
    _no_exponent(repr(imp))
    _no_exponent(str(imp))

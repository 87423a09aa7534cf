"""Notebook and terminal display of the real objects of a demo-like run.

Real openai and anthropic SDK calls go through otm to the embedded server
inside an experiment and a tracked function; the records, impacts, summary,
run and experiment they produce must print their figures with units and
ranges (``str``), stay short in ``repr``, render as well-formed escaped HTML
in Jupyter (``_repr_html_``) and as rich tables (``__rich__``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import otm
from otm.testing.server import scenario_headers as H
from otm.units import fmt_cost, fmt_range, scale_for, sig

openai = pytest.importorskip("openai")

MESSAGES: Any = [{"role": "user", "content": "Why does batch size matter?"}]
ODD_TAG = "<b>bold</b> & co"
EXPONENT = re.compile(r"\d\.?[eE][+-]?\d")
UNITS = re.compile(r"\b(?:[kmµ]?Wh|MWh)\b")


class Demo:
    records: list[Any]
    plain: Any
    stream: Any
    run: Any
    exp: Any


@pytest.fixture(scope="module")
def demo(fake_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    out = Demo()
    otm.instrument()
    try:
        client = otm.wrap(
            openai.OpenAI(base_url=fake_server.openai_base_url, api_key="k", max_retries=0),
            provider="openai",
            tags={"team": ODD_TAG},
        )
        with otm.experiment("display demo", output_dir=tmp_path_factory.mktemp("runs")) as exp:
            out.plain = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                extra_headers=H(ttfb_s=0.05, input_tokens=24, output_tokens=60),
            )
            stream = client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=H(ttfb_s=0.05, gap_s=0.004, input_tokens=30, output_tokens=40),
            )
            for _ in stream:
                pass
            out.stream = stream

            @otm.track(name="summarise")
            def summarise() -> None:
                for i in range(2):
                    client.chat.completions.create(
                        model="gpt-4.1-mini",
                        messages=MESSAGES,
                        extra_headers=H(ttfb_s=0.02, input_tokens=400 + i, output_tokens=40),
                    )

            summarise()
            out.run = otm.last_run()
            try:
                import anthropic
            except ImportError:  # pragma: no cover - part of the all extra
                pass
            else:
                anthropic.Anthropic(
                    base_url=fake_server.anthropic_base_url, api_key="k", max_retries=0
                ).messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=64,
                    messages=MESSAGES,
                    extra_headers=H(ttfb_s=0.03, input_tokens=28, output_tokens=50),
                )
        out.exp = exp
        out.records = exp.records
        yield out
    finally:
        otm.uninstrument()


class _Html(HTMLParser):
    """Checks that every tag closes in order and collects the text."""

    VOID = {"br", "hr", "img", "meta", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Html:
    p = _Html()
    p.feed(html)
    p.close()
    assert p.stack == [], p.stack
    assert "script" not in p.tags and "style" not in p.tags  # inline styles only
    return p


def _rich(obj: Any) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(obj)
    return console.export_text()


def _figures_shown(text: str) -> None:
    assert UNITS.search(text), text
    assert "gCO2e" in text and ("mL" in text or "µL" in text)
    assert "–" in text  # a range
    assert EXPONENT.search(text) is None, text


# ---------------------------------------------------------------------- Record and Impact


def test_print_of_a_record_shows_figures_with_units_and_ranges(demo: Demo) -> None:
    rec = demo.plain.otm
    text = str(rec)
    _figures_shown(text)
    impact = rec.impact
    # the energy line is the impact's energy, in the unit chosen for it
    assert fmt_range("energy", impact.energy_wh) in text
    assert fmt_cost(impact.cost_usd) in text and "$0.0" in text
    assert "openai/gpt-4o-mini" in text and "24 input, 60 output tokens" in text
    assert "estimates" in text
    # and a stream says what the client timed
    stream_text = str(demo.stream.otm)
    assert "time to first token" in stream_text and "tokens/s" in stream_text


def test_record_repr_is_one_short_line_with_the_energy(demo: Demo) -> None:
    r = repr(demo.stream.otm)
    assert "\n" not in r and len(r) < 160, r
    assert r.startswith("<otm.Record openai/gpt-4o ok in=30 out=40 energy ")
    assert UNITS.search(r) and EXPONENT.search(r) is None


def test_record_html_is_escaped_and_holds_the_figures(demo: Demo) -> None:
    rec = demo.plain.otm
    html = rec._repr_html_()
    p = _parse(html)
    text = " | ".join(p.text)
    _figures_shown(text)
    assert "b" not in p.tags  # the tag's markup was escaped, not rendered
    assert ODD_TAG in text and "&lt;b&gt;" in html
    assert "Breakdown and assumptions" in text and "accelerator" in text
    assert p.tags.count("table") >= 2 and "details" in p.tags


def test_record_rich_renders_a_table(demo: Demo) -> None:
    text = _rich(demo.stream.otm)
    _figures_shown(text)
    assert "Energy" in text and "openai/gpt-4o" in text and "estimate" in text


def test_impact_str_repr_html_and_rich(demo: Demo) -> None:
    impact = demo.plain.otm.impact
    s = str(impact)
    assert s.splitlines()[0].startswith("energy  ") and len(s.splitlines()) >= 4
    _figures_shown(s)
    r = repr(impact)
    assert r.startswith("<otm.Impact energy ") and "\n" not in r and len(r) < 200
    assert "assumptions" not in r  # pydantic's field dump is gone
    _figures_shown(_rich(impact))
    _figures_shown(" | ".join(_parse(impact._repr_html_()).text))
    # the range is the impact's own: the low and high shown match its figures
    factor, unit = scale_for("energy", impact.energy_wh.value)
    assert f"{sig(impact.energy_wh.low / factor)}–" in s


def test_a_record_whose_estimate_fails_still_displays(demo: Demo, monkeypatch, caplog) -> None:
    import otm.estimate as est
    from otm.record import Record

    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("estimator down")

    monkeypatch.setattr(est, "estimate", boom)
    rec = Record(demo.plain.otm.telemetry)
    assert "no estimate" in str(rec)
    assert "no estimate" in " | ".join(_parse(rec._repr_html_()).text).lower()
    assert "no estimate" in _rich(rec)
    assert "energy" not in repr(rec)


# ---------------------------------------------------------------------- Summary, Run, Experiment


def test_summary_displays(demo: Demo) -> None:
    s = demo.exp.summary()
    n = len(demo.records)
    r = repr(s)
    assert r.startswith(f"<otm.Summary 'display demo' {n} requests, energy ") and "\n" not in r
    assert len(r) < 200
    text = str(s)
    _figures_shown(text)
    assert f"({n} requests" in text and s.sentence in text
    html = s._repr_html_()
    body = " | ".join(_parse(html).text)
    _figures_shown(body)
    for m in s.by_model:
        assert m.model in body
    # models in the summary's order (by total energy)
    order = [body.index(m.model + "") for m in s.by_model]
    assert order == sorted(order)
    rich_text = _rich(s)
    _figures_shown(rich_text)
    assert "gpt-4.1-mini" in rich_text and "Requests" in rich_text


def test_run_displays_its_own_calls(demo: Demo) -> None:
    run = demo.run
    assert repr(run).startswith("<otm.Run 'summarise' 2 calls ")
    body = " | ".join(_parse(run._repr_html_()).text)
    assert "otm run: summarise" in body and "2 calls" in body and "gpt-4.1-mini" in body
    assert "gpt-4o-mini" not in body  # only the run's calls
    assert "2 calls" in _rich(run)


def test_experiment_displays(demo: Demo, tmp_path: Path) -> None:
    exp = demo.exp
    n = len(demo.records)
    assert repr(exp).startswith(f"<otm.Experiment 'display demo' {n} calls at ")
    body = " | ".join(_parse(exp._repr_html_()).text)
    assert "otm experiment: display demo" in body and "finished in" in body
    _figures_shown(body)
    assert str(exp.path) in body
    assert "finished in" in _rich(exp)
    # an experiment with one call says so in the singular, while it runs
    with otm.experiment("one", output_dir=tmp_path, reports=()) as one:
        assert "running" in " | ".join(_parse(one._repr_html_()).text)
        assert "No LLM API calls" in _rich(one)
    assert repr(one).startswith("<otm.Experiment 'one' 0 calls")

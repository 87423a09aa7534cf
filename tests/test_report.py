"""Reports from logs: reader, range arithmetic, CSV/Markdown/LaTeX/JSON/HTML, the CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_report_support import emit_call

import otm
from otm.cli import main
from otm.impact import Range
from otm.report.formats import (
    CSV_COLUMNS,
    latex_escape,
    render_latex,
    render_markdown,
    write_reports,
)
from otm.report.ranges import RangeSum, fully_correlated
from otm.report.reader import LogReader, read_log
from otm.report.summary import summarize
from otm.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[1]
ODD_MODEL = "llama_3.1 & co #1 50% {x}|y"


@pytest.fixture()
def log(tmp_path: Path) -> Path:
    """An experiment log with three models, failures, tags and one captured prompt."""
    with otm.experiment("report test", output_dir=tmp_path / "runs", reports=()) as exp:
        for i in range(60):
            model = ("gpt-4o-mini", "claude-3-5-haiku", ODD_MODEL)[i % 3]
            emit_call(
                i,
                model=model,
                provider=("openai", "anthropic", "together")[i % 3],
                input_tokens=20 + 13 * i,
                output_tokens=5 + 7 * (i % 11),
                status="error" if i % 17 == 0 else "ok",
                tags={"environment": "prod" if i % 2 else "dev", "team": "nlp"},
                prompt="Summarise the report, please." if i == 4 else None,
            )
    assert exp.log_path is not None
    return exp.log_path


def _log_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# ---------------------------------------------------------------------- ranges


def test_ranges_add_within_groups_and_in_quadrature_across() -> None:
    s = RangeSum()
    s.add("a", 10, 5, 20)
    s.add("a", 10, 5, 20)  # same group: correlated, so (20, 10, 40)
    s.add("b", 10, 8, 11)
    r = s.total()
    assert r.value == pytest.approx(30)
    assert r.low == pytest.approx(30 - math.hypot(10, 2))
    assert r.high == pytest.approx(30 + math.hypot(20, 1))
    worst = fully_correlated(
        [Range(value=10, low=5, high=20)] * 2 + [Range(value=10, low=8, high=11)]
    )
    assert worst.low < r.low < r.value < r.high < worst.high
    one = RangeSum()
    one.add("g", 1, 0.5, 3)
    one.add("g", 2, 1.0, 4)
    assert (one.total().low, one.total().high) == pytest.approx((1.5, 7.0))
    assert RangeSum().total() == Range.point(0.0)


# ---------------------------------------------------------------------- reader


def test_reader_tolerates_a_truncated_last_line_and_skips_bad_ones(
    log: Path, tmp_path: Path
) -> None:
    lines = log.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "{not json", "", lines[1], "[1, 2]", lines[2][:40]]))
    reader = LogReader(bad)
    rows = list(reader.rows())
    assert len(rows) == 2
    assert reader.skipped == 2 and reader.truncated
    assert [r.telemetry.request_id for r in read_log(bad)] == ["req-0", "req-1"]


def test_reader_estimates_camelcase_telemetry_lines(tmp_path: Path, monkeypatch) -> None:
    import otm.estimate

    calls = []
    real = otm.estimate.estimate_many

    def spy(telemetries, **kw):
        calls.append(([t.model for t in telemetries], kw.get("region")))
        return real(telemetries, **kw)

    monkeypatch.setattr(otm.estimate, "estimate_many", spy)
    path = tmp_path / "otm.jsonl"
    lines = []
    with path.open("w") as f:
        for i in range(5):
            start = 1_700_000_000_000 + 1000 * i  # milliseconds, as OTM collectors often write
            lines.append(
                {
                    "platform": "openai",
                    "modelName": "gpt-4o",
                    "startTime": start,
                    "firstTokenTime": start + 300,
                    "lastTokenTime": start + 2300,
                    "inputTokens": 100 + i,
                    "outputTokens": 200,
                    "inputTextLength": 400,
                }
            )
            f.write(json.dumps(lines[-1]) + "\n")
    s = summarize(path, region="FRA")
    assert s.requests == 5 and s.totals.estimated == 5
    assert calls == [(["gpt-4o"] * 5, "FRA")]  # one vectorised call for the five lines
    assert s.latency_s["p50"] == pytest.approx(2.3)
    assert s.ttft_s["p50"] == pytest.approx(0.3)
    # the same figures as estimating each line on its own
    each = [otm.estimate(Telemetry.model_validate(ln), region="FRA") for ln in lines]
    assert s.energy_wh.value == pytest.approx(sum(i.energy_wh.value for i in each), rel=1e-9)
    assert s.carbon_g.value == pytest.approx(sum(i.carbon_g.value for i in each), rel=1e-9)


def test_region_option_re_estimates_lines_without_a_region(log: Path, monkeypatch) -> None:
    import otm.estimate

    seen = []
    real = otm.estimate.estimate_many

    def spy(telemetries, **kw):
        seen.extend([kw.get("region")] * len(telemetries))
        return real(telemetries, **kw)

    monkeypatch.setattr(otm.estimate, "estimate_many", spy)
    s = summarize(log, region="DEU")
    assert len(seen) == 60 and set(seen) == {"DEU"}
    assert s.totals.estimated == 60 and {m.model for m in s.by_model}


def test_reader_uses_the_real_estimator_when_present(tmp_path: Path) -> None:
    estimate_mod = pytest.importorskip("otm.estimate")
    if not hasattr(estimate_mod, "estimate"):
        pytest.skip("the estimator is not built yet")
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(
            {
                "platform": "openai",
                "modelName": "gpt-4o-mini",
                "startTime": 1_700_000_000.0,
                "firstTokenTime": 1_700_000_000.4,
                "lastTokenTime": 1_700_000_002.4,
                "inputTokens": 500,
                "outputTokens": 300,
            }
        )
        + "\n"
    )
    s = summarize(path)
    assert s.totals.estimated == 1
    assert 0 < s.energy_wh.low <= s.energy_wh.value <= s.energy_wh.high


# ---------------------------------------------------------------------- file formats


def test_csv_has_one_row_per_request_with_the_documented_columns(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    write_reports(log, csv=out)
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 60
    by_id = {r["request_id"]: r for r in rows}
    r4 = by_id["req-4"]
    assert r4["prompt"] == "Summarise the report, please."  # captured with the user's opt-in
    assert all(r["prompt"] == "" for k, r in by_id.items() if k != "req-4")
    assert r4["environment"] == "dev" and r4["tags"] == "team=nlp"
    assert r4["time"].endswith("Z") and "T" in r4["time"]
    lines = {ln["telemetry"]["request_id"]: ln for ln in _log_lines(log)}
    for rid, r in by_id.items():
        imp = lines[rid]["impact"]
        assert float(r["energy_wh"]) == pytest.approx(imp["energy_wh"]["value"], rel=1e-5)
        assert float(r["carbon_gco2e_high"]) == pytest.approx(imp["carbon_g"]["high"], rel=1e-5)
        assert float(r["water_ml_low"]) == pytest.approx(imp["water_ml"]["low"], rel=1e-5)
        assert int(r["output_tokens"]) == lines[rid]["telemetry"]["output_tokens"]
        assert float(r["latency_s"]) > float(r["ttft_s"]) > 0
    assert by_id["req-0"]["status"] == "error"

    write_reports(log, csv=out, include_prompts=False)
    with out.open(newline="") as f:
        assert all(r["prompt"] == "" for r in csv.DictReader(f))


def test_json_summary_numbers_equal_the_sum_of_records(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    write_reports(log, json=out)
    data = json.loads(out.read_text())
    lines = _log_lines(log)
    t = data["totals"]
    assert t["requests"] == len(lines) == 60
    for key in ("energy_wh", "carbon_g", "water_ml"):
        assert t[key]["value"] == pytest.approx(sum(ln["impact"][key]["value"] for ln in lines))
        assert t[key]["low"] <= t[key]["value"] <= t[key]["high"]
    assert t["cost_usd"] == pytest.approx(sum(ln["impact"]["cost_usd"] for ln in lines))
    assert t["output_tokens"] == sum(ln["telemetry"]["output_tokens"] for ln in lines)
    assert t["by_status"] == {"ok": 56, "error": 4}
    assert sum(m["requests"] for m in data["by_model"]) == 60
    for m in data["by_model"]:
        mine = [ln for ln in lines if ln["telemetry"]["model"] == m["model"]]
        assert m["energy_wh"]["value"] == pytest.approx(
            sum(ln["impact"]["energy_wh"]["value"] for ln in mine)
        )
        assert m["energy_per_request_wh"]["value"] == pytest.approx(
            m["energy_wh"]["value"] / len(mine)
        )
    assert data["breakdown_wh"]["accelerator"] == pytest.approx(
        sum(ln["impact"]["breakdown_wh"]["accelerator"] for ln in lines)
    )
    assert data["sci"]["boundary"].startswith("operational")
    assert data["name"] == "report test"
    assert data["by_tag"]["team=nlp"]["requests"] == 60


def test_markdown_report(log: Path) -> None:
    md = render_markdown(summarize(log))
    assert md.startswith("# otm report: report test")
    for heading in ("## Totals", "## For your paper", "## By model", "## Latency", "## SCI for AI"):
        assert heading in md
    assert "> The 60 LLM API calls" in md
    row = next(line for line in md.splitlines() if line.startswith("| llama"))
    assert "\\|y" in row  # a pipe in a name cannot break the table
    assert row.count(" | ") == 9  # ten cells


def test_latex_table_is_escaped_and_booktabs() -> None:
    assert latex_escape("a_b & c% $d# {e} ~f ^g \\h") == (
        r"a\_b \& c\% \$d\# \{e\} \textasciitilde{}f \textasciicircum{}g \textbackslash{}h"
    )


def test_latex_report(log: Path) -> None:
    tex = render_latex(summarize(log))
    for cmd in (
        r"\toprule",
        r"\midrule",
        r"\bottomrule",
        r"\begin{tabular}",
        r"\caption{",
        r"\label{tab:otm-",
    ):
        assert cmd in tex
    assert r"llama\_3.1 \& co \#1 50\% \{x\}\textbar{}y" in tex
    assert ODD_MODEL not in tex
    assert "Total & 60 &" in tex
    body = tex.split(r"\midrule")[1]
    assert all(line.rstrip().endswith(r"\\") for line in body.strip().splitlines())


# ---------------------------------------------------------------------- HTML


class _Outline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.svgs: list[dict[str, str | None]] = []
        self.in_title: list[str] = []
        self.svg_titles: list[str] = []
        self.svg_descs: int = 0
        self.external: list[str] = []
        self._depth = 0
        self._capture: str | None = None
        self.page_title = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith("#"):  # in-page links are fine
                self.external.append(a[key])
        if tag == "svg":
            self.svgs.append(a)
            self._depth += 1
        elif tag == "title":
            self._capture = "svg" if self._depth else "page"
        elif tag == "desc" and self._depth:
            self.svg_descs += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self._depth -= 1
        if tag == "title":
            self._capture = None

    def handle_data(self, data):
        if self._capture == "svg":
            self.svg_titles.append(data)
        elif self._capture == "page":
            self.page_title += data


def test_html_report_is_self_contained_with_accessible_charts(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    write_reports(log, html=out)
    text = out.read_text(encoding="utf-8")
    parser = _Outline()
    parser.feed(text)
    parser.close()
    assert parser.page_title == "otm report: report test"
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert parser.external == []  # no CDN, no external assets
    # time (energy, carbon), models (per request, per 1k tokens), breakdown (3), prompt efficiency
    assert len(parser.svgs) >= 8
    assert all(s.get("role") == "img" and s.get("aria-labelledby") for s in parser.svgs)
    assert parser.svg_descs == len(parser.svgs)
    titles = " ".join(parser.svg_titles)
    for want in (
        "Energy per request",
        "Carbon per request",
        "Energy per 1 000 output tokens",
        "Energy by component",
        "Carbon: operational and embodied",
        "Water: on-site and off-site",
        "Output tokens against input",
    ):
        assert want in titles
    assert parser.tags.count("table") >= 6  # data tables beside the charts
    assert "The 60 LLM API calls" in text
    assert "llama_3.1 &amp; co #1 50% {x}|y" in text  # escaped, not raw
    assert "Summarise the report, please." in text  # the captured prompt, in the efficiency tables


def test_html_report_renders_in_headless_chromium(log: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless Chromium on this machine")
    html = tmp_path / "r.html"
    write_reports(log, html=html)
    png = tmp_path / "r.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            html.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert png.exists(), "chromium wrote no screenshot"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 30_000  # a blank 1280x2000 page compresses to a few kB


def test_empty_summary_renders(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    s = write_reports(
        empty, html=tmp_path / "e.html", md=tmp_path / "e.md", latex=tmp_path / "e.tex"
    )
    assert s.requests == 0
    assert "No LLM API calls" in (tmp_path / "e.md").read_text()
    assert "<svg" not in (tmp_path / "e.html").read_text()


# ---------------------------------------------------------------------- CLI


def test_cli_prints_a_summary_without_output_options(log: Path, capsys) -> None:
    assert main(["report", str(log)]) == 0
    out = capsys.readouterr().out
    assert "Energy" in out and "gpt-4o-mini" in out and "60" in out


def test_cli_accepts_an_experiment_directory_and_writes_files(
    log: Path, tmp_path: Path, capsys
) -> None:
    files = {ext: tmp_path / f"out.{ext}" for ext in ("html", "csv", "md", "tex", "json")}
    code = main(
        [
            "report",
            str(log.parent),
            "--html",
            str(files["html"]),
            "--csv",
            str(files["csv"]),
            "--md",
            str(files["md"]),
            "--latex",
            str(files["tex"]),
            "--json",
            str(files["json"]),
        ]
    )
    assert code == 0
    for f in files.values():
        assert f.stat().st_size > 100, f
    assert json.loads(files["json"].read_text())["totals"]["requests"] == 60
    assert "HTML report written to" in capsys.readouterr().err


def test_cli_json_to_stdout_and_errors(log: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(log), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["requests"] == 60
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2


def test_cli_plain_progress_counter_without_rich(log: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "rich.progress", None)  # as if rich were not installed
    assert main(["report", str(log), "--json", os.devnull, "--progress"]) == 0
    err = capsys.readouterr().err
    assert "otm report: read 100% of" in err and "60 lines" in err


def test_cli_as_a_subprocess(log: Path) -> None:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-m", "otm.cli", "report", str(log), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["requests"] == 60


# ---------------------------------------------------------------------- scale

_MEASURE = textwrap.dedent(
    """
    import resource, sys, time
    sys.path.insert(0, {root!r})
    from otm.cli import main
    t0 = time.perf_counter()
    code = main(["report", sys.argv[1], "--json", sys.argv[2], "--html", sys.argv[3], "--no-progress"])
    print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t0)
    """
)


def _big_log(path: Path, n: int, template: dict) -> None:
    """``n`` lines built by string substitution (json.dumps per line would dominate the test)."""
    line = json.dumps(template, separators=(",", ":"))
    line = line.replace('"req-0"', '"REQ"').replace('"model":"gpt-4o-mini"', '"model":"MODEL"')
    models = [f"model-{k}" for k in range(7)]
    with path.open("w") as f:
        for i in range(n):
            f.write(line.replace("REQ", f"r{i}").replace("MODEL", models[i % 7]) + "\n")


def test_a_100k_line_log_streams_in_bounded_memory(log: Path, tmp_path: Path) -> None:
    template = _log_lines(log)[0]
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    _big_log(small, 1_000, template)
    _big_log(big, 100_000, template)
    assert big.stat().st_size > 50_000_000

    def measure(path: Path) -> tuple[int, float]:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _MEASURE.format(root=str(ROOT)),
                str(path),
                str(tmp_path / "s.json"),
                str(tmp_path / "r.html"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        code, rss_kb, seconds = proc.stdout.split()
        assert code == "0"
        return int(rss_kb), float(seconds)

    rss_small, _ = measure(small)
    rss_big, seconds = measure(big)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["totals"]["requests"] == 100_000
    assert len(summary["by_model"]) == 7
    assert summary["latency_s"]["n"] == 20_000  # percentiles from a bounded sample
    # Holding 100k parsed lines would take hundreds of MB; streaming stays flat.
    assert rss_big - rss_small < 40 * 1024, (rss_small, rss_big)
    assert seconds < 30

"""Hostile names in every report format: model names come from servers, tags from anywhere.

A served model name or a tag must come out of each format as inert text: no
spreadsheet formula in the CSV, no link, image, HTML or heading in the
Markdown, no markup in the HTML, no command in the LaTeX, and the exact
string in the JSON.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from test_report_support import make_record

from otm.report.formats import csv_text, write_reports

HOSTILE_MODELS = [
    '=HYPERLINK("http://evil.example/x","click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tTAB=1+1",
    "\rCR=1+1",
    "x](http://evil.example) ![pixel](http://evil.example/p.png) [y",
    "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "name\n# Injected heading\n| a | b |",
    r"\input{/etc/passwd}\write18{rm -rf /}$x$&%#_^~",
    "**bold** _em_ `code` <b>",
]
HOSTILE_TAGS = {"env": "=1+2", "team": "@evil|x", "note": "[a](http://evil.example)"}


@pytest.fixture()
def reports(tmp_path: Path) -> dict[str, str]:
    records = [make_record(i, model=name, tags=HOSTILE_TAGS) for i, name in enumerate(HOSTILE_MODELS)]
    for i, rec in enumerate(records):  # request ids come from servers too
        rec.telemetry = rec.telemetry.model_copy(update={"request_id": f"=req{i}"})
    out = {fmt: tmp_path / f"report.{fmt}" for fmt in ("csv", "md", "html", "tex", "json")}
    write_reports(
        records,
        csv=out["csv"],
        md=out["md"],
        html=out["html"],
        latex=out["tex"],
        json=out["json"],
        name="hostile <b>[x](http://e)</b> =1+1",
        tags=HOSTILE_TAGS,
    )
    return {fmt: p.read_text(encoding="utf-8") for fmt, p in out.items()}


def test_csv_cells_never_start_a_formula(reports: dict[str, str]) -> None:
    rows = list(csv.DictReader(io.StringIO(reports["csv"], newline="")))
    assert len(rows) == len(HOSTILE_MODELS)
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    # the text is kept, behind the quote that spreadsheets hide
    assert sorted(r["model"] for r in rows) == sorted(csv_text(m) for m in HOSTILE_MODELS)
    assert csv_text("\rCR") == "'\nCR"  # a bare CR would end the row for readers
    assert {r["request_id"][:1] for r in rows} == {"'"}
    assert {r["environment"] for r in rows} == {"'=1+2"}
    assert csv_text("-2+3") == "'-2+3" and csv_text("gpt-4o") == "gpt-4o" and csv_text(None) == ""


def test_markdown_shows_names_as_text(reports: dict[str, str]) -> None:
    md = reports["md"]
    # no link or image (an unescaped "](" after an unescaped "["), no raw HTML
    assert not re.search(r"(?<!\\)\[[^\]\n]*(?<!\\)\]\(", md)
    assert not re.search(r"(?<!\\)<", md)  # no raw HTML: every < is escaped
    # an injected line break cannot start a heading or a table row
    headings = [ln for ln in md.splitlines() if ln.startswith("#")]
    assert not [h for h in headings if "Injected" in h]
    # the paper sentence names the models, escaped
    paper = md.split("## For your paper", 1)[1].split("##", 1)[0]
    assert "\\<script\\>" in paper or "\\<script\\>" in md
    assert "\\*\\*bold\\*\\*" in md
    # each table row has the table's number of cells
    for table in re.findall(r"((?:^\|.*\|$\n?)+)", md, flags=re.M):
        widths = {len(re.findall(r"(?<!\\)\|", ln)) for ln in table.splitlines()}
        assert len(widths) == 1, table


def test_html_escapes_every_name(reports: dict[str, str]) -> None:
    html = reports["html"]
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>[x]" not in html  # the report's name too


def test_latex_escapes_every_name(reports: dict[str, str]) -> None:
    tex = reports["tex"]
    assert r"\input" not in tex and r"\write18" not in tex
    assert r"\textbackslash{}input\{/etc/passwd\}" in tex
    body = tex.split(r"\midrule", 1)[1]
    # in the table body, every & is a column separator or escaped
    for line in body.splitlines():
        if line.endswith(r"\\"):
            assert len(re.findall(r"(?<!\\)&", line)) == 6, line


def test_json_keeps_names_exactly(reports: dict[str, str]) -> None:
    data = json.loads(reports["json"])
    models = {m["model"] for m in data["by_model"]}
    assert models == set(HOSTILE_MODELS)
    assert data["tags"] == HOSTILE_TAGS


def test_terminal_summary_prints_names_not_rich_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rich")
    from otm.cli import main

    name = "[link=http://evil.example]gpt[/link][bold red]x"
    log = tmp_path / "log.jsonl"
    rec = make_record(0, model=name)
    log.write_text(json.dumps({"schema": "otm.record/1", **rec.to_dict()}) + "\n")
    assert main(["report", str(log)]) == 0
    out = capsys.readouterr().out
    assert "[link=" in out and "[/link]" in out  # shown, not taken as markup

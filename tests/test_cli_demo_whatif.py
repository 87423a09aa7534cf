"""`otm demo` (the main job) and `otm whatif`, run as a user would."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import DemoRun

from otm.cli import main


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env["OTM_CONFIG_FILE"] = "none"
    return env


def test_demo_runs_offline_and_prints_figures(demo_runs: dict[str, DemoRun]) -> None:
    out = demo_runs["text"]
    tmp_path = out.cwd
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    # every provider SDK that is installed appears, with figures
    for provider in ("openai", "local", "anthropic", "google"):
        assert re.search(rf"\b{provider}\b", text), provider
    # units scale with the figure (mL or µL of water)
    assert re.search(r"\d mWh", text) and "gCO2e" in text and re.search(r" [mµ]L\b", text)
    assert "Report written to" in text
    reports = list((tmp_path / "runs").glob("otm-demo-*/report.html"))
    assert len(reports) == 1
    log = reports[0].parent / "records.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 12
    # the log holds telemetry (written before each call returned); readers estimate it
    from otm.report.reader import LogReader

    rows = list(LogReader(log).rows())
    assert len(rows) == 12 and all(row.energy is not None and row.energy[0] > 0 for row in rows)
    assert {line["telemetry"]["provider"] for line in lines} == {"openai", "local", "anthropic", "google"}
    # the decorated function's calls carry its run
    assert sum(1 for line in lines if line["tags"].get("step") == "summarise") == 2


def test_demo_json_output(demo_runs: dict[str, DemoRun]) -> None:
    out = demo_runs["json"]
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert len(data["records"]) == 12
    assert data["summary"]["totals"]["requests"] == 12


def test_whatif_single_request_spread(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([
        "whatif", "--model", "gpt-4o-mini", "--provider", "openai", "--input-tokens", "800",
        "--output-tokens", "200", "--ttft", "0.4", "--tps", "90", "--json",
        "--regions", "SWE,FRA,USA,POL,ZAF", "--accelerators", "H100,B200",
    ])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    carbon = {r["region"]: r["carbon_g"] for r in data["regions"]}
    assert list(carbon) == sorted(carbon, key=carbon.get)  # sorted cleanest first
    assert carbon["SWE"] < carbon["FRA"] < carbon["USA"] < carbon["POL"]
    # energy does not depend on the grid; carbon does
    energies = {round(r["energy_wh"], 12) for r in data["regions"]}
    assert len(energies) == 1
    assert data["region_carbon_ratio"] == pytest.approx(max(carbon.values()) / min(carbon.values()))
    assert data["region_carbon_ratio"] > 3
    assert {r["accelerator"] for r in data["accelerators"]} and len(data["accelerators"]) == 2


def test_whatif_from_a_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from otm.telemetry import Telemetry

    log = tmp_path / "calls.jsonl"
    rows = [
        Telemetry(provider="openai", model="gpt-4o", start_time=1.0e9 + i, first_token_time=1.0e9 + i + 0.5,
                  last_token_time=1.0e9 + i + 2.5, input_tokens=300, output_tokens=150, streamed=True)
        for i in range(5)
    ]
    log.write_text("".join(json.dumps(t.model_dump(mode="json")) + "\n" for t in rows))
    assert main(["whatif", str(log), "--region", "DEU", "--regions", "NOR,DEU,IND"]) == 0
    text = capsys.readouterr().out
    assert "Same 5 requests" in text and "Norway" in text and "India" in text
    assert re.search(r"varies 1 : \d+", text)
    assert "rank 2 of 4" in text  # Germany sits between Norway and India


def test_whatif_own_figures_keep_each_records_deployment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from otm.deployment import Deployment
    from otm.estimate import estimate
    from otm.record import Record
    from otm.telemetry import Telemetry

    dep = Deployment(accelerator="A100 80GB", count=1, region="FRA", provider="local")
    tel = Telemetry(provider="local", model="meta-llama/Llama-3.1-8B-Instruct", start_time=1.0e9,
                    first_token_time=1.0e9 + 0.1, last_token_time=1.0e9 + 2.1, input_tokens=50,
                    output_tokens=200, streamed=True)
    log = tmp_path / "local.jsonl"
    log.write_text(json.dumps(Record(tel, deployment=dep).to_dict()) + "\n")
    assert main(["whatif", str(log), "--json", "--regions", "FRA"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = estimate(tel, deployment=dep).energy_wh.value
    assert data["own"]["energy_wh"] == pytest.approx(expected, rel=1e-6)

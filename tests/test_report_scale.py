"""Reports on large logs of bare telemetry: vectorised chunks, bounded memory, progress in CI logs.

Timings are measured by bench/report_scale.py, not here; these tests check
the mechanisms (one estimate_many call per chunk, the same figures as
estimating each line, flat memory, periodic progress lines without a
terminal) and that both kinds of line (with and without figures) are read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_report_support import make_record

import otm
import otm.estimate
from otm.cli import main, report_cmd
from otm.estimate import reset_floors
from otm.report import reader as reader_module
from otm.report.reader import LogReader
from otm.report.summary import Reservoir, summarize
from otm.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000.0
MODELS = ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash")


def bare_lines(n: int, seed: int = 3) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        start = T0 + 0.05 * i
        first = start + float(rng.uniform(0.2, 1.0))
        tokens = int(rng.integers(20, 400))
        out.append(
            {
                "platform": ("openai", "anthropic", "google")[i % 3],
                "modelName": MODELS[i % 3],
                "startTime": start,
                "firstTokenTime": first,
                "lastTokenTime": first + tokens / float(rng.uniform(30, 120)),
                "inputTokens": int(rng.integers(50, 2000)),
                "outputTokens": tokens,
            }
        )
    return out


def write(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    return path


def test_rows_are_estimated_in_chunks_with_the_same_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "CHUNK_ROWS", 1000)
    lines = bare_lines(2500)
    log = write(tmp_path / "bare.jsonl", lines)
    sizes: list[int] = []
    real = otm.estimate.estimate_many

    def spy(telemetries, **kw):
        sizes.append(len(telemetries))
        return real(telemetries, **kw)

    monkeypatch.setattr(otm.estimate, "estimate_many", spy)
    reset_floors()
    s = summarize(log)
    assert sizes == [1000, 1000, 500]  # one vectorised call per chunk, never one per line
    # the same chunks estimated directly, in order: each deployment's history grows chunk by
    # chunk in both (a stream read later may be conditioned on what came before)
    reset_floors()
    tel = [Telemetry.model_validate(ln) for ln in lines]
    chunks = [real(tel[i : i + 1000]) for i in range(0, 2500, 1000)]
    assert s.requests == 2500 and s.totals.estimated == 2500
    assert s.energy_wh.value == pytest.approx(sum(float(c.energy_wh_value.sum()) for c in chunks), rel=1e-9)
    assert s.water_ml.value == pytest.approx(sum(float(c.water_ml_value.sum()) for c in chunks), rel=1e-9)


def test_lines_with_and_without_figures_are_read_in_order(tmp_path: Path) -> None:
    """Old logs carry an impact per line; new ones only telemetry: one log may hold both."""
    with_figures = make_record(0)  # a hand-made impact
    without = make_record(1, impact=False)
    log = tmp_path / "mixed.jsonl"
    log.write_text(
        json.dumps({"schema": "otm.record/1", **with_figures.to_dict()})
        + "\n"
        + json.dumps({"schema": "otm.record/1", **without.to_dict(with_impact=False)})
        + "\n"
        + json.dumps(bare_lines(1)[0])
        + "\n"
    )
    rows = list(LogReader(log).rows())
    assert [r.request_id for r in rows[:2]] == ["req-0", "req-1"] and len(rows) == 3
    assert rows[0].energy == (
        with_figures.impact.energy_wh.value,
        with_figures.impact.energy_wh.low,
        with_figures.impact.energy_wh.high,
    )
    assert rows[1].energy is not None and rows[1].energy[0] > 0  # estimated on reading
    assert rows[2].energy is not None and rows[2].model == "gpt-4o"


def test_a_record_the_estimator_rejects_costs_only_its_own_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = otm.estimate.estimate_many

    def picky(telemetries, **kw):
        if len(telemetries) > 1:
            raise RuntimeError("one bad record in the chunk")
        return real(telemetries, **kw)

    monkeypatch.setattr(otm.estimate, "estimate_many", picky)
    log = write(tmp_path / "bare.jsonl", bare_lines(5))
    rows = list(LogReader(log).rows())
    assert len(rows) == 5 and all(r.energy is not None for r in rows)  # fell back per line


_PEAK = """
import sys
sys.path.insert(0, {root!r})
from otm.cli import main
code = main(["report", sys.argv[1], "--json", sys.argv[2], "--no-progress"])
peak = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0].split()[1]
print(code, peak)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_bare_telemetry_logs_stream_in_bounded_memory(tmp_path: Path) -> None:
    def peak_kb(n: int) -> int:
        log = write(tmp_path / f"bare-{n}.jsonl", bare_lines(n))
        out = subprocess.run(
            [sys.executable, "-c", _PEAK.format(root=str(ROOT)), str(log), str(tmp_path / "s.json")],
            capture_output=True, text=True, timeout=240, check=False,
        )
        assert out.returncode == 0, out.stderr
        code, kb = out.stdout.split()
        assert code == "0"
        assert json.loads((tmp_path / "s.json").read_text())["totals"]["estimated"] == n
        return int(kb)

    small, big = peak_kb(2_000), peak_kb(40_000)
    # 40k parsed lines with their estimates held at once would take well over 100 MB
    assert big - small < 40 * 1024, (small, big)


def test_progress_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write(tmp_path / "bare.jsonl", bare_lines(5000))
    monkeypatch.setattr(report_cmd, "PROGRESS_MIN_BYTES", 0)  # as on a large log
    monkeypatch.setattr(reader_module.LogReader, "__init__", _every(500))
    assert main(["report", str(log), "--json", os.devnull]) == 0
    err = capsys.readouterr().err
    progress = [ln for ln in err.splitlines() if ln.startswith("otm report: read")]
    assert 5 <= len(progress) <= 11, err  # about one line per 10 %, no bar, no \r
    assert "\r" not in err and progress[-1].startswith("otm report: read 100% of bare.jsonl")
    assert "5,000 lines" in progress[-1]
    # small logs stay quiet unless asked
    monkeypatch.setattr(report_cmd, "PROGRESS_MIN_BYTES", 8 * 1024 * 1024)
    assert main(["report", str(log), "--json", os.devnull]) == 0
    assert "otm report: read" not in capsys.readouterr().err


def _every(n: int):
    init = reader_module.LogReader.__init__

    def patched(self, *args, **kw):
        kw["progress_every"] = n
        init(self, *args, **kw)

    return patched


def test_reservoir_is_a_uniform_sample() -> None:
    hits = np.zeros(10)
    for seed in range(200):
        r = Reservoir(50, seed=seed)
        for i in range(5000):
            r.add(i)
        assert len(r.items) == 50 == len(set(r.items)) and r.sampled
        for x in r.items:
            hits[x * 10 // 5000] += 1
    share = hits / hits.sum()
    assert np.all(np.abs(share - 0.1) < 0.015), share
    small = Reservoir(5)
    for i in range(3):
        small.add(i)
    assert small.items == [0, 1, 2] and not small.sampled

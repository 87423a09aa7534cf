"""How fast is `otm report` on a large log, against `estimate_many` on the same records?

    python bench/report_scale.py [--records 100000] [--no-cli]

Writes a log of bare camelCase telemetry lines (what OTM-style collectors
emit: every line needs an estimate), then times on the same records:

1. ``otm.estimate_many`` on the parsed Telemetry objects (the floor);
2. the report path in-process: ``write_reports`` reading the log (JSON
   parsing, validation, chunked estimation, aggregation, CSV + JSON output);
3. ``otm report LOG --json FILE`` as a user runs it (a fresh interpreter),
   with its peak memory (``VmHWM``);

and the cost an experiment adds to each call for its durable log line
(``Experiment.collect``: one JSON line written before the call returns).
Goal: the report at most 3x the ``estimate_many`` time, with flat memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from otm.estimate import estimate_many
from otm.telemetry import Telemetry

MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("google", "gemini-2.5-flash"))


def write_log(path: Path, n: int, seed: int = 1) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(MODELS), n)
    inp = np.round(rng.lognormal(6.5, 1.0, n)).astype(int)
    out = (np.round(rng.lognormal(5.5, 0.8, n)) + 2).astype(int)
    tps = rng.lognormal(np.log(70), 0.4, n)
    ttft = rng.lognormal(np.log(0.6), 0.5, n)
    start = 1.7e12 + np.cumsum(rng.exponential(50.0, n))  # milliseconds, as collectors write
    lines = []
    with path.open("w") as f:
        for i in range(n):
            prov, model = MODELS[which[i]]
            first = start[i] + 1000 * ttft[i]
            line = {
                "platform": prov,
                "modelName": model,
                "startTime": round(float(start[i]), 3),
                "firstTokenTime": round(float(first), 3),
                "lastTokenTime": round(float(first + 1000 * (out[i] - 1) / tps[i]), 3),
                "inputTokens": int(inp[i]),
                "outputTokens": int(out[i]),
            }
            lines.append(line)
            f.write(json.dumps(line) + "\n")
    return lines


def time_collect(n: int = 5000) -> float:
    """Seconds per call that an experiment's durable log line costs on the caller's thread."""
    import otm
    from otm.record import Record

    tel = Telemetry(
        provider="openai",
        model="gpt-4o",
        start_time=1.7e9,
        first_token_time=1.7e9 + 0.3,
        last_token_time=1.7e9 + 2.0,
        end_time=1.7e9 + 2.0,
        input_tokens=500,
        output_tokens=120,
        streamed=True,
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        otm.experiment("bench", output_dir=tmp, reports=()) as exp,
    ):
        records = [Record(tel) for _ in range(n)]
        t0 = time.perf_counter()
        for rec in records:
            exp.collect(rec)
        return (time.perf_counter() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--no-cli", action="store_true", help="skip the `otm report` subprocess run")
    args = ap.parse_args()
    n = args.records

    from otm.report.formats import write_reports

    # wall clock, and CPU time (threads summed), steadier on a shared machine
    def timed(fn: Any) -> tuple[Any, float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - t0, time.process_time() - c0

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "collector.jsonl"
        lines = write_log(log, n)
        size_mb = log.stat().st_size / 1e6
        telemetries = [Telemetry.model_validate(ln) for ln in lines]
        estimate_many(telemetries[:100])  # warm the data tables

        results = {}
        batch, *results["estimate_many (Telemetry objects)"] = timed(
            lambda: estimate_many(telemetries)
        )
        # the parsed lines as they are: validated into Telemetry inside
        _, *results["estimate_many (the parsed lines)"] = timed(lambda: estimate_many(lines))
        summary, *results["report in-process (CSV + JSON)"] = timed(
            lambda: write_reports(log, csv=Path(tmp) / "r.csv", json=Path(tmp) / "s.json")
        )

        peak_mb = None
        if not args.no_cli:
            code = (  # peak memory from VmHWM: ru_maxrss carries the parent's over fork
                "import sys, time\n"
                "from otm.cli import main\n"
                "t, c = time.perf_counter(), time.process_time()\n"
                "rc = main(sys.argv[1:])\n"
                "t, c = time.perf_counter() - t, time.process_time() - c\n"
                "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
                "print(t, c, int(hwm[0].split()[1]) / 1024 if hwm else float('nan'))\n"
                "sys.exit(rc)\n"
            )
            argv = ["report", str(log), "--json", str(Path(tmp) / "c.json"), "--no-progress"]
            out = subprocess.run(
                [sys.executable, "-c", code, *argv],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
            )
            t_cli, c_cli, peak_mb = map(float, out.stdout.split()[-3:])
            results["`otm report --json` (CLI)"] = [t_cli, c_cli]

    per_call = time_collect()
    base_obj = results["estimate_many (Telemetry objects)"][1]
    base_lines = results["estimate_many (the parsed lines)"][1]
    print(f"{n:,} bare telemetry lines ({size_mb:.1f} MB)")
    print(f"{'':<36}{'wall':>8}{'CPU':>8}   CPU / estimate_many on objects, on lines")
    for label, (wall, cpu) in results.items():
        print(
            f"{label:<36}{wall:7.2f}s{cpu:7.2f}s   {cpu / base_obj:5.2f}x, {cpu / base_lines:5.2f}x"
        )
    if peak_mb is not None:
        print(f"`otm report` peak memory (VmHWM)    {peak_mb:.0f} MB")
    print(f"experiment log line per call        {per_call * 1e6:.1f} µs (before the call returns)")
    print(
        f"totals (report / estimate_many)     {summary.energy_wh.value:.6g} / "
        f"{float(batch.energy_wh_value.sum()):.6g} Wh"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The H200 check: each request alone on Llama-3.1-8B shapes, NVML energy vs otm's estimate.

The measurements come from ``bench/table4.py`` run on one NVIDIA H200 (random
bf16 weights, a CUDA-graph decoder, each request alone; NVML's energy counter
over each request's span) and are kept in ``bench/calibration/h200/table4.json``.
Nothing of them was used to fit otm: otm sees only what a streaming client of
that server would - the start, first and last token times and the token
counts - and the deployment (``Deployment.accelerator_only("H200", 1)``).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "calibration" / "h200" / "table4.json"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def rows(engine: str | None = None, path: Path = DATA) -> list[dict[str, Any]]:
    """Per request shape: the measured energy and otm's estimate, medians over the repeats."""
    import otm
    from otm.estimate import estimate, reset_floors

    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for q in data["requests"]:
        measured, value, low, high, itl = [], [], [], [], []
        for r in q["repeats"]:
            start = float(r["start_time"])
            first = start + float(r["ttft_s"])
            last = first + float(r["decode_s"])
            t = otm.Telemetry(
                model=MODEL,
                provider="local",
                start_time=start,
                first_token_time=first,
                last_token_time=last,
                end_time=last,
                input_tokens=int(q["input_tokens"]),
                output_tokens=int(q["output_tokens"]),
                streamed=True,
            )
            reset_floors()  # each request alone, as measured: no history
            dep = otm.Deployment.accelerator_only("H200", 1, provider="local", engine=engine)
            im = estimate(t, deployment=dep)
            measured.append(float(r["measured_j"]))
            value.append(im.energy_wh.value * 3600.0)
            low.append(im.energy_wh.low * 3600.0)
            high.append(im.energy_wh.high * 3600.0)
            itl.append(float(r["itl_ms"]))
        m, v = statistics.median(measured), statistics.median(value)
        out.append(
            {
                "request": q["request"],
                "itl_ms": statistics.median(itl),
                "measured_j": m,
                "estimate_j": v,
                "low_j": statistics.median(low),
                "high_j": statistics.median(high),
                "ratio": v / m,
                "mean_power_w": q.get("mean_power_w"),
            }
        )
    return out


def table(engine: str | None = None) -> str:
    lines = [
        "| request (in/out tokens) | ITL (ms) | measured (J, NVML) | otm estimate (J) | range (J) | estimate / measured | inside range |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows(engine):
        inside = r["low_j"] <= r["measured_j"] <= r["high_j"]
        lines.append(
            f"| {r['request']} | {r['itl_ms']:.2f} | {r['measured_j']:.0f} | {r['estimate_j']:.0f} | "
            f"{r['low_j']:.0f}-{r['high_j']:.0f} | {r['ratio']:.2f} | {'yes' if inside else 'no'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print("engine not named (modern, legacy as the alternative):")
    print(table(None))
    print("\nengine='vllm' (modern, CUDA graphs):")
    print(table("vllm"))

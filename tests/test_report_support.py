"""Helpers shared by the report, track and experiment tests (no tests here).

They build records the way capture does (scope taken from the current
context) with hand-made impacts, so these tests do not depend on the
estimator's numbers.
"""

from __future__ import annotations

import time
from typing import Any

from otm import events
from otm.impact import Impact, Range
from otm.record import Record
from otm.telemetry import Telemetry


def make_impact(input_tokens: int, output_tokens: int, *, scale: float = 1.0) -> Impact:
    """A plausible impact: energy grows with tokens; range x0.5 to x2."""
    e = scale * (0.002 * output_tokens + 0.0002 * input_tokens + 0.01)
    return Impact(
        energy_wh=Range(value=e, low=0.5 * e, high=2 * e),
        carbon_g=Range(value=0.4 * e, low=0.15 * e, high=0.9 * e),
        water_ml=Range(value=2.0 * e, low=1.0 * e, high=5.0 * e),
        breakdown_wh={
            "accelerator": 0.58 * e,
            "host": 0.25 * e,
            "idle": 0.09 * e,
            "facility": 0.08 * e,
        },
        carbon_breakdown_g={"operational": 0.36 * e, "embodied": 0.04 * e},
        water_breakdown_ml={"onsite": 0.6 * e, "offsite": 1.4 * e},
        cost_usd=1e-6 * (input_tokens + 4 * output_tokens),
        assumptions={"warnings": ["model size estimated"] if output_tokens % 7 == 0 else []},
    )


def make_telemetry(
    i: int = 0,
    *,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    input_tokens: int = 100,
    output_tokens: int = 50,
    status: str = "ok",
    start: float | None = None,
    **extra: Any,
) -> Telemetry:
    t0 = (start if start is not None else time.time()) + i * 0.01
    ttft = 0.2 + 0.001 * (i % 50)
    decode = 0.01 * output_tokens
    return Telemetry(
        provider=provider,
        model=model,
        request_id=f"req-{i}",
        start_time=t0,
        first_token_time=t0 + ttft,
        last_token_time=t0 + ttft + decode,
        end_time=t0 + ttft + decode,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        streamed=True,
        status=status,  # type: ignore[arg-type]
        **extra,
    )


def make_record(
    i: int = 0,
    *,
    impact: bool = True,
    region: str | None = None,
    tags: dict[str, str] | None = None,
    **kw: Any,
) -> Record:
    """A finished record whose scope is the current context's (what capture does)."""
    tel = make_telemetry(i, **kw)
    rec = Record(tel, region=region, tags=tags, scope=events.current_scope())
    if impact:
        rec._impact = make_impact(tel.input_tokens, tel.output_tokens)
    return rec


def emit_call(i: int = 0, **kw: Any) -> Record:
    """Emit one record from the current context, as capture does when a call ends."""
    rec = make_record(i, **kw)
    events.emit(rec)
    return rec

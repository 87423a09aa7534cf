"""A synthetic log of LLM calls from many services, for scale tests and examples.

    cols = call_log(1_000_000, seed=0)      # dict of numpy columns
    pandas.DataFrame(cols).to_parquet("calls/", partition_cols=["service", "day"])

The columns are what an OTM-style collector logs (camelCase, unix
milliseconds) plus ``service`` and ``day`` to partition by and a
``requestId``. Streams, plain calls, calls without timings, cached input,
reasoning and failures are mixed in; numbers are drawn, not measured.
"""

from __future__ import annotations

import numpy as np

# (provider, model, typical output tokens/s)
MODELS = (
    ("openai", "gpt-4o-mini", 90.0),
    ("openai", "gpt-4o", 70.0),
    ("openai", "gpt-4.1-mini", 80.0),
    ("anthropic", "claude-haiku-4-5", 100.0),
    ("anthropic", "claude-sonnet-4-6", 60.0),
    ("google", "gemini-2.5-flash", 150.0),
)

DAY_S = 86_400.0
START_MS = 1_760_000_000_000.0


def call_log(n: int, *, seed: int = 0, services: int = 12, days: int = 4) -> dict[str, np.ndarray]:
    """``n`` calls as columns (one numpy array each), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(MODELS), n)
    provider = np.array([m[0] for m in MODELS], dtype=object)[which]
    model = np.array([m[1] for m in MODELS], dtype=object)[which]
    speed = np.array([m[2] for m in MODELS])[which] * rng.lognormal(0.0, 0.35, n)
    day = rng.integers(0, days, n)
    start = START_MS + (day + rng.uniform(0.0, 1.0, n)) * DAY_S * 1000.0
    inp = rng.lognormal(6.5, 1.0, n).astype(np.int64) + 1
    out = rng.lognormal(5.0, 0.9, n).astype(np.int64) + 1
    cached = np.where(rng.uniform(size=n) < 0.3, (inp * rng.uniform(0.2, 0.9, n)).astype(np.int64), 0)
    reasoning = np.where(model == "gemini-2.5-flash", (out * rng.uniform(0.0, 0.6, n)).astype(np.int64), 0)
    ttft_ms = rng.lognormal(np.log(450.0), 0.5, n)
    first = start + ttft_ms
    last = first + (out - reasoning - 1).clip(0) / speed * 1000.0
    streamed = rng.uniform(size=n) < 0.7
    untimed = rng.uniform(size=n) < 0.05  # collectors that lost the token times
    first = np.where(untimed, np.nan, first)
    last = np.where(untimed, np.nan, np.where(streamed, last, first))
    status = np.where(rng.uniform(size=n) < 0.02, "error", "ok").astype(object)
    service = np.array([f"svc-{i:02d}" for i in range(services)], dtype=object)[
        rng.integers(0, services, n)
    ]
    return {
        "requestId": np.array([f"req-{seed}-{i}" for i in range(n)], dtype=object),
        "service": service,
        "day": np.array([f"d{d}" for d in range(days)], dtype=object)[day],
        "platform": provider,
        "modelName": model,
        "startTime": start,
        "firstTokenTime": first,
        "lastTokenTime": last,
        "inputTokens": inp,
        "cachedInputTokens": cached,
        "outputTokens": out,
        "reasoningTokens": reasoning,
        "streamed": streamed,
        "status": status,
    }


__all__ = ["MODELS", "call_log"]

"""A seeded sweep of telemetry x deployment x region combinations for the estimator's tests.

Not a test module itself: ``tests/test_estimate_fast.py`` checks the one-record path
against the vectorised one on it, and ``bench/estimate.py`` can replay it.
"""

from __future__ import annotations

import random

from otm.deployment import Deployment
from otm.telemetry import Telemetry

__all__ = ["DEPLOYMENTS", "MODELS", "REGIONS", "sweep"]

# hosted closed models, open dense, MoE, hybrid (SSM), FP8 by id, unknown ids
MODELS: tuple[tuple[str, str | None], ...] = (
    ("gpt-4o", "openai"),
    ("o3-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("gemini-2.5-flash", "google"),
    ("llama-3.1-8b", None),
    ("meta-llama/Llama-3.1-8B-Instruct-FP8", None),
    ("llama-3.1-70b", "together"),
    ("llama-3.1-405b-instruct-fp8", None),
    ("Qwen/Qwen3-30B-A3B", None),
    ("qwen3-235b-a22b", "together"),
    ("gpt-oss-120b", None),
    ("deepseek-v3", "deepseek"),
    ("mixtral-8x7b", None),
    ("jamba-1.5-mini", None),
    ("nemotron-nano-9b-v2", None),
    ("gemma-3-27b", "google"),
    ("zz-unknown-model", None),
    ("zz-unknown-model", "unknown-co"),
)

DEPLOYMENTS: tuple[Deployment | None, ...] = (
    None,
    Deployment.accelerator_only("H100", 1),
    Deployment.accelerator_only("B200", 8),
    Deployment(accelerator="H200", count=4, region="FRA"),
    Deployment(accelerator="A100 80GB", count=2, engine="vllm-0.4"),
    Deployment(provider="local"),
    Deployment(provider="local", accelerator="RTX 4090"),
    Deployment(accelerator="tpu-v6e"),
    Deployment(region="IND", pue=1.4),
    Deployment(accelerator="H100", count=8, precision="fp8", expert_parallel=True),
    Deployment(accelerator="L4", count=1, batch=12.0),
    Deployment(grid_gco2e_per_kwh=50.0, water_l_per_kwh=0.5, include_host=False),
    Deployment(batch=12.0),
)

REGIONS: tuple[str | None, ...] = (None, "FRA", "US-VA", "aws:us-east-1", "nowhere")

_T0 = 1.7e9


def _telemetry(rng: random.Random, model: str, provider: str | None) -> Telemetry:
    inp = int(rng.lognormvariate(6.5, 1.5)) if rng.random() > 0.05 else 0
    out = int(rng.lognormvariate(5.0, 1.2)) + (0 if rng.random() < 0.05 else 1)
    cached = int(inp * rng.uniform(0.0, 0.9)) if rng.random() < 0.3 else 0
    reasoning = int(out * rng.uniform(0.0, 0.8)) if rng.random() < 0.2 else 0
    # inter-token latency from implausibly fast (beyond every assumption) to slow
    itl = 10 ** rng.uniform(-3.6, -0.7)
    ttft = rng.uniform(0.05, 3.0)
    kind = rng.random()
    start = _T0 + rng.uniform(0, 1e5)
    first: float | None = start + ttft
    last: float | None = first + max(out - reasoning - 1, 0) * itl  # type: ignore[operator]
    end: float | None = last
    streamed = True
    if kind < 0.15:  # not streamed: total latency only
        streamed, first = False, None
    elif kind < 0.22:  # no timings at all
        start = first = last = end = None  # type: ignore[assignment]
    elif kind < 0.27:  # a stream that ended before its last token was timed
        last = None
    return Telemetry(
        model=model,
        provider=provider,
        input_tokens=inp,
        cached_input_tokens=cached,
        output_tokens=out,
        reasoning_tokens=reasoning,
        reasoning_streamed=rng.random() < 0.3,
        start_time=start,
        first_token_time=first,
        last_token_time=last,
        end_time=end,
        streamed=streamed,
        status=rng.choice(("ok", "ok", "ok", "ok", "error", "cancelled")),
    )


def sweep(n: int, seed: int = 10) -> list[tuple[Telemetry, Deployment | None, str | None]]:
    """``n`` (telemetry, deployment, region) combinations, the same for a given seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        model, provider = rng.choice(MODELS)
        out.append((_telemetry(rng, model, provider), rng.choice(DEPLOYMENTS), rng.choice(REGIONS)))
    return out

"""The OpenTelemetry GenAI semantic conventions, as otm applies them to a record.

Pure functions (no OpenTelemetry import): the span's name and attributes, and
the metric points of one record, under one of two profiles:

* ``DEFAULT``: the GenAI conventions of semantic-conventions v1.41.0, the last
  release published in open-telemetry/semantic-conventions (client spans,
  ``gen_ai.client.token.usage``, ``gen_ai.client.operation.*`` metrics), plus
  the deprecated ``gen_ai.system`` that otm has always emitted, for backends
  that still group by it.
* ``LATEST``: the latest experimental conventions
  (open-telemetry/semantic-conventions-genai), chosen the way the conventions
  ask instrumentations to offer it: ``OTEL_SEMCONV_STABILITY_OPT_IN``
  containing ``gen_ai_latest_experimental``. Newer names
  (``gen_ai.client.inference.*`` metrics, per-kind usage counters,
  ``gen_ai.usage.cache_write.input_tokens``,
  ``gen_ai.response.time_to_first_chunk``) replace the old ones, which are not
  emitted, ``gen_ai.system`` included.

The table in docs/export.md lists every name with the test that checks it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otm.impact import Impact
    from otm.record import Record
    from otm.telemetry import Telemetry

__all__ = [
    "DEFAULT",
    "LATEST",
    "LATEST_OPT_IN",
    "OPT_IN_ENV",
    "Point",
    "Profile",
    "metric_attributes",
    "metric_points",
    "profile_from_env",
    "provider_name",
    "span_attributes",
    "span_name",
]

OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_OPT_IN = "gen_ai_latest_experimental"


@dataclass(frozen=True)
class Profile:
    """Which generation of the GenAI conventions to emit."""

    name: str
    latest: bool


DEFAULT = Profile("v1.41.0", latest=False)
LATEST = Profile(LATEST_OPT_IN, latest=True)


def profile_from_env(environ: Mapping[str, str] | None = None) -> Profile:
    """``LATEST`` when ``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``."""
    env = os.environ if environ is None else environ
    values = {v.strip().lower() for v in env.get(OPT_IN_ENV, "").split(",")}
    return LATEST if LATEST_OPT_IN in values else DEFAULT


# --------------------------------------------------------------------------- names and values

# Telemetry.operation -> gen_ai.operation.name (the Responses API is a chat operation).
_OPERATIONS = {
    "chat": "chat",
    "responses": "chat",
    "completion": "text_completion",
    "embeddings": "embeddings",
    "generate_content": "generate_content",
}
_INFERENCE = frozenset({"chat", "text_completion", "generate_content"})

# otm provider ids -> gen_ai.provider.name well-known values (Google and Azure by host below).
_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "azure-openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "watsonx": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai",
    "moonshot": "moonshot_ai",
}
_GOOGLE = frozenset({"google", "gemini", "google-genai", "google_genai", "genai", "vertex", "vertexai", "vertex_ai"})
# Self-hosted servers are named by what they are: the engine, when the user named it
# (wrap(..., provider="vllm")) or its port is the engine's own default.
_ENGINES = {
    "vllm": "vllm",
    "ollama": "ollama",
    "sglang": "sglang",
    "tgi": "tgi",
    "text-generation-inference": "tgi",
    "llamacpp": "llama.cpp",
    "llama-cpp": "llama.cpp",
    "llama.cpp": "llama.cpp",
    "lmstudio": "lm_studio",
    "lm-studio": "lm_studio",
}
_ENGINE_PORTS = {11434: "ollama"}
"""Default ports distinctive enough to name the server (Ollama's 11434)."""
# gen_ai.system (deprecated) used older spellings for some providers (conventions <= v1.36).
_LEGACY_SYSTEM = {"azure.ai.openai": "az.ai.openai", "azure.ai.inference": "az.ai.inference", "x_ai": "xai"}


def operation(t: Telemetry) -> str:
    return _OPERATIONS.get(t.operation, t.operation)


def provider_name(t: Telemetry) -> str:
    """``gen_ai.provider.name``: the well-known value where one applies, else otm's provider id."""
    p = (t.provider or "").strip().lower()
    host = (t.server_address or "").lower()
    if p in _GOOGLE:
        if host.endswith("aiplatform.googleapis.com"):
            return "gcp.vertex_ai"
        if host.endswith("generativelanguage.googleapis.com"):
            return "gcp.gemini"
        return "gcp.gen_ai"  # "any Google generative AI endpoint" when the backend is unknown
    if p in ("azure-openai", "azure", "azure_openai") and host.endswith(
        ("models.ai.azure.com", "inference.ai.azure.com", "services.ai.azure.com")
    ):
        return "azure.ai.inference"
    if p in _PROVIDERS:
        return _PROVIDERS[p]
    if p in _ENGINES:
        return _ENGINES[p]
    if p in ("local", "self-hosted", "selfhosted", ""):
        engine = _ENGINE_PORTS.get(t.server_port or -1)
        if engine:
            return engine
    return p or "_OTHER"


def request_model(t: Telemetry) -> str | None:
    """The model asked for (older records without ``request_model``: the one recorded)."""
    return t.request_model or t.model


def response_model(t: Telemetry) -> str | None:
    """The model the response named (older records: the one recorded)."""
    if t.request_model is None and t.response_model is None:
        return t.model
    return t.response_model


def span_name(record: Record) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``."""
    t = record.telemetry
    model = request_model(t)
    op = operation(t)
    return f"{op} {model}" if model else op


def error_type(t: Telemetry) -> str | None:
    if t.status != "error":
        return None
    if t.error_type:
        return t.error_type
    return str(t.http_status) if t.http_status else "_OTHER"


def _estimated(t: Telemetry, side: str) -> bool:
    # A capture that flags input and output estimates separately sets these;
    # otherwise one flag covers both.
    flag = getattr(t, f"{side}_tokens_estimated", None)
    return bool(t.tokens_estimated) if flag is None else bool(flag)


def _usage_known(t: Telemetry, side: str, *, estimated_ok: bool) -> bool:
    """Whether a token count is a provider-reported figure fit to export as gen_ai usage."""
    if _estimated(t, side) and not estimated_ok:
        return False
    count = t.input_tokens if side == "input" else t.output_tokens
    # A failed call's zero is "unknown", not "none used".
    return not (t.status != "ok" and count == 0)


# --------------------------------------------------------------------------- span


def _model_estimated(impact: Impact) -> bool | None:
    """Whether the model profile behind the estimate is itself estimated (not published)."""
    a = impact.assumptions
    if isinstance(a.get("model_estimated"), bool):
        return bool(a["model_estimated"])
    model = a.get("model")
    if not isinstance(model, Mapping):
        return None
    for key in ("estimated", "size_estimated"):
        if isinstance(model.get(key), bool):
            return bool(model[key])
    if isinstance(model.get("published"), bool):
        return not model["published"]
    basis = model.get("size") or model.get("source")
    if isinstance(basis, str):
        return not basis.lower().startswith("published")
    return None


def region_of(record: Record, impact: Impact | None) -> str | None:
    """The region the estimate used (its resolved id), else the one configured for the call."""
    if impact is not None:
        a = impact.assumptions
        for holder in (a.get("site"), a):
            r = holder.get("region") if isinstance(holder, Mapping) else None
            if isinstance(r, str) and r:
                return r
            if isinstance(r, Mapping):
                for key in ("id", "code", "key", "name"):
                    if isinstance(r.get(key), str) and r[key]:
                        return str(r[key])
    if record.region:
        return record.region
    dep = record.deployment
    return dep.region if dep is not None and dep.region else None


def span_attributes(
    record: Record,
    impact: Impact | None,
    profile: Profile = DEFAULT,
    *,
    estimated_tokens: bool = False,
) -> dict[str, Any]:
    """The span's attributes: GenAI conventions plus otm's figures (None values left out).

    Token counts otm estimated from text (no usage in the response) go to
    ``otm.usage.*_tokens.estimated``, not ``gen_ai.usage.*``, unless
    ``estimated_tokens``.
    """
    t = record.telemetry
    provider = provider_name(t)
    a: dict[str, Any] = {
        "gen_ai.operation.name": operation(t),
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": request_model(t),
        "gen_ai.response.model": response_model(t),
        "gen_ai.response.id": t.response_id,
        "gen_ai.response.finish_reasons": list(t.finish_reasons) if t.finish_reasons else None,
        "gen_ai.request.stream": t.streamed,
        "server.address": t.server_address,
        "server.port": t.server_port if t.server_address else None,
        "error.type": error_type(t),
        "otm.request_id": t.request_id,
        "otm.status": t.status,
        "otm.streamed": t.streamed,
        "otm.tokens_estimated": t.tokens_estimated,
        "otm.region": region_of(record, impact),
    }
    if not profile.latest:
        a["gen_ai.system"] = _LEGACY_SYSTEM.get(provider, provider)
    for side, count in (("input", t.input_tokens), ("output", t.output_tokens)):
        if _usage_known(t, side, estimated_ok=estimated_tokens):
            a[f"gen_ai.usage.{side}_tokens"] = count
        elif _estimated(t, side) and count:
            a[f"otm.usage.{side}_tokens.estimated"] = count
    if t.cached_input_tokens:
        a["gen_ai.usage.cache_read.input_tokens"] = t.cached_input_tokens
    if t.cache_write_input_tokens:
        key = "cache_write" if profile.latest else "cache_creation"
        a[f"gen_ai.usage.{key}.input_tokens"] = t.cache_write_input_tokens
    if t.reasoning_tokens:
        a["gen_ai.usage.reasoning.output_tokens"] = t.reasoning_tokens
    if t.streamed:
        ttfc = _time_to_first_chunk(t)
        if profile.latest and ttfc is not None:
            a["gen_ai.response.time_to_first_chunk"] = ttfc
        a["otm.ttft_s"] = t.ttft_s
        a["otm.output_tokens_per_s"] = t.output_tps
    if impact is not None:
        for key, rng in (
            ("otm.energy_wh", impact.energy_wh),
            ("otm.carbon_g", impact.carbon_g),
            ("otm.water_ml", impact.water_ml),
        ):
            a[key] = float(rng.value)
            a[f"{key}.low"] = float(rng.low)
            a[f"{key}.high"] = float(rng.high)
        for part, wh in impact.breakdown_wh.items():
            a[f"otm.energy_wh.{part}"] = float(wh)
        a["otm.model.estimated"] = _model_estimated(impact)
        if impact.cost_usd is not None:
            a["otm.cost_usd"] = float(impact.cost_usd)
        live = impact.assumptions.get("grid_live")
        if isinstance(live, Mapping):
            a["otm.grid.live"] = bool(live.get("used"))
            if live.get("used"):
                a["otm.grid.gco2e_per_kwh"] = live.get("gco2e_per_kwh")
                a["otm.grid.zone"] = live.get("zone")
    for k, v in record.tags.items():
        a[f"otm.tag.{k}"] = str(v)
    return {k: v for k, v in a.items() if v is not None}


# --------------------------------------------------------------------------- metrics


def metric_attributes(record: Record, profile: Profile = DEFAULT) -> dict[str, Any]:
    """Low-cardinality attributes shared by every GenAI metric point of a record."""
    t = record.telemetry
    a = {
        "gen_ai.operation.name": operation(t),
        "gen_ai.provider.name": provider_name(t),
        "gen_ai.request.model": request_model(t),
        "gen_ai.response.model": response_model(t),
        "server.address": t.server_address,
        "server.port": t.server_port if t.server_address else None,
        "error.type": error_type(t),
    }
    return {k: v for k, v in a.items() if v is not None}


@dataclass(frozen=True)
class Point:
    """One measurement for an instrument: ``value`` recorded ``repeat`` times."""

    instrument: str
    value: float
    attributes: Mapping[str, Any]
    repeat: int = 1


MAX_CHUNK_POINTS = 100_000
"""Upper bound on time-per-output-chunk points from one stream."""


def _time_to_first_chunk(t: Telemetry) -> float | None:
    if not t.streamed or t.start_time is None or t.first_chunk_time is None:
        return None
    return max(0.0, t.first_chunk_time - t.start_time)


def _time_per_chunk(t: Telemetry) -> tuple[float, int] | None:
    """(mean seconds between chunks after the first, number of such chunks) of a stream.

    otm keeps no per-chunk clock readings (the hot path only updates the first
    and last): every chunk after the first is recorded at the stream's mean,
    so the histogram's count and sum are exact and its spread within one
    stream is not.
    """
    n = t.chunk_count
    if not t.streamed or n is None or n < 2 or t.first_chunk_time is None:
        return None
    end = t.end_time if t.status == "ok" and t.end_time is not None else t.last_token_time
    if end is None or end < t.first_chunk_time:
        return None
    return (end - t.first_chunk_time) / (n - 1), min(n - 1, MAX_CHUNK_POINTS)


def metric_points(
    record: Record,
    impact: Impact | None,
    profile: Profile = DEFAULT,
    *,
    estimated_tokens: bool = False,
) -> list[Point]:
    """Every GenAI metric point of one record (otm's energy metrics are the exporter's)."""
    t = record.telemetry
    attrs = metric_attributes(record, profile)
    ok_attrs = {k: v for k, v in attrs.items() if k != "error.type"}
    op = operation(t)
    inference = op in _INFERENCE
    out: list[Point] = []
    if t.start_time is not None and t.end_time is not None:
        if not profile.latest:
            name = "gen_ai.client.operation.duration"
        elif inference:
            name = "gen_ai.client.inference.duration"
        elif op == "embeddings":
            name = "gen_ai.client.embeddings.duration"
        else:
            name = "gen_ai.client.operation.duration"
        out.append(Point(name, max(0.0, t.end_time - t.start_time), attrs))
    ttfc = _time_to_first_chunk(t)
    if ttfc is not None:
        name = (
            "gen_ai.client.inference.time_to_first_chunk"
            if profile.latest
            else "gen_ai.client.operation.time_to_first_chunk"
        )
        out.append(Point(name, ttfc, attrs))
    per_chunk = _time_per_chunk(t)
    if per_chunk is not None:
        name = (
            "gen_ai.client.inference.time_per_output_chunk"
            if profile.latest
            else "gen_ai.client.operation.time_per_output_chunk"
        )
        out.append(Point(name, per_chunk[0], attrs, repeat=per_chunk[1]))

    # Token usage: successful calls only, provider-reported counts only (unless opted in).
    if t.status != "ok":
        return out
    use_in = _usage_known(t, "input", estimated_ok=estimated_tokens)
    use_out = _usage_known(t, "output", estimated_ok=estimated_tokens) and op != "embeddings"
    if not profile.latest:
        if use_in:
            out.append(
                Point("gen_ai.client.token.usage", t.input_tokens, {**ok_attrs, "gen_ai.token.type": "input"})
            )
        if use_out:
            out.append(
                Point("gen_ai.client.token.usage", t.output_tokens, {**ok_attrs, "gen_ai.token.type": "output"})
            )
        return out
    if op == "embeddings":
        if use_in:
            out.append(Point("gen_ai.client.embeddings.operation.input_tokens", t.input_tokens, ok_attrs))
        return out
    if use_in:
        out.append(Point("gen_ai.client.inference.usage.input_tokens", t.input_tokens, ok_attrs))
        out.append(Point("gen_ai.client.inference.operation.input_tokens", t.input_tokens, ok_attrs))
        if t.cached_input_tokens:
            out.append(
                Point("gen_ai.client.inference.usage.cache_read.input_tokens", t.cached_input_tokens, ok_attrs)
            )
        if t.cache_write_input_tokens:
            out.append(
                Point(
                    "gen_ai.client.inference.usage.cache_write.input_tokens",
                    t.cache_write_input_tokens,
                    ok_attrs,
                )
            )
    if use_out:
        out.append(Point("gen_ai.client.inference.usage.output_tokens", t.output_tokens, ok_attrs))
        out.append(Point("gen_ai.client.inference.operation.output_tokens", t.output_tokens, ok_attrs))
        if t.reasoning_tokens:
            out.append(
                Point("gen_ai.client.inference.usage.reasoning.output_tokens", t.reasoning_tokens, ok_attrs)
            )
    return out


# Bucket advice from the GenAI conventions.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

# name -> (kind, unit, description, buckets); kind "histogram" or "counter"
INSTRUMENTS: dict[str, tuple[str, str, str, tuple[float, ...] | None]] = {
    # v1.41.0
    "gen_ai.client.token.usage": (
        "histogram", "{token}", "Number of input and output tokens used", TOKEN_BUCKETS
    ),
    "gen_ai.client.operation.duration": ("histogram", "s", "GenAI operation duration", DURATION_BUCKETS),
    "gen_ai.client.operation.time_to_first_chunk": (
        "histogram", "s", "Time to receive the first chunk of a streamed response", DURATION_BUCKETS
    ),
    "gen_ai.client.operation.time_per_output_chunk": (
        "histogram", "s", "Time between consecutive chunks of a streamed response", DURATION_BUCKETS
    ),
    # latest experimental
    "gen_ai.client.inference.duration": (
        "histogram", "s", "GenAI client inference operation duration", DURATION_BUCKETS
    ),
    "gen_ai.client.embeddings.duration": (
        "histogram", "s", "GenAI client embeddings operation duration", DURATION_BUCKETS
    ),
    "gen_ai.client.inference.time_to_first_chunk": (
        "histogram", "s", "Time to receive the first chunk of a streamed response", DURATION_BUCKETS
    ),
    "gen_ai.client.inference.time_per_output_chunk": (
        "histogram", "s", "Time between consecutive chunks of a streamed response", DURATION_BUCKETS
    ),
    "gen_ai.client.inference.usage.input_tokens": ("counter", "{token}", "Input tokens used", None),
    "gen_ai.client.inference.usage.output_tokens": ("counter", "{token}", "Output tokens used", None),
    "gen_ai.client.inference.usage.cache_read.input_tokens": (
        "counter", "{token}", "Input tokens served from a provider-managed cache", None
    ),
    "gen_ai.client.inference.usage.cache_write.input_tokens": (
        "counter", "{token}", "Input tokens written to a provider-managed cache", None
    ),
    "gen_ai.client.inference.usage.reasoning.output_tokens": (
        "counter", "{token}", "Output tokens used for reasoning", None
    ),
    "gen_ai.client.inference.operation.input_tokens": (
        "histogram", "{token}", "Input tokens per inference operation", TOKEN_BUCKETS
    ),
    "gen_ai.client.inference.operation.output_tokens": (
        "histogram", "{token}", "Output tokens per inference operation", TOKEN_BUCKETS
    ),
    "gen_ai.client.embeddings.operation.input_tokens": (
        "histogram", "{token}", "Input tokens per embeddings operation", TOKEN_BUCKETS
    ),
}

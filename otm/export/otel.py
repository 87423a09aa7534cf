"""OpenTelemetry export: one GenAI client span and a set of metrics per finished record.

    from otm.export.otel import OtelExporter

    exporter = OtelExporter().install()      # global providers, or pass your own
    ...                                      # every otm record becomes a span + metrics
    exporter.uninstall()                     # flushes what is queued

Spans follow the OpenTelemetry GenAI semantic conventions (``chat {model}``,
``gen_ai.*`` attributes) and carry otm's figures as ``otm.*`` attributes.
Estimating a record costs a little CPU, so by default records are handed to
a worker thread and estimated there, off the thread that made the call; the
queue is flushed on :meth:`OtelExporter.uninstall` and at interpreter exit.
The span is parented to the OpenTelemetry context that was current when the
call finished, so it nests under the user's own spans.

``opentelemetry-api`` is needed (``pip install 'otm[otel]'``); it is imported
when an exporter is created, never by ``import otm``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from otm._log import log_once

if TYPE_CHECKING:
    from otm.events import Delivery, Overflow
    from otm.impact import Impact
    from otm.record import Record

__all__ = ["OtelExporter", "metric_attributes", "span_attributes", "span_name"]

_SCOPE = "otm"

# Telemetry.operation -> gen_ai.operation.name (the Responses API is a chat operation).
_OPERATIONS = {
    "chat": "chat",
    "responses": "chat",
    "completion": "text_completion",
    "embeddings": "embeddings",
    "generate_content": "generate_content",
}

# otm provider ids -> gen_ai.provider.name well-known values; others pass through.
_PROVIDERS = {
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google-genai": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}

# Bucket advice from the GenAI semantic conventions for these two histograms.
_TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
_DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
# Per-request energy spans five decades (a short call to a small model ~1e-4 Wh,
# a long reasoning call to a frontier model ~10 Wh): half-decade buckets.
_ENERGY_BUCKETS = (
    1e-5,
    3e-5,
    1e-4,
    3e-4,
    1e-3,
    3e-3,
    0.01,
    0.03,
    0.1,
    0.3,
    1.0,
    3.0,
    10.0,
    30.0,
    100.0,
)


# --------------------------------------------------------------------------- attributes (pure)


def _operation(record: Record) -> str:
    return _OPERATIONS.get(record.telemetry.operation, record.telemetry.operation)


def _provider(record: Record) -> str:
    p = (record.telemetry.provider or "").strip()
    if not p:
        return "_OTHER"
    return _PROVIDERS.get(p.lower(), p.lower())


def span_name(record: Record) -> str:
    """``{operation} {model}``, as the GenAI conventions name client spans."""
    model = record.telemetry.model
    return f"{_operation(record)} {model}" if model else _operation(record)


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


def _region(record: Record, impact: Impact | None) -> str | None:
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


def _error_type(record: Record) -> str | None:
    t = record.telemetry
    if t.status != "error":
        return None
    if t.error_type:
        return t.error_type
    return str(t.http_status) if t.http_status else "_OTHER"


def span_attributes(record: Record, impact: Impact | None) -> dict[str, Any]:
    """The span's attributes: GenAI conventions plus otm's figures (None values left out)."""
    t = record.telemetry
    provider = _provider(record)
    a: dict[str, Any] = {
        "gen_ai.operation.name": _operation(record),
        "gen_ai.provider.name": provider,
        # Deprecated in the conventions in favour of gen_ai.provider.name; kept because
        # many backends still group GenAI spans by it.
        "gen_ai.system": provider,
        "gen_ai.request.model": t.model,
        "gen_ai.response.model": t.model,
        "gen_ai.response.id": t.request_id,
        "gen_ai.usage.input_tokens": t.input_tokens,
        "gen_ai.usage.output_tokens": t.output_tokens,
        "error.type": _error_type(record),
        "otm.status": t.status,
        "otm.streamed": t.streamed,
        "otm.tokens_estimated": t.tokens_estimated,
        "otm.ttft_s": t.ttft_s,
        "otm.region": _region(record, impact),
    }
    if t.cached_input_tokens:
        a["gen_ai.usage.cache_read.input_tokens"] = t.cached_input_tokens
    if t.reasoning_tokens:
        a["gen_ai.usage.reasoning.output_tokens"] = t.reasoning_tokens
    if t.output_tps is not None:
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
    for k, v in record.tags.items():
        a[f"otm.tag.{k}"] = str(v)
    return {k: v for k, v in a.items() if v is not None}


def metric_attributes(record: Record) -> dict[str, str]:
    """Low-cardinality attributes shared by every metric point of a record."""
    t = record.telemetry
    a = {
        "gen_ai.operation.name": _operation(record),
        "gen_ai.provider.name": _provider(record),
        "gen_ai.request.model": t.model,
        "gen_ai.response.model": t.model,
        "error.type": _error_type(record),
    }
    return {k: v for k, v in a.items() if v is not None}


def _ns(t: float) -> int:
    return round(t * 1e9)


# --------------------------------------------------------------------------- the exporter


class OtelExporter:
    """Turns every finished otm record into an OpenTelemetry span and metric points.

    ``tracer_provider`` / ``meter_provider``: where spans and metrics go
    (default: the globally configured ones). ``background``: estimate and
    export off the thread that finished the call (default), through a
    :class:`otm.events.Delivery`: the shared one (``otm.events.delivery()``)
    unless ``delivery`` names another, or ``max_queue`` / ``overflow`` ask
    for a dedicated one. Records beyond the queue's bound are dropped
    (counted, logged once) rather than slowing the caller.
    """

    def __init__(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        background: bool = True,
        delivery: Delivery | None = None,
        max_queue: int | None = None,
        overflow: Overflow | None = None,
        spans: bool = True,
        metrics: bool = True,
    ) -> None:
        try:
            from opentelemetry import context as otel_context
            from opentelemetry import metrics as otel_metrics
            from opentelemetry import trace as otel_trace
        except ImportError as exc:
            raise ImportError(
                "OpenTelemetry export needs opentelemetry-api: pip install 'otm[otel]'"
            ) from exc
        from otm import __version__
        from otm.events import Delivery
        from otm.events import delivery as shared_delivery

        self._ctx = otel_context
        self._trace = otel_trace
        self.background = background
        self._own_delivery = False
        self._delivery: Delivery | None = None
        if background:
            if delivery is not None:
                self._delivery = delivery
            elif max_queue is not None or overflow is not None:
                self._delivery = Delivery(
                    max_queue=max_queue if max_queue is not None else 10_000,
                    overflow=overflow or "drop_newest",
                    name="otm-otel-exporter",
                )
                self._own_delivery = True
            else:
                self._delivery = shared_delivery()
        self._tracer = None
        if spans:
            self._tracer = (
                tracer_provider.get_tracer(_SCOPE, __version__)
                if tracer_provider is not None
                else otel_trace.get_tracer(_SCOPE, __version__)
            )
        self._instruments: dict[str, Any] = {}
        if metrics:
            meter = (
                meter_provider.get_meter(_SCOPE, __version__)
                if meter_provider is not None
                else otel_metrics.get_meter(_SCOPE, __version__)
            )
            self._instruments = _make_instruments(meter)
        self._unsubscribe: Callable[..., None] | None = None
        self._lock = threading.Lock()
        self.exported = 0

    # --- lifecycle ---

    def install(self) -> OtelExporter:
        """Export every record finished from now on (idempotent)."""
        from otm.events import on_record

        with self._lock:
            if self._unsubscribe is not None:
                return self
            if self._delivery is not None:
                self._unsubscribe = self._delivery.subscribe(self._on_record)
            else:
                self._unsubscribe = on_record(self._on_record)
        return self

    def uninstall(self, timeout: float | None = 5.0) -> None:
        """Stop listening and export what is queued (up to ``timeout`` s)."""
        with self._lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            if self._delivery is not None:
                unsubscribe(timeout)  # waits for the records already queued
            else:
                unsubscribe()
        if self._own_delivery and self._delivery is not None:
            self._delivery.close(timeout)

    @property
    def installed(self) -> bool:
        return self._unsubscribe is not None

    @property
    def delivery(self) -> Delivery | None:
        """The queue records wait in (None when exporting on the caller's thread)."""
        return self._delivery

    @property
    def dropped(self) -> int:
        """Records the delivery queue dropped (for the shared queue: for all its listeners)."""
        return 0 if self._delivery is None else self._delivery.dropped

    def __enter__(self) -> OtelExporter:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every queued record is exported; False if ``timeout`` ran out first."""
        return True if self._delivery is None else self._delivery.flush(timeout)

    # --- the listener ---

    def _on_record(self, record: Record) -> None:
        # On the caller's thread (background=False), or on the delivery worker
        # inside a snapshot of the caller's context: either way the current
        # OpenTelemetry context is the caller's, so the span nests under theirs.
        try:
            ctx = self._ctx.get_current()
        except Exception:
            ctx = None
        self._export_safely(record, ctx)

    # --- export ---

    def _export_safely(self, record: Record, context: Any) -> None:
        try:
            self.export(record, context=context)
        except Exception as exc:
            log_once("export.otel", exc)

    def export(self, record: Record, *, context: Any = None) -> None:
        """Export one record now (also usable on records loaded from a log). May raise."""
        impact = record.impact  # estimates if not done yet; None if the estimator failed (logged)
        if self._tracer is not None:
            self._span(record, impact, context)
        if self._instruments:
            self._metrics(record, impact)
        self.exported += 1

    def _span(self, record: Record, impact: Impact | None, context: Any) -> None:
        t = record.telemetry
        end = t.end_time if t.end_time is not None else t.last_token_time
        start = t.start_time if t.start_time is not None else end
        if start is None:
            start = end = time.time()
        elif end is None:
            end = start
        span = self._tracer.start_span(  # type: ignore[union-attr]
            span_name(record),
            context=context,
            kind=self._trace.SpanKind.CLIENT,
            attributes=span_attributes(record, impact),
            start_time=_ns(start),
        )
        if t.status == "error":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, t.error_type or None))
        span.end(end_time=_ns(max(start, end)))

    def _metrics(self, record: Record, impact: Impact | None) -> None:
        t = record.telemetry
        ins = self._instruments
        attrs = metric_attributes(record)
        ins["tokens"].record(t.input_tokens, {**attrs, "gen_ai.token.type": "input"})
        ins["tokens"].record(t.output_tokens, {**attrs, "gen_ai.token.type": "output"})
        if t.start_time is not None and t.end_time is not None:
            ins["duration"].record(max(0.0, t.end_time - t.start_time), attrs)
        if t.streamed and t.ttft_s is not None:
            ins["ttft"].record(max(0.0, t.ttft_s), attrs)
        if impact is None:
            return
        region = _region(record, impact)
        iattrs = {k: v for k, v in attrs.items() if k != "error.type"}
        if region:
            iattrs["otm.region"] = region
        ins["energy"].add(max(0.0, impact.energy_wh.value), iattrs)
        ins["carbon"].add(max(0.0, impact.carbon_g.value), iattrs)
        ins["water"].add(max(0.0, impact.water_ml.value), iattrs)
        ins["energy_per_request"].record(max(0.0, impact.energy_wh.value), iattrs)

    def __repr__(self) -> str:
        return (
            f"<OtelExporter {'installed' if self.installed else 'not installed'} "
            f"background={self.background} exported={self.exported} dropped={self.dropped}>"
        )


def _histogram(
    meter: Any, name: str, unit: str, description: str, buckets: tuple[float, ...]
) -> Any:
    try:
        return meter.create_histogram(
            name,
            unit=unit,
            description=description,
            explicit_bucket_boundaries_advisory=list(buckets),
        )
    except TypeError:  # opentelemetry-api < 1.23 has no bucket advice
        return meter.create_histogram(name, unit=unit, description=description)


def _make_instruments(meter: Any) -> dict[str, Any]:
    return {
        "energy": meter.create_counter(
            "otm.energy", unit="Wh", description="Estimated energy of LLM calls"
        ),
        "carbon": meter.create_counter(
            "otm.carbon", unit="g", description="Estimated carbon (gCO2e) of LLM calls"
        ),
        "water": meter.create_counter(
            "otm.water", unit="mL", description="Estimated water of LLM calls"
        ),
        "energy_per_request": _histogram(
            meter, "otm.request.energy", "Wh", "Estimated energy per LLM call", _ENERGY_BUCKETS
        ),
        "tokens": _histogram(
            meter,
            "gen_ai.client.token.usage",
            "{token}",
            "Number of input and output tokens used",
            _TOKEN_BUCKETS,
        ),
        "duration": _histogram(
            meter,
            "gen_ai.client.operation.duration",
            "s",
            "GenAI operation duration",
            _DURATION_BUCKETS,
        ),
        "ttft": _histogram(
            meter,
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
            "Time from the request to the first chunk of a streamed response",
            _DURATION_BUCKETS,
        ),
    }

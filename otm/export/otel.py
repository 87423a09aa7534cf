"""OpenTelemetry export: one GenAI client span and a set of metrics per finished record.

    from otm.export.otel import OtelExporter

    exporter = OtelExporter().install()      # global providers, or pass your own
    ...                                      # every otm record becomes a span + metrics
    exporter.uninstall()                     # flushes what is queued

Spans and metrics follow the OpenTelemetry GenAI semantic conventions
(``otm.export.semconv``: v1.41.0 by default, the latest experimental names
with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``) and carry
otm's figures as ``otm.*`` attributes and metrics. Estimating a record costs a
little CPU, so by default records are queued on the background delivery
(``otm.events``) and estimated there, off the thread that made the call; the
queue is flushed on :meth:`OtelExporter.uninstall` and at interpreter exit.
The span is parented to the OpenTelemetry context that was current when the
call finished, so it nests under the user's own spans.

``opentelemetry-api`` is needed (``pip install 'otm[otel]'``); it is imported
when an exporter is created, never by ``import otm``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from otm._log import log_once
from otm.export.semconv import (
    DEFAULT,
    INSTRUMENTS,
    LATEST,
    Profile,
    metric_attributes,
    metric_points,
    profile_from_env,
    region_of,
    span_attributes,
    span_name,
)

if TYPE_CHECKING:
    from otm.events import Delivery, Overflow
    from otm.impact import Impact
    from otm.record import Record

__all__ = ["OtelExporter", "metric_attributes", "span_attributes", "span_name"]

_SCOPE = "otm"

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

    ``semconv``: ``"default"`` (the GenAI conventions of v1.41.0) or
    ``"latest"`` (the latest experimental names); None follows
    ``OTEL_SEMCONV_STABILITY_OPT_IN`` (``gen_ai_latest_experimental``).
    ``export_estimated_tokens``: also report token counts otm estimated from
    text (no usage in the response) as ``gen_ai.usage.*`` attributes and
    token metrics; by default they go to ``otm.usage.*.estimated`` only.
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
        semconv: str | None = None,
        export_estimated_tokens: bool = False,
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
        if semconv is None:
            self.profile: Profile = profile_from_env()
        elif semconv in ("default", DEFAULT.name):
            self.profile = DEFAULT
        elif semconv in ("latest", LATEST.name):
            self.profile = LATEST
        else:
            raise ValueError(f"semconv must be 'default' or 'latest', got {semconv!r}")
        self.export_estimated_tokens = export_estimated_tokens
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
        self._meter: Any = None
        self._instruments: dict[str, Any] = {}
        if metrics:
            self._meter = (
                meter_provider.get_meter(_SCOPE, __version__)
                if meter_provider is not None
                else otel_metrics.get_meter(_SCOPE, __version__)
            )
            self._instruments = _otm_instruments(self._meter)
        self._instruments_lock = threading.Lock()
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
        if self._meter is not None:
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
            attributes=span_attributes(
                record, impact, self.profile, estimated_tokens=self.export_estimated_tokens
            ),
            start_time=_ns(start),
        )
        if t.status == "error":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, t.error_type or None))
        span.end(end_time=_ns(max(start, end)))

    def _instrument(self, name: str) -> Any:
        ins = self._instruments.get(name)
        if ins is None:
            with self._instruments_lock:
                ins = self._instruments.get(name)
                if ins is None:
                    kind, unit, description, buckets = INSTRUMENTS[name]
                    if kind == "counter":
                        ins = self._meter.create_counter(name, unit=unit, description=description)
                    else:
                        ins = _histogram(self._meter, name, unit, description, buckets or ())
                    self._instruments[name] = ins
        return ins

    def _metrics(self, record: Record, impact: Impact | None) -> None:
        for p in metric_points(
            record, impact, self.profile, estimated_tokens=self.export_estimated_tokens
        ):
            ins = self._instrument(p.instrument)
            write = ins.add if INSTRUMENTS[p.instrument][0] == "counter" else ins.record
            attrs = dict(p.attributes)
            for _ in range(p.repeat):
                write(p.value, attrs)
        if impact is None:
            return
        iattrs = {
            k: v for k, v in metric_attributes(record, self.profile).items() if k != "error.type"
        }
        region = region_of(record, impact)
        if region:
            iattrs["otm.region"] = region
        ins = self._instruments
        ins["otm.energy"].add(max(0.0, impact.energy_wh.value), iattrs)
        ins["otm.carbon"].add(max(0.0, impact.carbon_g.value), iattrs)
        ins["otm.water"].add(max(0.0, impact.water_ml.value), iattrs)
        ins["otm.request.energy"].record(max(0.0, impact.energy_wh.value), iattrs)

    def __repr__(self) -> str:
        return (
            f"<OtelExporter {'installed' if self.installed else 'not installed'} "
            f"background={self.background} exported={self.exported} dropped={self.dropped}>"
        )


def _histogram(
    meter: Any, name: str, unit: str, description: str, buckets: tuple[float, ...]
) -> Any:
    if not buckets:
        return meter.create_histogram(name, unit=unit, description=description)
    try:
        return meter.create_histogram(
            name,
            unit=unit,
            description=description,
            explicit_bucket_boundaries_advisory=list(buckets),
        )
    except TypeError:  # opentelemetry-api < 1.23 has no bucket advice
        return meter.create_histogram(name, unit=unit, description=description)


def _otm_instruments(meter: Any) -> dict[str, Any]:
    return {
        "otm.energy": meter.create_counter(
            "otm.energy", unit="Wh", description="Estimated energy of LLM calls"
        ),
        "otm.carbon": meter.create_counter(
            "otm.carbon", unit="g", description="Estimated carbon (gCO2e) of LLM calls"
        ),
        "otm.water": meter.create_counter(
            "otm.water", unit="mL", description="Estimated water of LLM calls"
        ),
        "otm.request.energy": _histogram(
            meter, "otm.request.energy", "Wh", "Estimated energy per LLM call", _ENERGY_BUCKETS
        ),
    }

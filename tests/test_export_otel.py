"""OtelExporter with the OpenTelemetry SDK's in-memory exporters."""

from __future__ import annotations

import logging
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otm import events as otm_events
from otm.deployment import Deployment
from otm.events import emit
from otm.export.otel import OtelExporter, span_attributes, span_name
from otm.impact import Impact, Range
from otm.record import Record
from otm.telemetry import Telemetry

T0 = 1_700_000_000.0


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.exporters: list[OtelExporter] = []

    def exporter(self, **kw: Any) -> OtelExporter:
        e = OtelExporter(self.tracer_provider, self.meter_provider, **kw)
        self.exporters.append(e)
        return e

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for rm in data.resource_metrics if data is not None else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend(m.data.data_points)
        return out

    def unit(self, name: str) -> str:
        data = self.reader.get_metrics_data()
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        return str(m.unit)
        raise KeyError(name)


@pytest.fixture()
def otel() -> Iterator[Otel]:
    o = Otel()
    yield o
    for e in o.exporters:
        e.uninstall(timeout=2.0)
    o.tracer_provider.shutdown()
    o.meter_provider.shutdown()


def make_impact(wh: float = 0.3, *, assumptions: dict[str, Any] | None = None) -> Impact:
    return Impact(
        energy_wh=Range(value=wh, low=wh / 2, high=wh * 3),
        carbon_g=Range(value=wh * 50, low=wh * 20, high=wh * 120),
        water_ml=Range(value=wh * 2, low=wh, high=wh * 5),
        breakdown_wh={
            "accelerator": wh * 0.6,
            "host": wh * 0.2,
            "idle": wh * 0.1,
            "facility": wh * 0.1,
        },
        carbon_breakdown_g={"operational": wh * 45, "embodied": wh * 5},
        water_breakdown_ml={"onsite": wh, "offsite": wh},
        assumptions=assumptions
        if assumptions is not None
        else {"model": {"estimated": True}, "region": "FRA"},
    )


def make_record(
    *,
    wh: float | None = 0.3,
    status: str = "ok",
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    operation: str = "chat",
    tags: dict[str, str] | None = None,
    region: str | None = None,
    assumptions: dict[str, Any] | None = None,
    server: str | None = "api.openai.com",
) -> Record:
    t = Telemetry(
        provider=provider,
        model=model,
        request_model=model,
        response_model=f"{model}-2025-01-01" if status == "ok" else None,
        request_id="req_123",
        response_id="chatcmpl-123" if status == "ok" else None,
        finish_reasons=("stop",) if status == "ok" else None,
        server_address=server,
        server_port=443 if server else None,
        operation=operation,  # type: ignore[arg-type]
        start_time=T0,
        first_chunk_time=T0 + 0.35,
        chunk_count=83,
        first_token_time=T0 + 0.4,
        last_token_time=T0 + 2.4,
        end_time=T0 + 2.5,
        input_tokens=120,
        cached_input_tokens=20,
        output_tokens=81,
        reasoning_tokens=5,
        streamed=True,
        status=status,  # type: ignore[arg-type]
        error_type="RateLimitError" if status == "error" else None,
    )
    r = Record(t, region=region, tags=tags)
    if wh is not None:
        r._impact = make_impact(wh, assumptions=assumptions)
    return r


def test_span_carries_genai_and_otm_attributes(otel: Otel) -> None:
    otel.exporter(background=False).install()
    emit(make_record(tags={"team": "search"}))
    (span,) = otel.spans.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert span.start_time == int(T0 * 1e9) and span.end_time == int((T0 + 2.5) * 1e9)
    assert span.status.status_code == StatusCode.UNSET  # instrumentations leave success unset
    a = dict(span.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2025-01-01"
    assert a["gen_ai.response.id"] == "chatcmpl-123" and a["otm.request_id"] == "req_123"
    assert a["gen_ai.usage.input_tokens"] == 120 and a["gen_ai.usage.output_tokens"] == 81
    assert a["gen_ai.usage.cache_read.input_tokens"] == 20
    assert a["gen_ai.usage.reasoning.output_tokens"] == 5
    assert a["otm.energy_wh"] == pytest.approx(0.3)
    assert (a["otm.energy_wh.low"], a["otm.energy_wh.high"]) == pytest.approx((0.15, 0.9))
    assert (a["otm.carbon_g"], a["otm.carbon_g.low"], a["otm.carbon_g.high"]) == pytest.approx(
        (15, 6, 36)
    )
    assert (a["otm.water_ml"], a["otm.water_ml.low"], a["otm.water_ml.high"]) == pytest.approx(
        (0.6, 0.3, 1.5)
    )
    assert a["otm.energy_wh.accelerator"] == pytest.approx(0.18)
    assert a["otm.region"] == "FRA"
    assert a["otm.model.estimated"] is True
    assert a["otm.ttft_s"] == pytest.approx(0.4)
    assert a["otm.tag.team"] == "search"
    assert "error.type" not in a


def test_error_status_and_no_impact(otel: Otel) -> None:
    otel.exporter(background=False).install()
    emit(
        make_record(status="error", wh=None)
    )  # otm.estimate may not exist: impact None or computed
    (span,) = otel.spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "RateLimitError"
    assert span.attributes is not None and span.attributes["error.type"] == "RateLimitError"


def test_metrics_sum_and_histograms(otel: Otel) -> None:
    otel.exporter(background=False).install()
    emit(make_record(wh=0.3))
    emit(make_record(wh=0.2))
    emit(make_record(wh=1.0, model="claude-sonnet-4", provider="anthropic"))
    energy = {p.attributes["gen_ai.request.model"]: p for p in otel.points("otm.energy")}
    assert energy["gpt-4o-mini"].value == pytest.approx(0.5)
    assert energy["claude-sonnet-4"].value == pytest.approx(1.0)
    assert energy["claude-sonnet-4"].attributes["gen_ai.provider.name"] == "anthropic"
    assert energy["gpt-4o-mini"].attributes["otm.region"] == "FRA"
    carbon = {p.attributes["gen_ai.request.model"]: p.value for p in otel.points("otm.carbon")}
    water = {p.attributes["gen_ai.request.model"]: p.value for p in otel.points("otm.water")}
    assert carbon["gpt-4o-mini"] == pytest.approx(25.0) and water["gpt-4o-mini"] == pytest.approx(
        1.0
    )
    assert (otel.unit("otm.energy"), otel.unit("otm.carbon"), otel.unit("otm.water")) == (
        "Wh",
        "g",
        "mL",
    )
    per_req = [
        p
        for p in otel.points("otm.request.energy")
        if p.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    ]
    assert per_req[0].count == 2 and per_req[0].sum == pytest.approx(0.5)
    tokens = {
        (p.attributes["gen_ai.request.model"], p.attributes["gen_ai.token.type"]): p
        for p in otel.points("gen_ai.client.token.usage")
    }
    assert (
        tokens[("gpt-4o-mini", "input")].sum == 240 and tokens[("gpt-4o-mini", "input")].count == 2
    )
    assert tokens[("gpt-4o-mini", "output")].sum == 162
    (dur,) = [
        p
        for p in otel.points("gen_ai.client.operation.duration")
        if p.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    ]
    assert dur.count == 2 and dur.sum == pytest.approx(5.0)
    assert otel.unit("gen_ai.client.operation.duration") == "s"
    ttft = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert sum(p.count for p in ttft) == 3 and sum(p.sum for p in ttft) == pytest.approx(1.05)


def test_background_estimates_off_the_calling_thread(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    fake = types.ModuleType("otm.estimate")

    def estimate(
        telemetry: Telemetry, *, deployment: Deployment | None = None, region: str | None = None
    ) -> Impact:
        threads.append(threading.current_thread().name)
        return make_impact(0.05)

    fake.estimate = estimate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "otm.estimate", fake)
    exporter = otel.exporter().install()  # background by default
    records = [make_record(wh=None) for _ in range(5)]
    for r in records:
        emit(r)
    assert exporter.flush(5.0)
    assert len(otel.spans.get_finished_spans()) == 5
    assert threads == ["otm-delivery"] * 5  # the shared background delivery's worker
    assert exporter.delivery is otm_events.delivery()
    assert all(r._impact is not None for r in records)  # cached on the record for everyone else
    exporter.uninstall()
    emit(make_record())
    assert len(otel.spans.get_finished_spans()) == 5  # no longer listening


def test_uninstall_flushes_the_queue(otel: Otel, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("otm.estimate")

    def slow(telemetry: Telemetry, **kw: Any) -> Impact:
        time.sleep(0.02)
        return make_impact()

    fake.estimate = slow  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "otm.estimate", fake)
    exporter = otel.exporter().install()
    t = time.perf_counter()
    for _ in range(8):
        emit(make_record(wh=None))
    assert time.perf_counter() - t < 0.1  # the caller did not wait for the estimates
    exporter.uninstall(timeout=5.0)
    assert len(otel.spans.get_finished_spans()) == 8


def test_span_nests_under_the_callers_span(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    for background in (False, True):
        otel.spans.clear()
        exporter = otel.exporter(background=background).install()
        with tracer.start_as_current_span("handle-request") as parent:
            emit(make_record())
        exporter.uninstall()
        child = next(s for s in otel.spans.get_finished_spans() if s.name.startswith("chat"))
        assert child.parent is not None
        assert child.parent.span_id == parent.get_span_context().span_id
        assert child.context.trace_id == parent.get_span_context().trace_id


def test_exporter_failure_never_reaches_the_caller(
    otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenTracer:
        def start_span(self, *a: Any, **kw: Any) -> Any:
            raise RuntimeError("collector down")

    class BrokenProvider:
        def get_tracer(self, *a: Any, **kw: Any) -> BrokenTracer:
            return BrokenTracer()

    caplog.set_level(logging.WARNING, logger="otm")
    for background in (False, True):
        exporter = OtelExporter(
            BrokenProvider(), otel.meter_provider, background=background
        ).install()
        otel.exporters.append(exporter)
        for _ in range(3):
            emit(make_record())  # must not raise
        exporter.uninstall()
    failures = [r for r in caplog.records if "export.otel" in r.getMessage()]
    assert len(failures) == 1  # once per (where, exception type), not once per record


def test_events_guard_logs_a_raising_listener_once(
    otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    # The last line of defence, in otm.events: even a listener that raises past its own
    # guard (here: the exporter's guard itself broken) never reaches the caller.
    exporter = otel.exporter(background=False)

    def boom(record: Record, context: Any) -> None:
        raise ValueError("broken guard")

    exporter._export_safely = boom  # type: ignore[method-assign]
    exporter.install()
    caplog.set_level(logging.WARNING, logger="otm")
    for _ in range(3):
        emit(make_record())
    logged = [r for r in caplog.records if "listener" in r.getMessage()]
    assert len(logged) == 1


def test_full_queue_drops_instead_of_blocking(
    otel: Otel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    started = threading.Event()
    fake = types.ModuleType("otm.estimate")

    def blocked(telemetry: Telemetry, **kw: Any) -> Impact:
        started.set()
        gate.wait(5)
        return make_impact()

    fake.estimate = blocked  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "otm.estimate", fake)
    caplog.set_level(logging.WARNING, logger="otm")
    exporter = otel.exporter(max_queue=1).install()
    emit(make_record(wh=None))
    assert started.wait(5)  # the worker holds the first record
    emit(make_record(wh=None))  # queued
    emit(make_record(wh=None))  # dropped
    emit(make_record(wh=None))  # dropped
    assert exporter.dropped == 2
    assert sum("is full" in r.getMessage() for r in caplog.records) == 1
    gate.set()
    assert exporter.flush(5.0)
    assert len(otel.spans.get_finished_spans()) == 2
    exporter.uninstall()
    # a dedicated queue (max_queue given) has its own worker, stopped on uninstall
    assert not any(t.name == "otm-otel-exporter" for t in threading.enumerate())


def test_install_is_idempotent_and_a_context_manager(otel: Otel) -> None:
    exporter = otel.exporter(background=False)
    exporter.install()
    exporter.install()
    emit(make_record())
    assert len(otel.spans.get_finished_spans()) == 1
    exporter.uninstall()
    with otel.exporter(background=False) as e2:
        assert e2.installed
        emit(make_record())
    assert not e2.installed
    assert len(otel.spans.get_finished_spans()) == 2


def test_export_directly_and_spans_or_metrics_only(otel: Otel) -> None:
    only_metrics = otel.exporter(spans=False)
    only_metrics.export(make_record())
    assert otel.spans.get_finished_spans() == ()
    assert otel.points("otm.energy")[0].value == pytest.approx(0.3)
    only_spans = OtelExporter(otel.tracer_provider, otel.meter_provider, metrics=False)
    only_spans.export(make_record())
    assert len(otel.spans.get_finished_spans()) == 1


def test_attribute_mapping() -> None:
    r = make_record(
        provider="google",
        model="gemini-2.5-flash",
        operation="generate_content",
        assumptions={"model": {"source": "published"}, "region": {"code": "US-VA"}},
        server="generativelanguage.googleapis.com",
    )
    a = span_attributes(r, r._impact)
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.operation.name"] == "generate_content"
    assert span_name(r) == "generate_content gemini-2.5-flash"
    assert a["otm.model.estimated"] is False
    assert a["otm.region"] == "US-VA"
    # the estimator's own layout
    est = make_record(
        assumptions={
            "model": {"size": "estimated (scaled)", "size_estimated": True},
            "site": {"region": "aws:us-east-1"},
        }
    )
    a_est = span_attributes(est, est._impact)
    assert a_est["otm.model.estimated"] is True and a_est["otm.region"] == "aws:us-east-1"
    pub = make_record(assumptions={"model": {"size": "published"}})
    assert span_attributes(pub, pub._impact)["otm.model.estimated"] is False
    resp = make_record(operation="responses", region="DEU", assumptions={})
    a2 = span_attributes(resp, resp._impact)
    assert a2["gen_ai.operation.name"] == "chat"
    assert a2["otm.region"] == "DEU"  # from the record when the estimate does not say
    assert "otm.model.estimated" not in a2  # unknown: left out, never a None value
    bare = span_attributes(make_record(wh=None), None)
    assert "otm.energy_wh" not in bare and all(v is not None for v in bare.values())


def test_missing_opentelemetry_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"otm\[otel\]"):
        OtelExporter()


def test_import_otm_does_not_import_opentelemetry() -> None:
    import subprocess

    code = (
        "import sys, otm, otm.export, otm.measure; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'pynvml')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

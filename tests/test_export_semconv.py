"""Conformance of the OpenTelemetry export to the GenAI semantic conventions.

Real SDK calls against the embedded fake provider, exported through the
OpenTelemetry SDK: to its in-memory span and metric exporters, and over OTLP/HTTP
(protobuf) to a receiver on 127.0.0.1 that decodes what arrives. Each test
name is cited in the conformance table of docs/export.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import otm
from otm.export.otel import OtelExporter
from otm.export.semconv import (
    LATEST,
    metric_points,
    profile_from_env,
    provider_name,
    span_attributes,
)
from otm.record import Record
from otm.telemetry import Telemetry
from otm.testing.server import scenario_headers as H

MESSAGES = [{"role": "user", "content": "Say hello."}]
T0 = 1_700_000_000.0


class Otel:
    def __init__(self, **exporter: Any) -> None:
        self.spans = InMemorySpanExporter()
        self.tp = TracerProvider()
        self.tp.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.mp = MeterProvider(metric_readers=[self.reader])
        self.exporter = OtelExporter(self.tp, self.mp, background=False, **exporter)

    def span(self) -> Any:
        (s,) = self.spans.get_finished_spans()
        return s

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data is not None else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.setdefault(m.name, []).extend(m.data.data_points)
        return out

    def close(self) -> None:
        self.exporter.uninstall()
        self.tp.shutdown()
        self.mp.shutdown()


@pytest.fixture()
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    otm.instrument()
    o = Otel()
    o.exporter.install()
    yield o
    o.close()
    otm.uninstrument()


@pytest.fixture()
def oai(server: Any) -> Iterator[Any]:
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    yield c
    c.close()


def _scenario(**kw: Any) -> dict[str, str]:
    return H(model="served-model-2025", request_id="req_http_1", **kw)


# --------------------------------------------------------------------------- spans


def test_span_names_the_requested_model_and_the_served_one(otel: Otel, oai: Any, server: Any) -> None:
    oai.chat.completions.create(model="asked-model", messages=MESSAGES, extra_headers=_scenario())
    s = otel.span()
    a = dict(s.attributes)
    assert s.name == "chat asked-model" and s.kind == SpanKind.CLIENT
    assert a["gen_ai.request.model"] == "asked-model"
    assert a["gen_ai.response.model"] == "served-model-2025"
    assert a["gen_ai.response.id"].startswith("chatcmpl-")
    assert a["otm.request_id"] == "req_http_1"  # the HTTP request id is otm's, not gen_ai's
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == server.port
    assert a["gen_ai.request.stream"] is False
    assert a["gen_ai.provider.name"] == "local"  # a server on this machine, engine unnamed


def test_non_streamed_span_has_no_ttft(otel: Otel, oai: Any) -> None:
    oai.chat.completions.create(model="m", messages=MESSAGES)
    a = dict(otel.span().attributes)
    assert "otm.ttft_s" not in a and "otm.output_tokens_per_s" not in a
    assert "gen_ai.client.operation.time_to_first_chunk" not in otel.metrics()
    assert "gen_ai.client.operation.time_per_output_chunk" not in otel.metrics()


def test_anthropic_span_cache_creation_and_stop_reason(otel: Otel, server: Any) -> None:
    c = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", max_retries=0)
    for _ in c.messages.create(
        model="claude-asked",
        max_tokens=64,
        messages=MESSAGES,
        stream=True,
        extra_headers=H(input_tokens=50, cached_input_tokens=10, cache_write_tokens=20),
    ):
        pass
    c.close()
    a = dict(otel.span().attributes)
    assert otel.span().name == "chat claude-asked"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "anthropic"
    assert a["gen_ai.response.id"].startswith("msg_")
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert a["gen_ai.usage.input_tokens"] == 50
    assert a["gen_ai.usage.cache_read.input_tokens"] == 10
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 20
    assert a["gen_ai.request.stream"] is True


def test_gemini_span_provider_and_response_id(otel: Otel, server: Any) -> None:
    from google.genai import types

    c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server.gemini_base_url))
    c.models.generate_content(
        model="gemini-asked",
        contents="Say hello.",
        config=types.GenerateContentConfig(
            http_options=types.HttpOptions(headers=H(request_id="gem-resp-1"))
        ),
    )
    s = otel.span()
    a = dict(s.attributes)
    assert s.name == "generate_content gemini-asked"
    assert a["gen_ai.operation.name"] == "generate_content"
    assert a["gen_ai.response.id"] == "gem-resp-1"
    assert a["gen_ai.response.finish_reasons"] == ("STOP",)
    # the Gemini API shape at a host that is neither AI Studio nor Vertex AI
    assert a["gen_ai.provider.name"] == "gcp.gen_ai"


@pytest.mark.parametrize(
    ("provider", "host", "port", "name", "legacy"),
    [
        ("openai", "api.openai.com", 443, "openai", "openai"),
        ("azure-openai", "x.openai.azure.com", 443, "azure.ai.openai", "az.ai.openai"),
        ("azure-openai", "x.services.ai.azure.com", 443, "azure.ai.inference", "az.ai.inference"),
        ("anthropic", "api.anthropic.com", 443, "anthropic", "anthropic"),
        ("google", "generativelanguage.googleapis.com", 443, "gcp.gemini", "gcp.gemini"),
        ("google", "us-central1-aiplatform.googleapis.com", 443, "gcp.vertex_ai", "gcp.vertex_ai"),
        ("google", None, None, "gcp.gen_ai", "gcp.gen_ai"),
        ("bedrock", "bedrock-runtime.us-east-1.amazonaws.com", 443, "aws.bedrock", "aws.bedrock"),
        ("mistral", "api.mistral.ai", 443, "mistral_ai", "mistral_ai"),
        ("xai", "api.x.ai", 443, "x_ai", "xai"),
        ("deepseek", "api.deepseek.com", 443, "deepseek", "deepseek"),
        ("groq", "api.groq.com", 443, "groq", "groq"),
        ("vllm", "gpu-box", 8000, "vllm", "vllm"),
        ("local", "localhost", 11434, "ollama", "ollama"),
        ("local", "localhost", 8000, "local", "local"),
        ("together", "api.together.xyz", 443, "together", "together"),
    ],
)
def test_provider_name_well_known_values(
    provider: str, host: str | None, port: int | None, name: str, legacy: str
) -> None:
    t = Telemetry(provider=provider, model="m", server_address=host, server_port=port)
    assert provider_name(t) == name
    a = span_attributes(Record(t), None)
    assert a["gen_ai.provider.name"] == name and a["gen_ai.system"] == legacy


def test_failed_call_span_status_and_no_token_usage(otel: Otel, oai: Any) -> None:
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="asked-model", messages=MESSAGES, extra_headers=H(status=429))
    s = otel.span()
    a = dict(s.attributes)
    assert s.status.status_code == StatusCode.ERROR
    assert a["error.type"] == "openai.RateLimitError"
    assert "gen_ai.response.model" not in a and "gen_ai.response.id" not in a
    assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.output_tokens" not in a
    m = otel.metrics()
    assert "gen_ai.client.token.usage" not in m
    (dur,) = m["gen_ai.client.operation.duration"]
    assert dur.attributes["error.type"] == "openai.RateLimitError"


# --------------------------------------------------------------------------- metrics


def test_time_to_first_chunk_is_the_first_chunk_not_the_first_token(
    otel: Otel, oai: Any, records: list[Any]
) -> None:
    stream = oai.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    first = next(stream)  # openai's first chunk is role-only: no token yet
    assert not first.choices[0].delta.content
    time.sleep(0.2)
    for _ in stream:
        pass
    t = records[-1].telemetry
    m = otel.metrics()
    (ttfc,) = m["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.count == 1
    assert ttfc.sum == pytest.approx(t.first_chunk_time - t.start_time, abs=1e-6)
    assert ttfc.sum < t.ttft_s - 0.15  # the first token came >= 200 ms later
    a = dict(otel.span().attributes)
    assert a["otm.ttft_s"] == pytest.approx(t.ttft_s)


def test_time_per_output_chunk_counts_every_chunk_after_the_first(
    otel: Otel, oai: Any, records: list[Any]
) -> None:
    for _ in oai.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=H(output_tokens=12, gap_s=0.01),
    ):
        pass
    t = records[-1].telemetry
    (p,) = otel.metrics()["gen_ai.client.operation.time_per_output_chunk"]
    assert p.count == t.chunk_count - 1 >= 12
    assert p.sum == pytest.approx(t.end_time - t.first_chunk_time, rel=1e-6)


def test_token_usage_metric_of_a_successful_call(otel: Otel, oai: Any) -> None:
    oai.chat.completions.create(
        model="asked-model", messages=MESSAGES, extra_headers=_scenario(input_tokens=33, output_tokens=7)
    )
    points = {p.attributes["gen_ai.token.type"]: p for p in otel.metrics()["gen_ai.client.token.usage"]}
    assert points["input"].sum == 33 and points["output"].sum == 7
    attrs = points["input"].attributes
    assert attrs["gen_ai.request.model"] == "asked-model"
    assert attrs["gen_ai.response.model"] == "served-model-2025"
    assert attrs["server.address"] == "127.0.0.1" and "error.type" not in attrs


def test_estimated_token_counts_are_not_exported_as_usage(oai: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    otm.instrument()
    try:
        for opted_in in (False, True):
            o = Otel(export_estimated_tokens=opted_in)
            o.exporter.install()
            # a stream without usage: otm counts tokens from the text (an estimate)
            for _ in oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
                pass
            a = dict(o.span().attributes)
            m = o.metrics()
            o.close()
            assert a["otm.tokens_estimated"] is True
            if opted_in:
                assert a["gen_ai.usage.output_tokens"] > 0
                assert "gen_ai.client.token.usage" in m
            else:
                assert "gen_ai.usage.output_tokens" not in a and "gen_ai.usage.input_tokens" not in a
                assert a["otm.usage.output_tokens.estimated"] > 0
                assert "gen_ai.client.token.usage" not in m
    finally:
        otm.uninstrument()


# --------------------------------------------------------------------------- OTEL_SEMCONV_STABILITY_OPT_IN


def test_opt_in_parsing() -> None:
    assert profile_from_env({}).latest is False
    assert profile_from_env({"OTEL_SEMCONV_STABILITY_OPT_IN": "http, gen_ai_latest_experimental"}).latest
    assert not profile_from_env({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,database"}).latest


def test_latest_experimental_names_on_opt_in(
    server: Any, oai: Any, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    otm.instrument()
    o = Otel()
    o.exporter.install()
    try:
        assert o.exporter.profile is LATEST
        for _ in oai.chat.completions.create(
            model="asked-model",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=H(input_tokens=40, cached_input_tokens=8, cache_write_tokens=4, reasoning_tokens=3),
        ):
            pass
        a = dict(o.span().attributes)
        m = o.metrics()
    finally:
        o.close()
        otm.uninstrument()
    t = records[-1].telemetry
    assert "gen_ai.system" not in a  # the deprecated attribute is not emitted
    assert a["gen_ai.usage.cache_write.input_tokens"] == 4
    assert "gen_ai.usage.cache_creation.input_tokens" not in a
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(t.first_chunk_time - t.start_time)
    for old in (
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
    ):
        assert old not in m
    assert m["gen_ai.client.inference.duration"][0].count == 1
    assert m["gen_ai.client.inference.time_to_first_chunk"][0].count == 1
    assert m["gen_ai.client.inference.time_per_output_chunk"][0].count == t.chunk_count - 1
    assert m["gen_ai.client.inference.usage.input_tokens"][0].value == 40
    assert m["gen_ai.client.inference.usage.cache_read.input_tokens"][0].value == 8
    assert m["gen_ai.client.inference.usage.cache_write.input_tokens"][0].value == 4
    assert m["gen_ai.client.inference.usage.reasoning.output_tokens"][0].value == 3
    assert m["gen_ai.client.inference.operation.output_tokens"][0].sum == t.output_tokens


def test_latest_embeddings_names() -> None:
    t = Telemetry(
        provider="openai", model="text-embedding-3-small", operation="embeddings",
        start_time=T0, end_time=T0 + 0.1, input_tokens=9,
    )
    names = {p.instrument for p in metric_points(Record(t), None, LATEST)}
    assert names == {"gen_ai.client.embeddings.duration", "gen_ai.client.embeddings.operation.input_tokens"}


# --------------------------------------------------------------------------- OTLP over HTTP


class OtlpReceiver:
    """A stdlib HTTP server on 127.0.0.1 that decodes OTLP/HTTP protobuf exports."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans: list[Any] = []
        self.metrics: list[Any] = []
        self.content_types: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.content_types.add(self.headers.get("Content-Type", ""))
                if self.path == "/v1/traces":
                    req = ExportTraceServiceRequest()
                    req.ParseFromString(body)
                    for rs in req.resource_spans:
                        for ss in rs.scope_spans:
                            receiver.spans.extend(ss.spans)
                elif self.path == "/v1/metrics":
                    req2 = ExportMetricsServiceRequest()
                    req2.ParseFromString(body)
                    for rm in req2.resource_metrics:
                        for sm in rm.scope_metrics:
                            receiver.metrics.extend(sm.metrics)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    return getattr(v, kind)


def test_otlp_http_export_reaches_a_collector(
    server: Any, oai: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    rx = OtlpReceiver()
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{rx.url}/v1/traces")))
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{rx.url}/v1/metrics"), export_interval_millis=60_000
    )
    mp = MeterProvider(metric_readers=[reader])
    otm.instrument()
    exporter = OtelExporter(tp, mp).install()  # background delivery, as users run it
    try:
        oai.chat.completions.create(model="asked-model", messages=MESSAGES, extra_headers=_scenario())
        for _ in oai.chat.completions.create(
            model="asked-model",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=_scenario(),
        ):
            pass
        assert exporter.flush(10.0)
        assert tp.force_flush(10_000) and mp.force_flush(10_000)
    finally:
        exporter.uninstall()
        otm.uninstrument()
        tp.shutdown()
        mp.shutdown()
        rx.stop()
    assert "application/x-protobuf" in rx.content_types
    assert len(rx.spans) == 2
    for span in rx.spans:
        a = {kv.key: _value(kv.value) for kv in span.attributes}
        assert span.name == "chat asked-model"
        assert span.kind == 3  # SPAN_KIND_CLIENT
        assert a["gen_ai.request.model"] == "asked-model"
        assert a["gen_ai.response.model"] == "served-model-2025"
        assert a["gen_ai.response.id"].startswith("chatcmpl-")
        assert a["gen_ai.response.finish_reasons"] == ("stop",)  # a string array on the wire
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == server.port  # an int
        assert isinstance(a["gen_ai.request.stream"], bool)
        assert a["otm.energy_wh"] > 0
    names = {m.name for m in rx.metrics}
    assert {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
        "otm.energy",
        "otm.carbon",
        "otm.water",
    } <= names
    usage = next(m for m in rx.metrics if m.name == "gen_ai.client.token.usage")
    assert usage.unit == "{token}"
    assert sum(dp.count for dp in usage.histogram.data_points) == 4  # 2 calls x input/output


def test_every_test_the_conformance_table_cites_exists() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent
    doc = (root.parent / "docs" / "export.md").read_text(encoding="utf-8")
    cited = re.findall(r"`(semconv|otel)::(test_\w+)`", doc)
    assert len(cited) > 20
    files = {"semconv": "test_export_semconv.py", "otel": "test_export_otel.py"}
    missing = [
        f"{f}::{name}"
        for f, name in cited
        if f"def {name}(" not in (root / files[f]).read_text(encoding="utf-8")
    ]
    assert not missing, missing

"""Export every otm record to OpenTelemetry: one GenAI client span plus metrics per call.

Spans follow the GenAI semantic conventions (``chat gpt-4o-mini``,
``gen_ai.*``) and carry otm's figures as ``otm.*`` attributes; metrics add
``otm.energy`` / ``otm.carbon`` / ``otm.water`` counters. Here the spans and
metrics go to in-memory exporters so we can print them; in production pass
your own providers (OTLP exporter) or let it use the global ones.

Needs ``pip install 'otm[otel]'``; skips cleanly without it. Runs offline
against an embedded fake of the OpenAI API.
"""

import sys

try:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
except ImportError:
    print("opentelemetry-sdk is not installed (pip install 'otm[otel]'): skipping")
    sys.exit(0)

import openai

import otm
from otm.export import OtelExporter
from otm.testing import FakeProviderServer, Scenario
from otm.units import fmt_range, sig

spans = InMemorySpanExporter()  # e.g. OTLPSpanExporter() in production
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
metrics = InMemoryMetricReader()
meter_provider = MeterProvider(metric_readers=[metrics])

otm.instrument("openai")
fake = Scenario(ttfb_s=0.2, gap_s=0.01, input_tokens=30, output_tokens=40)
# OtelExporter as a context manager: install() on entry, uninstall() (which flushes) on exit
with OtelExporter(tracer_provider, meter_provider), FakeProviderServer(fake) as server:
    client = otm.wrap(  # fake server only: it is on 127.0.0.1, otherwise "local"
        openai.OpenAI(base_url=server.openai_base_url, api_key="fake-key"),
        provider="openai",
        tags={"team": "search"},
    )
    for _ in range(2):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass

for span in spans.get_finished_spans():
    a = span.attributes
    energy = fmt_range(
        "energy",
        otm.Range(value=a["otm.energy_wh"], low=a["otm.energy_wh.low"], high=a["otm.energy_wh.high"]),
    )
    tokens = f"{a['gen_ai.usage.input_tokens']} in / {a['gen_ai.usage.output_tokens']} out"
    print(f"span {span.name!r}: {tokens}, otm.energy_wh={energy}, team={a['otm.tag.team']}")

for rm in metrics.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for metric in sm.metrics:
            if metric.name in ("otm.energy", "otm.carbon", "otm.water"):
                total = sum(p.value for p in metric.data.data_points)
                print(f"metric {metric.name}: {sig(total)} {metric.unit}")

"""Streams without usage: chunk timing for the inter-token latency, and each estimate flagged on its side.

A chat stream without ``stream_options.include_usage`` carries no counts:
capture estimates both from text, flags input and output separately, and
paces the decode by the exact count of content chunks, not by the estimate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

openai = pytest.importorskip("openai")

import otm
from otm.testing.server import scenario_headers as H

GAP = 0.02
N = 20
# Long words: a text-based count is far from the 20 chunks the server streamed.
TEXT = "internationalization " * N


@pytest.fixture()
def client(server: Any) -> Iterator[Any]:
    otm.instrument(["openai"])
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    for _ in c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "w"}], stream=True):
        pass  # the SDK's first-use costs
    yield c
    otm.uninstrument()


def _stream(client: Any, **extra: Any) -> Any:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Count for me, please."}],
        stream=True,
        extra_headers=H(output_tokens=N, text=TEXT, gap_s=GAP, ttfb_s=0.05),
        **extra,
    )
    for _ in stream:
        pass
    return stream.otm.telemetry


def test_itl_without_usage_follows_the_chunks(client: Any, records: list[Any]) -> None:
    t = _stream(client)
    assert t.output_tokens_estimated and t.input_tokens_estimated and t.tokens_estimated
    assert t.output_tokens != N  # the text-based estimate misses the real count ...
    assert t.content_chunk_count == N  # ... while the chunks are counted exactly
    assert t.chunk_count >= N
    assert t.inter_chunk_latency_s == pytest.approx(t.decode_s / (N - 1))
    # the pace the server set, not decode / (estimated tokens - 1)
    assert t.itl_s == pytest.approx(GAP, rel=0.35)
    assert t.output_tps == pytest.approx(1 / t.itl_s)


def test_measured_usage_is_not_flagged_and_paces_by_tokens(client: Any, records: list[Any]) -> None:
    t = _stream(client, stream_options={"include_usage": True})
    assert (t.input_tokens_estimated, t.output_tokens_estimated, t.tokens_estimated) == (
        False,
        False,
        False,
    )
    assert t.output_tokens == N and t.content_chunk_count == N
    assert t.itl_s == pytest.approx(t.decode_s / (N - 1))


def test_input_estimate_alone_is_flagged_alone() -> None:
    t = otm.Telemetry(input_tokens=10, output_tokens=5, input_tokens_estimated=True)
    assert t.input_tokens_estimated and not t.output_tokens_estimated


def test_logged_records_with_the_single_flag_mean_both_sides() -> None:
    old = json.loads('{"input_tokens": 12, "output_tokens": 40, "tokens_estimated": true}')
    t = otm.Telemetry.model_validate(old)
    assert t.input_tokens_estimated and t.output_tokens_estimated
    fresh = otm.Telemetry.model_validate(
        {"tokens_estimated": True, "input_tokens_estimated": False, "output_tokens_estimated": True}
    )
    assert not fresh.input_tokens_estimated and fresh.output_tokens_estimated


def test_the_log_line_carries_both_flags_and_the_chunk_count(
    client: Any, records: list[Any], tmp_path: Any
) -> None:
    with otm.experiment("estimates", output_dir=tmp_path, reports=()) as exp:
        _stream(client)
    line = json.loads(exp.log_path.read_text().splitlines()[0])
    tel = line["telemetry"]
    assert tel["input_tokens_estimated"] is True and tel["output_tokens_estimated"] is True
    assert tel["content_chunk_count"] == N
    back = otm.Telemetry.model_validate(tel)
    assert back.itl_s == pytest.approx(records[-1].telemetry.itl_s)


def test_response_id_is_the_completion_id(client: Any, records: list[Any]) -> None:
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert r.otm.telemetry.response_id == r.id and r.id.startswith("chatcmpl")
    assert r.otm.telemetry.response_id != r.otm.telemetry.request_id

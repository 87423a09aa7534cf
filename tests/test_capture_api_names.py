"""What the API named, captured for export under the OpenTelemetry GenAI conventions.

For each SDK, plain and streamed, against the embedded fake provider: the
requested vs the served model, the completion id (not the HTTP request id),
finish reasons, the server's address and port, and prompt-cache writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import otm
from otm.testing.server import scenario_headers as H

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
genai = pytest.importorskip("google.genai")

MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    otm.instrument()
    yield
    otm.uninstrument()


def _common(t: Any, server: Any) -> None:
    assert t.request_model == "asked-model"
    assert t.response_model == "served-model-2025" == t.model
    assert t.server_address == "127.0.0.1" and t.server_port == server.port


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat(server: Any, records: list[Any], stream: bool) -> None:
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    kw: dict[str, Any] = {
        "model": "asked-model",
        "messages": MESSAGES,
        "extra_headers": H(model="served-model-2025", request_id="req_http_1", cache_write_tokens=5),
    }
    if stream:
        for _ in c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
            pass
    else:
        c.chat.completions.create(**kw)
    (r,) = records
    t = r.telemetry
    _common(t, server)
    assert t.response_id.startswith("chatcmpl-") and t.request_id == "req_http_1"
    assert t.finish_reasons == ("stop",)
    assert t.cache_write_input_tokens == 5
    c.close()


@pytest.mark.parametrize("stream", [False, True])
def test_openai_responses(server: Any, records: list[Any], stream: bool) -> None:
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    kw: dict[str, Any] = {
        "model": "asked-model",
        "input": "Say hello.",
        "extra_headers": H(model="served-model-2025", request_id="req_http_2"),
    }
    if stream:
        for _ in c.responses.create(stream=True, **kw):
            pass
    else:
        c.responses.create(**kw)
    (r,) = records
    t = r.telemetry
    _common(t, server)
    assert t.response_id.startswith("resp_") and t.request_id == "req_http_2"
    assert t.finish_reasons == ("stop",)
    c.close()


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages(server: Any, records: list[Any], stream: bool) -> None:
    c = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", max_retries=0)
    kw: dict[str, Any] = {
        "model": "asked-model",
        "max_tokens": 64,
        "messages": MESSAGES,
        "extra_headers": H(
            model="served-model-2025", request_id="req_http_3", cache_write_tokens=7, input_tokens=40
        ),
    }
    if stream:
        for _ in c.messages.create(stream=True, **kw):
            pass
    else:
        c.messages.create(**kw)
    (r,) = records
    t = r.telemetry
    _common(t, server)
    assert t.response_id.startswith("msg_") and t.request_id == "req_http_3"
    assert t.finish_reasons == ("end_turn",)
    assert t.cache_write_input_tokens == 7 and t.input_tokens == 40
    c.close()


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_generate_content(server: Any, records: list[Any], stream: bool) -> None:
    from google.genai import types

    c = genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=server.gemini_base_url)
    )
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(
            headers=H(model="served-model-2025", request_id="gemini-response-9")
        )
    )
    if stream:
        for _ in c.models.generate_content_stream(
            model="asked-model", contents="Say hello.", config=config
        ):
            pass
    else:
        c.models.generate_content(model="asked-model", contents="Say hello.", config=config)
    (r,) = records
    t = r.telemetry
    _common(t, server)
    assert t.response_id == "gemini-response-9"
    assert t.finish_reasons == ("STOP",)


def test_a_failed_call_names_no_served_model_and_no_completion(
    server: Any, records: list[Any]
) -> None:
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(
            model="asked-model", messages=MESSAGES, extra_headers=H(status=429)
        )
    (r,) = records
    t = r.telemetry
    assert t.request_model == "asked-model" and t.response_model is None
    assert t.response_id is None and t.finish_reasons is None
    assert t.server_address == "127.0.0.1"
    c.close()


def test_server_of_reads_the_default_port_from_the_scheme() -> None:
    from otm.capture.attribution import server_of

    class C:
        def __init__(self, url: str) -> None:
            self.base_url = url

    assert server_of(C("https://api.openai.com/v1")) == ("api.openai.com", 443)
    assert server_of(C("http://localhost:8000/v1")) == ("localhost", 8000)
    assert server_of(C("http://gpu-box/v1")) == ("gpu-box", 80)
    assert server_of(C("not a url")) == (None, None)
    assert server_of(None) == (None, None)

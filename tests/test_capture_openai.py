"""openai capture, sync call paths, against the local fake provider server.

Every figure is checked against what the server was told to do (token counts,
served model, request id, timing), through the real openai SDK.
"""

from __future__ import annotations

import copy
import json
import pickle
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

import otm
from otm.capture import openai_sdk, tokens
from otm.testing.server import scenario_headers as H

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
MESSAGES_CHARS = len("Be brief.") + len("Say hello.")


@pytest.fixture()
def otm_openai() -> Iterator[None]:
    otm.instrument("openai")
    yield
    otm.uninstrument("openai")


@pytest.fixture()
def client(server: Any, otm_openai: None) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test-secret", max_retries=0)
    yield c
    c.close()


def warm(client: openai.OpenAI, records: list[Any]) -> None:
    """Open the keep-alive connection first, so timing tests measure the request, not a connect."""
    for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        pass  # also lets the SDK build its chunk model, which it does lazily on first use
    records.clear()


def one(records: list[Any]) -> Any:
    assert len(records) == 1, records
    return records[0]


def assert_clean(model: Any) -> None:
    """.otm rides on the object but never in its serialisation or equality."""
    assert model.otm is not None
    assert "otm" not in model.model_dump(warnings=False)
    assert "otm" not in json.loads(model.model_dump_json(warnings=False))
    assert "otm" not in model.to_dict(warnings=False)
    assert "otm" not in vars(model) and "otm" not in dict(model)
    twin = model.model_copy()
    assert twin.otm is model.otm and twin == model and model == twin


class Answer(BaseModel):
    city: str
    population: int


# --------------------------------------------------------------------------- chat.completions


def test_chat_create_reads_usage_model_and_request_id(
    client: openai.OpenAI, records: list[Any]
) -> None:
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers=H(
            input_tokens=120,
            cached_input_tokens=64,
            output_tokens=9,
            reasoning_tokens=5,
            model="gpt-4o-mini-2024-07-18",
            request_id="req_plain_1",
        ),
    )
    rec = one(records)
    assert r.otm is rec
    t = rec.telemetry
    assert (t.input_tokens, t.cached_input_tokens, t.output_tokens, t.reasoning_tokens) == (
        120,
        64,
        14,
        5,
    )
    assert t.model == "gpt-4o-mini-2024-07-18"
    assert t.request_id == "req_plain_1" == r._request_id
    assert t.operation == "chat" and t.status == "ok" and not t.streamed and not t.tokens_estimated
    # A closed model behind 127.0.0.1 is a gateway (a LiteLLM proxy...) to its maker.
    assert (t.provider, t.provider_source) == ("openai", "gateway")
    assert t.input_text_length == MESSAGES_CHARS
    assert t.output_text_length == len(r.choices[0].message.content or "")
    assert t.start_time <= t.first_token_time == t.last_token_time <= t.end_time
    assert t.prompt is None and t.completion is None  # privacy by default
    assert_clean(r)
    assert (
        r.model_copy().otm is rec
    )  # survives copies like any attribute set with object.__setattr__


def test_response_with_otm_pickles_and_deepcopies(
    client: openai.OpenAI, records: list[Any]
) -> None:
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    assert r.otm.impact is not None
    dup = copy.deepcopy(r)
    assert dup == r and dup.otm.telemetry == r.otm.telemetry and dup.otm.impact == r.otm.impact
    back = pickle.loads(pickle.dumps(r))
    assert back == r and back.otm.telemetry == r.otm.telemetry
    assert back.otm.energy_wh == r.otm.energy_wh


def test_chat_stream_timing_tokens_and_request_id(
    client: openai.OpenAI, records: list[Any]
) -> None:
    warm(client, records)
    t0 = time.time()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=H(
            ttfb_s=0.2, gap_s=0.02, output_tokens=6, input_tokens=30, request_id="req_stream_1"
        ),
    )
    assert isinstance(stream, openai.Stream) and type(stream).__name__ == "Stream"
    assert stream.otm is None  # not finished yet
    text = ""
    seen_first = seen_last = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen_last = time.time()
            seen_first = seen_first or seen_last
            text += chunk.choices[0].delta.content
    rec = one(records)
    assert stream.otm is rec
    t = rec.telemetry
    assert t.streamed and t.status == "ok" and not t.tokens_estimated
    assert (t.input_tokens, t.output_tokens) == (30, 6)
    assert t.request_id == "req_stream_1"
    assert t.http_status == 200
    assert t.ttft_s == pytest.approx(0.2, abs=0.05)
    # 5 gaps of 20 ms; the server's sleeps only stretch (more on a busy machine)
    assert 5 * 0.02 - 0.005 <= t.decode_s < 5 * 0.02 + 0.15
    # what the user's loop saw, to the millisecond
    assert t.start_time == pytest.approx(t0, abs=0.005)
    assert t.first_token_time == pytest.approx(seen_first, abs=0.005)
    assert t.last_token_time == pytest.approx(seen_last, abs=0.005)
    assert t.first_chunk_time <= t.first_token_time <= t.last_token_time <= t.end_time
    assert t.output_text_length == len(text)
    # role chunk + 6 content chunks + finish chunk + usage chunk
    assert t.chunk_count == 9


def test_first_chunk_is_not_first_token(client: openai.OpenAI, records: list[Any]) -> None:
    """openai's first chat chunk is role-only: the first token is the first chunk with content."""
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    first = next(stream)
    assert first.choices[0].delta.role == "assistant" and not first.choices[0].delta.content
    call = stream.__dict__["_otm_call"]
    assert call.t_first_chunk is not None and call.t_first_token is None
    for _ in stream:
        pass
    assert one(records).telemetry.first_token_time is not None


def test_stream_without_usage_is_estimated_and_flagged(
    client: openai.OpenAI, server: Any, records: list[Any]
) -> None:
    text = "The quick brown fox jumps over the lazy dog, twice over."
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers=H(text=text, output_tokens=12),
    )
    got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert got == text
    body = server.requests[-1].body
    assert "stream_options" not in body  # usage is never forced
    t = one(records).telemetry
    assert t.tokens_estimated
    assert t.output_tokens == tokens.count_tokens(text, len(text), "gpt-4o-mini")
    assert t.output_tokens > 0
    assert t.input_tokens == tokens.count_tokens(
        "\n".join(m["content"] for m in MESSAGES), MESSAGES_CHARS, "gpt-4o-mini"
    )
    assert t.input_text_length == MESSAGES_CHARS and t.output_text_length == len(text)


def test_request_usage_opt_in(
    client: openai.OpenAI, server: Any, records: list[Any], configure: Any
) -> None:
    configure(request_usage=True)
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=H(output_tokens=5)
    )
    n_chunks = sum(1 for _ in stream)
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    t = records[-1].telemetry
    assert not t.tokens_estimated and t.output_tokens == 5 and t.input_tokens == 12
    assert n_chunks == 8  # the extra usage chunk (empty choices) is what the opt-in costs
    # an explicit choice by the caller always wins
    for _ in client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": False}
    ):
        pass
    assert server.requests[-1].body["stream_options"] == {"include_usage": False}
    assert records[-1].telemetry.tokens_estimated


def test_chat_parse(client: openai.OpenAI, records: list[Any]) -> None:
    r = client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=MESSAGES,
        response_format=Answer,
        extra_headers=H(output_tokens=7, request_id="req_parse"),
    )
    assert isinstance(r.choices[0].message.parsed, Answer)
    t = one(records).telemetry
    assert r.otm is records[0]
    assert (t.output_tokens, t.request_id, t.operation) == (7, "req_parse", "chat")
    assert_clean(r)


def test_chat_stream_helper(client: openai.OpenAI, records: list[Any]) -> None:
    warm(client, records)
    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream_options={"include_usage": True},
        extra_headers=H(ttfb_s=0.1, output_tokens=5, request_id="req_helper"),
    ) as helper:
        assert helper.otm is None
        events = [e.type for e in helper]
        final = helper.get_final_completion()
    assert "content.done" in events
    rec = one(records)
    assert helper.otm is rec and final.otm is rec
    assert type(helper).__name__ == "ChatCompletionStream"
    t = rec.telemetry
    assert (t.output_tokens, t.request_id, t.status) == (5, "req_helper", "ok")
    assert t.ttft_s == pytest.approx(0.1, abs=0.05)


def test_chat_stream_helper_get_final_completion_parses(
    client: openai.OpenAI, records: list[Any]
) -> None:
    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, response_format=Answer
    ) as helper:
        final = helper.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Answer)
    assert final.otm is one(records) and helper.otm is records[0]
    assert records[0].telemetry.tokens_estimated  # no include_usage asked


def test_chat_stream_helper_exit_early_is_abandoned(
    client: openai.OpenAI, records: list[Any]
) -> None:
    with client.chat.completions.stream(
        model="m", messages=MESSAGES, extra_headers=H(output_tokens=50, gap_s=0.005)
    ) as helper:
        for event in helper:
            if event.type == "content.delta":
                break
    rec = one(records)
    assert rec.telemetry.status == "abandoned" and helper.otm is rec


def test_beta_chat_completions_same_class(client: openai.OpenAI, records: list[Any]) -> None:
    r = client.beta.chat.completions.parse(model="m", messages=MESSAGES, response_format=Answer)
    assert r.otm is one(records)
    with client.beta.chat.completions.stream(model="m", messages=MESSAGES) as helper:
        helper.until_done()
    assert helper.otm is records[1]


# --------------------------------------------------------------------------- responses


def test_responses_create(client: openai.OpenAI, records: list[Any]) -> None:
    r = client.responses.create(
        model="gpt-4.1",
        input="Say hello.",
        instructions="Be brief.",
        extra_headers=H(
            input_tokens=40,
            cached_input_tokens=8,
            output_tokens=6,
            reasoning_tokens=4,
            request_id="req_r1",
        ),
    )
    t = one(records).telemetry
    assert r.otm is records[0]
    assert (t.input_tokens, t.cached_input_tokens, t.output_tokens, t.reasoning_tokens) == (
        40,
        8,
        10,
        4,
    )
    assert (t.operation, t.request_id, t.model) == ("responses", "req_r1", "gpt-4.1")
    assert t.input_text_length == len("Say hello.") + len("Be brief.")
    assert t.output_text_length == len(r.output_text)
    assert_clean(r)


def test_responses_create_stream(client: openai.OpenAI, records: list[Any]) -> None:
    # the SDK builds its pydantic models for stream events lazily, on first use (~0.1 s)
    for _ in client.responses.create(model="gpt-4.1", input="warm-up", stream=True):
        pass
    warm(client, records)
    stream = client.responses.create(
        model="gpt-4.1",
        input="hi",
        stream=True,
        extra_headers=H(ttfb_s=0.15, gap_s=0.01, output_tokens=5, request_id="req_rs"),
    )
    types = [e.type for e in stream]
    assert types[-1] == "response.completed"
    rec = one(records)
    assert stream.otm is rec
    t = rec.telemetry
    assert (t.output_tokens, t.input_tokens, t.request_id, t.status) == (5, 12, "req_rs", "ok")
    assert not t.tokens_estimated
    assert t.ttft_s == pytest.approx(0.15, abs=0.05)
    assert 4 * 0.01 - 0.005 <= t.decode_s < 4 * 0.01 + 0.15
    assert t.chunk_count == len(types)


def test_responses_stream_helper(client: openai.OpenAI, records: list[Any]) -> None:
    with client.responses.stream(
        model="gpt-4.1", input="hi", extra_headers=H(output_tokens=4)
    ) as helper:
        for _ in helper:
            pass
        final = helper.get_final_response()
    rec = one(records)
    assert helper.otm is rec and final.otm is rec
    assert rec.telemetry.output_tokens == 4 and rec.telemetry.operation == "responses"


def test_responses_parse(client: openai.OpenAI, records: list[Any]) -> None:
    r = client.responses.parse(
        model="gpt-4.1", input="hi", text_format=Answer, extra_headers=H(output_tokens=9)
    )
    assert isinstance(r.output_parsed, Answer)
    assert r.otm is one(records) and records[0].telemetry.output_tokens == 9
    assert_clean(r)


def test_responses_reasoning_stream(client: openai.OpenAI, records: list[Any]) -> None:
    stream = client.responses.create(
        model="o4-mini",
        input="hi",
        stream=True,
        extra_headers=H(reasoning_tokens=30, output_tokens=3),
    )
    for _ in stream:
        pass
    t = one(records).telemetry
    assert (t.output_tokens, t.reasoning_tokens) == (33, 30)


# --------------------------------------------------------------------------- embeddings


def test_embeddings(client: openai.OpenAI, records: list[Any]) -> None:
    r = client.embeddings.create(
        model="text-embedding-3-small",
        input=["alpha", "beta gamma"],
        extra_headers=H(input_tokens=5, request_id="req_e"),
    )
    assert len(r.data) == 2
    t = one(records).telemetry
    assert (t.operation, t.input_tokens, t.output_tokens, t.request_id) == (
        "embeddings",
        5,
        0,
        "req_e",
    )
    assert t.input_text_length == len("alpha") + len("beta gamma")
    assert r.otm is records[0]
    assert_clean(r)


# --------------------------------------------------------------------------- raw responses


def test_with_raw_response(client: openai.OpenAI, records: list[Any]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, extra_headers=H(output_tokens=3, request_id="req_raw")
    )
    rec = one(records)  # the body is already read: the call is over
    assert raw.otm is rec
    assert raw.headers["x-request-id"] == "req_raw"
    parsed = raw.parse()
    assert parsed.otm is rec and parsed._request_id == "req_raw"
    assert (rec.telemetry.http_status, rec.telemetry.request_id, rec.telemetry.output_tokens) == (
        200,
        "req_raw",
        3,
    )
    assert len(records) == 1


def test_with_raw_response_stream(client: openai.OpenAI, records: list[Any]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=H(output_tokens=4),
    )
    assert records == []
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    del raw  # dropping the raw response must not end the stream's record
    for _ in stream:
        pass
    rec = one(records)
    assert stream.otm is rec and rec.telemetry.status == "ok" and rec.telemetry.output_tokens == 4


def test_with_raw_response_cached_wrapper_on_client(
    client: openai.OpenAI, records: list[Any]
) -> None:
    r = client.with_raw_response.embeddings.create(model="e", input="x")
    assert r.parse().otm is one(records)


def test_with_streaming_response(client: openai.OpenAI, records: list[Any]) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="m", messages=MESSAGES, extra_headers=H(output_tokens=2, request_id="req_sr")
    ) as raw:
        assert records == []  # the body has not been read yet
        parsed = raw.parse()
    rec = one(records)
    assert parsed.otm is rec and raw.otm is rec
    assert (rec.telemetry.request_id, rec.telemetry.output_tokens, rec.telemetry.http_status) == (
        "req_sr",
        2,
        200,
    )


def test_with_streaming_response_json_without_parse(
    client: openai.OpenAI, records: list[Any]
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="m", messages=MESSAGES, extra_headers=H(output_tokens=2)
    ) as raw:
        data = raw.json()
    assert data["usage"]["completion_tokens"] == 2
    t = one(records).telemetry
    assert t.status == "ok" and t.output_tokens == 2


def test_with_streaming_response_stream(client: openai.OpenAI, records: list[Any]) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=H(output_tokens=3),
    ) as raw:
        for _ in raw.parse():
            pass
    rec = one(records)
    assert raw.otm is rec and rec.telemetry.streamed and rec.telemetry.output_tokens == 3


def test_with_streaming_response_stream_left_early(
    client: openai.OpenAI, records: list[Any]
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=H(output_tokens=30, gap_s=0.002)
    ) as raw:
        stream = raw.parse()
        next(stream)
    assert one(records).telemetry.status == "abandoned"


# --------------------------------------------------------------------------- prompts, privacy


def test_capture_prompts_opt_in(client: openai.OpenAI, records: list[Any], configure: Any) -> None:
    configure(capture_prompts=True)
    r = client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers=H(text="Hello!", output_tokens=2)
    )
    t = records[-1].telemetry
    assert (
        t.prompt == "Be brief.\nSay hello."
        and t.completion == r.choices[0].message.content == "Hello!"
    )
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=H(text="Hi there", output_tokens=3)
    )
    for _ in stream:
        pass
    assert records[-1].telemetry.completion == "Hi there"


def test_no_credentials_anywhere(client: openai.OpenAI, records: list[Any], configure: Any) -> None:
    configure(capture_prompts=True)
    client.chat.completions.create(model="m", messages=MESSAGES)
    for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        pass
    for rec in records:
        assert "sk-test-secret" not in json.dumps(rec.to_dict(with_impact=False))
        assert "sk-test-secret" not in repr(rec)


# --------------------------------------------------------------------------- models, providers, wrap


def test_unknown_model_names_pass_through(client: openai.OpenAI, records: list[Any]) -> None:
    r = client.chat.completions.create(model="acme/llama-9000-turbo:free", messages=MESSAGES)
    assert r.otm.telemetry.model == "acme/llama-9000-turbo:free"
    stream = client.chat.completions.create(
        model="zz-unknown", messages=MESSAGES, stream=True, extra_headers=H(model="zz-served-7b")
    )
    for _ in stream:
        pass
    assert stream.otm.telemetry.model == "zz-served-7b"  # as served, not as asked


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "openai"),
        ("https://api.openai.com/v1", "openai"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.together.xyz/v1", "together"),
        ("https://api.fireworks.ai/inference/v1", "fireworks"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://api.mistral.ai/v1", "mistral"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.x.ai/v1", "xai"),
        ("https://my-res.openai.azure.com/openai/deployments/gpt4o", "azure-openai"),
        ("http://localhost:8000/v1", "local"),
        ("http://127.0.0.1:11434/v1", "local"),
        ("http://192.168.1.20:8000/v1", "local"),
        ("http://10.0.0.5/v1", "local"),
        ("http://[::1]:8000/v1", "local"),
    ],
)
def test_detect_provider_from_base_url(base_url: str | None, expected: str) -> None:
    kwargs = {"api_key": "x"} if base_url is None else {"api_key": "x", "base_url": base_url}
    assert openai_sdk.detect_host(openai.OpenAI(**kwargs)).provider == expected
    assert openai_sdk.detect_host(openai.AsyncOpenAI(**kwargs)).provider == expected


def test_detect_provider_unknown_host_and_azure_class() -> None:
    assert (
        openai_sdk.detect_host(openai.OpenAI(api_key="x", base_url="https://llm.example.org/v1"))
        == (openai_sdk.UNKNOWN_HOST, "unknown")
    )
    azure = openai.AzureOpenAI(
        api_key="x", api_version="2024-10-21", azure_endpoint="https://gateway.example.org"
    )
    assert openai_sdk.detect_host(azure).provider == "azure-openai"


def test_detect_provider_is_cached_per_client() -> None:
    c = openai.OpenAI(api_key="x", base_url="https://api.groq.com/openai/v1")
    assert openai_sdk.detect_host(c).provider == "groq"
    c.base_url = "https://api.mistral.ai/v1"  # type: ignore[assignment]
    assert openai_sdk.detect_host(c).provider == "groq"  # a dict lookup on the hot path, decided once


def test_wrap_applies_settings_to_that_client_only(server: Any, records: list[Any]) -> None:
    try:
        a = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        b = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        dep = otm.Deployment(accelerator="H100", count=2)
        wrapped = otm.wrap(
            a, deployment=dep, region="FRA", tags={"team": "search"}, provider="vllm"
        )
        assert wrapped is a and type(wrapped) is openai.OpenAI
        a.chat.completions.create(model="m", messages=MESSAGES)
        b.chat.completions.create(model="m", messages=MESSAGES)
        for _ in a.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            pass
        ra, rb, rs = records
        assert (ra.deployment, ra.region, ra.tags, ra.telemetry.provider) == (
            dep,
            "FRA",
            {"team": "search"},
            "vllm",
        )
        assert (rs.deployment, rs.region, rs.tags) == (dep, "FRA", {"team": "search"})
        assert (rb.deployment, rb.region, rb.tags, rb.telemetry.provider) == (
            None,
            None,
            {},
            "local",
        )
    finally:
        otm.uninstrument("openai")


def test_wrap_detects_provider_without_override(server: Any, records: list[Any]) -> None:
    try:
        c = otm.wrap(openai.OpenAI(base_url=server.openai_base_url, api_key="x"), region="US-VA")
        c.embeddings.create(model="e", input="x")
        assert (records[0].telemetry.provider, records[0].region) == ("local", "US-VA")
    finally:
        otm.uninstrument("openai")


def test_wrap_unsupported_object_is_returned_untouched() -> None:
    thing = object()
    assert otm.wrap(thing) is thing


# --------------------------------------------------------------------------- legacy completions (MockTransport)


def test_legacy_completions_create_and_stream(otm_openai: None, records: list[Any]) -> None:
    import httpx2

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        head = {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": "gpt-3.5-turbo-instruct",
        }
        if not body.get("stream"):
            return httpx2.Response(
                200,
                json={
                    **head,
                    "choices": [
                        {
                            "index": 0,
                            "text": "Hello world",
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
                },
                headers={"x-request-id": "req_legacy"},
            )
        frames = [
            {
                **head,
                "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}],
            }
            for piece in ("Hel", "lo ", "world")
        ]
        frames.append(
            {
                **head,
                "choices": [],
                "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
            }
        )
        sse = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
        return httpx2.Response(
            200, content=sse.encode(), headers={"content-type": "text/event-stream"}
        )

    c = openai.OpenAI(
        base_url="https://api.openai.com/v1",
        api_key="x",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    r = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")
    t = r.otm.telemetry
    assert (t.operation, t.provider, t.input_tokens, t.output_tokens, t.request_id) == (
        "completion",
        "openai",
        4,
        2,
        "req_legacy",
    )
    assert t.input_text_length == len("Say hello") and t.output_text_length == len("Hello world")
    stream = c.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say hello",
        stream=True,
        stream_options={"include_usage": True},
    )
    assert "".join(ch.choices[0].text for ch in stream if ch.choices) == "Hello world"
    t = stream.otm.telemetry
    assert (t.streamed, t.output_tokens, t.output_text_length, t.chunk_count) == (True, 3, 11, 4)


def test_compatible_provider_stream_extras(otm_openai: None, records: list[Any]) -> None:
    """Reasoning deltas (DeepSeek/vLLM style) are output; Groq's x_groq.usage is read."""
    import httpx2

    head = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "deepseek-reasoner",
    }

    def frame(delta: dict[str, Any], **extra: Any) -> str:
        return (
            "data: "
            + json.dumps(
                {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}], **extra}
            )
            + "\n\n"
        )

    sse = (
        frame({"role": "assistant", "content": ""})
        + frame({"reasoning_content": "Let me think."})
        + frame({"content": "Hi"})
        + frame(
            {}, x_groq={"usage": {"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18}}
        )
        + "data: [DONE]\n\n"
    )

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=sse.encode(), headers={"content-type": "text/event-stream"}
        )

    c = openai.OpenAI(
        base_url="https://api.deepseek.com",
        api_key="x",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    stream = c.chat.completions.create(model="deepseek-reasoner", messages=MESSAGES, stream=True)
    for _ in stream:
        pass
    t = stream.otm.telemetry
    assert t.provider == "deepseek"
    assert (t.input_tokens, t.output_tokens, t.tokens_estimated) == (7, 11, False)
    assert t.output_text_length == len("Let me think.") + len("Hi")
    call_first_token = t.first_token_time
    assert (
        call_first_token is not None
        and t.first_chunk_time is not None
        and call_first_token >= t.first_chunk_time
    )


def test_responses_stream_resume_by_id_uses_retrieve(otm_openai: None, records: list[Any]) -> None:
    """``responses.stream(response_id=...)`` resumes through ``retrieve(stream=True)``."""
    import httpx2

    resp = {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "model": "gpt-4.1-2025-04-14",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "status": "in_progress",
    }
    msg = {
        "id": "msg_1",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    part = {"type": "output_text", "text": "", "annotations": []}
    done_part = {**part, "text": "Hi there"}
    usage = {
        "input_tokens": 11,
        "output_tokens": 2,
        "total_tokens": 13,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    done_msg = {**msg, "status": "completed", "content": [done_part]}
    events = [
        {"type": "response.created", "response": resp},
        {"type": "response.output_item.added", "output_index": 0, "item": msg},
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": part,
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "Hi",
            "logprobs": [],
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": " there",
            "logprobs": [],
        },
        {
            "type": "response.output_text.done",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "text": "Hi there",
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": done_part,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": done_msg},
        {
            "type": "response.completed",
            "response": {**resp, "status": "completed", "output": [done_msg], "usage": usage},
        },
    ]
    sse = "".join(
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': i})}\n\n"
        for i, e in enumerate(events)
    )
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(f"{request.method} {request.url.path}")
        headers = {"content-type": "text/event-stream", "x-request-id": "req_resume"}
        return httpx2.Response(200, content=sse.encode(), headers=headers)

    c = openai.OpenAI(
        base_url="https://api.openai.com/v1",
        api_key="x",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with c.responses.stream(response_id="resp_1") as helper:
        final = helper.get_final_response()
    assert seen == ["GET /v1/responses/resp_1"]
    rec = one(records)
    assert helper.otm is rec and final.otm is rec
    t = rec.telemetry
    assert (t.operation, t.model, t.request_id) == ("responses", "gpt-4.1-2025-04-14", "req_resume")
    assert (t.input_tokens, t.output_tokens, t.output_text_length, t.streamed) == (11, 2, 8, True)
    # a plain retrieve is not a model call: nothing recorded
    plain = {**resp, "status": "completed", "output": [done_msg], "usage": usage}
    c2 = openai.OpenAI(
        base_url="https://api.openai.com/v1",
        api_key="x",
        http_client=httpx2.Client(
            transport=httpx2.MockTransport(lambda r: httpx2.Response(200, json=plain))
        ),
    )
    assert c2.responses.retrieve("resp_1").id == "resp_1" and len(records) == 1


def test_raw_response_of_parse(client: openai.OpenAI, records: list[Any]) -> None:
    raw = client.chat.completions.with_raw_response.parse(
        model="m", messages=MESSAGES, response_format=Answer
    )
    parsed = raw.parse()
    assert isinstance(parsed.choices[0].message.parsed, Answer)
    assert parsed.otm is one(records) and raw.otm is records[0]


def test_raw_response_parse_chained_in_one_expression(
    client: openai.OpenAI, records: list[Any]
) -> None:
    # The raw response is dropped as soon as `.parse` is looked up: otm must not
    # depend on it staying alive.
    r = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES).parse()
    assert r.otm is records[-1]
    assert r.otm.telemetry.output_tokens > 0
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ).parse()
    for _ in stream:
        pass
    assert stream.otm is records[-1] and stream.otm.telemetry.streamed


def test_wrap_settings_follow_with_options_copies(server: Any, records: list[Any]) -> None:
    otm.instrument(["openai"])
    try:
        c = otm.wrap(
            openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0),
            region="FRA", tags={"team": "a"}, provider="local",
        )
        r = c.with_options(timeout=30).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        other = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
        r2 = other.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        otm.uninstrument()
    assert r.otm.region == "FRA" and r.otm.tags.get("team") == "a"
    assert r.otm.telemetry.provider == "local"
    assert r2.otm.region != "FRA" and "team" not in r2.otm.tags


# --------------------------------------------------------------------------- client.beta.responses


def _beta_responses(client: Any) -> Any:
    beta = getattr(client.beta, "responses", None)
    if beta is None:
        pytest.skip("this openai SDK has no client.beta.responses")
    return beta


def test_beta_responses_create_plain_and_stream(client: openai.OpenAI, records: list[Any]) -> None:
    # client.beta.responses is its own resource class (BetaResponse models), not client.responses.
    beta = _beta_responses(client)
    assert type(beta) is not type(client.responses)
    r = beta.create(
        model="gpt-4.1",
        input="Say hello.",
        extra_headers=H(input_tokens=40, output_tokens=6, reasoning_tokens=4, request_id="req_b1"),
    )
    t = one(records).telemetry
    assert r.otm is records[0]
    assert (t.operation, t.request_id, t.input_tokens, t.output_tokens, t.reasoning_tokens) == (
        "responses",
        "req_b1",
        40,
        10,
        4,
    )
    assert not t.streamed and t.status == "ok"
    assert_clean(r)
    records.clear()
    for _ in beta.create(model="gpt-4.1", input="warm-up", stream=True):
        pass
    records.clear()
    stream = beta.create(
        model="gpt-4.1",
        input="hi",
        stream=True,
        extra_headers=H(ttfb_s=0.15, gap_s=0.01, output_tokens=5, request_id="req_b2"),
    )
    types = [e.type for e in stream]
    assert types[-1] == "response.completed"
    rec = one(records)
    assert stream.otm is rec
    t = rec.telemetry
    assert (t.output_tokens, t.input_tokens, t.request_id, t.status) == (5, 12, "req_b2", "ok")
    assert t.streamed and not t.tokens_estimated
    assert t.ttft_s == pytest.approx(0.15, abs=0.05)
    assert t.chunk_count == len(types)


def test_beta_responses_raw_response(client: openai.OpenAI, records: list[Any]) -> None:
    beta = _beta_responses(client)
    raw = beta.with_raw_response.create(model="gpt-4.1", input="hi", extra_headers=H(output_tokens=3))
    parsed = raw.parse()
    assert parsed.otm is one(records) and records[0].telemetry.output_tokens == 3

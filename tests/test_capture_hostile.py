"""What a careless server sends never costs the record: usage as text, negative, fractional,
null or absurd, and served names or text with lone UTF-16 surrogates (a split emoji).

The servers are ``httpx2.MockTransport`` handlers returning exactly those bodies; the
checks: one record per call, valid Telemetry (non-negative counts), the repair noted in
``telemetry.capture_notes``, and a record that serialises to UTF-8 (what the JSONL sink
writes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

import otm
from otm.report.sink import encode_line
from otm.telemetry import Telemetry

httpx2 = pytest.importorskip("httpx2")
openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello, please."}]
LONE = "\ud800"  # half of a surrogate pair, as a server's JSON escape "\ud800" gives


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    otm.instrument()
    yield
    otm.uninstrument()


def _valid(record: Any) -> Telemetry:
    t = record.telemetry
    again = Telemetry.model_validate(t.model_dump())  # what capture built is valid telemetry
    for name in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"):
        assert isinstance(getattr(t, name), int) and getattr(t, name) >= 0, name
    encode_line(record.to_dict(with_impact=False)).decode("utf-8")  # writable as a log line
    assert record.impact is not None  # and estimable
    return again


def _json(body: Any) -> Any:
    return httpx2.Response(
        200, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def _sse(events: list[str]) -> Any:
    return httpx2.Response(
        200,
        content="".join(events).encode(),
        headers={"content-type": "text/event-stream"},
    )


# --------------------------------------------------------------------------- openai-compatible


def _chat_body(usage: Any, model: str = "my-model", content: str = "Hello there!") -> Any:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


def _openai_client(handler: Any) -> Any:
    return openai.OpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


USAGES: list[tuple[str, dict[str, Any], tuple[int, int], bool, str]] = [
    # name, usage, (input, output) recorded, estimated?, a note that must be there
    ("text", {"prompt_tokens": "12", "completion_tokens": "3"}, (12, 3), False, "'12' read as 12"),
    ("negative", {"prompt_tokens": -5, "completion_tokens": 3}, (-1, 3), True, "-5 is not"),
    ("null", {"prompt_tokens": None, "completion_tokens": None}, (-1, -1), True, ""),
    ("float", {"prompt_tokens": 12.6, "completion_tokens": 3.0}, (13, 3), False, "12.6 read as 13"),
    ("nan", {"prompt_tokens": "NaN", "completion_tokens": 3}, (-1, 3), True, "'NaN' is not"),
    ("absurd", {"prompt_tokens": 10**15, "completion_tokens": 3}, (-1, 3), True, "is not a token"),
    ("bool", {"prompt_tokens": True, "completion_tokens": 3}, (-1, 3), True, "True is not"),
    (
        "cached>input",
        {"prompt_tokens": 5, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": "9"}},
        (5, 3),
        False,
        "exceeds input_tokens=5: capped",
    ),
]


@pytest.mark.parametrize(("usage", "expect", "estimated", "note"), [u[1:] for u in USAGES], ids=[u[0] for u in USAGES])
def test_openai_compatible_usage_is_repaired_never_dropped(
    usage: dict[str, Any], expect: tuple[int, int], estimated: bool, note: str, records: list[Any]
) -> None:
    client = _openai_client(lambda req: _json(_chat_body(usage)))
    r = client.chat.completions.create(model="my-model", messages=MESSAGES)
    assert len(records) == 1 and r.otm is records[0]
    t = _valid(records[0])
    # -1: not usable, so estimated from the text (which is there): a positive count
    for got, want in zip((t.input_tokens, t.output_tokens), expect):
        assert got == want if want >= 0 else got > 0
    assert t.cached_input_tokens <= t.input_tokens
    assert t.tokens_estimated is estimated
    if note:
        assert any(note in n for n in t.capture_notes or ()), t.capture_notes


def test_openai_compatible_stream_with_text_usage(records: list[Any]) -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    events = [
        "data: " + json.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": "Hi"}}]}) + "\n\n",
        "data: "
        + json.dumps(
            {**chunk, "choices": [], "usage": {"prompt_tokens": "7", "completion_tokens": -1}}
        )
        + "\n\n",
        "data: [DONE]\n\n",
    ]
    client = _openai_client(lambda req: _sse(events))
    s = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert [c.choices[0].delta.content for c in s if c.choices] == ["Hi"]
    t = _valid(records[0])
    assert t.input_tokens == 7 and t.output_tokens >= 1 and t.tokens_estimated
    assert s.otm is records[0]


def test_lone_surrogates_in_model_name_and_text(records: list[Any], configure: Any) -> None:
    configure(capture_prompts=True)
    body = _chat_body(
        {"prompt_tokens": 4, "completion_tokens": 2}, model=f"served{LONE}-model", content=f"ok {LONE}"
    )
    client = _openai_client(lambda req: _json(body))
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    t = _valid(r.otm)
    assert t.model == "served\ufffd-model" and t.completion == "ok \ufffd"
    assert any("model" in n for n in t.capture_notes or ())


def test_an_emoji_split_across_chunks_is_joined(records: list[Any], configure: Any) -> None:
    configure(capture_prompts=True)
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    # The two halves of U+1F600 arrive in two chunks, each a lone surrogate on its own.
    pieces = ["a \ud83d", "\ude00 b"]
    events = [
        "data: " + json.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": p}}]}) + "\n\n"
        for p in pieces
    ] + ["data: [DONE]\n\n"]
    client = _openai_client(lambda req: _sse(events))
    for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        pass
    t = _valid(records[0])
    assert t.completion == "a \U0001f600 b"


# --------------------------------------------------------------------------- anthropic


def test_anthropic_text_and_negative_usage(records: list[Any]) -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": f"claude{LONE}",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": "20", "output_tokens": -4, "cache_read_input_tokens": "x"},
    }
    client = anthropic.Anthropic(
        base_url="http://127.0.0.1:9",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(lambda req: _json(body))),
    )
    r = client.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=MESSAGES)
    t = _valid(r.otm)
    assert t.input_tokens == 20 and t.cached_input_tokens == 0 and t.output_tokens >= 1
    assert t.model == "claude\ufffd" and t.tokens_estimated
    notes = " | ".join(t.capture_notes or ())
    assert "'20' read as 20" in notes and "'x' is not" in notes and "-4 is not" in notes


# --------------------------------------------------------------------------- google-genai


def test_google_negative_usage(records: list[Any]) -> None:
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello!"}]}}],
        "usageMetadata": {"promptTokenCount": -3, "candidatesTokenCount": 2, "thoughtsTokenCount": -1},
        "modelVersion": f"gemini{LONE}",
    }

    async def handler(req: Any) -> Any:
        return _json(body)

    client = genai.Client(
        api_key="x",
        http_options=types.HttpOptions(
            base_url="http://127.0.0.1:9",
            httpx_client=httpx2.Client(transport=httpx2.MockTransport(lambda req: _json(body))),
            httpx_async_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        ),
    )
    r = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    t = _valid(r.otm)
    assert t.output_tokens == 2 and t.reasoning_tokens == 0 and t.input_tokens == 0
    assert any("promptTokenCount" in n or "prompt_token_count" in n for n in t.capture_notes or ())

    async def run() -> Any:
        return await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")

    ra = asyncio.run(run())
    assert _valid(ra.otm).output_tokens == 2 and len(records) == 2

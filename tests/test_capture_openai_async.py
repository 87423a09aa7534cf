"""openai capture, async call paths (AsyncOpenAI), against the local fake provider server."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

import otm
from otm.testing.server import scenario_headers as H

MESSAGES = [{"role": "user", "content": "Say hello."}]


class Answer(BaseModel):
    city: str


@pytest.fixture()
def otm_openai() -> Iterator[None]:
    otm.instrument("openai")
    yield
    otm.uninstrument("openai")


@pytest.fixture()
async def aclient(server: Any, otm_openai: None) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
    yield c
    await c.close()


def one(records: list[Any]) -> Any:
    assert len(records) == 1, records
    return records[0]


async def test_async_chat_create(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    r = await aclient.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        extra_headers=H(ttfb_s=0.1, cached_input_tokens=5, request_id="req_a1"),
    )
    t = one(records).telemetry
    assert r.otm is records[0]
    assert (t.input_tokens, t.cached_input_tokens, t.output_tokens, t.request_id) == (
        12,
        5,
        8,
        "req_a1",
    )
    assert 0.1 <= t.ttft_s < 0.3  # non-streamed: the whole response (first call also connects)
    assert "otm" not in r.model_dump() and "otm" not in json.loads(r.model_dump_json())


async def test_async_chat_stream(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    await aclient.embeddings.create(model="e", input="warm-up")  # connect first
    records.clear()
    stream = await aclient.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=H(ttfb_s=0.2, gap_s=0.02, output_tokens=5, request_id="req_as"),
    )
    assert isinstance(stream, openai.AsyncStream)
    n = 0
    async for _ in stream:
        n += 1
    rec = one(records)
    t = rec.telemetry
    assert stream.otm is rec
    assert (t.output_tokens, t.request_id, t.status, t.chunk_count) == (5, "req_as", "ok", n)
    assert t.ttft_s == pytest.approx(0.2, abs=0.05)
    assert 4 * 0.02 - 0.005 <= t.decode_s < 4 * 0.02 + 0.15


async def test_async_stream_with_anext(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    stream = await aclient.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=H(output_tokens=2)
    )
    got = []
    while True:
        try:
            got.append(await stream.__anext__())
        except StopAsyncIteration:
            break
    assert len(got) == 4 and one(records).telemetry.status == "ok"


async def test_async_chat_parse(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    r = await aclient.chat.completions.parse(model="m", messages=MESSAGES, response_format=Answer)
    assert isinstance(r.choices[0].message.parsed, Answer) and r.otm is one(records)


async def test_async_chat_stream_helper_times_from_aenter(
    aclient: openai.AsyncOpenAI, records: list[Any]
) -> None:
    await aclient.embeddings.create(model="e", input="warm-up")  # connect first
    records.clear()
    manager = aclient.chat.completions.stream(
        model="m",
        messages=MESSAGES,
        stream_options={"include_usage": True},
        extra_headers=H(ttfb_s=0.1, output_tokens=3),
    )
    await asyncio.sleep(
        0.2
    )  # .stream() is a sync method: no request (and no clock) before __aenter__
    async with manager as helper:
        final = await helper.get_final_completion()
    rec = one(records)
    assert helper.otm is rec and final.otm is rec
    assert rec.telemetry.ttft_s == pytest.approx(0.1, abs=0.05)
    assert rec.telemetry.output_tokens == 3


async def test_async_chat_stream_helper_exit_early(
    aclient: openai.AsyncOpenAI, records: list[Any]
) -> None:
    async with aclient.chat.completions.stream(
        model="m", messages=MESSAGES, extra_headers=H(output_tokens=40, gap_s=0.005)
    ) as helper:
        async for event in helper:
            if event.type == "content.delta":
                break
    assert one(records).telemetry.status == "abandoned" and helper.otm is records[0]


async def test_async_responses_paths(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    r = await aclient.responses.create(
        model="gpt-4.1", input="hi", extra_headers=H(output_tokens=3)
    )
    assert r.otm is records[-1] and records[-1].telemetry.output_tokens == 3
    stream = await aclient.responses.create(
        model="gpt-4.1", input="hi", stream=True, extra_headers=H(output_tokens=4)
    )
    async for _ in stream:
        pass
    assert stream.otm is records[-1] and records[-1].telemetry.output_tokens == 4
    async with aclient.responses.stream(
        model="gpt-4.1", input="hi", extra_headers=H(output_tokens=5)
    ) as helper:
        final = await helper.get_final_response()
    assert (
        helper.otm is records[-1]
        and final.otm is records[-1]
        and records[-1].telemetry.output_tokens == 5
    )
    parsed = await aclient.responses.parse(model="gpt-4.1", input="hi", text_format=Answer)
    assert isinstance(parsed.output_parsed, Answer) and parsed.otm is records[-1]
    assert len(records) == 4
    assert {r.telemetry.operation for r in records} == {"responses"}


async def test_async_embeddings(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    r = await aclient.embeddings.create(
        model="e", input="some text", extra_headers=H(input_tokens=3)
    )
    assert r.otm is one(records) and records[0].telemetry.input_tokens == 3


async def test_async_raw_responses(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    raw = await aclient.chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, extra_headers=H(request_id="req_ar")
    )
    assert raw.otm is records[-1] and raw.parse().otm is records[-1]
    assert records[-1].telemetry.request_id == "req_ar"

    raw = await aclient.chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, stream=True
    )
    stream = raw.parse()
    async for _ in stream:
        pass
    assert stream.otm is records[-1] and records[-1].telemetry.streamed

    async with aclient.chat.completions.with_streaming_response.create(
        model="m", messages=MESSAGES
    ) as sraw:
        parsed = await sraw.parse()
    assert parsed.otm is records[-1] and sraw.otm is records[-1]

    async with aclient.chat.completions.with_streaming_response.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as sraw:
        async for _ in await sraw.parse():
            pass
    assert sraw.otm is records[-1] and records[-1].telemetry.output_tokens == 8
    assert len(records) == 4 and all(r.telemetry.status == "ok" for r in records)


async def test_async_stream_break_is_abandoned(
    aclient: openai.AsyncOpenAI, records: list[Any]
) -> None:
    stream = await aclient.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=H(output_tokens=30, gap_s=0.002)
    )
    async for _ in stream:
        break
    await stream.close()
    assert one(records).telemetry.status == "abandoned" and stream.otm is records[0]


async def test_async_stream_context_manager(
    aclient: openai.AsyncOpenAI, records: list[Any]
) -> None:
    async with await aclient.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=H(output_tokens=30)
    ) as stream:
        await stream.__anext__()
    assert one(records).telemetry.status == "abandoned"
    async with await aclient.chat.completions.create(
        model="m", messages=MESSAGES, stream=True
    ) as stream:
        async for _ in stream:
            pass
    assert records[-1].telemetry.status == "ok" and len(records) == 2


async def test_async_stream_error_frame(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    stream = await aclient.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=H(error_after=2)
    )
    with pytest.raises(openai.APIError) as info:
        async for _ in stream:
            pass
    assert type(info.value) is openai.APIError
    t = one(records).telemetry
    assert t.status == "error" and t.error_type == "openai.APIError"


async def test_async_http_error(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    with pytest.raises(openai.InternalServerError):
        await aclient.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers=H(status=500, request_id="req_500")
        )
    t = one(records).telemetry
    assert (t.status, t.http_status, t.request_id, t.error_type) == (
        "error",
        500,
        "req_500",
        "openai.InternalServerError",
    )


async def test_async_cancellation_non_stream(
    aclient: openai.AsyncOpenAI, records: list[Any]
) -> None:
    task = asyncio.create_task(
        aclient.chat.completions.create(model="m", messages=MESSAGES, extra_headers=H(ttfb_s=2.0))
    )
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    t = one(records).telemetry
    assert (
        t.status == "cancelled" and t.input_tokens == 0
    )  # nothing came back: nothing is assumed processed


async def test_async_cancellation_mid_stream(
    aclient: openai.AsyncOpenAI, records: list[Any]
) -> None:
    started = asyncio.Event()
    holder: dict[str, Any] = {}

    async def consume() -> None:
        stream = await aclient.chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            extra_headers=H(output_tokens=200, gap_s=0.01),
        )
        holder["stream"] = stream
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rec = one(records)
    t = rec.telemetry
    assert t.status == "cancelled" and holder["stream"].otm is rec
    assert t.first_token_time is not None and t.output_text_length > 0
    assert t.tokens_estimated and t.output_tokens > 0


async def test_many_concurrent_streams(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    async def one_stream(i: int) -> tuple[int, Any]:
        stream = await aclient.chat.completions.create(
            model=f"m{i}",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=H(
                output_tokens=5 + i % 7, gap_s=0.005, ttfb_s=0.05, request_id=f"req_{i}"
            ),
        )
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        return i, stream

    results = await asyncio.gather(*(one_stream(i) for i in range(50)))
    assert len(records) == 50
    assert len({id(r) for r in records}) == 50
    for i, stream in results:
        t = stream.otm.telemetry
        assert (t.request_id, t.model, t.output_tokens, t.status) == (
            f"req_{i}",
            f"m{i}",
            5 + i % 7,
            "ok",
        )
        assert t.ttft_s is not None and t.ttft_s >= 0.04


async def test_async_gc_of_unread_stream(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    stream = await aclient.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    await stream.response.aclose()
    del stream
    gc.collect()
    assert one(records).telemetry.status == "abandoned"


async def test_async_beta_chat_and_legacy_completions(
    aclient: openai.AsyncOpenAI, records: list[Any]
) -> None:
    r = await aclient.beta.chat.completions.parse(
        model="m", messages=MESSAGES, response_format=Answer
    )
    assert r.otm is one(records)

    import httpx2

    head = {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "davinci-002"}
    frames = [
        {**head, "choices": [{"index": 0, "text": t, "finish_reason": None, "logprobs": None}]}
        for t in ("Hel", "lo")
    ]
    sse = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=sse.encode(), headers={"content-type": "text/event-stream"}
        )

    legacy = openai.AsyncOpenAI(
        base_url="https://api.openai.com/v1",
        api_key="x",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    stream = await legacy.completions.create(model="davinci-002", prompt="Say hello", stream=True)
    assert [c.choices[0].text async for c in stream] == ["Hel", "lo"]
    t = stream.otm.telemetry
    assert (t.operation, t.streamed, t.output_text_length, t.tokens_estimated) == (
        "completion",
        True,
        5,
        True,
    )
    assert t.input_text_length == len("Say hello")
    await legacy.close()


async def test_async_break_ends_at_the_last_chunk_read(
    aclient: openai.AsyncOpenAI, records: list[Any]
) -> None:
    """An `async for ... break` is closed by the event loop later; the record
    must still end when the user stopped reading, not when the loop got to it."""
    import time

    stream = await aclient.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=H(gap_s=0.01, output_tokens=20),
    )
    n = 0
    async for _ in stream:
        n += 1
        if n == 3:
            broke_at = time.time()
            break
    await asyncio.sleep(0.4)
    await stream.close()
    rec = one(records)
    assert rec.telemetry.status == "abandoned"
    assert rec.telemetry.end_time is not None
    assert rec.telemetry.end_time <= broke_at + 0.05


async def test_async_beta_responses(aclient: openai.AsyncOpenAI, records: list[Any]) -> None:
    beta = getattr(aclient.beta, "responses", None)
    if beta is None:
        pytest.skip("this openai SDK has no client.beta.responses")
    r = await beta.create(model="gpt-4.1", input="hi", extra_headers=H(output_tokens=3))
    assert r.otm is records[-1] and records[-1].telemetry.output_tokens == 3
    stream = await beta.create(
        model="gpt-4.1", input="hi", stream=True, extra_headers=H(output_tokens=4)
    )
    async for _ in stream:
        pass
    assert stream.otm is records[-1] and records[-1].telemetry.output_tokens == 4
    assert records[-1].telemetry.streamed
    assert len(records) == 2
    assert {x.telemetry.operation for x in records} == {"responses"}

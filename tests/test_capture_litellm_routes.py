"""LiteLLM's other entry points: the Responses API (``litellm.responses``) and the Router.

Against the local fake server with the real litellm package: each call makes
one record with the server's figures and carries it as ``.otm`` (plain and
streamed, sync and async), and a stream cut short is recorded once, as
``litellm.completion``'s are.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list fetch at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
litellm = pytest.importorskip("litellm")

import otm
from otm.testing.server import Scenario

IN, OUT = 19, 12
TTFB, GAP = 0.05, 0.005
SLACK = 0.3
MESSAGES = [{"role": "user", "content": "How much energy does this take?"}]


@pytest.fixture(scope="module", autouse=True)
def _warm(fake_server: Any) -> None:
    """LiteLLM's first-use costs (lazy imports of the Responses API path) paid before timing."""

    async def warm_async() -> None:
        await litellm.aresponses(**_responses(fake_server))
        async for _ in await litellm.aresponses(**_responses(fake_server, stream=True)):
            pass

    litellm.responses(**_responses(fake_server))
    list(litellm.responses(**_responses(fake_server, stream=True)))
    asyncio.run(warm_async())
    time.sleep(0.5)


@pytest.fixture(autouse=True)
def _litellm(server: Any) -> Iterator[None]:
    server.scenario = Scenario(input_tokens=IN, output_tokens=OUT, ttfb_s=TTFB, gap_s=GAP)
    otm.instrument(["litellm", "openai"])
    yield
    otm.uninstrument()


def settle(records: list[Any], n: int = 1, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    time.sleep(0.1)
    return records


async def asettle(records: list[Any], n: int = 1, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    return records


def check(t: Any, *, streamed: bool, operation: str) -> None:
    assert t.status == "ok" and t.streamed is streamed and t.operation == operation
    assert (t.input_tokens, t.output_tokens) == (IN, OUT) and not t.tokens_estimated
    assert t.provider == "local" and t.request_id and t.request_id.startswith("req_")
    assert TTFB - 0.01 <= t.ttft_s <= TTFB + SLACK
    if streamed:  # the first token is the first output delta, not a lifecycle event
        assert t.content_chunk_count == OUT and t.chunk_count > OUT
        assert t.last_token_time - t.first_token_time >= (OUT - 1) * GAP * 0.5
    else:
        assert t.first_token_time == t.last_token_time


# --------------------------------------------------------------------------- Responses API


def _responses(server: Any, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": server.openai_base_url,
        "api_key": "t",
        "input": "How much energy does this take?",
        **extra,
    }


def test_responses_carries_otm(server: Any, records: list[Any]) -> None:
    r = litellm.responses(**_responses(server))
    got = r.otm
    assert got is not None and settle(records) == [got]
    check(got.telemetry, streamed=False, operation="responses")
    assert got.telemetry.output_text_length == len(r.output[0].content[0].text)
    assert "otm" not in r.model_dump() and "otm" not in r.model_dump_json()


def test_responses_stream_carries_otm_once_it_ends(server: Any, records: list[Any]) -> None:
    stream = litellm.responses(**_responses(server, stream=True))
    assert stream.otm is None
    events = list(stream)
    assert events[-1].type == "response.completed"
    got = stream.otm
    assert got is not None and settle(records) == [got]
    check(got.telemetry, streamed=True, operation="responses")


async def test_async_responses_plain_and_stream_carry_otm(server: Any, records: list[Any]) -> None:
    r = await litellm.aresponses(**_responses(server))
    plain = r.otm
    stream = await litellm.aresponses(**_responses(server, stream=True))
    async for _ in stream:
        pass
    streamed = stream.otm
    assert plain is not None and streamed is not None
    assert await asettle(records, 2) == [plain, streamed]
    check(plain.telemetry, streamed=False, operation="responses")
    check(streamed.telemetry, streamed=True, operation="responses")


def test_responses_stream_closed_early_is_abandoned(server: Any, records: list[Any]) -> None:
    stream = litellm.responses(**_responses(server, stream=True))
    deltas = 0
    for event in stream:
        deltas += event.type == "response.output_text.delta"
        if deltas == 3:
            break
    stream.close()
    assert records == [stream.otm]
    t = records[0].telemetry
    assert t.status == "abandoned" and t.content_chunk_count == 3
    assert t.output_tokens >= 1 and t.output_tokens_estimated
    assert t.output_text_length == len("tok0 tok1 tok2")
    assert t.first_token_time < t.last_token_time <= t.end_time
    assert len(settle(records)) == 1


def test_responses_stream_dropped_is_abandoned(server: Any, records: list[Any]) -> None:
    stream = litellm.responses(**_responses(server, stream=True))
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    del stream, event
    assert len(settle(records)) == 1
    t = records[0].telemetry
    assert t.status == "abandoned" and t.content_chunk_count == 1
    assert t.end_time == t.last_token_time and t.output_text_length == len("tok0")


async def test_async_responses_stream_aclosed_early_is_abandoned(
    server: Any, records: list[Any]
) -> None:
    stream = await litellm.aresponses(**_responses(server, stream=True))
    async for event in stream:
        if event.type == "response.output_text.delta":
            break
    await stream.aclose()
    assert records == [stream.otm]
    t = records[0].telemetry
    assert t.status == "abandoned" and t.content_chunk_count == 1
    assert len(await asettle(records)) == 1


async def test_async_responses_stream_cancelled(server: Any, records: list[Any]) -> None:
    server.scenario = Scenario(input_tokens=IN, output_tokens=400, gap_s=0.01)
    holder: dict[str, Any] = {}
    started = asyncio.Event()

    async def consume() -> None:
        holder["stream"] = stream = await litellm.aresponses(**_responses(server, stream=True))
        async for event in stream:
            if event.type == "response.output_text.delta":
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert records == [holder["stream"].otm]
    t = records[0].telemetry
    assert t.status == "cancelled" and 1 <= t.content_chunk_count < 400
    assert len(await asettle(records)) == 1


# --------------------------------------------------------------------------- Router


@pytest.fixture()
def router(server: Any) -> Any:
    return litellm.Router(
        model_list=[
            {
                "model_name": "energy",
                "litellm_params": {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_base": server.anthropic_base_url,
                    "api_key": "t",
                },
            }
        ],
        num_retries=0,
    )


def test_router_completion_and_stream_carry_otm(router: Any, records: list[Any]) -> None:
    r = router.completion(model="energy", messages=MESSAGES)
    plain = r.otm
    stream = router.completion(model="energy", messages=MESSAGES, stream=True)
    for _ in stream:
        pass
    streamed = stream.otm
    assert plain is not None and streamed is not None
    assert settle(records, 2) == [plain, streamed]
    check(plain.telemetry, streamed=False, operation="chat")
    check(streamed.telemetry, streamed=True, operation="chat")


async def test_router_acompletion_and_stream_carry_otm(router: Any, records: list[Any]) -> None:
    r = await router.acompletion(model="energy", messages=MESSAGES)
    plain = r.otm
    stream = await router.acompletion(model="energy", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    streamed = stream.otm
    assert plain is not None and streamed is not None
    assert await asettle(records, 2) == [plain, streamed]
    check(plain.telemetry, streamed=False, operation="chat")
    check(streamed.telemetry, streamed=True, operation="chat")


def test_router_stream_closed_early_is_abandoned(router: Any, records: list[Any]) -> None:
    stream = router.completion(model="energy", messages=MESSAGES, stream=True)
    seen = 0
    while seen < 2:
        chunk = next(stream)
        seen += bool(chunk.choices and chunk.choices[0].delta.content)
    stream.close()
    assert records == [stream.otm]
    t = records[0].telemetry
    assert t.status == "abandoned" and t.content_chunk_count == 2 and t.input_tokens == IN
    assert len(settle(records)) == 1


def test_router_stream_dropped_is_abandoned(router: Any, records: list[Any]) -> None:
    for chunk in router.completion(model="energy", messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            break
    del chunk
    assert len(settle(records)) == 1
    t = records[0].telemetry
    assert t.status == "abandoned" and t.content_chunk_count == 1 and t.input_tokens == IN


async def test_router_async_stream_closed_early_is_abandoned(
    router: Any, records: list[Any]
) -> None:
    stream = await router.acompletion(model="energy", messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.aclose()
    assert records == [stream.otm]
    t = records[0].telemetry
    assert t.status == "abandoned" and t.content_chunk_count == 1
    assert len(await asettle(records)) == 1

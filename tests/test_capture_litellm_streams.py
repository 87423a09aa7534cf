"""Every ending of a LiteLLM stream makes one record, as the official SDKs' streams do.

LiteLLM logs a stream only once it has been read to its end. Against the local
fake server with the real litellm package, a stream the caller breaks off
(``break`` and drop, ``close()``, ``with``, an exception in the loop, a
cancelled task, a provider error mid-stream) makes exactly one record, with
the status the official SDKs' streams give (``abandoned``, ``cancelled``,
``error``), the tokens and times seen so far, and ``.otm`` on the stream;
LiteLLM's own callback, coming later, adds none. A stream read to its end
carries its last token and chunk counts, and a second ending changes nothing.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list fetch at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
litellm = pytest.importorskip("litellm")

import otm
from otm.capture import litellm_calls, litellm_read, litellm_streams
from otm.testing.server import Scenario

IN, OUT = 23, 30
GAP = 0.004
MESSAGES = [{"role": "user", "content": "How much energy does this take?"}]
ROUTES = ["anthropic", "openai"]


@pytest.fixture(scope="module", autouse=True)
def _warm(fake_server: Any) -> None:
    """LiteLLM's first-use costs paid before anything is timed."""
    for route in ROUTES:
        list(litellm.completion(**_kw(fake_server, route)))
    time.sleep(0.5)


@pytest.fixture(autouse=True)
def _litellm(server: Any) -> Iterator[None]:
    server.scenario = Scenario(input_tokens=IN, output_tokens=OUT, gap_s=GAP)
    otm.instrument(["litellm", "openai"])
    yield
    otm.uninstrument()


def _kw(server: Any, route: str, **extra: Any) -> dict[str, Any]:
    model, base = {
        "openai": ("openai/gpt-4o-mini", server.openai_base_url),
        "anthropic": ("anthropic/claude-sonnet-4-5", server.anthropic_base_url),
    }[route]
    kw: dict[str, Any] = {
        "model": model,
        "api_base": base,
        "api_key": "test",
        "messages": MESSAGES,
        "max_retries": 0,
        "stream": True,
    }
    kw.update(extra)
    return kw


def collected(records: list[Any], n: int = 1, timeout: float = 5.0) -> list[Any]:
    """Collect garbage until ``n`` records came (LiteLLM's stream sits in a reference cycle,
    and its logging worker may still hold it for a moment), then make sure none follows."""
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.02)
    time.sleep(0.1)
    gc.collect()
    return records


def settle(records: list[Any], n: int = 1, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    return records


async def asettle(records: list[Any], n: int = 1, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    return records


def has_text(chunk: Any) -> bool:
    return bool(chunk.choices and chunk.choices[0].delta.content)


def check_cut(t: Any, route: str, *, content: int, status: str = "abandoned") -> None:
    """A stream cut short: its status, what it carried so far, its times."""
    assert t.status == status and t.streamed
    assert t.content_chunk_count == content and t.chunk_count >= content
    assert t.output_tokens >= content and t.output_tokens_estimated  # counted from the text so far
    assert t.output_text_length == len(" ".join(f"tok{i}" for i in range(content)))
    if route == "anthropic":  # message_start reported the input: kept as the provider said
        assert t.input_tokens == IN and not t.input_tokens_estimated
    else:  # no usage came: counted from the request's text
        assert t.input_tokens > 0 and t.input_tokens_estimated
    assert t.request_id and t.request_id.startswith("req_")
    if content:
        assert t.start_time < t.first_token_time <= t.last_token_time <= t.end_time
    if content >= 4:  # the tokens' own spacing (loosely: a loaded machine reads late)
        assert t.last_token_time - t.first_token_time >= (content - 1) * GAP * 0.5


# --------------------------------------------------------------------------- sync endings


@pytest.mark.parametrize("route", ROUTES)
def test_break_then_drop_is_abandoned_at_the_last_chunk(
    route: str, server: Any, records: list[Any]
) -> None:
    stream = litellm.completion(**_kw(server, route))
    seen = 0
    for chunk in stream:
        seen += has_text(chunk)
        if seen == 5:
            break
    t_break = time.time()
    ref = weakref.ref(stream)
    del stream, chunk
    time.sleep(0.2)  # the record ends at the last chunk seen, not when it is collected
    assert len(collected(records)) == 1
    assert ref() is None  # otm kept nothing alive
    t = records[0].telemetry
    check_cut(t, route, content=5)
    assert t.end_time == t.last_token_time <= t_break


def test_break_out_of_a_loop_over_the_call(server: Any, records: list[Any]) -> None:
    for chunk in litellm.completion(**_kw(server, "anthropic")):
        if has_text(chunk):
            break
    del chunk
    assert len(collected(records)) == 1
    check_cut(records[0].telemetry, "anthropic", content=1)


@pytest.mark.parametrize("route", ROUTES)
def test_close_is_abandoned_at_once(route: str, server: Any, records: list[Any]) -> None:
    stream = litellm.completion(**_kw(server, route))
    seen = 0
    while seen < 3:
        seen += has_text(next(stream))
    stream.close()
    assert len(records) == 1 and stream.otm is records[0]  # at once: no gc, no worker
    check_cut(records[0].telemetry, route, content=3)
    stream.close()
    assert list(stream) == []  # LiteLLM's closed stream, as without otm
    del stream
    assert collected(records) == [records[0]]


def test_with_block_left_early_is_abandoned(server: Any, records: list[Any]) -> None:
    with litellm.completion(**_kw(server, "anthropic")) as stream:
        while not has_text(next(stream)):
            pass
    assert records == [stream.otm]
    check_cut(records[0].telemetry, "anthropic", content=1)


def test_exception_in_the_loop_is_abandoned(server: Any, records: list[Any]) -> None:
    stream = litellm.completion(**_kw(server, "anthropic"))

    def consume() -> None:
        seen = 0
        for chunk in stream:
            seen += has_text(chunk)
            if seen == 2:
                raise KeyError("the caller's own bug")

    with pytest.raises(KeyError):
        consume()
    stream.close()
    assert records == [stream.otm]
    check_cut(records[0].telemetry, "anthropic", content=2)


def test_dropped_unread_is_abandoned_at_its_headers(server: Any, records: list[Any]) -> None:
    stream = litellm.completion(**_kw(server, "anthropic"))
    del stream
    assert len(collected(records)) == 1
    t = records[0].telemetry
    assert t.status == "abandoned" and t.chunk_count == 0 and t.first_token_time is None
    assert t.input_tokens > 0 and t.end_time - t.start_time < 1.0  # the request was sent


def test_read_to_the_end_then_closed_or_dropped_stays_one_record(
    server: Any, records: list[Any]
) -> None:
    stream = litellm.completion(**_kw(server, "anthropic"))
    for _ in stream:
        pass
    got = stream.otm
    stream.close()
    del stream
    assert collected(records) == [got]
    t = got.telemetry
    assert t.status == "ok" and (t.input_tokens, t.output_tokens) == (IN, OUT)
    assert t.content_chunk_count == OUT and not t.tokens_estimated
    assert t.last_token_time - t.first_token_time >= (OUT - 1) * GAP * 0.5


def test_provider_error_mid_stream_is_one_error_record(
    server: Any, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # LiteLLM's failure callback runs on a worker thread: held back until the
    # stream's own end was recorded, then let through; it finds the call finished.
    held: list[tuple[Any, ...]] = []
    failure = litellm_calls.failure
    monkeypatch.setattr(litellm_calls, "failure", lambda *a: held.append(a))
    server.scenario = Scenario(input_tokens=IN, output_tokens=OUT, gap_s=GAP, error_after=4)
    stream = litellm.completion(**_kw(server, "anthropic"))
    with pytest.raises(litellm.exceptions.MidStreamFallbackError):  # what LiteLLM raises, untouched
        for _ in stream:
            pass
    assert records == [stream.otm]
    t = records[0].telemetry
    check_cut(t, "anthropic", content=4, status="error")
    assert t.error_type  # the provider's error as LiteLLM mapped it (not its fallback wrapper)
    assert "MidStreamFallback" not in t.error_type
    deadline = time.monotonic() + 5
    while not held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held
    for args in held:
        failure(*args)
    assert settle(records) == [stream.otm]


def test_late_callback_after_a_cut_adds_nothing(server: Any, records: list[Any]) -> None:
    # Even a success callback for a call already cut short (LiteLLM never sends
    # one, but a second logger path might) finds it finished.
    stream = litellm.completion(**_kw(server, "anthropic"))
    next(stream)
    details = dict(stream.logging_obj.model_call_details)
    stream.close()
    assert len(records) == 1
    litellm_calls.success(details, None, None, None)
    litellm_calls.failure({**details, "exception": RuntimeError("late")}, None, None)
    assert len(records) == 1


def test_text_completion_stream_dropped_is_abandoned(server: Any, records: list[Any]) -> None:
    stream = litellm.text_completion(
        model="anthropic/claude-sonnet-4-5",
        api_base=server.anthropic_base_url,
        api_key="t",
        prompt="hi",
        stream=True,
    )
    next(stream)
    next(stream)
    del stream
    assert len(collected(records)) == 1
    t = records[0].telemetry
    assert t.status == "abandoned" and t.operation == "completion" and t.content_chunk_count >= 1


def test_a_fault_in_otm_never_reaches_the_caller(
    server: Any,
    records: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("otm bug")

    monkeypatch.setattr(litellm_read, "fill_partial", boom)
    monkeypatch.setattr(litellm_calls, "fill_partial", boom)
    stream = litellm.completion(**_kw(server, "anthropic"))
    first = next(stream)
    stream.close()  # the close goes through; the record is made with what is known
    assert first is not None and len(records) == 1 and records[0].telemetry.status == "abandoned"
    assert sum("litellm.read[abandoned]" in m for m in caplog.messages) == 1

    monkeypatch.setattr(litellm_streams, "observe_chat", boom)  # each chunk's reading fails
    stream = litellm.completion(**_kw(server, "anthropic"))
    chunks = list(stream)
    assert sum(map(has_text, chunks)) == OUT  # every chunk reached the caller, unchanged
    assert sum("litellm.observe" in m for m in caplog.messages) == 1  # once, not per chunk
    assert stream.otm is records[-1] and records[-1].telemetry.status == "ok"


# --------------------------------------------------------------------------- async endings


async def test_async_break_and_aclose_is_abandoned(server: Any, records: list[Any]) -> None:
    stream = await litellm.acompletion(**_kw(server, "anthropic"))
    seen = 0
    async for chunk in stream:
        seen += has_text(chunk)
        if seen == 3:
            break
    await stream.aclose()
    assert records == [stream.otm]
    check_cut(records[0].telemetry, "anthropic", content=3)


async def test_async_with_left_early_is_abandoned(server: Any, records: list[Any]) -> None:
    async with await litellm.acompletion(**_kw(server, "openai")) as stream:
        while not has_text(await stream.__anext__()):
            pass
    assert records == [stream.otm]
    check_cut(records[0].telemetry, "openai", content=1)


async def test_async_break_then_drop_is_abandoned(server: Any, records: list[Any]) -> None:
    stream = await litellm.acompletion(**_kw(server, "anthropic"))
    async for chunk in stream:
        if has_text(chunk):
            break
    del stream, chunk
    deadline = time.monotonic() + 5
    while not records and time.monotonic() < deadline:
        gc.collect()
        await asyncio.sleep(0.02)
    assert len(await asettle(records)) == 1
    check_cut(records[0].telemetry, "anthropic", content=1)


async def test_async_cancel_mid_stream_is_cancelled(server: Any, records: list[Any]) -> None:
    server.scenario = Scenario(input_tokens=IN, output_tokens=400, gap_s=0.01)
    started = asyncio.Event()
    holder: dict[str, Any] = {}

    async def consume() -> None:
        stream = await litellm.acompletion(**_kw(server, "anthropic"))
        holder["stream"] = stream
        async for chunk in stream:
            if has_text(chunk):
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert records == [holder["stream"].otm]
    t = records[0].telemetry
    assert t.status == "cancelled" and t.error_type == "asyncio.exceptions.CancelledError"
    assert 1 <= t.content_chunk_count < 400 and t.output_tokens_estimated
    assert t.input_tokens == IN and t.first_token_time < t.last_token_time <= t.end_time
    assert len(await asettle(records)) == 1


async def test_async_exception_in_the_loop_is_abandoned(server: Any, records: list[Any]) -> None:
    async def consume() -> None:
        stream = await litellm.acompletion(**_kw(server, "openai"))
        async for chunk in stream:
            if has_text(chunk):
                raise KeyError("the caller's own bug")

    with pytest.raises(KeyError):
        await consume()
    deadline = time.monotonic() + 5
    while not records and time.monotonic() < deadline:
        gc.collect()
        await asyncio.sleep(0.02)
    assert len(await asettle(records)) == 1
    check_cut(records[0].telemetry, "openai", content=1)


async def test_async_provider_error_mid_stream_is_one_error_record(
    server: Any, records: list[Any]
) -> None:
    server.scenario = Scenario(input_tokens=IN, output_tokens=OUT, gap_s=GAP, error_after=3)
    stream = await litellm.acompletion(**_kw(server, "anthropic"))
    with pytest.raises(litellm.exceptions.MidStreamFallbackError):
        async for _ in stream:
            pass
    assert len(await asettle(records)) == 1 and records == [stream.otm]
    t = records[0].telemetry
    assert t.status == "error" and t.error_type and t.content_chunk_count == 3
    assert t.input_tokens == IN and t.output_tokens_estimated


async def test_async_read_to_the_end_then_aclosed_stays_one_record(
    server: Any, records: list[Any]
) -> None:
    stream = await litellm.acompletion(**_kw(server, "anthropic"))
    async for _ in stream:
        pass
    await stream.aclose()
    got = stream.otm
    assert got is not None and got.telemetry.status == "ok"
    assert await asettle(records) == [got]


# --------------------------------------------------------------------------- atext_completion


def _text_stream(server: Any) -> dict[str, Any]:
    return {
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": server.anthropic_base_url,
        "api_key": "t",
        "prompt": "hi",
        "stream": True,
    }


async def test_async_text_completion_stream_carries_otm(server: Any, records: list[Any]) -> None:
    stream = await litellm.atext_completion(**_text_stream(server))
    assert stream.otm is None
    texts = [chunk.choices[0].text async for chunk in stream if chunk.choices]
    assert "".join(t or "" for t in texts).startswith("tok0")
    got = stream.otm
    assert got is not None and got.telemetry.operation == "completion"
    t = got.telemetry
    assert t.status == "ok" and t.streamed and (t.input_tokens, t.output_tokens) == (IN, OUT)
    assert t.content_chunk_count == OUT
    assert await asettle(records) == [got]
    assert stream.otm is got


async def test_async_text_completion_stream_cancelled(server: Any, records: list[Any]) -> None:
    server.scenario = Scenario(input_tokens=IN, output_tokens=400, gap_s=0.01)
    holder: dict[str, Any] = {}
    started = asyncio.Event()

    async def consume() -> None:
        holder["stream"] = stream = await litellm.atext_completion(**_text_stream(server))
        async for _ in stream:
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert records == [holder["stream"].otm]
    assert records[0].telemetry.status == "cancelled"
    assert len(await asettle(records)) == 1


# --------------------------------------------------------------------------- threads


def test_streams_cut_in_threads_make_one_record_each(server: Any, records: list[Any]) -> None:
    def run(i: int) -> None:
        stream = litellm.completion(**_kw(server, "anthropic"))
        for _ in range(2 + i % 3):
            next(stream)
        if i % 2:
            stream.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(collected(records, 8)) == 8
    assert {r.telemetry.status for r in records} == {"abandoned"}
    assert len({r.telemetry.request_id for r in records}) == 8

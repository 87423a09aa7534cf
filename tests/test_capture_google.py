"""Capture of the google-genai SDK, driven against the local fake provider server.

``generate_content``, ``generate_content_stream`` (lazy bare generators),
``embed_content`` and chats, through ``client.models`` and
``client.aio.models``; multi-request calls (automatic function calling) with
``httpx2.MockTransport``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

genai = pytest.importorskip("google.genai")
httpx2 = pytest.importorskip("httpx2")

from conftest import bare_outcome, outcome
from google.genai import errors, types

import otm
from otm.capture import google_sdk
from otm.testing.server import scenario_headers

TTFB = 0.2
GAP = 0.02
TOL = 0.05
SLACK = 0.3  # upper bound in the call-path tests (shared, loaded test machines); strict TOL in the timing tests
MODEL = "gemini-test-model"

# 30 prompt tokens of which 6 cached; 6 visible output tokens plus 9 thoughts.
SCENARIO = {
    "ttfb_s": TTFB,
    "gap_s": GAP,
    "input_tokens": 30,
    "cached_input_tokens": 6,
    "output_tokens": 6,
    "reasoning_tokens": 9,
    "model": "gemini-served-model",
    "request_id": "resp_path_test",
}


def _config(**scenario: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        system_instruction="Be terse.",
        http_options=types.HttpOptions(headers=scenario_headers(**scenario)),
    )


def _kw(**scenario: Any) -> dict[str, Any]:
    return {"model": MODEL, "contents": "Say hello.", "config": _config(**scenario)}


def _new_client(server: Any, **http: Any) -> Any:
    return genai.Client(
        api_key="AIza-test-secret",
        http_options=types.HttpOptions(base_url=server.gemini_base_url, **http),
    )


@pytest.fixture(scope="module", autouse=True)
def _warm_sdk(fake_server: Any) -> Iterator[None]:
    """Pay the SDK's first-use costs before anything is timed, then freeze the heap (see the anthropic tests)."""
    c = _new_client(fake_server)
    c.models.generate_content(**_kw())
    for _ in c.models.generate_content_stream(**_kw()):
        pass

    async def warm_async() -> None:
        await c.aio.models.generate_content(**_kw())
        async for _ in await c.aio.models.generate_content_stream(**_kw()):
            pass

    asyncio.run(warm_async())
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    c.close()


@pytest.fixture()
def client(server: Any, instrumented: None) -> Iterator[Any]:
    c = _new_client(server)
    yield c
    c.close()


def _only(records: list[Any]) -> Any:
    assert len(records) == 1, records
    return records[0]


def _check_path_record(record: Any, *, streamed: bool) -> None:
    t = record.telemetry
    assert t.status == "ok"
    assert t.provider == "google"
    assert t.operation == "generate_content"
    assert t.model == "gemini-served-model"
    assert t.request_id == "resp_path_test"
    assert t.input_tokens == 30  # prompt_token_count includes the cached tokens
    assert t.cached_input_tokens == 6
    assert t.output_tokens == 15  # candidates + thoughts
    assert t.reasoning_tokens == 9
    assert t.tokens_estimated is False
    assert t.streamed is streamed
    assert t.input_text_length == len("Be terse.") + 1 + len("Say hello.")
    assert t.output_text_length == len("tok0 tok1 tok2 tok3 tok4 tok5")
    assert TTFB - 0.01 <= t.ttft_s <= TTFB + SLACK  # strict bounds in the timing tests
    if streamed:
        assert 5 * GAP - 0.01 <= t.decode_s <= 5 * GAP + SLACK
        assert t.chunk_count == 6
    else:
        assert t.first_token_time == t.last_token_time == t.end_time
    assert t.prompt is None and t.completion is None


# --------------------------------------------------------------------------- call paths


def _sync_generate(c: Any) -> tuple[Any, list[Any]]:
    r = c.models.generate_content(**_kw(**SCENARIO))
    assert isinstance(r, types.GenerateContentResponse)
    return r, [r]


def _sync_stream(c: Any) -> tuple[Any, list[Any]]:
    s = c.models.generate_content_stream(**_kw(**SCENARIO))
    chunks = list(s)
    assert "".join(ch.text for ch in chunks) == "tok0 tok1 tok2 tok3 tok4 tok5"
    return s, [s, chunks[-1]]


def _sync_stream_next(c: Any) -> tuple[Any, list[Any]]:
    s = c.models.generate_content_stream(**_kw(**SCENARIO))
    last = None
    with pytest.raises(StopIteration):
        while True:
            last = next(s)
    return s, [s, last]


def _sync_chat(c: Any) -> tuple[Any, list[Any]]:
    chat = c.chats.create(model=MODEL, config=_config(**SCENARIO))
    r = chat.send_message("Say hello.")
    assert len(chat.get_history()) == 2
    return r, [r]


def _sync_chat_stream(c: Any) -> tuple[Any, list[Any]]:
    chat = c.chats.create(model=MODEL, config=_config(**SCENARIO))
    chunks = list(chat.send_message_stream("Say hello."))
    history = chat.get_history()  # the SDK keeps one model Content per chunk
    assert history[0].role == "user" and history[-1].role == "model"
    return chunks[-1], [chunks[-1]]


SYNC_PATHS: dict[str, tuple[Callable[[Any], tuple[Any, list[Any]]], bool]] = {
    "generate_content": (_sync_generate, False),
    "generate_content_stream": (_sync_stream, True),
    "generate_content_stream_next": (_sync_stream_next, True),
    "chats.send_message": (_sync_chat, False),
    "chats.send_message_stream": (_sync_chat_stream, True),
}


@pytest.mark.parametrize("path", list(SYNC_PATHS))
def test_sync_call_paths(path: str, client: Any, records: list[Any]) -> None:
    run, streamed = SYNC_PATHS[path]
    _, holders = run(client)
    record = _only(records)
    _check_path_record(record, streamed=streamed)
    for holder in holders:
        assert holder.otm is record


async def _async_generate(c: Any) -> tuple[Any, list[Any]]:
    r = await c.aio.models.generate_content(**_kw(**SCENARIO))
    return r, [r]


async def _async_stream(c: Any) -> tuple[Any, list[Any]]:
    s = await c.aio.models.generate_content_stream(**_kw(**SCENARIO))
    chunks = [ch async for ch in s]
    return s, [s, chunks[-1]]


async def _async_stream_anext(c: Any) -> tuple[Any, list[Any]]:
    s = await c.aio.models.generate_content_stream(**_kw(**SCENARIO))
    last = None
    with pytest.raises(StopAsyncIteration):
        while True:
            last = await s.__anext__()
    return s, [s, last]


async def _async_chat(c: Any) -> tuple[Any, list[Any]]:
    chat = c.aio.chats.create(model=MODEL, config=_config(**SCENARIO))
    r = await chat.send_message("Say hello.")
    return r, [r]


async def _async_chat_stream(c: Any) -> tuple[Any, list[Any]]:
    chat = c.aio.chats.create(model=MODEL, config=_config(**SCENARIO))
    chunks = [ch async for ch in await chat.send_message_stream("Say hello.")]
    history = chat.get_history()
    assert history[0].role == "user" and history[-1].role == "model"
    return chunks[-1], [chunks[-1]]


ASYNC_PATHS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "generate_content": (_async_generate, False),
    "generate_content_stream": (_async_stream, True),
    "generate_content_stream_anext": (_async_stream_anext, True),
    "chats.send_message": (_async_chat, False),
    "chats.send_message_stream": (_async_chat_stream, True),
}


@pytest.mark.parametrize("path", list(ASYNC_PATHS))
async def test_async_call_paths(path: str, client: Any, records: list[Any]) -> None:
    run, streamed = ASYNC_PATHS[path]
    _, holders = await run(client)
    record = _only(records)
    _check_path_record(record, streamed=streamed)
    for holder in holders:
        assert holder.otm is record


def test_embed_content(client: Any, records: list[Any]) -> None:
    r = client.models.embed_content(
        model="text-embedding-004",
        contents=["first text", "second"],
        config=types.EmbedContentConfig(
            http_options=types.HttpOptions(headers=scenario_headers(input_tokens=17))
        ),
    )
    assert len(r.embeddings) == 2
    t = _only(records).telemetry
    assert r.otm is records[0]
    assert (t.operation, t.status, t.streamed) == ("embeddings", "ok", False)
    assert t.input_tokens == 17 and t.output_tokens == 0
    assert t.model == "text-embedding-004"
    assert t.input_text_length == len("first text") + 1 + len("second")


async def test_async_embed_content(client: Any, records: list[Any]) -> None:
    r = await client.aio.models.embed_content(
        model="models/text-embedding-004", contents="one text"
    )
    t = _only(records).telemetry
    assert r.otm is records[0]
    assert t.operation == "embeddings" and t.input_tokens == 12
    assert t.model == "text-embedding-004"  # "models/" prefix dropped


# --------------------------------------------------------------------------- timing and laziness


def _strictly_timed(measure: Callable[[], Any], *, decode: float | None, attempts: int = 3) -> None:
    """Within 50 ms of what the server injected; never early; late ones retried (CPU contention)."""
    for _ in range(attempts):
        t = measure()
        assert t.ttft_s >= TTFB - 0.01, t
        if decode is not None:
            assert t.decode_s >= decode - 0.01, t
        if abs(t.ttft_s - TTFB) <= TOL and (decode is None or abs(t.decode_s - decode) <= TOL):
            return
    pytest.fail(f"timing off after {attempts} attempts: ttft={t.ttft_s:.3f} decode={t.decode_s}")


def test_timing_plain(client: Any) -> None:
    _strictly_timed(
        lambda: client.models.generate_content(**_kw(**SCENARIO)).otm.telemetry, decode=None
    )


def test_timing_stream_is_measured_from_first_next(client: Any, server: Any) -> None:
    """No request before the first next(): the clock starts there, not at the call."""

    def measure() -> Any:
        before = server.request_count
        s = client.models.generate_content_stream(**_kw(**{**SCENARIO, "gap_s": 0.05}))
        time.sleep(0.3)
        assert server.request_count == before  # lazy: nothing sent yet
        assert s.otm is None
        for _ in s:
            pass
        assert server.request_count == before + 1
        return s.otm.telemetry

    _strictly_timed(measure, decode=5 * 0.05)


async def test_timing_async_stream_is_measured_from_first_next(client: Any, server: Any) -> None:
    for _ in range(3):
        before = server.request_count
        s = await client.aio.models.generate_content_stream(**_kw(**{**SCENARIO, "gap_s": 0.05}))
        await asyncio.sleep(0.3)
        assert server.request_count == before
        async for _ in s:
            pass
        t = s.otm.telemetry
        assert t.ttft_s >= TTFB - 0.01 and t.decode_s >= 0.25 - 0.01
        if abs(t.ttft_s - TTFB) <= TOL and abs(t.decode_s - 0.25) <= TOL:
            return
    pytest.fail(f"timing off: ttft={t.ttft_s:.3f} decode={t.decode_s:.3f}")


# --------------------------------------------------------------------------- the attribute itself


def test_otm_is_invisible_to_serialisation_and_equality(client: Any) -> None:
    r = client.models.generate_content(**_kw())
    assert r.otm is not None
    clean = types.GenerateContentResponse.model_validate(r.model_dump())
    assert "otm" not in r.model_dump()
    assert "otm" not in json.loads(r.model_dump_json())
    assert r == clean
    with pytest.raises(ValueError):  # genai models forbid extra fields: plain setattr raises
        r.something = 1


def test_stream_proxy_behaves_like_the_generator(client: Any) -> None:
    s = client.models.generate_content_stream(**_kw())
    assert iter(s) is s
    assert s.otm is None
    first = s.send(None)
    assert isinstance(first, types.GenerateContentResponse)
    assert s.gi_frame is not None  # generator attributes pass through
    rest = list(s)
    assert len(rest) == 7
    assert s.otm is not None and s.otm.telemetry.chunk_count == 8


def test_prompt_capture_is_opt_in(client: Any, records: list[Any], configure: Any) -> None:
    configure(capture_prompts=True)
    client.models.generate_content(**_kw(text="Hi there"))
    for _ in client.models.generate_content_stream(**_kw(text="Hi there")):
        pass
    plain, streamed = (r.telemetry for r in records)
    assert plain.prompt == "Be terse.\nSay hello."
    assert plain.completion == "Hi there"
    assert streamed.completion == "Hi there"


def test_no_credentials_in_records(client: Any, records: list[Any]) -> None:
    client.models.generate_content(**_kw())
    for _ in client.models.generate_content_stream(**_kw()):
        pass
    for r in records:
        dumped = json.dumps(r.to_dict(with_impact=False))
        assert "AIza-test-secret" not in dumped
        assert "x-goog-api-key" not in dumped.lower()


# --------------------------------------------------------------------------- stream endings


def test_break_then_drop_is_abandoned(client: Any, records: list[Any]) -> None:
    s = client.models.generate_content_stream(**_kw(gap_s=0.02, output_tokens=20, input_tokens=33))
    for _ in s:
        break
    assert records == []  # the proxy is still held: the user may resume
    next(s)
    del s
    t = _only(records).telemetry
    assert t.status == "abandoned"
    assert t.input_tokens == 33  # running usage from the chunks seen
    assert t.chunk_count == 2


def test_close_is_abandoned(client: Any, records: list[Any]) -> None:
    s = client.models.generate_content_stream(**_kw(output_tokens=20))
    next(s)
    s.close()
    assert _only(records).telemetry.status == "abandoned"
    assert s.otm is records[0]


def test_never_started_stream_records_nothing(client: Any, server: Any, records: list[Any]) -> None:
    before = server.request_count
    s = client.models.generate_content_stream(**_kw())
    s.close()
    s2 = client.models.generate_content_stream(**_kw())
    del s2
    gc.collect()
    assert records == []
    assert server.request_count == before


async def test_async_stream_aclose(client: Any, records: list[Any]) -> None:
    s = await client.aio.models.generate_content_stream(**_kw(output_tokens=20))
    await s.__anext__()
    await s.aclose()
    assert _only(records).telemetry.status == "abandoned"


async def test_async_stream_break_then_drop(client: Any, records: list[Any]) -> None:
    s = await client.aio.models.generate_content_stream(**_kw(output_tokens=20))
    async for _ in s:
        break
    del s
    gc.collect()
    assert _only(records).telemetry.status == "abandoned"


# --------------------------------------------------------------------------- failures


def test_error_frame_mid_stream(client: Any, records: list[Any]) -> None:
    s = client.models.generate_content_stream(**_kw(error_after=2, input_tokens=21))
    seen = 0
    with pytest.raises(errors.ServerError):
        for _ in s:
            seen += 1
    assert seen == 2
    t = _only(records).telemetry
    assert (t.status, t.http_status) == ("error", 500)
    assert t.error_type == "google.genai.errors.ServerError"
    assert t.input_tokens == 21  # running usage of the chunks before the error


def test_dropped_connection(client: Any, records: list[Any]) -> None:
    # exactly what the bare SDK raises on the same fault, whatever class that is
    def drop() -> None:
        for _ in client.models.generate_content_stream(**_kw(drop_after=2)):
            pass

    bare = bare_outcome("google", drop)
    assert any(n.endswith("RemoteProtocolError") for n in bare)  # the fault: a dropped connection
    records.clear()
    assert outcome(drop) == bare
    t = _only(records).telemetry
    assert t.status == "error" and t.error_type == bare[0]


@pytest.mark.parametrize(("status", "exc"), [(429, errors.ClientError), (500, errors.ServerError)])
def test_http_errors_are_not_retried_by_default(
    status: int, exc: type, client: Any, server: Any, records: list[Any]
) -> None:
    before = server.request_count
    with pytest.raises(exc) as info:
        client.models.generate_content(**_kw(status=status))
    assert type(info.value) is exc
    assert server.request_count == before + 1  # genai retries are off unless retry_options is set
    t = _only(records).telemetry
    assert (t.status, t.http_status) == ("error", status)
    assert t.error_type == f"google.genai.errors.{exc.__name__}"
    assert t.input_tokens == 0


def test_http_error_on_stream_is_raised_at_first_next(client: Any, records: list[Any]) -> None:
    s = client.models.generate_content_stream(**_kw(status=429))
    assert records == []
    with pytest.raises(errors.ClientError):
        next(s)
    t = _only(records).telemetry
    assert (t.status, t.http_status, t.streamed) == ("error", 429, True)


async def test_async_http_error(client: Any, records: list[Any]) -> None:
    with pytest.raises(errors.ServerError):
        await client.aio.models.generate_content(**_kw(status=503))
    assert _only(records).telemetry.http_status == 503


def test_missing_usage_is_estimated_from_text(client: Any, records: list[Any]) -> None:
    r = client.models.generate_content(**_kw(include_usage=False, text="y" * 40))
    s = client.models.generate_content_stream(**_kw(include_usage=False, text="y" * 40))
    for _ in s:
        pass
    for t in (r.otm.telemetry, s.otm.telemetry):
        assert t.status == "ok"
        assert t.tokens_estimated is True
        assert t.output_tokens == 10
        assert t.output_text_length == 40
        assert t.input_tokens > 0  # from the prompt's length


def test_unknown_model_name(client: Any) -> None:
    r = client.models.generate_content(model="totally-unknown-model-v9", contents="hi")
    assert r.otm.telemetry.model == "totally-unknown-model-v9"
    r.otm.energy_wh  # noqa: B018 - never raises, whatever the estimator knows


# --------------------------------------------------------------------------- one user call, several requests


def _afc_transport(*, stream: bool) -> tuple[Any, list[Any]]:
    """Round 1 asks for a function call, round 2 answers; each reports its own usage."""
    seen: list[Any] = []
    rounds = [
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 3,
                "totalTokenCount": 13,
            },
            "modelVersion": "gemini-afc",
            "responseId": "round-1",
        },
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Sunny in Paris."}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 20,
                "candidatesTokenCount": 5,
                "thoughtsTokenCount": 2,
                "cachedContentTokenCount": 4,
                "totalTokenCount": 27,
            },
            "modelVersion": "gemini-afc",
            "responseId": "round-2",
        },
    ]

    def handler(request: Any) -> Any:
        body = rounds[min(len(seen), 1)]
        seen.append(request)
        if stream:
            return httpx2.Response(
                200,
                content=f"data: {json.dumps(body)}\r\n\r\n".encode(),
                headers={"content-type": "text/event-stream"},
            )
        return httpx2.Response(200, json=body)

    return httpx2.MockTransport(handler), seen


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def test_automatic_function_calling_is_one_record(instrumented: None, records: list[Any]) -> None:
    transport, seen = _afc_transport(stream=False)
    c = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url="http://mock.invalid", httpx_client=httpx2.Client(transport=transport)
        ),
    )
    r = c.models.generate_content(
        model=MODEL,
        contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert r.text == "Sunny in Paris."
    assert len(seen) == 2
    t = _only(records).telemetry
    assert r.otm is records[0]
    # tokens summed over both rounds; the response itself only reports the last
    assert (t.input_tokens, t.cached_input_tokens, t.output_tokens, t.reasoning_tokens) == (
        30,
        4,
        10,
        2,
    )
    assert r.usage_metadata.prompt_token_count == 20
    assert t.request_id == "round-2"


def test_automatic_function_calling_stream_is_one_record(
    instrumented: None, records: list[Any]
) -> None:
    transport, seen = _afc_transport(stream=True)
    c = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url="http://mock.invalid", httpx_client=httpx2.Client(transport=transport)
        ),
    )
    s = c.models.generate_content_stream(
        model=MODEL,
        contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    chunks = list(s)
    assert len(seen) == 2 and chunks[-1].text == "Sunny in Paris."
    t = _only(records).telemetry
    assert (t.input_tokens, t.cached_input_tokens, t.output_tokens, t.reasoning_tokens) == (
        30,
        4,
        10,
        2,
    )
    assert t.request_id == "round-1"  # the first response id of the call
    assert chunks[-1].otm is s.otm is records[0]


async def test_async_automatic_function_calling_is_one_record(
    instrumented: None, records: list[Any]
) -> None:
    transport, seen = _afc_transport(stream=False)
    c = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url="http://mock.invalid",
            httpx_async_client=httpx2.AsyncClient(transport=transport),
        ),
    )
    r = await c.aio.models.generate_content(
        model=MODEL, contents="Weather?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert len(seen) == 2 and r.text == "Sunny in Paris."
    t = _only(records).telemetry
    assert (t.input_tokens, t.output_tokens) == (30, 10)


async def test_async_automatic_function_calling_stream_is_one_record(
    instrumented: None, records: list[Any]
) -> None:
    transport, seen = _afc_transport(stream=True)
    c = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url="http://mock.invalid",
            httpx_async_client=httpx2.AsyncClient(transport=transport),
        ),
    )
    s = await c.aio.models.generate_content_stream(
        model=MODEL, contents="Weather?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    chunks = [ch async for ch in s]
    assert len(seen) == 2 and chunks[-1].text == "Sunny in Paris."
    t = _only(records).telemetry
    assert (t.input_tokens, t.output_tokens, t.reasoning_tokens) == (30, 10, 2)


# --------------------------------------------------------------------------- never break the user's call


def test_internal_failure_leaves_result_untouched(
    client: Any,
    records: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("otm bug")

    monkeypatch.setattr(google_sdk, "_usage_figures", boom)
    monkeypatch.setattr(google_sdk._State, "observe", boom)
    r = client.models.generate_content(**_kw())
    assert isinstance(r, types.GenerateContentResponse) and r.text
    chunks = list(client.models.generate_content_stream(**_kw()))
    assert "".join(ch.text for ch in chunks) == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    assert "otm: internal error" in caplog.text


def test_failing_listener_does_not_reach_the_user(client: Any, records: list[Any]) -> None:
    unsubscribe = otm.on_record(lambda record: 1 / 0)
    try:
        r = client.models.generate_content(**_kw())
    finally:
        unsubscribe()
    assert r.otm is records[0]


# --------------------------------------------------------------------------- concurrency


def test_threads_share_one_client(client: Any, records: list[Any]) -> None:
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        s = client.models.generate_content_stream(
            **_kw(request_id=f"resp_thread_{i}", input_tokens=10 + i, gap_s=0.005)
        )
        for _ in s:
            pass
        results[i] = s

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(records) == 8
    for i, s in results.items():
        t = s.otm.telemetry
        assert (t.request_id, t.input_tokens, t.status) == (f"resp_thread_{i}", 10 + i, "ok")


async def test_many_concurrent_async_streams(client: Any, records: list[Any]) -> None:
    n = 25

    async def one(i: int) -> Any:
        s = await client.aio.models.generate_content_stream(
            **_kw(ttfb_s=TTFB, gap_s=0.01, output_tokens=5, request_id=f"resp_async_{i}")
        )
        async for _ in s:
            pass
        return s

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    streams = await asyncio.gather(*(one(i) for i in range(n)))
    assert loop.time() - t0 < 2.0  # concurrent, not n x 0.25 s
    assert len(records) == n
    assert {s.otm.telemetry.request_id for s in streams} == {f"resp_async_{i}" for i in range(n)}
    # Every stream saw the injected delay; the tasks share one event loop (and a
    # busy CPU), so later ones wait for the others' request building: check the median.
    ttfts = sorted(s.otm.telemetry.ttft_s for s in streams)
    assert ttfts[0] >= TTFB - 0.01
    assert ttfts[n // 2] == pytest.approx(TTFB, abs=0.15)


async def test_cancelled_while_streaming(client: Any, records: list[Any]) -> None:
    got_first = asyncio.Event()

    async def consume() -> None:
        async for _ in await client.aio.models.generate_content_stream(
            **_kw(gap_s=0.5, output_tokens=5)
        ):
            got_first.set()

    task = asyncio.create_task(consume())
    await got_first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _only(records).telemetry.status == "cancelled"


async def test_cancelled_before_response(client: Any, records: list[Any]) -> None:
    task = asyncio.create_task(client.aio.models.generate_content(**_kw(ttfb_s=1.0)))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _only(records).telemetry.status == "cancelled"


# --------------------------------------------------------------------------- instrument / uninstrument / wrap


def test_uninstrument_restores_the_sdk(server: Any, records: list[Any]) -> None:
    import types as pytypes

    otm.instrument(["google"])
    otm.uninstrument()
    c = _new_client(server)
    r = c.models.generate_content(**_kw())
    s = c.models.generate_content_stream(**_kw())
    assert isinstance(s, pytypes.GeneratorType)
    list(s)
    assert records == []
    assert not hasattr(r, "otm")
    otm.instrument(["google"])
    try:
        assert c.models.generate_content(**_kw()).otm is not None
    finally:
        otm.uninstrument()


def test_wrap_applies_settings_to_that_client_only(server: Any, records: list[Any]) -> None:
    dep = otm.Deployment(accelerator="tpu-v6e", count=4)
    c = _new_client(server)
    plain = _new_client(server)
    try:
        assert otm.wrap(c, deployment=dep, region="US-VA", tags={"team": "maps"}) is c
        c.models.generate_content(**_kw())
        for _ in c.models.generate_content_stream(**_kw()):
            pass
        c.chats.create(model=MODEL).send_message("hi")

        async def via_aio() -> None:
            await c.aio.models.generate_content(**_kw())

        asyncio.run(via_aio())
        plain.models.generate_content(**_kw())
    finally:
        otm.uninstrument()
    *mine, other = records
    assert len(mine) == 4
    for r in mine:
        assert (r.region, r.tags, r.deployment) == ("US-VA", {"team": "maps"}, dep)
        # a Gemini model behind 127.0.0.1: a gateway to google, wrapped or not
        assert (r.telemetry.provider, r.telemetry.provider_source) == ("google", "gateway")
    assert (other.region, other.tags, other.deployment) == (None, {}, None)
    assert other.telemetry.provider == "google"


def test_wrap_provider_override(server: Any, records: list[Any]) -> None:
    c = _new_client(server)
    try:
        assert otm.wrap(c, provider="google") is c
        c.models.generate_content(**_kw())
    finally:
        otm.uninstrument()
    assert _only(records).telemetry.provider == "google"


def test_adapter_protocol(server: Any) -> None:
    c = _new_client(server)
    remote = genai.Client(api_key="k")
    assert google_sdk.owns(c) and google_sdk.owns(c.aio) and not google_sdk.owns(object())
    assert google_sdk.detect_host(c) == ("local", "private")
    assert google_sdk.detect_host(remote) == ("google", "api")
    assert c.models._api_client in google_sdk.settings_keys(c)
    names = {(cls.__name__, name) for cls, name, _ in google_sdk.targets()}
    for cls in ("Models", "AsyncModels"):
        for name in ("generate_content", "generate_content_stream", "embed_content"):
            assert (cls, name) in names

"""``.otm`` on what LiteLLM returns, read at once or late: one record per call either way.

LiteLLM logs a call after it returned (a worker thread for a sync call, a task
on the caller's loop for an async one; a stream after it ended), so a first
read of ``.otm`` may come before or after LiteLLM's callback. Against the
local fake server with the real litellm package: every call makes exactly one
record, ``.otm`` is that record, and its figures are LiteLLM's own (tokens,
first-chunk time) and the server's (time to first token, request id),
whichever came first. Both orders are forced where they could race.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list fetch at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
litellm = pytest.importorskip("litellm")
CustomLogger = pytest.importorskip("litellm.integrations.custom_logger").CustomLogger

import otm
from otm.capture import litellm_calls
from otm.testing.server import Scenario

IN, OUT = 23, 4
TTFB, GAP = 0.04, 0.01
SLACK = 0.3  # LiteLLM's own work between the wire and its stamps, on a loaded machine
MESSAGES = [{"role": "user", "content": "How much energy does this take?"}]


class Spy(CustomLogger):  # type: ignore[misc]
    """What LiteLLM's own callback is given, per call id: to hold otm's record against."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, dict[str, Any]] = {}

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        final = kwargs.get("complete_streaming_response") if kwargs.get("stream") else None
        usage = getattr(final if final is not None else response_obj, "usage", None)
        self.seen[kwargs["litellm_call_id"]] = {
            "first": kwargs.get("completion_start_time"),
            "end": end_time,
            "tokens": (usage.prompt_tokens, usage.completion_tokens) if usage else None,
        }

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.log_success_event(kwargs, response_obj, start_time, end_time)


@pytest.fixture(scope="module")
def spy(fake_server: Any) -> Iterator[Spy]:
    """Registered once (LiteLLM copies its callback lists); LiteLLM's first-use costs paid here."""
    s = Spy()
    litellm.callbacks.append(s)
    for route in ("anthropic", "openai"):
        litellm.completion(**_kw(fake_server, route))
        list(litellm.completion(**_kw(fake_server, route, stream=True)))
    time.sleep(0.3)
    yield s
    litellm.callbacks[:] = [cb for cb in litellm.callbacks if cb is not s]


@pytest.fixture(autouse=True)
def _litellm(server: Any, spy: Spy) -> Iterator[None]:
    server.scenario = Scenario(input_tokens=IN, output_tokens=OUT, ttfb_s=TTFB, gap_s=GAP)
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
    }
    if route == "openai" and extra.get("stream"):
        kw["stream_options"] = {"include_usage": True}
    kw.update(extra)
    return kw


def settle(records: list[Any], n: int = 1, timeout: float = 5.0) -> list[Any]:
    """Wait for LiteLLM's callbacks (a worker thread), then make sure no other record follows."""
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    return records


async def asettle(records: list[Any], n: int = 1, timeout: float = 5.0) -> list[Any]:
    """The async twin: LiteLLM's callbacks are tasks on this loop."""
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    return records


class Turn:
    """Who comes first, forced: the read of ``.otm`` (LiteLLM's success callback held
    back until after it, then let through) or LiteLLM's callback (waited for)."""

    def __init__(self, first: str, records: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
        self.first = first
        self.records = records
        self.held: list[tuple[Any, ...]] = []
        self._success = litellm_calls.success
        if first == "read":
            monkeypatch.setattr(litellm_calls, "success", lambda *a: self.held.append(a))

    def before_read(self, n: int = 1) -> None:
        if self.first == "callback":
            assert len(settle(self.records, n)) == n

    def after_read(self, n: int = 1) -> list[Any]:
        if self.first == "read":
            deadline = time.monotonic() + 5
            while len(self.held) < n and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(self.held) == n
            for args in self.held:  # LiteLLM's callback, late: it finds the call finished
                self._success(*args)
            self.held.clear()
        return settle(self.records, n)

    async def abefore_read(self, n: int = 1) -> None:
        if self.first == "callback":
            assert len(await asettle(self.records, n)) == n

    async def aafter_read(self, n: int = 1) -> list[Any]:
        if self.first == "read":
            deadline = time.monotonic() + 5
            while len(self.held) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert len(self.held) == n
            for args in self.held:
                self._success(*args)
            self.held.clear()
        return await asettle(self.records, n)


@pytest.fixture(params=["read", "callback"], ids=["read_first", "callback_first"])
def turn(request: Any, records: list[Any], monkeypatch: pytest.MonkeyPatch) -> Turn:
    return Turn(request.param, records, monkeypatch)


def call_id(obj: Any) -> str:
    if hasattr(obj, "logging_obj"):
        return obj.logging_obj.litellm_call_id  # type: ignore[no-any-return]
    return obj._hidden_params["litellm_call_id"]  # type: ignore[no-any-return]


def check(record: Any, spy: Spy, cid: str, *, streamed: bool) -> None:
    """The record is the server's call and agrees with what LiteLLM's own callback got."""
    t = record.telemetry
    assert t.status == "ok" and t.streamed is streamed
    assert (t.input_tokens, t.output_tokens) == (IN, OUT)
    assert t.request_id and t.request_id.startswith("req_")
    assert TTFB - 0.01 <= t.ttft_s <= TTFB + SLACK
    seen = spy.seen[cid]
    assert seen["tokens"] == (IN, OUT)  # LiteLLM's usage, as its callback got it
    # otm's end is when LiteLLM had the response (a stream: its iteration ended);
    # LiteLLM's end_time comes after its own post-processing (or worker's turn).
    assert seen["end"].timestamp() - SLACK <= t.end_time <= seen["end"].timestamp() + 0.01
    if streamed:
        # the first chunk is LiteLLM's own stamp; the first and last tokens, and the
        # chunk counts, otm's layer on LiteLLM's stream saw as the caller read them
        assert t.first_chunk_time == pytest.approx(seen["first"].timestamp(), abs=1e-6)
        assert t.first_chunk_time <= t.first_token_time < t.first_chunk_time + GAP
        assert t.content_chunk_count == OUT and t.chunk_count >= OUT
        assert t.last_token_time - t.first_token_time >= (OUT - 1) * GAP * 0.5
        assert t.last_token_time <= t.end_time
        assert t.duration_s >= t.ttft_s + (OUT - 1) * GAP * 0.5
    else:
        assert t.first_token_time == t.last_token_time == t.end_time


# --------------------------------------------------------------------------- plain calls


@pytest.mark.parametrize("route", ["anthropic", "openai"])
def test_completion_carries_otm(route: str, turn: Turn, server: Any, spy: Spy) -> None:
    r = litellm.completion(**_kw(server, route))
    turn.before_read()
    got = r.otm
    assert turn.after_read() == [got]
    assert r.otm is got
    check(got, spy, call_id(r), streamed=False)
    assert "otm" not in r.model_dump() and "otm" not in r.model_dump_json()


async def test_acompletion_carries_otm(turn: Turn, server: Any, spy: Spy) -> None:
    r = await litellm.acompletion(**_kw(server, "anthropic"))
    await turn.abefore_read()
    got = r.otm
    assert await turn.aafter_read() == [got]
    check(got, spy, call_id(r), streamed=False)


async def test_acompletion_read_at_once_never_waits_for_the_loop(
    server: Any, records: list[Any]
) -> None:
    # Unforced: LiteLLM's callback is a task on this very loop, so it cannot
    # have run yet; the read finishes the call without waiting for it.
    r = await litellm.acompletion(**_kw(server, "anthropic"))
    assert not records
    got = r.otm
    assert records == [got]
    assert await asettle(records) == [got]


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("route", ["anthropic", "openai"])
def test_stream_carries_otm_once_it_ends(route: str, turn: Turn, server: Any, spy: Spy) -> None:
    stream = litellm.completion(**_kw(server, route, stream=True))
    assert stream.otm is None  # not before the stream has been read to its end
    pending = [stream.otm is None for _ in stream]
    # (LiteLLM has the whole stream when it hands out its last chunk: the usage
    # chunk it adds when asked for one)
    assert len(pending) > OUT and all(pending[:-1])
    turn.before_read()
    got = stream.otm
    assert got is not None
    assert turn.after_read() == [got]
    check(got, spy, call_id(stream), streamed=True)


@pytest.mark.parametrize("route", ["anthropic", "openai"])
async def test_async_stream_carries_otm_once_it_ends(
    route: str, turn: Turn, server: Any, spy: Spy
) -> None:
    stream = await litellm.acompletion(**_kw(server, route, stream=True))
    pending = [stream.otm is None async for _ in stream]
    assert len(pending) > OUT and all(pending[:-1])
    await turn.abefore_read()
    got = stream.otm
    assert got is not None
    assert await turn.aafter_read() == [got]
    check(got, spy, call_id(stream), streamed=True)


# --------------------------------------------------------------------------- other call types


def test_text_completion_and_embedding_carry_otm(
    turn: Turn, server: Any, records: list[Any], spy: Spy
) -> None:
    # text_completion reaches a chat model through LiteLLM's chat path and
    # converts the result: the record is found by LiteLLM's call id.
    text = litellm.text_completion(
        model="openai/gpt-4o-mini", api_base=server.openai_base_url, api_key="t", prompt="hi"
    )
    turn.before_read()
    got = text.otm
    assert turn.after_read() == [got]
    assert got.telemetry.operation == "completion"
    check(got, spy, call_id(text), streamed=False)
    records.clear()

    emb = litellm.embedding(
        model="openai/text-embedding-3-small",
        api_base=server.openai_base_url,
        api_key="t",
        input=["one", "two"],
    )
    turn.before_read()
    got = emb.otm
    assert turn.after_read() == [got]
    assert got.telemetry.operation == "embeddings"
    assert got.telemetry.output_tokens == 0 and got.telemetry.input_tokens == IN


async def test_async_text_completion_and_embedding_carry_otm(
    server: Any, records: list[Any], spy: Spy
) -> None:
    text = await litellm.atext_completion(
        model="openai/gpt-4o-mini", api_base=server.openai_base_url, api_key="t", prompt="hi"
    )
    got = [text.otm]
    emb = await litellm.aembedding(
        model="openai/text-embedding-3-small", api_base=server.openai_base_url, api_key="t", input=["a"]
    )
    got.append(emb.otm)
    assert [r.telemetry.operation for r in got] == ["completion", "embeddings"]
    assert await asettle(records, 2) == got
    check(got[0], spy, call_id(text), streamed=False)


def _text_stream(server: Any) -> dict[str, Any]:
    return {
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": server.anthropic_base_url,
        "api_key": "t",
        "prompt": "hi",
        "stream": True,
    }


def test_text_completion_stream_carries_otm(server: Any, records: list[Any], spy: Spy) -> None:
    stream = litellm.text_completion(**_text_stream(server))  # a TextCompletionStreamWrapper
    assert stream.otm is None
    for _ in stream:
        pass
    got = stream.otm
    assert got is not None and got.telemetry.operation == "completion"
    assert settle(records) == [got]
    check(got, spy, call_id(stream.completion_stream), streamed=True)


# --------------------------------------------------------------------------- exactly once, either order


def test_read_first_then_callback_makes_one_record(
    server: Any, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hold LiteLLM's callback until .otm has been read: the read finishes the
    # call, the callback then finds it finished.
    release = threading.Event()
    callback_done = threading.Event()
    original = litellm_calls.success

    def held(*args: Any) -> None:
        release.wait(5)
        original(*args)
        callback_done.set()

    monkeypatch.setattr(litellm_calls, "success", held)
    r = litellm.completion(**_kw(server, "anthropic"))
    got = r.otm
    assert records == [got]
    release.set()
    assert callback_done.wait(5)
    assert settle(records) == [got]
    assert r.otm is got


def test_callback_first_then_read_is_the_same_record(server: Any, records: list[Any]) -> None:
    r = litellm.completion(**_kw(server, "anthropic"))
    settle(records)
    assert len(records) == 1
    assert r.otm is records[0]


def test_a_read_while_the_callback_finishes_waits_for_it(
    server: Any, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # LiteLLM's worker thread claims the call and is slow to read it; a read of
    # .otm in the caller's thread meanwhile waits for that thread, not a second record.
    claimed = threading.Event()
    original = litellm_calls.fill_success

    def slow(call: Any, *args: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            claimed.set()
            time.sleep(0.3)
        original(call, *args)

    monkeypatch.setattr(litellm_calls, "fill_success", slow)
    r = litellm.completion(**_kw(server, "anthropic"))
    assert claimed.wait(5)
    got = r.otm
    assert got is not None and records == [got]
    assert settle(records) == [got]


def test_track_and_experiment_see_each_call_once(server: Any, records: list[Any], tmp_path: Any) -> None:
    @otm.track(name="litellm-run")
    def run() -> list[Any]:
        r = litellm.completion(**_kw(server, "anthropic"))
        stream = litellm.completion(**_kw(server, "anthropic", stream=True))
        for _ in stream:
            pass
        return [r.otm, stream.otm]

    with otm.experiment("litellm-otm", output_dir=tmp_path, reports=()) as exp:
        got = run()
        settle(records, 2)
    assert all(r is not None for r in got)
    ids = sorted(map(id, got))
    assert sorted(map(id, exp.records)) == ids and sorted(map(id, records)) == ids
    assert sorted(map(id, otm.last_run().records)) == ids


# --------------------------------------------------------------------------- never in the way


def test_otm_stays_out_of_the_response(server: Any) -> None:
    r = litellm.completion(**_kw(server, "anthropic"))
    bare = r.model_dump()
    assert r.otm is not None
    assert r.model_dump() == bare and "otm" not in vars(r)
    twin = copy.deepcopy(r)
    assert twin == r and twin.otm.telemetry == r.otm.telemetry


def test_a_fault_in_otm_never_reaches_the_caller(
    server: Any, records: list[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("otm bug")

    monkeypatch.setattr(litellm_calls, "_claim", boom)
    r = litellm.completion(**_kw(server, "anthropic"))
    assert getattr(r, "otm", None) is None  # missing, the response untouched
    stream = litellm.completion(**_kw(server, "anthropic", stream=True))
    assert len(list(stream)) > 0 and stream.otm is None
    assert r.choices[0].message.content
    assert sum("resolve .otm" in m for m in caplog.messages) == 2  # once per class, not per read
    getattr(r, "otm", None)
    assert sum("resolve .otm" in m for m in caplog.messages) == 2


def test_not_recorded_means_no_otm(server: Any, records: list[Any]) -> None:
    otm.uninstrument()
    r = litellm.completion(**_kw(server, "anthropic"))
    assert not hasattr(r, "otm")
    assert settle(records, timeout=0.3) == []


# --------------------------------------------------------------------------- many calls, read late

BATCH = 1_100
"""More calls than otm keeps finished records for by id (``_MAX_FINISHED``): a batch
read afterwards, or LiteLLM's callbacks lagging that far behind the reads."""


def test_a_batch_of_text_completions_read_afterwards_all_carry_otm(
    server: Any, records: list[Any]
) -> None:
    # text_completion converts LiteLLM's chat response into the object the caller
    # gets; LiteLLM's callback logs the chat response. Read after the whole batch,
    # each result still finds its own record (not only the last 1,024).
    assert BATCH > litellm_calls._MAX_FINISHED
    server.scenario = Scenario(input_tokens=IN, output_tokens=1)
    kw = {"model": "openai/gpt-4o-mini", "api_base": server.openai_base_url, "api_key": "t"}
    results = [litellm.text_completion(prompt=f"hi {i}", **kw) for i in range(BATCH)]
    settle(records, BATCH, timeout=30)
    got = [getattr(r, "otm", None) for r in results]
    assert all(g is not None for g in got)
    assert len({id(g) for g in got}) == BATCH
    assert len(records) == BATCH and {id(r) for r in records} == {id(g) for g in got}
    assert [g.telemetry.request_id for g in got] == [
        r._hidden_params.additional_headers["llm_provider-x-request-id"] for r in results
    ]


def test_callbacks_lagging_a_batch_of_reads_add_no_record(
    server: Any, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each .otm is read at once (the read finishes the call), while LiteLLM's
    # callbacks are held back until the whole batch is done (a busy logging
    # worker): each late callback finds its call finished.
    held: list[tuple[Any, ...]] = []
    success = litellm_calls.success
    monkeypatch.setattr(litellm_calls, "success", lambda *a: held.append(a))
    server.scenario = Scenario(input_tokens=IN, output_tokens=1)
    kw = _kw(server, "anthropic")
    got = [litellm.completion(**kw).otm for _ in range(BATCH)]
    assert len(records) == BATCH and all(g is not None for g in got)
    deadline = time.monotonic() + 30
    while len(held) < BATCH and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(held) == BATCH
    for args in held:
        success(*args)
    assert len(records) == BATCH

"""The capture core on its own: Call, finishing once, streams, patches, wrappers, tokens."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from otm.capture import patching, streams, tokens, wrappers
from otm.capture.call import Call
from otm.capture.clients import ClientSettings
from otm.telemetry import Telemetry

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- Call


def test_finish_builds_and_emits_once(records: list[Any]) -> None:
    call = Call("openai", "chat", "gpt-4o", streamed=True)
    call.input_tokens, call.output_tokens, call.cached_input_tokens, call.reasoning_tokens = (
        10,
        5,
        20,
        9,
    )
    call.chunk(False)
    call.chunk(True)
    call.text("hello")
    call.chunk(True)
    rec = call.finish("ok")
    assert records == [rec] and call.finish("error") is rec and call.fail(ValueError()) is rec
    t = rec.telemetry
    assert t.status == "ok" and t.chunk_count == 3 and t.output_text_length == 5
    assert t.cached_input_tokens == 10 and t.reasoning_tokens == 5  # clamped to consistent values
    assert t.first_chunk_time < t.first_token_time < t.last_token_time <= t.end_time
    Telemetry.model_validate(t.model_dump())  # what capture builds is valid telemetry


def test_finish_from_many_threads_emits_once(records: list[Any]) -> None:
    for _ in range(20):
        call = Call("openai", "chat", "m")
        barrier = threading.Barrier(8)

        def go(call: Call = call, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            call.finish("ok")

        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(records) == 20


def test_hold_attaches_now_or_later() -> None:
    class Box:
        pass

    call = Call("openai", "chat", "m")
    early, late = Box(), Box()
    call.hold(early)
    rec = call.finish("ok")
    call.hold(late)
    assert early.otm is rec and late.otm is rec  # type: ignore[attr-defined]


def test_fail_statuses() -> None:
    class HTTPError(Exception):
        status_code = 503
        request_id = "req_x"

    c1 = Call("p", "chat", "m")
    c1.fail(HTTPError())
    assert (
        c1.record.telemetry.status,
        c1.record.telemetry.http_status,
        c1.record.telemetry.request_id,
    ) == ("error", 503, "req_x")
    assert c1.record.telemetry.error_type.endswith("HTTPError")
    c2 = Call("p", "chat", "m")
    c2.fail(asyncio.CancelledError())
    assert c2.record.telemetry.status == "cancelled"
    c3 = Call("p", "chat", "m")
    c3.fail(KeyboardInterrupt())
    assert c3.record.telemetry.status == "cancelled"


def test_outcome_overrides_a_normal_end() -> None:
    call = Call("p", "responses", "m", streamed=True)
    call.outcome = "error"
    assert call.finish("ok").telemetry.status == "error"
    call2 = Call("p", "responses", "m", streamed=True)
    call2.outcome = "error"
    assert call2.finish("abandoned").telemetry.status == "abandoned"


def test_a_call_is_recorded_under_the_settings_it_started_with(
    records: list[Any], configure: Any
) -> None:
    configure(tags={"phase": "before"})
    call = Call("p", "chat", "m")
    configure(tags={"phase": "after"}, capture_prompts=True)
    call.prompt = "secret"
    rec = call.finish()
    assert rec.tags == {"phase": "before"} and rec.telemetry.prompt is None
    assert Call("p", "chat", "m").finish().tags == {"phase": "after"}


def test_settings_and_defaults(records: list[Any], configure: Any) -> None:
    configure(region="FRA", tags={"env": "test", "team": "a"})
    plain = Call("p", "chat", "m").finish()
    s = ClientSettings(region="US-VA", tags={"team": "b"}, provider="local", deployment="dep")
    custom = Call("p", "chat", "m", s).finish()
    assert (plain.region, plain.tags) == ("FRA", {"env": "test", "team": "a"})
    assert (custom.region, custom.tags, custom.deployment, custom.telemetry.provider) == (
        "US-VA",
        {"env": "test", "team": "b"},
        "dep",
        "local",
    )


def test_prepare_runs_once_and_failures_are_contained() -> None:
    seen: list[int] = []

    def prepare(call: Call) -> None:
        seen.append(1)
        call.input_text_length = 40

    call = Call("p", "chat", "m")
    call.prepare = prepare
    rec = call.finish("ok")
    assert seen == [1] and rec.telemetry.input_tokens == 10 and rec.telemetry.tokens_estimated

    def bad(call: Call) -> None:
        raise RuntimeError("x")

    call = Call("p", "chat", "m")
    call.prepare = bad
    assert call.finish("ok") is not None


def test_refused_calls_assume_no_tokens() -> None:
    call = Call("p", "chat", "m")
    call.input_text_length = 400
    call.http_status = 429
    assert call.finish("error").telemetry.input_tokens == 0
    served = Call("p", "chat", "m", streamed=True)
    served.input_text_length = 400
    served.t_headers = time.perf_counter()
    assert served.finish("error").telemetry.input_tokens == 100


def test_gc_finalises_abandoned_at_last_activity(records: list[Any]) -> None:
    class Holder:
        pass

    call = Call("p", "chat", "m", streamed=True)
    first, second = Holder(), Holder()
    call.finalise_on_gc(first)
    call.finalise_on_gc(second)  # watching moves: dropping the first must not finish
    del first
    gc.collect()
    assert records == []
    call.chunk(True)
    time.sleep(0.05)
    del second
    gc.collect()
    t = records[0].telemetry
    assert t.status == "abandoned" and t.end_time == t.last_token_time


def test_make_telemetry_equals_model_construct() -> None:
    call = Call("openai", "chat", "m", streamed=True)
    call.chunk(True)
    fast = call.finish().telemetry
    slow = Telemetry.model_construct(**fast.model_dump())
    assert fast == slow and fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set


# --------------------------------------------------------------------------- tokens


def test_count_tokens_fallback_is_chars_over_four(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_tiktoken_failed", True)
    assert tokens.count_tokens("a" * 40, 40, "gpt-4o") == 10
    assert tokens.count_tokens(None, 3, None) == 1
    assert tokens.count_tokens(None, 0, None) == 0
    assert tokens.count_tokens("abcdefgh", 0, None) == 2


def test_count_tokens_never_waits_long_for_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tokenizer that cannot load (offline download hanging) costs one bounded wait."""
    pytest.importorskip("tiktoken")
    release = threading.Event()

    def slow_loader(name: str, done: threading.Event) -> None:
        release.wait(5)
        tokens._encoders[name] = None
        done.set()

    monkeypatch.setattr(tokens, "_tiktoken_failed", False)
    monkeypatch.setattr(tokens, "_encoders", {})
    monkeypatch.setattr(tokens, "_encoder_loading", {})
    monkeypatch.setattr(tokens, "_load_encoder", slow_loader)
    t = time.perf_counter()
    assert tokens.count_tokens("x" * 80, 80, "gpt-4o") == 20
    assert tokens.count_tokens("x" * 80, 80, "gpt-4o") == 20
    assert time.perf_counter() - t < 1.0
    release.set()


def test_tokenizer_available_reflects_a_failed_load(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tiktoken")
    monkeypatch.setattr(tokens, "_tiktoken_failed", False)
    monkeypatch.setattr(tokens, "_encoders", {"o200k_base": None})
    assert tokens.tokenizer_available("gpt-4o") is False


# --------------------------------------------------------------------------- streams


class FakeStream:
    """Shaped like the SDKs' Stream: a private generator read by __iter__ and __next__."""

    def __init__(self, items: list[Any], fail: BaseException | None = None) -> None:
        self.closed = False
        self._iterator = self._gen(items, fail)

    def _gen(self, items: list[Any], fail: BaseException | None) -> Iterator[Any]:
        yield from items
        if fail is not None:
            raise fail

    def __next__(self) -> Any:
        return self._iterator.__next__()

    def __iter__(self) -> Iterator[Any]:
        yield from self._iterator

    def close(self) -> None:
        self.closed = True


def observe(call: Call, item: Any) -> None:
    call.chunk(bool(item))
    call.text(item)


def test_instrument_stream_keeps_identity_and_finishes(records: list[Any]) -> None:
    s = FakeStream(["", "ab", "cd"])
    call = Call("p", "chat", "m")
    out = streams.instrument_stream(s, call, observe, is_async=False)
    assert out is s and isinstance(s, FakeStream) and type(s).__name__ == "FakeStream"
    assert streams.stream_call(s) is call
    assert streams.instrument_stream(s, call, observe, is_async=False) is s  # twice is once
    assert list(s) == ["", "ab", "cd"]
    t = s.otm.telemetry  # type: ignore[attr-defined]
    assert (t.status, t.chunk_count, t.output_text_length, t.streamed) == ("ok", 3, 4, True)
    assert records == [s.otm]  # type: ignore[attr-defined]


def test_instrument_stream_error_and_close(records: list[Any]) -> None:
    s = streams.instrument_stream(
        FakeStream(["a"], fail=ValueError("x")), Call("p", "chat", "m"), observe, is_async=False
    )
    with pytest.raises(ValueError):
        list(s)
    assert s.otm.telemetry.status == "error"
    s2 = streams.instrument_stream(
        FakeStream(["a", "b"]), Call("p", "chat", "m"), observe, is_async=False
    )
    next(s2)
    s2.close()
    assert s2.closed and s2.otm.telemetry.status == "abandoned"


class FakeAsyncStream:
    def __init__(self, items: list[Any]) -> None:
        self._iterator = self._gen(items)

    async def _gen(self, items: list[Any]) -> AsyncIterator[Any]:
        for i in items:
            await asyncio.sleep(0)
            yield i

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for i in self._iterator:
            yield i

    async def close(self) -> None:
        pass

    async def aclose(self) -> None:
        await self.close()


async def test_instrument_async_stream(records: list[Any]) -> None:
    s = streams.instrument_stream(
        FakeAsyncStream(["x", "yz"]), Call("p", "chat", "m"), observe, is_async=True
    )
    assert [i async for i in s] == ["x", "yz"]
    assert s.otm.telemetry.output_text_length == 3
    s2 = streams.instrument_stream(
        FakeAsyncStream(["x", "yz"]), Call("p", "chat", "m"), observe, is_async=True
    )
    await s2.__anext__()
    await s2.aclose()
    assert s2.otm.telemetry.status == "abandoned" and len(records) == 2


def test_sync_stream_proxy(records: list[Any]) -> None:
    def gen() -> Iterator[str]:
        yield "a"
        yield "bc"

    p = streams.SyncStreamProxy(gen(), Call("google", "generate_content", "g"), observe)
    assert list(p) == ["a", "bc"] and p.otm.telemetry.output_text_length == 3
    unused = streams.SyncStreamProxy(gen(), Call("google", "generate_content", "g"), observe)
    unused.close()
    del unused
    gc.collect()
    assert len(records) == 1  # never started: no request, no record


async def test_async_stream_proxy(records: list[Any]) -> None:
    async def gen() -> AsyncIterator[str]:
        yield "a"
        yield "b"

    p = streams.AsyncStreamProxy(gen(), Call("google", "generate_content", "g"), observe)
    assert [x async for x in p] == ["a", "b"] and p.otm.telemetry.status == "ok"


# --------------------------------------------------------------------------- patches and wrappers


class Resource:
    def create(self, x: int) -> int:
        return x * 2

    async def acreate(self, x: int) -> int:
        return x * 3

    def fails(self) -> None:
        raise LookupError("sdk error")


def test_registry_install_uninstall_idempotent() -> None:
    reg = patching.PatchRegistry()
    hits: list[str] = []

    def begin(instance: Any, args: Any, kwargs: Any) -> Call:
        hits.append("begin")
        return Call("p", "chat", "m")

    def targets() -> list[Any]:
        return [
            (Resource, "create", wrappers.make_sync_wrapper("t", begin, lambda call, r: r)),
            (Resource, "missing", wrappers.make_sync_wrapper("t", begin, lambda call, r: r)),
        ]

    original = Resource.__dict__["create"]
    assert reg.install("p", targets()) == 1
    assert reg.install("p", targets()) == 0
    assert Resource().create(2) == 4 and hits == ["begin"]
    reg.uninstall("p")
    assert Resource.__dict__["create"] is original and not reg.is_installed("p")
    assert Resource().create(2) == 4 and hits == ["begin"]


def test_wrappers_never_break_the_call(records: list[Any]) -> None:
    def bad_begin(instance: Any, args: Any, kwargs: Any) -> Call:
        raise RuntimeError("begin")

    def bad_complete(call: Call, result: Any) -> Any:
        raise RuntimeError("complete")

    def ok_begin(instance: Any, args: Any, kwargs: Any) -> Call:
        return Call("p", "chat", "m")

    r = Resource()
    w1 = wrappers.make_sync_wrapper("t", bad_begin, lambda c, x: x)
    assert w1(r.create, r, (5,), {}) == 10
    w2 = wrappers.make_sync_wrapper("t", ok_begin, bad_complete)
    assert w2(r.create, r, (5,), {}) == 10
    w3 = wrappers.make_sync_wrapper("t", ok_begin, lambda c, x: x)
    exc = LookupError("the SDK's own")

    def raises() -> None:
        raise exc

    with pytest.raises(LookupError) as info:
        w3(raises, r, (), {})
    assert info.value is exc
    assert records[-1].telemetry.status == "error"
    w4 = wrappers.make_passthrough_wrapper("t", bad_complete)
    assert w4(r.create, r, (1,), {}) == 2


async def test_async_wrapper_begins_when_awaited() -> None:
    started: list[float] = []

    def begin(instance: Any, args: Any, kwargs: Any) -> Call:
        started.append(time.perf_counter())
        return Call("p", "chat", "m")

    r = Resource()
    w = wrappers.make_async_wrapper("t", begin, lambda c, x: x)
    coro = w(r.acreate, r, (2,), {})
    assert started == []  # created, not yet awaited
    assert await coro == 6 and len(started) == 1


# --------------------------------------------------------------------------- import hygiene


def test_imports_stay_light() -> None:
    code = (
        "import sys, otm\n"
        "assert not any(m in sys.modules for m in ('openai', 'anthropic', 'google.genai')), 'otm imported an SDK'\n"
        "import otm.capture, otm.capture.call, otm.capture.openai_sdk\n"
        "assert 'otm.estimate' not in sys.modules and 'otm.report' not in sys.modules, 'capture imported the estimator'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)

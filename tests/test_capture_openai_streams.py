"""openai capture: how streams end, errors, threads, patch lifecycle, and otm failing safely."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from conftest import bare_outcome, outcome

import otm
from otm.capture import call as call_module
from otm.capture import openai_sdk
from otm.testing.server import scenario_headers as H

MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture()
def otm_openai() -> Iterator[None]:
    otm.instrument("openai")
    yield
    otm.uninstrument("openai")


@pytest.fixture()
def client(server: Any, otm_openai: None) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
    yield c
    c.close()


def stream_of(client: openai.OpenAI, **scenario: Any) -> Any:
    return client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=H(**scenario),
    )


# --------------------------------------------------------------------------- how a stream ends


def test_normal_end_with_next(client: openai.OpenAI, records: list[Any]) -> None:
    stream = stream_of(client, output_tokens=3)
    chunks = []
    with pytest.raises(StopIteration):
        while True:
            chunks.append(next(stream))
    assert len(chunks) == 6
    assert [r.telemetry.status for r in records] == ["ok"] and stream.otm is records[0]
    stream.close()  # closing after the end changes nothing
    del stream
    gc.collect()
    assert len(records) == 1


def test_break_is_abandoned_at_once(client: openai.OpenAI, records: list[Any]) -> None:
    stream = stream_of(client, output_tokens=50, gap_s=0.002)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    assert [r.telemetry.status for r in records] == ["abandoned"]  # no gc needed
    t = records[0].telemetry
    assert stream.otm is records[0] and t.first_token_time is not None
    assert t.tokens_estimated and t.output_tokens >= 1 and t.input_tokens > 0  # usage never came
    # the user can still resume the SDK stream; the record is final and stays single
    rest = sum(1 for _ in stream)
    assert rest > 0 and len(records) == 1


def test_close_is_abandoned(client: openai.OpenAI, records: list[Any]) -> None:
    stream = stream_of(client, output_tokens=20)
    next(stream)
    stream.close()
    assert [r.telemetry.status for r in records] == ["abandoned"] and stream.otm is records[0]
    stream.close()
    assert len(records) == 1


def test_with_exit_early_and_after_full_read(client: openai.OpenAI, records: list[Any]) -> None:
    with stream_of(client, output_tokens=20) as stream:
        next(stream)
    assert records[-1].telemetry.status == "abandoned" and stream.otm is records[-1]
    with stream_of(client, output_tokens=2) as stream:
        for _ in stream:
            pass
    assert records[-1].telemetry.status == "ok" and len(records) == 2


def test_never_iterated_stream_is_finalised_by_gc(
    client: openai.OpenAI, records: list[Any]
) -> None:
    stream = stream_of(client, output_tokens=4)
    stream.response.close()
    del stream
    assert records == []  # openai's Stream <-> generator cycle: refcounting alone cannot free it
    gc.collect()
    assert [r.telemetry.status for r in records] == ["abandoned"]
    t = records[0].telemetry
    assert t.first_chunk_time is None and t.chunk_count == 0
    assert (
        t.end_time is not None and t.end_time - t.start_time < 1.0
    )  # ends at the headers, not at the gc pass


def test_error_frame_mid_stream(client: openai.OpenAI, records: list[Any]) -> None:
    stream = stream_of(client, output_tokens=10, error_after=3)
    seen = 0
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen += 1
    assert type(info.value) is openai.APIError  # the very class the SDK raises
    assert seen == 3
    t = records[0].telemetry
    assert (t.status, t.error_type) == ("error", "openai.APIError")
    assert stream.otm is records[0] and len(records) == 1
    assert t.output_text_length > 0 and t.tokens_estimated


def test_dropped_connection(client: openai.OpenAI, records: list[Any]) -> None:
    # exactly what the bare SDK raises on the same fault, whatever class that is
    def drop() -> None:
        for _ in stream_of(client, output_tokens=10, drop_after=2):
            pass

    bare = bare_outcome("openai", drop)
    assert any(n.endswith("RemoteProtocolError") for n in bare)  # the fault: a dropped connection
    records.clear()
    assert outcome(drop) == bare
    t = records[0].telemetry
    assert (t.status, t.error_type) == ("error", bare[0])
    assert len(records) == 1


@pytest.mark.parametrize(
    ("status", "exc"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (404, openai.NotFoundError)],
)
def test_http_errors(
    client: openai.OpenAI, records: list[Any], status: int, exc: type[Exception]
) -> None:
    with pytest.raises(exc) as info:
        client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers=H(status=status, request_id="req_err")
        )
    assert type(info.value) is exc
    t = records[0].telemetry
    assert (t.status, t.http_status, t.request_id) == ("error", status, "req_err")
    assert t.error_type == f"openai.{exc.__name__}"
    assert (t.input_tokens, t.output_tokens) == (0, 0)  # refused: nothing assumed processed
    with pytest.raises(exc):
        stream_of(client, status=status)
    assert records[-1].telemetry.http_status == status and len(records) == 2


def test_error_from_stream_helper(client: openai.OpenAI, records: list[Any]) -> None:
    with (
        pytest.raises(openai.RateLimitError),
        client.chat.completions.stream(model="m", messages=MESSAGES, extra_headers=H(status=429)),
    ):
        pass
    assert [(r.telemetry.status, r.telemetry.http_status) for r in records] == [("error", 429)]


def test_same_result_types_as_bare_sdk(client: openai.OpenAI, server: Any) -> None:
    bare = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
    otm.uninstrument("openai")
    plain_bare = bare.chat.completions.create(model="m", messages=MESSAGES)
    stream_bare = bare.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    otm.instrument("openai")
    plain = client.chat.completions.create(model="m", messages=MESSAGES)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert type(plain) is type(plain_bare)
    assert (
        isinstance(stream, type(stream_bare))
        and type(stream).__name__ == type(stream_bare).__name__
    )
    assert [c.choices[0].delta.content for c in stream] == [
        c.choices[0].delta.content for c in stream_bare
    ]


# --------------------------------------------------------------------------- threads


def test_threads_share_one_client(client: openai.OpenAI, records: list[Any]) -> None:
    results: dict[str, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(k: int) -> None:
        try:
            barrier.wait()
            for j in range(4):
                rid = f"req_t{k}_{j}"
                out = 3 + (k + j) % 5
                if j % 2:
                    s = stream_of(client, output_tokens=out, gap_s=0.002, request_id=rid)
                    for _ in s:
                        pass
                    results[rid] = (s, out)
                else:
                    r = client.chat.completions.create(
                        model="m",
                        messages=MESSAGES,
                        extra_headers=H(output_tokens=out, request_id=rid),
                    )
                    results[rid] = (r, out)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(records) == 32 and len({id(r) for r in records}) == 32
    for rid, (obj, out) in results.items():
        t = obj.otm.telemetry
        assert (t.request_id, t.output_tokens, t.status) == (rid, out, "ok")


# --------------------------------------------------------------------------- patch lifecycle


def test_uninstrument_removes_patches(server: Any, records: list[Any]) -> None:
    from openai.resources.chat import Completions

    original = Completions.__dict__["create"]
    assert otm.instrument("openai") == otm.instrument("openai")  # idempotent
    patched = Completions.__dict__["create"]
    assert patched is not original
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
    c.chat.completions.create(model="m", messages=MESSAGES)
    assert len(records) == 1  # instrumented twice, recorded once
    otm.uninstrument("openai")
    assert Completions.__dict__["create"] is original
    r = c.chat.completions.create(model="m", messages=MESSAGES)
    for _ in c.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        pass
    with c.chat.completions.stream(model="m", messages=MESSAGES) as helper:
        helper.until_done()
    assert len(records) == 1 and getattr(r, "otm", None) is None
    otm.instrument("openai")
    c.chat.completions.create(model="m", messages=MESSAGES)
    assert len(records) == 2
    otm.uninstrument()


def test_uninstrument_with_a_later_wrapper_on_top(server: Any, records: list[Any]) -> None:
    """Another instrumentor wrapping after us stays in place; our layer goes inert."""
    import wrapt
    from openai.resources.chat import Completions

    original = Completions.__dict__["create"]
    otm.instrument("openai")
    seen: list[str] = []

    def theirs(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append("theirs")
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(Completions, "create", theirs)
    try:
        otm.uninstrument("openai")
        c = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
        c.chat.completions.create(model="m", messages=MESSAGES)
        assert seen == ["theirs"] and records == []
    finally:
        Completions.create = original  # type: ignore[method-assign]


def test_disabled_setting_passes_through(
    client: openai.OpenAI, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Patches still installed (e.g. left by another instrumentor's stack), settings disabled.
    from otm import config

    monkeypatch.setattr(config._state, "current", config.Settings(disabled=True))
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        pass
    assert records == [] and getattr(r, "otm", None) is None


# --------------------------------------------------------------------------- otm failing never reaches the user


def test_failing_usage_reader_is_contained(
    client: openai.OpenAI,
    records: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("reader bug")

    monkeypatch.setitem(openai_sdk._MODEL_READERS, "chat", boom)
    with caplog.at_level(logging.WARNING, logger="otm"):
        r = client.chat.completions.create(model="m", messages=MESSAGES)
        r2 = client.chat.completions.create(model="m", messages=MESSAGES)
    assert r.choices[0].message.content and r2.choices[0].message.content
    assert sum("reader bug" in rec.getMessage() for rec in caplog.records) == 1  # logged once
    # the call is still recorded, with what could be read
    assert r.otm is records[0] and r2.otm is records[1]
    assert [rec.telemetry.status for rec in records] == ["ok", "ok"]


def test_failing_observer_keeps_every_chunk(
    client: openai.OpenAI, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(call: Any, chunk: Any) -> None:
        raise ValueError("observer bug")

    monkeypatch.setitem(openai_sdk._OBSERVERS, "chat", boom)
    stream = stream_of(client, output_tokens=5)
    texts = [c.choices[0].delta.content for c in stream if c.choices]
    assert texts[1:6] == ["tok0", " tok1", " tok2", " tok3", " tok4"]
    assert records[-1].telemetry.status == "ok"


def test_failing_record_build_is_contained(
    client: openai.OpenAI, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: Any) -> Any:
        raise KeyError("build bug")

    monkeypatch.setattr(call_module, "build_record", boom)
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    stream = stream_of(client, output_tokens=2)
    assert len(list(stream)) == 5
    assert getattr(r, "otm", None) is None and records == []


def test_failing_begin_still_makes_the_call(
    client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("begin bug")

    monkeypatch.setattr(openai_sdk, "_new_call", boom)
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    assert r.choices and getattr(r, "otm", None) is None


def test_failing_listener_is_contained(client: openai.OpenAI, records: list[Any]) -> None:
    def bad(_: Any) -> None:
        raise RuntimeError("listener bug")

    unsubscribe = otm.on_record(bad)
    try:
        r = client.chat.completions.create(model="m", messages=MESSAGES)
        for _ in stream_of(client):
            pass
    finally:
        unsubscribe()
    assert r.otm is records[0] and len(records) == 2


def test_user_exception_inside_loop_passes_unchanged(
    client: openai.OpenAI, records: list[Any]
) -> None:
    class Mine(Exception):
        pass

    stream = stream_of(client, output_tokens=5)
    with pytest.raises(Mine):
        for _ in stream:
            raise Mine
    assert records[-1].telemetry.status == "abandoned"

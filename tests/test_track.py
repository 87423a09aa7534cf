"""@otm.track: runs on the four kinds of functions, nesting, context propagation."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_report_support import emit_call

import otm
from otm import events
from otm.report.track import Run


def test_sync_function_collects_its_calls_and_keeps_behaviour() -> None:
    @otm.track
    def answer(q: str, *, n: int = 2) -> str:
        """Answer a question."""
        for i in range(n):
            emit_call(i)
        return q.upper()

    emit_call(99)  # outside: not in the run
    assert answer("hi", n=3) == "HI"
    run = otm.last_run()
    assert isinstance(run, Run)
    assert run.name.endswith("answer")
    assert len(run.records) == 3
    assert [r.telemetry.request_id for r in run.records] == ["req-0", "req-1", "req-2"]
    # functools.wraps: name, doc and signature survive
    assert answer.__name__ == "answer"
    assert answer.__doc__ == "Answer a question."
    assert str(inspect.signature(answer)) == "(q: 'str', *, n: 'int' = 2) -> 'str'"
    assert events.current_scope() == ()


def test_totals_sum_the_records() -> None:
    @otm.track(name="summing", tags={"stage": "a"})
    def work() -> None:
        emit_call(0, input_tokens=10, output_tokens=20)
        emit_call(1, input_tokens=30, output_tokens=40, status="error")

    work()
    run = otm.last_run()
    assert run is not None and run.name == "summing" and run.tags == {"stage": "a"}
    t = run.totals
    assert t.requests == 2
    assert t.by_status == {"ok": 1, "error": 1}
    assert (t.input_tokens, t.output_tokens) == (40, 60)
    energies = [r.impact.energy_wh for r in run.records]
    assert t.energy_wh.value == pytest.approx(sum(e.value for e in energies))
    # same model/provider/region: one correlation group, so lows and highs simply add
    assert t.energy_wh.low == pytest.approx(sum(e.low for e in energies))
    assert t.energy_wh.high == pytest.approx(sum(e.high for e in energies))
    assert t.cost_usd == pytest.approx(sum(r.impact.cost_usd for r in run.records))
    assert run.duration_s >= 0 and run.finished


def test_exceptions_propagate_and_the_run_still_finishes() -> None:
    @otm.track
    def boom() -> None:
        emit_call(0)
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()
    run = otm.last_run()
    assert run is not None and len(run.records) == 1
    assert run.error == "builtins.KeyError"
    assert events.current_scope() == ()


async def test_async_function() -> None:
    @otm.track(name="async-run")
    async def work(n: int) -> int:
        await asyncio.sleep(0)
        for i in range(n):
            emit_call(i)
        # tasks started inside inherit the run through contextvars
        await asyncio.gather(*(asyncio.create_task(_emit_later(10 + i)) for i in range(3)))
        # executor threads too (run_in_executor copies the context)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, contextvars.copy_context().run, emit_call, 20)
        return n

    assert inspect.iscoroutinefunction(work)
    assert await work(2) == 2
    run = otm.last_run()
    assert run is not None and run.name == "async-run"
    assert sorted(r.telemetry.request_id for r in run.records) == sorted(
        ["req-0", "req-1", "req-10", "req-11", "req-12", "req-20"]
    )
    assert events.current_scope() == ()


async def _emit_later(i: int) -> None:
    await asyncio.sleep(0.001)
    emit_call(i)


def test_generator_scope_does_not_leak_into_the_consumer() -> None:
    @otm.track(name="gen")
    def produce(n: int):
        for i in range(n):
            emit_call(i)  # inside the body: counted
            got = yield i
            if got is not None:
                emit_call(100 + got)
        return "done"

    seen_scopes = []
    gen = produce(3)
    assert inspect.isgeneratorfunction(produce)
    out = [next(gen)]
    seen_scopes.append(events.current_scope())
    emit_call(50)  # the consumer's own call between two resumes: NOT in the run
    out.append(gen.send(7))
    seen_scopes.append(events.current_scope())
    out.append(next(gen))
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "done"
    assert out == [0, 1, 2]
    assert all(s == () for s in seen_scopes)
    run = otm.last_run()
    assert run is not None and run.name == "gen"
    assert sorted(r.telemetry.request_id for r in run.records) == [
        "req-0",
        "req-1",
        "req-107",
        "req-2",
    ]


def test_generator_throw_and_early_close() -> None:
    cleaned = []

    @otm.track
    def produce():
        try:
            yield 1
            try:
                yield 2
            except ValueError:
                emit_call(1)
                yield "recovered"
            yield 3
        finally:
            emit_call(2)  # cleanup calls made on close still belong to the run
            cleaned.append(True)

    gen = produce()
    assert next(gen) == 1
    assert next(gen) == 2
    assert gen.throw(ValueError("x")) == "recovered"
    gen.close()
    assert cleaned == [True]
    run = otm.last_run()
    assert run is not None and run.error is None
    assert sorted(r.telemetry.request_id for r in run.records) == ["req-1", "req-2"]
    assert events.current_scope() == ()


async def test_async_generator_scope_does_not_leak() -> None:
    @otm.track(name="agen")
    async def produce(n: int):
        for i in range(n):
            await asyncio.sleep(0)
            emit_call(i)
            yield i

    assert inspect.isasyncgenfunction(produce)
    out = []
    async for item in produce(3):
        out.append(item)
        assert events.current_scope() == ()
        emit_call(60 + item)  # consumer's calls: not in the run
    assert out == [0, 1, 2]
    run = otm.last_run()
    assert run is not None and run.name == "agen"
    assert sorted(r.telemetry.request_id for r in run.records) == ["req-0", "req-1", "req-2"]


async def test_async_generator_asend_athrow_aclose() -> None:
    @otm.track
    async def echo():
        try:
            while True:
                try:
                    got = yield "ready"
                    emit_call(got)
                except KeyError:
                    yield "caught"
        finally:
            emit_call(99)

    agen = echo()
    assert await agen.__anext__() == "ready"
    assert await agen.asend(1) == "ready"
    assert await agen.athrow(KeyError("k")) == "caught"
    await agen.aclose()
    run = otm.last_run()
    assert run is not None
    assert sorted(r.telemetry.request_id for r in run.records) == ["req-1", "req-99"]


def test_nested_runs_count_toward_outer_ones() -> None:
    @otm.track(name="inner")
    def inner() -> None:
        emit_call(1)

    @otm.track(name="outer")
    def outer() -> None:
        emit_call(0)
        inner()
        inner()

    outer()
    run = otm.last_run()
    assert run is not None and run.name == "outer"
    assert len(run.records) == 3


def test_threads_with_copied_context_belong_to_the_run() -> None:
    @otm.track(name="threads")
    def work() -> None:
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(emit_call, i))
            for i in range(20)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with ThreadPoolExecutor(4) as pool:
            # copy the context in the submitting thread, as asyncio's run_in_executor does
            futures = [
                pool.submit(contextvars.copy_context().run, emit_call, 100 + i) for i in range(10)
            ]
            for f in futures:
                f.result()

    work()
    run = otm.last_run()
    assert run is not None and len(run.records) == 30


def test_runs_are_reported_to_the_active_experiment(tmp_path) -> None:
    @otm.track(name="step")
    def step(i: int) -> None:
        emit_call(i)

    with otm.experiment("with-runs", output_dir=tmp_path, reports=()) as exp:
        step(0)
        step(1)
    assert [r.name for r in exp.runs] == ["step", "step"]
    assert len(exp.records) == 2
    assert all(r.telemetry.model for r in exp.records)


def test_track_with_a_name_string() -> None:
    @otm.track("named")
    def f() -> int:
        return 1

    assert f() == 1
    run = otm.last_run()
    assert run is not None and run.name == "named"


def test_end_to_end_with_the_openai_client(server, instrumented) -> None:
    pytest.importorskip("otm.capture.openai_sdk")
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")

    @otm.track(name="e2e")
    def ask(n: int) -> list[str]:
        out = []
        for _ in range(n):
            r = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            out.append(r.choices[0].message.content or "")
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        for _ in stream:
            pass
        return out

    assert len(ask(2)) == 2
    run = otm.last_run()
    assert run is not None and run.name == "e2e"
    assert len(run.records) == 3
    assert {r.telemetry.model for r in run.records} == {"gpt-4o-mini"}
    assert run.totals.requests == 3
    assert run.totals.output_tokens > 0


def test_tag_precedence_defaults_then_runs_then_client(server, records, configure) -> None:
    """Configured tags < run tags (inner wins) < the wrapped client's tags."""
    openai = pytest.importorskip("openai")

    configure(tags={"team": "global", "env": "prod", "who": "default"})
    otm.instrument(["openai"])
    try:
        plain = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
        tagged = otm.wrap(
            openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0),
            tags={"who": "client"},
        )

        @otm.track(name="outer", tags={"team": "outer", "step": "outer"})
        def outer():
            inner()
            tagged.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])

        @otm.track(name="inner", tags={"step": "inner"})
        def inner():
            plain.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])

        outer()
    finally:
        otm.uninstrument()
    first, second = records[-2].tags, records[-1].tags
    assert first == {"team": "outer", "env": "prod", "who": "default", "step": "inner"}
    assert second == {"team": "outer", "env": "prod", "who": "client", "step": "outer"}

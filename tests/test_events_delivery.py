"""Non-blocking record delivery: ``otm.on_record(..., background=True)`` and ``otm.events.Delivery``.

A slow listener on the caller's thread adds its time to every call; through a
Delivery it runs on one daemon thread, in the caller's context, with a bounded
queue whose overflow is counted and logged once, flushed at exit.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import otm
from otm import events
from otm.events import Delivery, delivery, emit, on_record
from otm.record import Record
from otm.telemetry import Telemetry

MESSAGES = [{"role": "user", "content": "Say hello."}]
SLEEP_S = 0.05


def rec(i: int = 0) -> Record:
    return Record(Telemetry(provider="openai", model=f"m{i}", input_tokens=i, output_tokens=1))


@pytest.fixture()
def client(server: Any) -> Iterator[openai.OpenAI]:
    otm.instrument("openai")
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    c.chat.completions.create(model="m", messages=MESSAGES)  # open the keep-alive connection
    yield c
    c.close()
    otm.uninstrument("openai")


def _calls_time(client: openai.OpenAI, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    return time.perf_counter() - t


def test_slow_listener_adds_nothing_to_the_call_in_background(client: openai.OpenAI) -> None:
    seen: list[Record] = []

    def slow(record: Record) -> None:
        time.sleep(SLEEP_S)
        seen.append(record)

    n = 6
    baseline = _calls_time(client, n)
    unsubscribe = on_record(slow)  # on the caller's thread: every call waits for it
    blocking = _calls_time(client, n)
    unsubscribe()
    unsubscribe = on_record(slow, background=True)
    background = _calls_time(client, n)
    try:
        assert blocking - baseline >= n * SLEEP_S * 0.9
        # the calls did not wait for the listener: far below one sleep per call
        assert background - baseline < n * SLEEP_S * 0.3, (baseline, background)
        assert delivery().flush(5.0)
        assert len(seen) == 2 * n  # n from the blocking round, n delivered in the background
        assert [r.telemetry.model for r in seen[n:]] == ["gpt-4o-mini"] * n
    finally:
        unsubscribe()


async def test_slow_listener_does_not_stall_the_event_loop(server: Any) -> None:
    otm.instrument("openai")
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk", max_retries=0)
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    def slow(record: Record) -> None:
        time.sleep(0.2)

    unsubscribe = on_record(slow, background=True)
    task = asyncio.create_task(ticker())
    try:
        for _ in range(3):
            await client.chat.completions.create(model="m", messages=MESSAGES)
        await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        unsubscribe()
        await client.close()
        otm.uninstrument("openai")
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) < 0.15  # a blocking 200 ms listener would have frozen the loop


def test_every_record_arrives_in_order_in_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
    got: list[tuple[str, str, str]] = []
    d = Delivery(name="t-order")

    def handler(record: Record) -> None:
        got.append((record.telemetry.model or "", var.get(), threading.current_thread().name))

    unsubscribe = d.subscribe(handler)
    try:
        for i in range(200):
            var.set(f"caller{i % 3}")
            emit(rec(i))
        assert d.flush(5.0)
        assert [g[0] for g in got] == [f"m{i}" for i in range(200)]
        assert [g[1] for g in got] == [f"caller{i % 3}" for i in range(200)]
        assert {g[2] for g in got} == {"t-order"}
        assert d.delivered == 200 and d.dropped == 0 and d.pending == 0
    finally:
        unsubscribe()
        d.close()
    emit(rec())
    assert len(got) == 200  # unsubscribed: no longer listening


def test_records_from_many_threads_all_arrive() -> None:
    got: list[int] = []
    lock = threading.Lock()

    def handler(record: Record) -> None:
        with lock:
            got.append(record.telemetry.input_tokens)

    unsubscribe = on_record(handler, background=True)
    try:
        threads = [
            threading.Thread(target=lambda k=k: [emit(rec(k * 1000 + i)) for i in range(250)])
            for k in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert delivery().flush(10.0)
    finally:
        unsubscribe()
    assert sorted(got) == sorted(k * 1000 + i for k in range(8) for i in range(250))


@pytest.mark.parametrize("overflow", ["drop_newest", "drop_oldest"])
def test_overflow_is_counted_and_logged_once(
    overflow: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otm")
    gate = threading.Event()
    holding = threading.Event()
    got: list[str] = []

    def handler(record: Record) -> None:
        holding.set()
        gate.wait(5)
        got.append(record.telemetry.model or "")

    d = Delivery(max_queue=3, overflow=overflow, name=f"t-{overflow}")  # type: ignore[arg-type]
    unsubscribe = d.subscribe(handler)
    try:
        emit(rec(0))
        assert holding.wait(5)  # the worker holds m0; the queue is empty
        t = time.perf_counter()
        for i in range(1, 11):
            emit(rec(i))  # m1..m10 into a queue of 3
        assert time.perf_counter() - t < 0.5  # never blocked on the full queue
        assert d.dropped == 7
        gate.set()
        assert d.flush(5.0)
    finally:
        unsubscribe()
        d.close()
    kept = ["m1", "m2", "m3"] if overflow == "drop_newest" else ["m8", "m9", "m10"]
    assert got == ["m0", *kept]
    warnings = [r for r in caplog.records if "queue" in r.getMessage() and "full" in r.getMessage()]
    assert len(warnings) == 1 and overflow in warnings[0].getMessage()


def test_failing_handler_is_logged_once_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="otm")
    got: list[Record] = []

    def bad(record: Record) -> None:
        raise RuntimeError("listener bug")

    d = Delivery(name="t-fail")
    u1, u2 = d.subscribe(bad), d.subscribe(got.append)
    try:
        for i in range(5):
            emit(rec(i))  # must not raise
        assert d.flush(5.0)
    finally:
        u1()
        u2()
        d.close()
    assert len(got) == 5 and d.failed == 5
    assert sum("bad" in r.getMessage() for r in caplog.records) == 1


def test_submit_runs_a_job_on_the_same_worker() -> None:
    d = Delivery(name="t-submit")
    out: list[tuple[int, str]] = []
    d.submit(lambda x: out.append((x, threading.current_thread().name)), 7)
    assert d.flush(5.0)
    d.close()
    assert out == [(7, "t-submit")]


def test_close_stops_the_worker_and_put_restarts_it() -> None:
    d = Delivery(name="t-restart")
    got: list[Record] = []
    unsubscribe = d.subscribe(got.append)
    emit(rec(1))
    assert d.close(5.0)
    assert not any(t.name == "t-restart" for t in threading.enumerate())
    emit(rec(2))
    assert d.flush(5.0)
    unsubscribe()
    d.close()
    assert [r.telemetry.model for r in got] == ["m1", "m2"]


def test_flush_times_out_while_a_handler_is_stuck() -> None:
    gate = threading.Event()
    d = Delivery(name="t-stuck")
    unsubscribe = d.subscribe(lambda r: gate.wait(5))
    emit(rec())
    assert d.flush(0.05) is False
    gate.set()
    assert d.flush(5.0)
    unsubscribe()
    d.close()


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="overflow"):
        Delivery(overflow="drop_all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queue"):
        Delivery(max_queue=0)


def test_queued_records_are_flushed_at_exit(tmp_path: Any) -> None:
    out = tmp_path / "out.txt"
    script = textwrap.dedent(
        f"""
        import time
        from otm.events import emit, on_record
        from otm.record import Record
        from otm.telemetry import Telemetry

        def slow(record):
            time.sleep(0.01)
            with open({str(out)!r}, "a") as fh:
                fh.write(record.telemetry.model + "\\n")

        on_record(slow, background=True)
        for i in range(40):
            emit(Record(Telemetry(model=f"m{{i}}")))
        # exits at once: 40 x 10 ms are still queued
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert out.read_text().split() == [f"m{i}" for i in range(40)]


def test_shared_delivery_is_one_object() -> None:
    assert events.delivery() is events.delivery()

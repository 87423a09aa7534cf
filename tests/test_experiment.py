"""otm.experiment: attribution across threads and tasks, the durable log, reports on exit."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_report_support import emit_call, make_record

import otm
from otm import events
from otm.report.experiment import Experiment
from otm.report.reader import LogReader

ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_writes_a_log_line_per_record_and_the_reports(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="otm")
    with otm.experiment("my exp/1", output_dir=tmp_path, tags={"paper": "x"}) as exp:
        assert events.current_scope() == (exp,)
        for i in range(25):
            emit_call(i, model="gpt-4o-mini" if i % 2 else "claude-3-5-haiku")
    assert events.current_scope() == ()
    assert exp.path is not None and exp.path.parent == tmp_path
    assert exp.path.name.startswith("my-exp-1-")
    names = sorted(p.name for p in exp.path.iterdir())
    assert names == ["records.jsonl", "report.html", "report.md", "requests.csv", "summary.json"]

    lines = _lines(exp.log_path)
    assert len(lines) == 25
    assert {ln["schema"] for ln in lines} == {"otm.record/1"}
    assert {ln["experiment"] for ln in lines} == {"my exp/1"}
    assert sorted(ln["telemetry"]["request_id"] for ln in lines) == sorted(
        f"req-{i}" for i in range(25)
    )
    assert all(ln["impact"]["energy_wh"]["value"] > 0 for ln in lines)

    for p in exp.path.iterdir():  # the log and the reports are private to the user
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p

    summary = json.loads((exp.path / "summary.json").read_text())
    assert summary["totals"]["requests"] == 25
    assert summary["tags"] == {"paper": "x"}
    assert summary["totals"]["energy_wh"]["value"] == pytest.approx(
        sum(ln["impact"]["energy_wh"]["value"] for ln in lines)
    )
    assert any(str(exp.report_path) in rec.getMessage() for rec in caplog.records)


def test_summary_matches_records(tmp_path: Path) -> None:
    with otm.experiment("sum", output_dir=tmp_path, reports=()) as exp:
        for i in range(40):
            emit_call(
                i,
                model=f"m{i % 3}",
                provider="openai",
                input_tokens=10 + i,
                output_tokens=5 + i,
                status="cancelled" if i == 3 else "ok",
                tags={"env": "ci"},
            )
    s = exp.summary()
    recs = exp.records
    assert s.requests == 40 == len(recs)
    assert s.energy_wh.value == pytest.approx(sum(r.impact.energy_wh.value for r in recs))
    assert s.carbon_g.value == pytest.approx(sum(r.impact.carbon_g.value for r in recs))
    assert s.water_ml.value == pytest.approx(sum(r.impact.water_ml.value for r in recs))
    assert s.cost_usd == pytest.approx(sum(r.impact.cost_usd for r in recs))
    assert s.totals.input_tokens == sum(r.telemetry.input_tokens for r in recs)
    assert s.totals.by_status == {"ok": 39, "cancelled": 1}
    assert {m.model for m in s.by_model} == {"m0", "m1", "m2"}
    assert sum(m.totals.requests for m in s.by_model) == 40
    assert "env=ci" in s.by_tag
    # three independent groups: the combined range is narrower than the worst case but contains the value
    worst_low = sum(r.impact.energy_wh.low for r in recs)
    worst_high = sum(r.impact.energy_wh.high for r in recs)
    assert worst_low < s.energy_wh.low < s.energy_wh.value < s.energy_wh.high < worst_high
    assert (
        s.latency_s["p50"] is not None
        and s.latency_s["p50"] <= s.latency_s["p90"] <= s.latency_s["p99"]
    )
    assert s.sci["gco2e_per_request"].value == pytest.approx(s.carbon_g.value / 40)
    assert "The 40 LLM API calls" in s.sentence and "m0" in s.sentence
    assert "PUE" in s.sentence


def test_hundreds_of_concurrent_calls_in_threads_and_tasks(tmp_path: Path) -> None:
    async def in_tasks(n: int) -> None:
        async def one(i: int) -> None:
            await asyncio.sleep(0.001 * (i % 5))
            emit_call(1000 + i)

        await asyncio.gather(*(asyncio.create_task(one(i)) for i in range(n)))

    with otm.experiment("concurrent", output_dir=tmp_path, reports=("json",)) as exp:
        barrier = threading.Barrier(50)

        def worker(k: int) -> None:
            barrier.wait()
            for j in range(6):
                emit_call(k * 10 + j)

        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(worker, k))
            for k in range(50)
        ]
        for t in threads:
            t.start()
        asyncio.run(in_tasks(300))  # asyncio.run copies the current context into its tasks
        for t in threads:
            t.join()

    expected = {f"req-{k * 10 + j}" for k in range(50) for j in range(6)} | {
        f"req-{1000 + i}" for i in range(300)
    }
    ids = [r.telemetry.request_id for r in exp.records]
    assert len(ids) == 600 and set(ids) == expected  # none lost, none twice
    logged = [ln["telemetry"]["request_id"] for ln in _lines(exp.log_path)]
    assert len(logged) == 600 and set(logged) == expected
    assert json.loads((exp.path / "summary.json").read_text())["totals"]["requests"] == 600


async def test_two_experiments_in_concurrent_tasks_do_not_mix(tmp_path: Path) -> None:
    async def run(name: str, base: int) -> Experiment:
        async with otm.experiment(name, output_dir=tmp_path, reports=()) as exp:
            for i in range(50):
                emit_call(base + i)
                await asyncio.sleep(0)  # interleave with the other experiment
            await asyncio.gather(
                *(asyncio.create_task(_emit_soon(base + 100 + i)) for i in range(20))
            )
        return exp

    a, b = await asyncio.gather(run("a", 0), run("b", 10_000))
    ids_a = {r.telemetry.request_id for r in a.records}
    ids_b = {r.telemetry.request_id for r in b.records}
    assert len(ids_a) == len(ids_b) == 70
    assert ids_a == {f"req-{i}" for i in (*range(50), *range(100, 120))}
    assert ids_b == {f"req-{10_000 + i}" for i in (*range(50), *range(100, 120))}
    assert {ln["telemetry"]["request_id"] for ln in _lines(a.log_path)} == ids_a
    assert {ln["experiment"] for ln in _lines(b.log_path)} == {"b"}


async def _emit_soon(i: int) -> None:
    await asyncio.sleep(0)
    emit_call(i)


def test_nested_experiments_each_receive_theirs(tmp_path: Path) -> None:
    with otm.experiment("outer", output_dir=tmp_path, reports=()) as outer:
        emit_call(0)
        with otm.experiment("inner", output_dir=tmp_path, reports=()) as inner:
            emit_call(1)
            emit_call(2)
        emit_call(3)
    assert sorted(r.telemetry.request_id for r in outer.records) == [
        "req-0",
        "req-1",
        "req-2",
        "req-3",
    ]
    assert sorted(r.telemetry.request_id for r in inner.records) == ["req-1", "req-2"]
    assert len(_lines(outer.log_path)) == 4 and len(_lines(inner.log_path)) == 2
    assert outer.path != inner.path


def test_region_is_the_default_for_records_without_one(tmp_path: Path) -> None:
    with otm.experiment("regions", output_dir=tmp_path, region="FRA", reports=()) as outer:
        a = emit_call(0)
        b = emit_call(1, region="US-VA")
        with otm.experiment("inner", output_dir=tmp_path, region="SWE", reports=()):
            c = emit_call(2)  # the innermost experiment's region wins, whatever the delivery order
    assert (a.region, b.region, c.region) == ("FRA", "US-VA", "SWE")
    # a record given a region by the experiment is estimated again with it
    assert b._impact is not None
    regions = {ln["telemetry"]["request_id"]: ln["region"] for ln in _lines(outer.log_path)}
    assert regions == {"req-0": "FRA", "req-1": "US-VA", "req-2": "SWE"}


def test_reports_are_written_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with otm.experiment("fails", output_dir=tmp_path, reports=("json", "md")) as exp:
            emit_call(0)
            raise RuntimeError("boom")
    assert json.loads((exp.path / "summary.json").read_text())["totals"]["requests"] == 1
    assert (exp.path / "report.md").exists()


def test_decorator_sync_and_async(tmp_path: Path) -> None:
    template = otm.experiment("decorated", output_dir=tmp_path, reports=())

    @template
    def work(n: int) -> int:
        for i in range(n):
            emit_call(i)
        return n * 2

    assert work(3) == 6
    first = template.latest
    assert first is not None and len(first.records) == 3
    assert work(1) == 2
    assert template.latest is not first and len(template.latest.records) == 1

    @template
    async def awork() -> str:
        emit_call(7)
        await asyncio.sleep(0)
        return "ok"

    assert asyncio.run(awork()) == "ok"
    assert [r.telemetry.request_id for r in template.latest.records] == ["req-7"]
    assert len({p for p in tmp_path.iterdir()}) == 3  # one directory per call


def test_an_experiment_is_entered_once(tmp_path: Path) -> None:
    exp = otm.experiment("once", output_dir=tmp_path, reports=())
    with exp:
        pass
    with pytest.raises(RuntimeError):
        with exp:
            pass


def test_records_can_be_kept_out_of_memory(tmp_path: Path) -> None:
    with otm.experiment("lean", output_dir=tmp_path, keep_records=False, reports=()) as exp:
        for i in range(10):
            emit_call(i)
        assert exp._records == []
        assert len(exp.records) == 10  # read back from the log
        assert exp.summary().requests == 10
    assert exp.requests == 10
    assert sorted(r.telemetry.request_id for r in exp.records) == sorted(
        f"req-{i}" for i in range(10)
    )


def test_a_stream_finished_after_the_block_still_reaches_the_log(tmp_path: Path) -> None:
    with otm.experiment("late", output_dir=tmp_path, reports=()) as exp:
        emit_call(0)
        late = make_record(1)  # scope captured when the call started, inside the block
    events.emit(late)  # finalised afterwards (a stream consumed later)
    assert len(exp.records) == 2
    assert [ln["telemetry"]["request_id"] for ln in _lines(exp.log_path)] == ["req-0", "req-1"]


def test_collect_writes_the_line_before_returning_without_estimating(tmp_path: Path) -> None:
    """The line is on its way to disk when emit returns; the estimate is left for the reports."""
    with otm.experiment("cheap", output_dir=tmp_path, reports=()) as exp:
        rec = make_record(0, impact=False)
        events.emit(rec)
        lines = _lines(exp.log_path)
        assert [ln["telemetry"]["request_id"] for ln in lines] == ["req-0"]
        assert "impact" not in lines[0] and rec._impact is None  # nothing was estimated
    # the reports estimate it when they read the log
    summary = exp.summary()
    assert summary.requests == 1 and summary.energy_wh.value > 0


RETURNED_CALLS_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = [{root!r}]
    import openai, otm
    from otm.testing.server import FakeProviderServer, Scenario

    server = FakeProviderServer(scenario=Scenario(ttfb_s=0.0, gap_s=0.0))
    server.start()
    otm.instrument(["openai"])
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    with otm.experiment("killed", output_dir={out!r}, reports=()) as exp:
        print(exp.log_path, flush=True)
        for i in range({n}):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}]
            )
            print(i + 1, flush=True)  # this call has returned
        {after}
    """
)


@pytest.mark.parametrize(
    "after",
    [
        "time.sleep(120)  # wait to be killed",
        "while True: client.chat.completions.create(model='m', messages=[])  # still calling",
    ],
    ids=["idle", "busy"],
)
def test_sigkill_keeps_every_returned_call(tmp_path: Path, after: str) -> None:
    """A real SIGKILL of a child process right after N calls returned: all N lines are there."""
    pytest.importorskip("openai")
    n = 50
    script = RETURNED_CALLS_SCRIPT.format(root=str(ROOT), out=str(tmp_path), n=n, after=after)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        log = Path(proc.stdout.readline().strip())
        for line in proc.stdout:
            if int(line) == n:
                break
        os.kill(proc.pid, signal.SIGKILL)  # at once: no chance to drain anything
    finally:
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    reader = LogReader(log)
    records = list(reader.records())
    assert reader.skipped == 0
    if after.startswith("time.sleep"):
        assert len(records) == n
    else:
        assert len(records) >= n  # calls made after the n-th too, the last maybe cut short
    assert all(r.telemetry.model == "gpt-4o-mini" for r in records[:n])


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    import otm
    from test_report_support import emit_call
    with otm.experiment("killed", output_dir={out!r}, reports=()) as exp:
        print(exp.log_path, flush=True)
        i = 0
        while True:
            emit_call(i, model="m" * (1 + i % 300))  # lines of varied length
            i += 1
            if i % 50 == 0:
                time.sleep(0.001)
    """
)


def test_log_survives_sigkill(tmp_path: Path) -> None:
    script = KILL_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        log = Path(proc.stdout.readline().strip())  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not log.exists() or log.stat().st_size < 200_000):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert stat.S_IMODE(log.stat().st_mode) == 0o600

    raw = log.read_bytes().split(b"\n")
    complete, tail = raw[:-1], raw[-1]  # the tail is b"" unless the kill cut a line short
    assert len(complete) > 100
    for line in complete:
        json.loads(line)  # every complete line parses
    reader = LogReader(log)
    assert sum(1 for _ in reader.rows()) == len(complete)
    assert reader.skipped == 0

    # A cut in the middle of a line (a kill mid-write) is tolerated by the reader.
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"\n".join(complete[:10]) + b"\n" + complete[10][: len(complete[10]) // 2])
    reader = LogReader(cut)
    assert sum(1 for _ in reader.rows()) == 10
    assert reader.truncated and reader.skipped == 0
    # (``tail`` is non-empty when the kill itself cut the last line; the reader skipped it above.)
    assert len(tail) < max(len(line) for line in complete) + 1


def test_late_write_reentered_on_the_same_thread_does_not_deadlock(tmp_path) -> None:
    """A record written after close may trigger (through a GC pass inside the
    estimator) another late record on the same thread: both are written."""
    import threading

    from otm.report.sink import JsonlSink

    sinks = []

    def line_for(rec):
        if rec == "first":
            sinks[0].put("second")  # what a finaliser run by the GC would do
        return {"r": rec}

    sink = JsonlSink(tmp_path / "late.jsonl", line_for)
    sinks.append(sink)
    sink.close()
    t = threading.Thread(target=sink.put, args=("first",))
    t.start()
    t.join(5)
    assert not t.is_alive(), "deadlock"
    lines = (tmp_path / "late.jsonl").read_text().splitlines()
    assert sorted(lines) == ['{"r":"first"}', '{"r":"second"}']


def test_experiment_decorator_on_generators(tmp_path) -> None:
    import asyncio

    from test_report_support import emit_call

    import otm

    exp_deco = otm.experiment("gen", output_dir=tmp_path, reports=())

    @exp_deco
    def answers(n):
        for i in range(n):
            yield emit_call(i)

    outside = []
    for rec in answers(3):
        outside.append(emit_call(100))  # the consumer's calls are not the generator's
    assert exp_deco.latest is not None and exp_deco.latest.requests == 3
    assert len(exp_deco.latest.records) == 3

    agen_deco = otm.experiment("agen", output_dir=tmp_path, reports=())

    @agen_deco
    async def aanswers(n):
        for i in range(n):
            yield emit_call(i)

    async def consume():
        return [r async for r in aanswers(2)]

    asyncio.run(consume())
    assert agen_deco.latest is not None and agen_deco.latest.requests == 2


def test_plain_threads_and_pools_reach_the_only_open_experiment(tmp_path) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from test_report_support import emit_call

    import otm

    with otm.experiment("threads", output_dir=tmp_path, reports=()) as exp:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(emit_call, range(8)))
        t = threading.Thread(target=emit_call, args=(99,))
        t.start()
        t.join()
    assert exp.requests == 9
    # once closed, it no longer collects anything
    emit_call(100)
    assert exp.requests == 9


def test_with_two_open_experiments_context_free_threads_are_not_guessed(tmp_path) -> None:
    import threading

    from test_report_support import emit_call

    import otm

    with otm.experiment("a", output_dir=tmp_path, reports=()) as a:
        with otm.experiment("b", output_dir=tmp_path, reports=()) as b:
            t = threading.Thread(target=emit_call, args=(1,))
            t.start()
            t.join()
            emit_call(2)  # same context: both see it (nested)
    assert a.requests == 1 and b.requests == 1


def _unwritable_dirs(tmp_path: Path) -> list[Path]:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    out = [
        blocker,  # a file where the directory should be
        blocker / "below",  # a directory under a file
        Path("/proc/otm-cannot-be-here"),  # a kernel file system
    ]
    if os.geteuid() != 0:  # root writes through permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out.append(locked / "runs")
    return out


def test_an_unwritable_output_dir_never_breaks_the_block(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="otm")
    for target in _unwritable_dirs(tmp_path):
        caplog.clear()
        ran = False
        with otm.experiment("nowhere", output_dir=target, keep_records=False) as exp:
            emit_call(0)
            emit_call(1)
            ran = True
        assert ran and exp.path is None and exp.log_path is None, target
        assert [r.telemetry.request_id for r in exp.records] == ["req-0", "req-1"]
        assert exp.summary().requests == 2
        errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "cannot write to" in errors[0].getMessage() and str(target) in errors[0].getMessage()


def test_a_log_that_cannot_be_opened_never_breaks_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """A read-only file system (EROFS) when the log is opened: fault-injected at os.open."""
    import errno

    from otm.report import sink

    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).endswith("records.jsonl"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(sink.os, "open", read_only)
    with otm.experiment("ro", output_dir=tmp_path, reports=("json",)) as exp:
        emit_call(0)
    assert exp.path is None and exp.requests == 1 and exp.summary().requests == 1
    assert any("Read-only file system" in r.getMessage() for r in caplog.records)


def test_an_async_experiment_with_an_unwritable_dir_runs(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")

    async def main() -> int:
        async with otm.experiment("a", output_dir=tmp_path / "f") as exp:
            emit_call(0)
        return exp.summary().requests

    assert asyncio.run(main()) == 1

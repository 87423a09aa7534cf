"""What a record listener costs the caller: on the caller's thread vs background delivery.

    python bench/delivery.py               # 200 calls per variant, 50 ms listener
    python bench/delivery.py --n 500 --sleep 0.02

Real openai calls (non-streamed) against the local fake provider server,
instrumented by otm, with: no listener, a listener sleeping ``--sleep``
seconds on the caller's thread (``otm.on_record(cb)``), and the same listener
through the background delivery (``otm.on_record(cb, background=True)``).
Reports the median call time of each and the time added over no listener.
A last line gives the cost of one ``Delivery.put`` (the hot-path hand-off)
measured directly.
"""

from __future__ import annotations

import argparse
import statistics
import time

MESSAGES = [{"role": "user", "content": "Say something short."}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--sleep", type=float, default=0.05)
    args = ap.parse_args()

    import openai

    import otm
    from otm.events import Delivery, delivery
    from otm.record import Record
    from otm.telemetry import Telemetry
    from otm.testing.server import FakeProviderServer, Scenario

    server = FakeProviderServer(scenario=Scenario())
    server.start()
    otm.instrument(["openai"])
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk", max_retries=0)

    def calls(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            out.append(time.perf_counter() - t)
        return out

    def slow(record: object) -> None:
        time.sleep(args.sleep)

    calls(50)  # warm up
    n_blocking = max(10, min(args.n, int(5 / max(args.sleep, 1e-3))))
    results = {"none": statistics.median(calls(args.n))}
    unsubscribe = otm.on_record(slow)
    results["caller's thread"] = statistics.median(calls(n_blocking))
    unsubscribe()
    unsubscribe = otm.on_record(slow, background=True)
    results["background"] = statistics.median(calls(args.n))
    d = delivery()
    print(f"queued at the end: {d.pending}, dropped: {d.dropped}")
    unsubscribe(0)
    base = results["none"]
    print(f"listener sleeping {args.sleep * 1e3:.0f} ms; median per call:")
    for name, v in results.items():
        print(f"  {name:16s} {v * 1e3:8.3f} ms   added {(v - base) * 1e3:+8.3f} ms")

    # The hand-off alone (no SDK, no network): while the worker is busy (the
    # hot path proper), and while it drains each record at once (it is woken
    # per record and competes for the GIL).
    import threading

    rec = Record(Telemetry(model="m"))
    k = 200_000
    for label, busy in (("worker busy", True), ("worker draining", False)):
        gate = threading.Event()
        q = Delivery(max_queue=1_000_000, name="bench-put")
        q.subscribe((lambda r, g=gate: g.wait()) if busy else (lambda r: None))
        q.put(rec)
        time.sleep(0.05)
        t = time.perf_counter()
        for _ in range(k):
            q.put(rec)
        dt = time.perf_counter() - t
        gate.set()
        q.close(60)
        print(f"Delivery.put ({label}): {dt / k * 1e6:.2f} µs per record")
    client.close()
    server.stop()


if __name__ == "__main__":
    main()

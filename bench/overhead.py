"""What otm's capture costs per call: bare openai client vs instrumented.

Runs against the local fake provider server (``otm.testing.server``). Each
variant lives in its own process (one ``python`` per variant, started once
and warmed up), and the driver alternates them in small batches, swapping
the order every round, so drift on the machine (CPU frequency, other jobs,
the server warming up) hits every variant alike:

    python bench/overhead.py                  # N=2000 calls per variant and workload
    python bench/overhead.py --n 5000 --rounds 50
    python bench/overhead.py --json out.json

Workloads: a non-streamed chat completion, and a 400-chunk chat stream with
no gap between chunks (the worst case for per-chunk overhead: the client
does nothing but parse chunks). Variants: ``bare`` (the openai SDK alone),
``otm`` (``otm.instrument()``), and ``ecologits`` when that package is
installed (optional; it is not a dependency of otm).

Reports the median per call (wall time, and the calling thread's CPU time,
which a busy machine disturbs less) and the ratio to ``bare``. Goals:
<= 1.02x non-streamed, <= 1.05x for the 400-chunk stream. A last line gives
otm's own CPU time per call and per chunk, measured directly (no SDK, no
network), which resolves far below the end-to-end noise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"plain": 1.02, "stream400": 1.05}
WARMUP = 50
MESSAGES = [{"role": "user", "content": "Say something short."}]


# --------------------------------------------------------------------------- worker (one process)


def _serve(variant: str, workload: str, base_url: str) -> None:
    """One variant's process: set up, warm up, then run batches on request (stdin)."""
    import openai

    if variant == "otm":
        import otm

        otm.instrument(["openai"])
    elif variant == "ecologits":
        from ecologits import EcoLogits  # type: ignore[import-not-found]

        EcoLogits.init(providers=["openai"])

    from otm.testing.server import scenario_headers

    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    create = client.chat.completions.create
    if workload == "plain":
        headers = scenario_headers(output_tokens=16)

        def one() -> None:
            create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers)

    else:
        headers = scenario_headers(output_tokens=400, gap_s=0.0)

        def one() -> None:
            for _ in create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=headers,
            ):
                pass

    for _ in range(WARMUP):
        one()
    print("ready", flush=True)
    perf, cpu = time.perf_counter, time.thread_time
    for line in sys.stdin:
        n = int(line)
        if n <= 0:
            break
        wall: list[float] = []
        cpu_times: list[float] = []
        for _ in range(n):
            c = cpu()
            t = perf()
            one()
            wall.append(perf() - t)
            cpu_times.append(cpu() - c)
        print(json.dumps({"wall": wall, "cpu": cpu_times}), flush=True)
    client.close()


def _direct_cost() -> dict[str, float]:
    """otm's own CPU time, without the SDK or the network around it (best of 7 runs).

    Per non-streamed call: starting the Call, reading the response, building
    and attaching the record. Per chunk: the stream observer. Resolves well
    below the noise of the end-to-end comparison on a busy machine.
    """
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from otm.capture import openai_sdk
    from otm.capture.call import Call

    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="bench")
    resource = client.chat.completions
    completion = ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there!"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }
    )
    chunks = [
        ChatCompletionChunk.model_validate(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}],
            }
        )
        for i in range(400)
    ]

    begin = openai_sdk._begin_stream_options("chat")

    def call_path() -> None:
        kwargs = {"model": "gpt-4o-mini", "messages": MESSAGES}
        openai_sdk.SDK.complete(begin(resource, (), kwargs), completion)

    def chunk_path() -> None:
        call = Call("openai", "chat", "gpt-4o-mini", streamed=True)
        observe = openai_sdk._observe_chat
        for chunk in chunks:
            observe(call, chunk)

    def best(fn: Any, reps: int) -> float:
        cpu = time.thread_time
        out = float("inf")
        for _ in range(7):
            t = cpu()
            for _ in range(reps):
                fn()
            out = min(out, (cpu() - t) / reps)
        return out

    return {
        "per_call_us": best(call_path, 2000) * 1e6,
        "per_chunk_us": best(chunk_path, 20) / 400 * 1e6,
    }


# --------------------------------------------------------------------------- driver


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class _Variant:
    """A variant's own process, kept across batches."""

    def __init__(self, variant: str, workload: str, base_url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", variant, workload, base_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with {self.proc.wait()}")
        return line

    def ready(self) -> None:
        assert self._line().strip() == "ready"

    def run(self, n: int) -> dict[str, list[float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write("0\n")
            self.proc.stdin.close()
        self.proc.wait(30)


def _direct() -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--direct"],
        check=True,
        capture_output=True,
        text=True,
        env=_child_env(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure(workload: str, variants: list[str], n: int, rounds: int, url: str) -> dict[str, Any]:
    procs = {v: _Variant(v, workload, url) for v in variants}
    try:
        for p in procs.values():
            p.ready()
        times: dict[str, dict[str, list[float]]] = {v: {"wall": [], "cpu": []} for v in variants}
        batch = max(1, -(-n // rounds))
        for r in range(rounds):
            # Alternate the order too, so neither variant always runs first.
            for v in variants if r % 2 == 0 else variants[::-1]:
                got = procs[v].run(batch)
                times[v]["wall"] += got["wall"]
                times[v]["cpu"] += got["cpu"]
    finally:
        for p in procs.values():
            p.close()
    res: dict[str, Any] = {
        "calls_per_variant": len(times["bare"]["wall"]),
        "goal": GOALS.get(workload),
    }
    for metric in ("wall", "cpu"):
        medians = {v: statistics.median(times[v][metric]) for v in variants}
        bare = medians["bare"]
        res[metric] = {
            "median_ms": {v: m * 1e3 for v, m in medians.items()},
            "ratio": {v: m / bare for v, m in medians.items()},
            "overhead_us": {v: (m - bare) * 1e6 for v, m in medians.items()},
        }
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="calls per variant and workload")
    parser.add_argument("--rounds", type=int, default=40, help="alternating batches per workload")
    parser.add_argument("--workloads", default="plain,stream400")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--serve", nargs=3, metavar=("VARIANT", "WORKLOAD", "URL"), help=argparse.SUPPRESS
    )
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        _serve(*args.serve)
        return 0
    if args.direct:
        print(json.dumps(_direct_cost()))
        return 0

    sys.path.insert(0, str(ROOT))
    from otm.testing.server import FakeProviderServer, Scenario

    variants = ["bare", "otm"]
    if importlib.util.find_spec("ecologits") is not None:
        variants.append("ecologits")
    results: dict[str, Any] = {}
    started = time.time()
    with FakeProviderServer(scenario=Scenario()) as server:
        for workload in args.workloads.split(","):
            results[workload] = _measure(
                workload, variants, args.n, args.rounds, server.openai_base_url
            )
    direct = _direct()

    print(
        f"otm capture overhead: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {time.time() - started:.0f} s"
    )
    print(
        "median per call; wall = elapsed, cpu = the calling thread's CPU time (less disturbed by a busy machine)"
    )
    head = f"{'workload':<10} {'metric':<5} {'calls':>6} " + " ".join(
        f"{v + ' ms':>13}" for v in variants
    )
    print(head + "   ratio(otm)   goal")
    for workload in args.workloads.split(","):
        res = results[workload]
        goal = res["goal"]
        for metric in ("wall", "cpu"):
            m = res[metric]
            cells = " ".join(f"{m['median_ms'][v]:>13.4f}" for v in variants)
            ratio = m["ratio"]["otm"]
            verdict = "" if goal is None else ("ok" if ratio <= goal else "MISSED")
            extra = "".join(f"  ratio({v})={m['ratio'][v]:.4f}" for v in variants[2:])
            print(
                f"{workload:<10} {metric:<5} {res['calls_per_variant']:>6} {cells}   {ratio:>8.4f}x"
                f"  <={goal}x {verdict}  ({m['overhead_us']['otm']:+.1f} us/call){extra}"
            )
    results["direct"] = direct
    print(
        f"otm's own CPU time, measured directly: {direct['per_call_us']:.1f} us per non-streamed call"
        f" (start, read usage, build and attach the record), {direct['per_chunk_us']:.2f} us per chunk"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What ``.otm`` on LiteLLM's results costs: the hooks per call and chunk, and the first read.

Runs the real litellm package against the local fake provider server
(``otm.testing.server``) and measures otm's own work, directly:

* per chunk: otm's layer on ``CustomStreamWrapper.__next__`` / ``__anext__``
  (a clock read and attribute reads: the chunk's time, whether it carried
  output; it also sees a stream cut short), timed on a bare iterator patched
  the same way and returning a real LiteLLM chunk;
* per call: LiteLLM's pre- and post-API-call hooks as otm handles them;
* the first read of ``.otm`` before LiteLLM's callback ran (LiteLLM's callback
  is held back until after it): the record is built then, on the caller's
  thread, instead of on LiteLLM's worker thread; then LiteLLM's late callback
  (it finds the call finished) and a later read (an attribute read);
* end to end: ``litellm.completion`` with and without otm (median wall time),
  for scale: LiteLLM's own per-call work is far larger than otm's; and a whole
  streamed call read to its end, with otm's difference spread over its chunks.

    python bench/litellm_otm.py            # N=300 calls per measurement
    python bench/litellm_otm.py --n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MESSAGES = [{"role": "user", "content": "Say something short."}]


def _best_us(fn: Any, n: int, repeat: int = 7) -> float:
    """Best-of-``repeat`` mean time of ``fn()`` over ``n`` runs, in microseconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def per_chunk() -> dict[str, float]:
    """otm's layer on ``CustomStreamWrapper.__next__`` / ``__anext__``, per chunk (no LiteLLM):
    a clock read and attribute reads (did the chunk carry output?), on a real LiteLLM chunk."""
    import wrapt
    from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

    from otm.capture import litellm_calls, litellm_streams
    from otm.capture.call import Call

    chunk = ModelResponseStream(choices=[StreamingChoices(delta=Delta(content="tok"))])

    class Bare:
        def __next__(self) -> Any:
            return chunk

        async def __anext__(self) -> Any:
            return chunk

    class Layered(Bare):
        pass

    Layered.__next__ = Bare.__next__  # type: ignore[method-assign]
    Layered.__anext__ = Bare.__anext__  # type: ignore[method-assign]
    end = litellm_calls.stream_ended
    wrapt.wrap_function_wrapper(Layered, "__next__", litellm_streams.next_layer(end))
    wrapt.wrap_function_wrapper(Layered, "__anext__", litellm_streams.anext_layer(end))
    bare, layered = Bare(), Layered()
    flight = litellm_calls._Flight(Call("bench", "chat", "m"), None, "bench")
    flight.observe = litellm_streams.observe_chat
    layered.__dict__[litellm_streams.FLIGHT] = flight
    out = {
        "next_bare_us": _best_us(lambda: next(bare), 200_000),
        "next_layered_us": _best_us(lambda: next(layered), 200_000),
    }

    async def drive(obj: Any, n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            await obj.__anext__()
        return (time.perf_counter() - t) / n * 1e6

    out["anext_bare_us"] = min(asyncio.run(drive(bare, 100_000)) for _ in range(5))
    out["anext_layered_us"] = min(asyncio.run(drive(layered, 100_000)) for _ in range(5))
    return out


def per_call_hooks() -> dict[str, float]:
    """otm's handling of LiteLLM's pre- and post-API-call hooks (the caller's thread)."""
    import datetime

    from otm.capture import litellm_calls

    ids = iter(range(10**9))
    kwargs: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "call_type": "completion",
        "custom_llm_provider": "anthropic",
        "litellm_params": {"api_base": "https://api.anthropic.com"},
        "messages": MESSAGES,
        "stream": False,
        "start_time": datetime.datetime.now(),
    }

    def both() -> None:
        kwargs["litellm_call_id"] = f"bench-{next(ids)}"
        litellm_calls.begin(kwargs)
        litellm_calls.responded(kwargs)

    us = _best_us(both, 5_000)
    litellm_calls.forget()
    return {"pre_post_hooks_us": us}


def reads(server: Any, n: int) -> dict[str, float]:
    """First read of ``.otm`` before LiteLLM's callback (it finishes the call), the late
    callback, and a later read."""
    import litellm

    from otm.capture import litellm_calls
    from otm.testing.server import Scenario

    kw = {
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": server.anthropic_base_url,
        "api_key": "bench",
        "messages": MESSAGES,
        "max_retries": 0,
    }
    success = litellm_calls.success
    held: list[tuple[Any, ...]] = []
    litellm_calls.success = lambda *a: held.append(a)  # type: ignore[assignment]
    out: dict[str, float] = {}
    perf = time.perf_counter
    try:
        for label, tokens in (("plain", 16), ("stream16", 16), ("stream400", 400)):
            server.scenario = Scenario(output_tokens=tokens, ttfb_s=0.0, gap_s=0.0)
            first: list[float] = []
            late: list[float] = []
            later: list[float] = []
            runs = n if label != "stream400" else max(20, n // 10)
            for _ in range(runs):
                if label == "plain":
                    obj = litellm.completion(**kw)
                else:
                    obj = litellm.completion(stream=True, **kw)
                    for _ in obj:
                        pass
                t = perf()
                record = obj.otm
                first.append(perf() - t)
                while not held:
                    time.sleep(0.0005)
                t = perf()
                success(*held.pop())
                late.append(perf() - t)
                t = perf()
                again = obj.otm
                later.append(perf() - t)
                assert record is not None and again is record
            out[f"{label}_first_read_us"] = statistics.median(first) * 1e6
            out[f"{label}_late_callback_us"] = statistics.median(late) * 1e6
            out[f"{label}_later_read_us"] = statistics.median(later) * 1e6
    finally:
        litellm_calls.success = success  # type: ignore[assignment]
    return out


def end_to_end(server: Any, n: int) -> dict[str, float]:
    """Median wall time of ``litellm.completion`` without and with otm (alternating batches)."""
    import litellm

    import otm
    from otm.testing.server import Scenario

    server.scenario = Scenario(output_tokens=16, ttfb_s=0.0, gap_s=0.0)
    kw = {
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": server.anthropic_base_url,
        "api_key": "bench",
        "messages": MESSAGES,
        "max_retries": 0,
    }
    times: dict[str, list[float]] = {"bare": [], "otm": []}
    perf = time.perf_counter
    for round_ in range(10):
        for variant in ("bare", "otm") if round_ % 2 == 0 else ("otm", "bare"):
            if variant == "otm":
                otm.instrument(["litellm"])
            for _ in range(max(1, n // 10)):
                t = perf()
                r = litellm.completion(**kw)
                if variant == "otm":
                    r.otm  # noqa: B018 - the read the user makes
                times[variant].append(perf() - t)
            otm.uninstrument()
            time.sleep(0.2)  # LiteLLM's callbacks for this batch
    bare = statistics.median(times["bare"]) * 1e3
    mine = statistics.median(times["otm"]) * 1e3
    return {"bare_ms": bare, "otm_ms": mine, "ratio": mine / bare}


def stream_end_to_end(server: Any, n: int, tokens: int = 200) -> dict[str, float]:
    """Median wall time of reading a whole ``litellm.completion(stream=True)`` of ``tokens``
    chunks, without and with otm (alternating batches): what otm adds per streamed chunk."""
    import litellm

    import otm
    from otm.testing.server import Scenario

    server.scenario = Scenario(output_tokens=tokens, ttfb_s=0.0, gap_s=0.0)
    kw = {
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": server.anthropic_base_url,
        "api_key": "bench",
        "messages": MESSAGES,
        "max_retries": 0,
        "stream": True,
    }
    times: dict[str, list[float]] = {"bare": [], "otm": []}
    perf = time.perf_counter
    runs = max(2, n // 30)
    for round_ in range(10):
        for variant in ("bare", "otm") if round_ % 2 == 0 else ("otm", "bare"):
            if variant == "otm":
                otm.instrument(["litellm"])
            for _ in range(runs):
                t = perf()
                stream = litellm.completion(**kw)
                for _ in stream:
                    pass
                if variant == "otm":
                    stream.otm  # noqa: B018 - the read the user makes
                times[variant].append(perf() - t)
            otm.uninstrument()
            time.sleep(0.2)  # LiteLLM's callbacks for this batch
    bare = statistics.median(times["bare"]) * 1e3
    mine = statistics.median(times["otm"]) * 1e3
    return {
        "tokens": float(tokens),
        "bare_ms": bare,
        "otm_ms": mine,
        "ratio": mine / bare,
        "per_chunk_us": (mine - bare) * 1e3 / tokens,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="calls per measurement")
    args = parser.parse_args()

    import importlib.metadata

    import litellm

    import otm
    from otm.testing.server import FakeProviderServer, Scenario

    print(f"litellm {importlib.metadata.version('litellm')}")
    from otm.capture import litellm_attach

    layers = sorted({name for _, name, _ in litellm_attach.targets()})
    print(f"otm's layer on LiteLLM: {', '.join(layers)}")
    chunk = per_chunk()
    print(
        "per chunk, otm's layer: __next__ {next_bare_us:.3f} -> {next_layered_us:.3f} us;"
        " __anext__ {anext_bare_us:.3f} -> {anext_layered_us:.3f} us".format(**chunk)
    )
    with FakeProviderServer(Scenario()) as server:
        otm.instrument(["litellm"])
        print("per call: pre + post API-call hooks {pre_post_hooks_us:.2f} us".format(**per_call_hooks()))
        for _ in range(20):  # LiteLLM's first-use costs
            litellm.completion(
                model="anthropic/claude-sonnet-4-5",
                api_base=server.anthropic_base_url,
                api_key="bench",
                messages=MESSAGES,
            )
        r = reads(server, args.n)
        for label in ("plain", "stream16", "stream400"):
            print(
                f"{label}: first .otm read {r[f'{label}_first_read_us']:.0f} us (builds the record),"
                f" LiteLLM's late callback {r[f'{label}_late_callback_us']:.1f} us,"
                f" later read {r[f'{label}_later_read_us']:.2f} us"
            )
        otm.uninstrument()
        e2e = end_to_end(server, args.n)
        print(
            "end to end, litellm.completion + .otm: {bare_ms:.2f} ms bare, {otm_ms:.2f} ms with otm"
            " ({ratio:.3f}x)".format(**e2e)
        )
        s2e = stream_end_to_end(server, args.n)
        print(
            "end to end, a {tokens:.0f}-chunk litellm.completion(stream=True) read + .otm:"
            " {bare_ms:.2f} ms bare, {otm_ms:.2f} ms with otm ({ratio:.3f}x,"
            " {per_chunk_us:+.2f} us per chunk)".format(**s2e)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

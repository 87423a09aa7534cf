"""Other instrumentation on the openai SDK, patched before or after otm.instrument().

OpenLLMetry (opentelemetry-instrumentation-openai) returns a wrapt proxy
around the SDK stream; EcoLogits (and the plain wrapper below) returns its own
generator. Whatever the order, every call makes one record, a stream is
recorded when it ends (its tokens, its first token), and what the caller holds
carries ``.otm``. Each case runs in a fresh interpreter: these tools cannot all
be removed again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("openai")
ROOT = Path(__file__).resolve().parents[1]
TTFB, OUT = 0.15, 6

SCRIPT = """
import asyncio, json, sys
tool, order = sys.argv[1], sys.argv[2]
import otm, openai, wrapt

def other():
    if tool == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument()
    elif tool == "ecologits":
        from ecologits import EcoLogits
        EcoLogits.init(providers=["openai"])
    else:  # a plain wrapper that hands back its own generator for streams
        def gen(stream):
            for chunk in stream:
                yield chunk
        def sync(wrapped, instance, args, kwargs):
            r = wrapped(*args, **kwargs)
            return gen(r) if kwargs.get("stream") else r
        async def agen(stream):
            async for chunk in stream:
                yield chunk
        def asyn(wrapped, instance, args, kwargs):
            async def run():
                r = await wrapped(*args, **kwargs)
                return agen(r) if kwargs.get("stream") else r
            return run()
        wrapt.wrap_function_wrapper(openai.resources.chat.Completions, "create", sync)
        wrapt.wrap_function_wrapper(openai.resources.chat.AsyncCompletions, "create", asyn)

if order == "first":
    other(); otm.instrument(["openai"])
else:
    otm.instrument(["openai"]); other()
recs = []
otm.on_record(recs.append)
from otm.testing.server import FakeProviderServer, Scenario
out = {}
M = [{"role": "user", "content": "hi"}]
KW = dict(model="gpt-4o-mini", messages=M)
def t(rec):
    x = rec.telemetry
    return {"status": x.status, "out": x.output_tokens, "in": x.input_tokens,
            "ttft": x.ttft_s, "streamed": x.streamed, "est": x.tokens_estimated}
with FakeProviderServer(Scenario(ttfb_s=%(ttfb)s, gap_s=0.01, output_tokens=%(out)s, input_tokens=21)) as s:
    c = openai.OpenAI(base_url=s.openai_base_url, api_key="t", max_retries=0)
    c.chat.completions.create(**KW)  # first call: otm may move back on top of a later tool here
    n0 = len(recs)
    r = c.chat.completions.create(**KW)
    out["plain"] = {"n": len(recs) - n0, "otm": getattr(r, "otm", None) is recs[-1], **t(recs[-1])}
    n0 = len(recs)
    st = c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **KW)
    before_any_token = len(recs) - n0
    for _ in st:
        pass
    out["stream"] = {"n": len(recs) - n0, "early": before_any_token,
                     "otm": getattr(st, "otm", None) is recs[-1], **t(recs[-1])}
    a = openai.AsyncOpenAI(base_url=s.openai_base_url, api_key="t", max_retries=0)
    async def main():
        await a.chat.completions.create(**KW)
        n0 = len(recs)
        st = await a.chat.completions.create(stream=True, stream_options={"include_usage": True}, **KW)
        async for _ in st:
            pass
        out["astream"] = {"n": len(recs) - n0, "otm": getattr(st, "otm", None) is recs[-1], **t(recs[-1])}
    asyncio.run(main())
print("RESULT " + json.dumps(out))
"""


def _run(tool: str, order: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    code = textwrap.dedent(SCRIPT) % {"ttfb": TTFB, "out": OUT}
    proc = subprocess.run(
        [sys.executable, "-c", code, tool, order],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


TOOLS = {
    "openllmetry": "opentelemetry.instrumentation.openai",
    "ecologits": "ecologits",
    "generator": "wrapt",
}


@pytest.mark.parametrize("order", ["first", "after"])
@pytest.mark.parametrize("tool", list(TOOLS))
def test_stacked_instrumentation(tool: str, order: str, tmp_path: Path) -> None:
    pytest.importorskip(TOOLS[tool])
    got = _run(tool, order, tmp_path)
    for path in ("plain", "stream", "astream"):
        r = got[path]
        assert r["n"] == 1, (path, r)  # one record per call, never two
        assert r["status"] == "ok" and r["in"] == 21 and r["out"] == OUT and not r["est"], (path, r)
        assert r["otm"], (path, r)  # what the caller holds carries .otm
        assert r["ttft"] >= TTFB - 0.01, (path, r)
    assert got["stream"]["early"] == 0  # not recorded when create() returned
    assert got["stream"]["streamed"] and got["astream"]["streamed"]

"""openai capture under respx mocks.

openai 3.x sends through ``httpx2``, which plain respx does not intercept
(requests would escape to the network). ``httpx2.alias_httpx()`` makes
``import httpx``/``httpcore`` resolve to httpx2/httpcore2 so respx patches the
transport the SDK really uses; it is process-wide and must run before anything
imports httpx. So these checks run in a fresh interpreter, leaving the pytest
process (and every other test file) untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("respx")
pytest.importorskip("httpx2")

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import httpx2
    httpx2.alias_httpx()  # before respx (or anything) imports httpx

    import json, sys
    import httpx, respx, openai, otm

    assert httpx is httpx2, "alias_httpx did not take effect"
    otm.instrument("openai")
    records = []
    otm.on_record(records.append)

    completion = {
        "id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24,
                  "prompt_tokens_details": {"cached_tokens": 16}},
    }
    head = {"id": "c2", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-2024-08-06"}
    frames = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {**head, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}},
    ]
    sse = "".join("data: " + json.dumps(f) + "\\n\\n" for f in frames) + "data: [DONE]\\n\\n"

    with respx.mock(base_url="https://api.openai.com/v1", assert_all_called=True) as mock:
        chat = mock.post("/chat/completions")
        chat.side_effect = [
            httpx.Response(200, json=completion, headers={"x-request-id": "req_respx_1"}),
            httpx.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream", "x-request-id": "req_respx_2"}),
            httpx.Response(429, json={"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
                           headers={"x-request-id": "req_respx_3"}),
        ]
        mock.post("/embeddings").respond(200, json={
            "object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        })

        client = openai.OpenAI(api_key="sk-respx", max_retries=0)
        r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
        stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        try:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
            error = None
        except openai.RateLimitError as exc:
            error = type(exc).__name__
        e = client.embeddings.create(model="text-embedding-3-small", input="four tokens here")
        calls = mock.calls.call_count

    out = {
        "calls": calls,
        "text": text,
        "error": error,
        "same": [r.otm is records[0], stream.otm is records[1], e.otm is records[3]],
        "records": [rec.telemetry.model_dump(mode="json") for rec in records],
        "dump_clean": "otm" not in r.model_dump(),
    }
    print(json.dumps(out))
    """
)


def test_respx_mocked_openai_is_captured() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["calls"] == 4 and out["text"] == "Hello" and out["error"] == "RateLimitError"
    assert out["same"] == [True, True, True] and out["dump_clean"]
    plain, streamed, refused, emb = out["records"]
    assert plain["provider"] == "openai" and plain["model"] == "gpt-4o-2024-08-06"
    assert (plain["input_tokens"], plain["cached_input_tokens"], plain["output_tokens"]) == (
        21,
        16,
        3,
    )
    assert plain["request_id"] == "req_respx_1" and not plain["streamed"]
    assert (streamed["input_tokens"], streamed["output_tokens"], streamed["streamed"]) == (
        9,
        2,
        True,
    )
    assert streamed["request_id"] == "req_respx_2" and streamed["chunk_count"] == 4
    assert streamed["output_text_length"] == 5 and not streamed.get("tokens_estimated", False)
    assert (refused["status"], refused["http_status"], refused["request_id"]) == (
        "error",
        429,
        "req_respx_3",
    )
    assert (emb["operation"], emb["input_tokens"], emb["output_tokens"]) == ("embeddings", 4, 0)


def test_this_process_is_not_aliased() -> None:
    """The aliasing stayed in the child: httpx here is still the real httpx (if installed)."""
    httpx = pytest.importorskip("httpx")
    import httpx2

    assert httpx is not httpx2

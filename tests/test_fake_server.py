"""The embedded fake provider server, driven by the real openai / anthropic / google-genai clients."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from conftest import exception_chain
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from pydantic import BaseModel

from otm.testing._common import example_for_schema, split_text
from otm.testing.server import (
    SCENARIO_HEADER,
    FakeProviderServer,
    Scenario,
    running_server,
    scenario_headers,
)

pytestmark = pytest.mark.timeout(60)

MSG: Any = [{"role": "user", "content": "hi"}]
TOL = 0.05  # seconds of slack on client-side timing


def dropped(exc: pytest.ExceptionInfo[BaseException]) -> bool:
    """Whether the SDK saw a connection the server dropped, however it wraps that (SDK releases differ)."""
    return "httpx2.RemoteProtocolError" in exception_chain(exc.value)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as srv:
        yield srv


def oai(srv: FakeProviderServer, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=srv.openai_base_url,
        api_key="test",
        max_retries=0,
        _strict_response_validation=True,
        **kw,
    )


def ant(srv: FakeProviderServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=srv.anthropic_base_url,
        api_key="test",
        max_retries=0,
        _strict_response_validation=True,
    )


def gem(srv: FakeProviderServer, **kw: Any) -> genai.Client:
    return genai.Client(
        api_key="test", http_options=genai_types.HttpOptions(base_url=srv.gemini_base_url, **kw)
    )


def hdr(**fields: Any) -> dict[str, str]:
    return scenario_headers(**fields)


def gcfg(**fields: Any) -> Any:
    return {"http_options": {"headers": hdr(**fields)}}


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]
    score: float | None
    ok: bool


# --- OpenAI -----------------------------------------------------------------------


def test_openai_chat_plain_usage_model_and_request_id(server: FakeProviderServer) -> None:
    r = oai(server).chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        extra_headers=hdr(
            output_tokens=5,
            input_tokens=30,
            cached_input_tokens=10,
            reasoning_tokens=7,
            model="gpt-4o-mini-2024-07-18",
            request_id="req_abc",
        ),
    )
    assert r.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4"
    assert r.model == "gpt-4o-mini-2024-07-18"
    assert r._request_id == "req_abc"
    u = r.usage
    assert u is not None and u.prompt_tokens_details and u.completion_tokens_details
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (
        30,
        12,
        42,
    )  # completion includes reasoning
    assert u.prompt_tokens_details.cached_tokens == 10
    assert u.completion_tokens_details.reasoning_tokens == 7


def test_openai_chat_echoes_requested_model_and_fresh_request_ids(
    server: FakeProviderServer,
) -> None:
    c = oai(server)
    a = c.chat.completions.create(model="my-model", messages=MSG)
    b = c.chat.completions.create(model="my-model", messages=MSG)
    assert a.model == b.model == "my-model"
    assert a._request_id and b._request_id and a._request_id != b._request_id


def test_openai_chat_stream_with_and_without_usage(server: FakeProviderServer) -> None:
    c = oai(server)
    chunks = list(
        c.chat.completions.create(
            model="m",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=hdr(output_tokens=4),
        )
    )
    # role-only chunk, 4 content chunks, finish chunk, usage chunk
    assert len(chunks) == 7
    assert (
        chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    )
    assert (
        "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        == "tok0 tok1 tok2 tok3"
    )
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (12, 4)
    assert all(ch.usage is None for ch in chunks[:-1])

    plain = list(
        c.chat.completions.create(
            model="m", messages=MSG, stream=True, extra_headers=hdr(output_tokens=4)
        )
    )
    assert len(plain) == 6 and all(ch.usage is None and ch.choices for ch in plain)

    forced = list(
        c.chat.completions.create(
            model="m",
            messages=MSG,
            stream=True,
            extra_headers=hdr(output_tokens=2, include_usage=True),
        )
    )
    assert (
        forced[-1].choices == []
        and forced[-1].usage is not None
        and forced[-1].usage.completion_tokens == 2
    )


def test_openai_chat_stream_request_id_header_and_fixed_text(server: FakeProviderServer) -> None:
    with oai(server).chat.completions.create(
        model="m",
        messages=MSG,
        stream=True,
        extra_headers=hdr(text="Hello, world!", output_tokens=4, request_id="req_s1"),
    ) as s:
        assert s.response.headers["x-request-id"] == "req_s1"
        deltas = [
            ch.choices[0].delta.content for ch in s if ch.choices and ch.choices[0].delta.content
        ]
    assert "".join(deltas) == "Hello, world!" and len(deltas) == 4


def test_openai_chat_parse_and_stream_parse(server: FakeProviderServer) -> None:
    c = oai(server)
    parsed = (
        c.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Person)
        .choices[0]
        .message.parsed
    )
    assert isinstance(parsed, Person)
    with c.chat.completions.stream(
        model="gpt-4o", messages=MSG, response_format=Person, extra_headers=hdr(output_tokens=6)
    ) as s:
        n_content = sum(1 for e in s if e.type == "content.delta" and e.delta)
        final = s.get_final_completion()
    assert n_content == 6
    assert isinstance(final.choices[0].message.parsed, Person)


def test_openai_responses_plain_stream_and_parse(server: FakeProviderServer) -> None:
    c = oai(server)
    fields: dict[str, Any] = {
        "output_tokens": 3,
        "input_tokens": 20,
        "cached_input_tokens": 5,
        "reasoning_tokens": 4,
        "cache_write_tokens": 2,
    }
    r = c.responses.create(model="gpt-5", input="hi", extra_headers=hdr(**fields))
    assert r.output_text == "tok0 tok1 tok2" and r.status == "completed"
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (20, 7, 27)
    assert r.usage.input_tokens_details.cached_tokens == 5
    assert r.usage.input_tokens_details.cache_write_tokens == 2
    assert r.usage.output_tokens_details.reasoning_tokens == 4
    assert [o.type for o in r.output] == ["reasoning", "message"]

    with c.responses.stream(model="gpt-5", input="hi", extra_headers=hdr(**fields)) as s:
        events = list(s)
        final = s.get_final_response()
    types_ = [e.type for e in events]
    assert types_[:2] == ["response.created", "response.in_progress"]
    assert types_.count("response.output_text.delta") == 3
    assert types_[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert (
        final.output_text == "tok0 tok1 tok2"
        and final.usage is not None
        and final.usage.output_tokens == 7
    )

    assert isinstance(
        c.responses.parse(model="gpt-5", input="hi", text_format=Person).output_parsed, Person
    )
    with c.responses.stream(model="gpt-5", input="hi", text_format=Person) as s:
        assert isinstance(s.get_final_response().output_parsed, Person)


def test_openai_embeddings_float_and_default_base64(server: FakeProviderServer) -> None:
    e = oai(server).embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float", dimensions=5
    )
    assert len(e.data) == 2 and len(e.data[0].embedding) == 5 and e.usage.prompt_tokens == 12
    # The SDK asks for base64 by default and decodes it; strict validation would reject it before decoding.
    lax = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    b = lax.embeddings.create(model="text-embedding-3-small", input="a", dimensions=5)
    assert b.data[0].embedding == pytest.approx(e.data[0].embedding, abs=1e-6)


def test_openai_http_errors(server: FakeProviderServer) -> None:
    c = oai(server)
    with pytest.raises(openai.RateLimitError) as rl:
        c.chat.completions.create(
            model="m", messages=MSG, extra_headers=hdr(status=429, request_id="req_err")
        )
    assert rl.value.status_code == 429 and rl.value.request_id == "req_err"
    assert isinstance(rl.value.body, dict) and rl.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(
            model="m", messages=MSG, stream=True, extra_headers=hdr(status=500)
        )
    with pytest.raises(openai.BadRequestError):
        c.responses.create(model="m", input="hi", extra_headers=hdr(status=400))


def test_openai_mid_stream_error_and_drop(server: FakeProviderServer) -> None:
    c = oai(server)
    got: list[str] = []
    with pytest.raises(openai.APIError) as err:
        for ch in c.chat.completions.create(
            model="m", messages=MSG, stream=True, extra_headers=hdr(error_after=3)
        ):
            if ch.choices and ch.choices[0].delta.content:
                got.append(ch.choices[0].delta.content)
    assert len(got) == 3 and not isinstance(err.value, openai.APIConnectionError)

    got.clear()
    with pytest.raises(Exception) as drop:
        for ch in c.chat.completions.create(
            model="m", messages=MSG, stream=True, extra_headers=hdr(drop_after=2)
        ):
            if ch.choices and ch.choices[0].delta.content:
                got.append(ch.choices[0].delta.content)
    assert len(got) == 2 and dropped(drop)

    deltas = 0
    stream = c.responses.stream(model="m", input="hi", extra_headers=hdr(error_after=2))
    with pytest.raises(openai.APIError), stream as s:
        for e in s:
            deltas += e.type == "response.output_text.delta"
    assert deltas == 2


def test_drop_after_on_plain_requests_hangs_up(server: FakeProviderServer) -> None:
    with pytest.raises(Exception) as o:
        oai(server).chat.completions.create(
            model="m", messages=MSG, extra_headers=hdr(drop_after=0)
        )
    with pytest.raises(Exception) as a:
        ant(server).messages.create(
            model="x", max_tokens=5, messages=MSG, extra_headers=hdr(drop_after=0)
        )
    gc = gem(server)  # genai.Client closes itself in __del__: keep a reference
    with pytest.raises(Exception) as g:
        gc.models.generate_content(model="g", contents="hi", config=gcfg(drop_after=0))
    assert dropped(o) and dropped(a) and dropped(g)


# --- Anthropic --------------------------------------------------------------------


def test_anthropic_plain(server: FakeProviderServer) -> None:
    m = ant(server).messages.create(
        model="claude-x",
        max_tokens=100,
        messages=MSG,
        extra_headers=hdr(
            output_tokens=3,
            input_tokens=20,
            cached_input_tokens=5,
            cache_write_tokens=2,
            reasoning_tokens=6,
            request_id="req_a1",
            model="claude-served",
        ),
    )
    assert m._request_id == "req_a1" and m.model == "claude-served"
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[1].type == "text" and m.content[1].text == "tok0 tok1 tok2"
    u = m.usage
    # input_tokens excludes cache reads and writes; output includes thinking.
    assert (
        u.input_tokens,
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
        u.output_tokens,
    ) == (13, 5, 2, 9)
    assert u.output_tokens_details is not None and u.output_tokens_details.thinking_tokens == 6


def test_anthropic_stream_helper_and_raw_events(server: FakeProviderServer) -> None:
    c = ant(server)
    with c.messages.stream(
        model="claude-x",
        max_tokens=100,
        messages=MSG,
        extra_headers=hdr(output_tokens=5, input_tokens=9, request_id="req_s"),
    ) as ms:
        text = "".join(ms.text_stream)
        final = ms.get_final_message()
        assert ms.request_id == "req_s"
    assert text == "tok0 tok1 tok2 tok3 tok4"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 5)

    events = list(
        c.messages.create(
            model="claude-x",
            max_tokens=100,
            messages=MSG,
            stream=True,
            extra_headers=hdr(output_tokens=2, reasoning_tokens=3),
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert "ping" not in kinds  # sent, but filtered by the SDK
    starts = [e for e in events if e.type == "content_block_start"]
    assert [s.content_block.type for s in starts] == ["thinking", "text"]
    assert events[0].type == "message_start" and events[0].message.usage.output_tokens == 1
    delta = events[-2]
    assert delta.type == "message_delta" and delta.usage.output_tokens == 5


def test_anthropic_errors(server: FakeProviderServer) -> None:
    c = ant(server)
    with pytest.raises(anthropic.RateLimitError) as rl:
        c.messages.create(
            model="x",
            max_tokens=10,
            messages=MSG,
            extra_headers=hdr(status=429, request_id="req_rl"),
        )
    assert rl.value.request_id == "req_rl"
    assert isinstance(rl.value.body, dict) and rl.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError):
        c.messages.create(model="x", max_tokens=10, messages=MSG, extra_headers=hdr(status=500))
    texts: list[str] = []
    manager = c.messages.stream(
        model="x", max_tokens=10, messages=MSG, extra_headers=hdr(error_after=2)
    )
    with pytest.raises(anthropic.APIStatusError) as mid, manager as ms:
        texts.extend(ms.text_stream)
    assert "overloaded_error" in str(mid.value) and len(texts) == 2
    got = []
    with pytest.raises(Exception) as drop:
        for e in c.messages.create(
            model="x", max_tokens=10, messages=MSG, stream=True, extra_headers=hdr(drop_after=3)
        ):
            if e.type == "content_block_delta":
                got.append(e)
    assert len(got) == 3 and dropped(drop)


# --- Gemini -------------------------------------------------------------------------


def test_gemini_plain_and_stream(server: FakeProviderServer) -> None:
    c = gem(server)
    fields: dict[str, Any] = {
        "output_tokens": 4,
        "input_tokens": 20,
        "cached_input_tokens": 6,
        "reasoning_tokens": 5,
        "model": "gemini-2.5-flash-001",
        "request_id": "rid1",
    }
    r = c.models.generate_content(model="gemini-2.5-flash", contents="hi", config=gcfg(**fields))
    assert (
        r.text == "tok0 tok1 tok2 tok3"
        and r.model_version == "gemini-2.5-flash-001"
        and r.response_id == "rid1"
    )
    u = r.usage_metadata
    assert u is not None
    assert (
        u.prompt_token_count,
        u.candidates_token_count,
        u.thoughts_token_count,
        u.cached_content_token_count,
        u.total_token_count,
    ) == (20, 4, 5, 6, 29)

    chunks = list(
        c.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi", config=gcfg(**fields)
        )
    )
    assert len(chunks) == 4 and "".join(ch.text or "" for ch in chunks) == "tok0 tok1 tok2 tok3"
    running = [ch.usage_metadata.candidates_token_count for ch in chunks if ch.usage_metadata]
    assert running == [1, 2, 3, 4]
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata and last.usage_metadata.total_token_count == 29


def test_gemini_v1beta_json_schema_and_embeddings(server: FakeProviderServer) -> None:
    c = gem(server, api_version="v1beta")
    r = c.models.generate_content(
        model="gemini-2.5-flash",
        contents="hi",
        config={"response_mime_type": "application/json", "response_schema": Person},
    )
    assert isinstance(r.parsed, Person)
    assert server.requests[-1].path.startswith("/v1beta/models/gemini-2.5-flash:generateContent")
    texts: Any = ["a", "b", "c"]
    e = c.models.embed_content(
        model="text-embedding-004", contents=texts, config={"output_dimensionality": 4}
    )
    assert (
        e.embeddings is not None
        and len(e.embeddings) == 3
        and len(e.embeddings[0].values or []) == 4
    )


def test_gemini_errors(server: FakeProviderServer) -> None:
    c = gem(server)
    with pytest.raises(genai_errors.ClientError) as ce:
        c.models.generate_content(model="g", contents="hi", config=gcfg(status=429))
    assert ce.value.code == 429 and ce.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(genai_errors.ServerError) as se:
        list(c.models.generate_content_stream(model="g", contents="hi", config=gcfg(status=500)))
    assert se.value.code == 500

    got: list[str] = []
    with pytest.raises(genai_errors.ServerError):
        for ch in c.models.generate_content_stream(
            model="g", contents="hi", config=gcfg(error_after=2)
        ):
            got.append(ch.text or "")
    assert len(got) == 2
    got.clear()
    with pytest.raises(Exception) as drop:
        for ch in c.models.generate_content_stream(
            model="g", contents="hi", config=gcfg(drop_after=3)
        ):
            got.append(ch.text or "")
    assert len(got) == 3 and dropped(drop)


# --- timing ---------------------------------------------------------------------------


def _first_and_last(it: Iterator[Any], t0: float, is_content: Any) -> tuple[float, float]:
    first = last = None
    for item in it:
        if is_content(item):
            now = time.perf_counter() - t0
            first = now if first is None else first
            last = now
    assert first is not None and last is not None
    return first, last


def test_stream_timing_ttfb_and_gaps(server: FakeProviderServer) -> None:
    ttfb, gap, n = 0.15, 0.02, 6
    expected_last = ttfb + gap * (n - 1)
    h = {"ttfb_s": ttfb, "gap_s": gap, "output_tokens": n}
    oc, ac, gc = oai(server), ant(server), gem(server)

    t0 = time.perf_counter()
    stream = oc.chat.completions.create(
        model="m", messages=MSG, stream=True, extra_headers=hdr(**h)
    )
    assert (
        time.perf_counter() - t0 < ttfb - TOL
    )  # create() returns at the headers, before the first frame
    first, last = _first_and_last(
        iter(stream), t0, lambda ch: bool(ch.choices and ch.choices[0].delta.content)
    )
    assert first == pytest.approx(ttfb, abs=TOL) and last == pytest.approx(expected_last, abs=TOL)

    t0 = time.perf_counter()
    events = ac.messages.create(
        model="m", max_tokens=5, messages=MSG, stream=True, extra_headers=hdr(**h)
    )
    assert time.perf_counter() - t0 < ttfb - TOL
    first, last = _first_and_last(iter(events), t0, lambda e: e.type == "content_block_delta")
    assert first == pytest.approx(ttfb, abs=TOL) and last == pytest.approx(expected_last, abs=TOL)

    t0 = time.perf_counter()
    chunks = gc.models.generate_content_stream(model="g", contents="hi", config=gcfg(**h))
    first, last = _first_and_last(iter(chunks), t0, lambda ch: bool(ch.text))
    assert first == pytest.approx(ttfb, abs=TOL) and last == pytest.approx(expected_last, abs=TOL)


def test_plain_timing_is_ttfb(server: FakeProviderServer) -> None:
    c = oai(server)
    c.chat.completions.create(model="m", messages=MSG)  # warm the connection
    t0 = time.perf_counter()
    c.chat.completions.create(model="m", messages=MSG, extra_headers=hdr(ttfb_s=0.12, gap_s=1.0))
    assert time.perf_counter() - t0 == pytest.approx(0.12, abs=TOL)


# --- server behaviour -----------------------------------------------------------------


def test_default_scenario_switch_and_keep_alive_reuse() -> None:
    with running_server(Scenario(output_tokens=2, model="served-a")) as srv:
        c = oai(srv)
        assert c.chat.completions.create(model="m", messages=MSG).model == "served-a"
        srv.scenario = Scenario(output_tokens=3)
        assert srv.scenario.output_tokens == 3
        r = c.chat.completions.create(model="m", messages=MSG)
        assert r.model == "m" and r.choices[0].message.content == "tok0 tok1 tok2"
        for _ in range(20):
            c.chat.completions.create(model="m", messages=MSG)
        assert (
            srv.request_count == 22 and srv.connection_count == 1
        )  # Content-Length keeps it reusable
        # A chunked stream read to its end leaves the connection reusable too (anthropic reads to EOF;
        # openai stops at [DONE] before the terminating chunk, so its sync streams cannot reuse it).
        a = ant(srv)
        for _ in range(5):
            list(a.messages.create(model="x", max_tokens=5, messages=MSG, stream=True))
        assert srv.connection_count == 2


def test_requests_recorded_and_bounded() -> None:
    with FakeProviderServer(max_recorded=3) as srv:
        c = oai(srv)
        for i in range(5):
            c.chat.completions.create(model=f"m{i}", messages=MSG)
        recs = srv.requests
        assert [r.body["model"] for r in recs] == ["m2", "m3", "m4"] and srv.request_count == 5
        method, path, headers, body = recs[-1]
        assert (method, path) == ("POST", "/v1/chat/completions")
        assert headers["authorization"] == "Bearer test" and body["messages"] == MSG
        ant(srv).messages.create(model="x", max_tokens=5, messages=MSG)
        assert (
            "x-api-key" in srv.requests[-1].headers or "authorization" in srv.requests[-1].headers
        )
        srv.clear_requests()
        assert srv.requests == []


def test_unknown_route_and_bad_override(server: FakeProviderServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as nf:
        urllib.request.urlopen(
            urllib.request.Request(server.url + "/v1/nope", data=b"{}", method="POST"), timeout=5
        )
    assert nf.value.code == 404 and json.loads(nf.value.read())["error"]["code"] == 404
    with pytest.raises(openai.BadRequestError, match="unknown Scenario fields"):
        oai(server).chat.completions.create(
            model="m", messages=MSG, extra_headers={SCENARIO_HEADER: '{"ttfb": 1}'}
        )
    with pytest.raises(TypeError):
        scenario_headers(nope=1)
    with pytest.raises(ValueError):
        Scenario(output_tokens=-1)


def test_concurrent_async_streams_with_different_scenarios(server: FakeProviderServer) -> None:
    n_streams, gap, tokens = 50, 0.01, 10

    async def one(c: openai.AsyncOpenAI, i: int) -> tuple[str, int]:
        s = await c.chat.completions.create(
            model="m",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=hdr(gap_s=gap, output_tokens=tokens + i % 3, text=f"stream-{i}-" * 3),
        )
        text, usage = "", -1
        async for ch in s:
            if ch.choices:
                text += ch.choices[0].delta.content or ""
            elif ch.usage:
                usage = ch.usage.completion_tokens
        return text, usage

    async def main() -> list[tuple[str, int]]:
        async with openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="test", max_retries=0
        ) as c:
            return await asyncio.gather(*(one(c, i) for i in range(n_streams)))

    t0 = time.perf_counter()
    results = asyncio.run(main())
    elapsed = time.perf_counter() - t0
    assert [r for r in results] == [(f"stream-{i}-" * 3, tokens + i % 3) for i in range(n_streams)]
    assert (
        elapsed < 1.0 + gap * n_streams * tokens / 4
    )  # the streams ran in parallel, not one after another


def test_async_anthropic_and_gemini_streams(server: FakeProviderServer) -> None:
    async def main() -> tuple[str, str]:
        ac = anthropic.AsyncAnthropic(
            base_url=server.anthropic_base_url, api_key="test", max_retries=0
        )
        async with ac.messages.stream(
            model="x", max_tokens=5, messages=MSG, extra_headers=hdr(output_tokens=3)
        ) as ms:
            a = "".join([t async for t in ms.text_stream])
            assert (await ms.get_final_message()).usage.output_tokens == 3
        await ac.close()
        gc = gem(server)
        g = "".join(
            [
                ch.text or ""
                async for ch in await gc.aio.models.generate_content_stream(
                    model="g", contents="hi", config=gcfg(output_tokens=3)
                )
            ]
        )
        await gc.aio.aclose()
        return a, g

    assert asyncio.run(main()) == ("tok0 tok1 tok2", "tok0 tok1 tok2")


def test_stop_is_quick_with_open_and_streaming_connections() -> None:
    srv = FakeProviderServer(Scenario(ttfb_s=30.0)).start()
    idle = socket.create_connection(("127.0.0.1", srv.port))  # an idle keep-alive connection
    c = oai(srv, timeout=10.0)
    failures: list[BaseException] = []

    def slow_stream() -> None:
        try:
            list(c.chat.completions.create(model="m", messages=MSG, stream=True))
        except BaseException as exc:  # noqa: BLE001 - expected to be cut off
            failures.append(exc)

    t = threading.Thread(target=slow_stream)
    t.start()
    deadline = time.monotonic() + 5
    while srv.request_count < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - t0 < 1.0
    t.join(5)
    assert not t.is_alive() and failures
    assert srv._thread is not None and not srv._thread.is_alive()
    assert not srv._handlers  # every connection thread has finished
    idle.close()
    srv.stop()  # idempotent


# --- helpers ---------------------------------------------------------------------------


def test_example_for_schema_and_split_text() -> None:
    schema = {
        "$defs": {
            "Kind": {"enum": ["a", "b"]},
            "Inner": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}},
        },
        "type": "object",
        "properties": {
            "kind": {"$ref": "#/$defs/Kind"},
            "inner": {"$ref": "#/$defs/Inner"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "number"}]},
            "when": {"type": "string", "format": "date-time"},
            "items": {"type": "array", "items": {"type": "boolean"}, "minItems": 2},
            "upper": {"type": "STRING"},
        },
    }
    assert example_for_schema(schema) == {
        "kind": "a",
        "inner": {"n": 3},
        "maybe": 1.0,
        "when": "2025-01-01T00:00:00Z",
        "items": [True, True],
        "upper": "x",
    }
    assert split_text("abcdefg", 3) == ["ab", "cd", "efg"]
    assert split_text("ab", 5) == ["a", "b"]
    assert split_text("", 3) == [] and split_text("abc", 0) == []

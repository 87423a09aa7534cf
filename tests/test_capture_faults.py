"""otm failing never reaches the user: each of otm's own steps is made to raise, on every
SDK and every kind of call path (plain, stream, async stream, helper), and what the user
receives must be exactly what the bare SDK gives, with one log line saying what failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import otm
from otm import events
from otm.capture import call as call_module
from otm.capture import stainless
from otm.capture.call import Call
from otm.testing.server import scenario_headers as H

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello."}]
SCENARIO = {"output_tokens": 4, "input_tokens": 11}


# --------------------------------------------------------------------------- the paths


def _openai(server: Any) -> Any:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)


def _aopenai(server: Any) -> Any:
    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)


def _anthropic(server: Any) -> Any:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)


def _aanthropic(server: Any) -> Any:
    return anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)


def _genai(server: Any) -> Any:
    return genai.Client(api_key="x", http_options=types.HttpOptions(base_url=server.gemini_base_url))


def _akw(**scenario: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32,
        "messages": MESSAGES,
        "extra_headers": H(**{**SCENARIO, **scenario}),
    }


def _gconfig(**scenario: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        http_options=types.HttpOptions(headers=H(**{**SCENARIO, **scenario}))
    )


def openai_plain(server: Any) -> Any:
    r = _openai(server).chat.completions.create(
        model="m", messages=MESSAGES, extra_headers=H(**SCENARIO)
    )
    return r.choices[0].message.content


def openai_stream(server: Any) -> Any:
    s = _openai(server).chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=H(**SCENARIO)
    )
    return [c.choices[0].delta.content for c in s if c.choices]


def openai_astream(server: Any) -> Any:
    async def run() -> Any:
        async with _aopenai(server) as c:
            s = await c.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, extra_headers=H(**SCENARIO)
            )
            return [c.choices[0].delta.content async for c in s if c.choices]

    return asyncio.run(run())


def openai_helper(server: Any) -> Any:
    with _openai(server).chat.completions.stream(
        model="m", messages=MESSAGES, extra_headers=H(**SCENARIO)
    ) as s:
        texts = [e.delta for e in s if e.type == "content.delta"]
        final = s.get_final_completion()
    return texts, final.choices[0].message.content


def openai_ahelper(server: Any) -> Any:
    async def run() -> Any:
        async with _aopenai(server) as c:
            async with c.chat.completions.stream(
                model="m", messages=MESSAGES, extra_headers=H(**SCENARIO)
            ) as s:
                texts = [e.delta async for e in s if e.type == "content.delta"]
                final = await s.get_final_completion()
        return texts, final.choices[0].message.content

    return asyncio.run(run())


def anthropic_plain(server: Any) -> Any:
    return _anthropic(server).messages.create(**_akw()).content[0].text


def anthropic_stream(server: Any) -> Any:
    s = _anthropic(server).messages.create(**_akw(), stream=True)
    return [e.type for e in s]


def anthropic_astream(server: Any) -> Any:
    async def run() -> Any:
        async with _aanthropic(server) as c:
            s = await c.messages.create(**_akw(), stream=True)
            return [e.type async for e in s]

    return asyncio.run(run())


def anthropic_helper(server: Any) -> Any:
    with _anthropic(server).messages.stream(**_akw()) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    return texts, final.content[0].text


def anthropic_ahelper(server: Any) -> Any:
    async def run() -> Any:
        async with _aanthropic(server) as c:
            async with c.messages.stream(**_akw()) as s:
                texts = [t async for t in s.text_stream]
                final = await s.get_final_message()
        return texts, final.content[0].text

    return asyncio.run(run())


def google_plain(server: Any) -> Any:
    c = _genai(server)  # a genai client closes its connections when collected: keep it
    return c.models.generate_content(
        model="gemini-2.5-flash", contents="hi", config=_gconfig()
    ).text


def google_stream(server: Any) -> Any:
    c = _genai(server)
    return [
        ch.text
        for ch in c.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi", config=_gconfig()
        )
    ]


def google_astream(server: Any) -> Any:
    async def run() -> Any:
        c = _genai(server)
        s = await c.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi", config=_gconfig()
        )
        return [ch.text async for ch in s]

    return asyncio.run(run())


def google_helper(server: Any) -> Any:
    c = _genai(server)
    chat = c.chats.create(model="gemini-2.5-flash", config=_gconfig())
    return [ch.text for ch in chat.send_message_stream("hi")]


PATHS: dict[str, Callable[[Any], Any]] = {
    f.__name__: f
    for f in (
        openai_plain,
        openai_stream,
        openai_astream,
        openai_helper,
        openai_ahelper,
        anthropic_plain,
        anthropic_stream,
        anthropic_astream,
        anthropic_helper,
        anthropic_ahelper,
        google_plain,
        google_stream,
        google_astream,
        google_helper,
    )
}

# --------------------------------------------------------------------------- the faults

FAULTS: dict[str, tuple[Any, str]] = {
    "Call.finish": (Call, "finish"),
    "events.emit": (events, "emit"),
    "build_record": (call_module, "build_record"),
    "attach": (call_module, "attach"),
    "Call.hold": (Call, "hold"),
    "Call.chunk": (Call, "chunk"),
    "Call.finalise_on_gc": (Call, "finalise_on_gc"),
    "instrument_stream": (stainless, "instrument_stream"),
}


def _applies(path: str, fault: str) -> bool:
    """Whether ``path`` runs the faulty step at all (so its failure must be logged)."""
    sdk, kind = path.split("_")
    streamed = kind != "plain"
    if fault == "instrument_stream":
        return streamed and sdk != "google"  # google streams are proxies
    if fault in ("Call.finalise_on_gc", "Call.hold"):
        return streamed  # a plain response is attached at once, never held
    if fault == "Call.chunk":
        # openai chat streams inline the chunk step; plain calls have no chunks
        return streamed and sdk != "openai"
    return True


@pytest.fixture(scope="module")
def baseline(fake_server: Any) -> dict[str, Any]:
    """What each path gives with otm not installed at all."""
    otm.uninstrument()
    return {name: fn(fake_server) for name, fn in PATHS.items()}


@pytest.fixture()
def instrumented_all() -> Iterator[None]:
    otm.instrument()
    yield
    otm.uninstrument()


def _raiser(name: str) -> Callable[..., Any]:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"injected fault in {name}")

    return boom


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("path", list(PATHS))
def test_otm_failure_never_reaches_the_user(
    path: str,
    fault: str,
    server: Any,
    baseline: dict[str, Any],
    instrumented_all: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner, attr = FAULTS[fault]
    monkeypatch.setattr(owner, attr, _raiser(fault))
    with caplog.at_level(logging.WARNING, logger="otm"):
        got = PATHS[path](server)
    assert got == baseline[path]
    injected = [r for r in caplog.records if "injected fault" in repr(r.exc_info)]
    if _applies(path, fault):
        assert injected, f"{fault} never ran on {path}: the fault was not exercised"
    assert all(r.name == "otm" for r in injected)


# --------------------------------------------------------------------------- errors stay the SDK's own


def _google_call(server: Any, *, stream: bool = False, **scenario: Any) -> Any:
    c = _genai(server)
    kw = {"model": "gemini-2.5-flash", "contents": "hi", "config": _gconfig(**scenario)}
    if stream:
        return list(c.models.generate_content_stream(**kw))
    return c.models.generate_content(**kw)


ERRORS: dict[str, Callable[[Any], Any]] = {
    "openai_http": lambda s: _openai(s).chat.completions.create(
        model="m", messages=MESSAGES, extra_headers=H(status=503, request_id="req_fixed")
    ),
    "openai_midstream": lambda s: list(
        _openai(s).chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers=H(error_after=2, request_id="req_fixed")
        )
    ),
    "anthropic_http": lambda s: _anthropic(s).messages.create(**_akw(status=529, request_id="req_fixed")),
    "anthropic_midstream": lambda s: list(
        _anthropic(s).messages.create(**_akw(error_after=2, request_id="req_fixed"), stream=True)
    ),
    "google_http": lambda s: _google_call(s, status=500),
    "google_midstream": lambda s: _google_call(s, stream=True, error_after=2),
}


def _raised(fn: Callable[[Any], Any], server: Any) -> tuple[type, str]:
    with pytest.raises(Exception) as info:  # noqa: PT011 - any: the SDK's own, compared below
        fn(server)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("fault", ["Call.fail", "Call.finish", "events.emit"])
@pytest.mark.parametrize("path", list(ERRORS))
def test_the_sdk_exception_goes_through_unchanged_when_otm_fails(
    path: str, fault: str, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    otm.uninstrument()
    expected = _raised(ERRORS[path], server)
    otm.instrument()
    try:
        owner, attr = {"Call.fail": (Call, "fail"), **FAULTS}[fault]
        monkeypatch.setattr(owner, attr, _raiser(fault))
        assert _raised(ERRORS[path], server) == expected
    finally:
        otm.uninstrument()

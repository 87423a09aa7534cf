"""``.otm`` rides on a response without showing anywhere else: every way of looking at an
instrumented response (fields, dumps, JSON, ``dict()``, iteration, ``vars()``, ``==``,
``repr``, ``model_fields_set``) is the bare SDK's, on all three SDKs; and ``.otm``
survives pickle, copy, deepcopy and ``model_copy``.

Each response is compared with the same body parsed by the same SDK with otm not
installed (the bodies come from ``httpx2.MockTransport``, so both are identical)."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import otm

httpx2 = pytest.importorskip("httpx2")
openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

HEADERS = {"x-request-id": "req_fixed", "request-id": "req_fixed"}
MESSAGES = [{"role": "user", "content": "hi"}]

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 5, "output_tokens": 2},
}
GEMINI = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello!"}]}, "index": 0}],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp_1",
}


def _reply(body: Any, stream: list[Any] | None = None) -> Callable[[Any], Any]:
    def handler(request: Any) -> Any:
        if stream is not None and (b'"stream":true' in request.content or b"alt=sse" in bytes(request.url.query)):
            text = "".join(f"data: {json.dumps(e)}\n\n" for e in stream)
            return httpx2.Response(
                200, content=text.encode(), headers={**HEADERS, "content-type": "text/event-stream"}
            )
        return httpx2.Response(
            200, content=json.dumps(body).encode(), headers={**HEADERS, "content-type": "application/json"}
        )

    return handler


def openai_plain() -> Any:
    c = openai.OpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="x",
        http_client=httpx2.Client(transport=httpx2.MockTransport(_reply(CHAT))),
    )
    return c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def openai_parsed() -> Any:
    c = openai.OpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="x",
        http_client=httpx2.Client(transport=httpx2.MockTransport(_reply(CHAT))),
    )
    return c.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES)


def anthropic_plain() -> Any:
    c = anthropic.Anthropic(
        base_url="http://127.0.0.1:9",
        api_key="x",
        http_client=httpx2.Client(transport=httpx2.MockTransport(_reply(MESSAGE))),
    )
    return c.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=MESSAGES)


def google_plain() -> Any:
    client = genai.Client(
        api_key="x",
        http_options=types.HttpOptions(
            base_url="http://127.0.0.1:9",
            httpx_client=httpx2.Client(transport=httpx2.MockTransport(_reply(GEMINI))),
        ),
    )
    r = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    r.__dict__.get("sdk_http_response")  # keep the client's objects as they are
    return r


def google_last_chunk() -> Any:
    client = genai.Client(
        api_key="x",
        http_options=types.HttpOptions(
            base_url="http://127.0.0.1:9",
            httpx_client=httpx2.Client(transport=httpx2.MockTransport(_reply(GEMINI, [GEMINI, GEMINI]))),
        ),
    )
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    return chunks[-1]


PATHS = {f.__name__: f for f in (openai_plain, openai_parsed, anthropic_plain, google_plain, google_last_chunk)}


@pytest.fixture()
def pair(request: Any) -> Iterator[tuple[Any, Any]]:
    make = PATHS[request.param]
    otm.uninstrument()
    bare = make()
    otm.instrument()
    try:
        yield bare, make()
    finally:
        otm.uninstrument()


def _dump_json(m: Any) -> str:
    return m.model_dump_json(warnings=False)


VIEWS: dict[str, Callable[[Any], Any]] = {
    "model_dump": lambda m: m.model_dump(warnings=False),
    "model_dump_json": _dump_json,
    "json.dumps(model_dump(mode=json))": lambda m: json.dumps(m.model_dump(mode="json", warnings=False)),
    "dict()": lambda m: dict(m),
    "iteration": lambda m: [k for k, _ in m],
    "vars()": lambda m: vars(m),
    "vars() keys": lambda m: sorted(vars(m)),
    "repr": repr,
    "str": str,
    "model_fields_set": lambda m: m.model_fields_set,
    "__pydantic_extra__": lambda m: m.__pydantic_extra__,
    "__pydantic_private__": lambda m: m.__pydantic_private__,
}


@pytest.mark.parametrize("pair", list(PATHS), indirect=True)
def test_every_view_is_the_bare_sdks(pair: tuple[Any, Any]) -> None:
    bare, mine = pair
    assert mine.otm is not None and not hasattr(bare, "otm")
    assert type(mine) is type(bare)
    for name, view in VIEWS.items():
        assert view(mine) == view(bare), name
    assert mine == bare and bare == mine
    assert "otm" not in vars(mine) and "otm" not in dict(mine)


@pytest.mark.parametrize("pair", list(PATHS), indirect=True)
def test_every_name_dir_lists_can_be_read(pair: tuple[Any, Any]) -> None:
    """Libraries read every name dir() gives (LiteLLM does on openai's models): a response
    without a record must not list an 'otm' it cannot give."""
    bare, mine = pair
    assert "otm" not in dir(bare)
    for obj in (bare, mine):
        for name in dir(obj):
            if not name.startswith("_"):  # as LiteLLM does; pydantic's dunders are its own
                getattr(obj, name)  # must not raise
    assert "otm" in dir(mine)


@pytest.mark.parametrize("pair", list(PATHS), indirect=True)
def test_the_record_survives_pickle_and_copies(pair: tuple[Any, Any]) -> None:
    bare, mine = pair
    energy = mine.otm.energy_wh.value
    try:
        pickle.dumps(bare)
        pickled = [pickle.loads(pickle.dumps(mine))]
    except pickle.PicklingError:  # the SDK's own generic classes (ParsedChatCompletion[T])
        pickled = []
    for other in (
        *pickled,
        copy.copy(mine),
        copy.deepcopy(mine),
        mine.model_copy(),
        mine.model_copy(deep=True),
    ):
        assert other.otm is not None and other.otm.energy_wh.value == energy
        assert other == bare and "otm" not in vars(other)

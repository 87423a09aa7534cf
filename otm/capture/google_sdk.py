"""Capture for the ``google-genai`` SDK (``client.models`` and ``client.aio.models``).

Call paths (patched at class level on ``google.genai.models.Models`` and
``AsyncModels``):

* ``generate_content`` — a ``GenerateContentResponse`` (gets ``.otm``).
* ``generate_content_stream`` — the SDK returns a bare generator (async: an
  ``async def`` that returns an async generator), which cannot carry
  attributes; the user receives a generator-like proxy that does. No request is
  sent before the first ``next()``, so the clock starts there. The last chunk
  the user holds also gets ``.otm`` when the stream ends.
* ``embed_content`` — operation ``"embeddings"``.
* ``client.chats`` / ``client.aio.chats`` — ``send_message`` and
  ``send_message_stream`` call the two methods above, so they are captured
  through them (one record per model request the chat makes).

One user call may be several HTTP requests: automatic function calling (AFC)
runs rounds of requests, and automatic continuation follows continuation
tokens. The record covers the whole user call: its times run from the call
(or first ``next()``) to the end, and its tokens are summed over the rounds
(read from the SDK's private per-round methods when they exist; otherwise the
final response's usage is used, which counts only the last round).

Usage semantics: ``prompt_token_count`` includes cached tokens; candidates
exclude thoughts, so output = candidates + thoughts; reasoning = thoughts.
Streamed chunks carry running totals and the last one wins.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from otm._log import log_once
from otm.capture.call import Call
from otm.capture.clients import get_client_settings, settings_keys_of
from otm.capture.hosts import Host, HostName, host_name, host_of, resolve, server_of
from otm.capture.patching import Target, is_inert
from otm.capture.sanitize import count
from otm.capture.sites import Site, targets_of
from otm.capture.streams import AsyncStreamProxy, SyncStreamProxy
from otm.capture.wrappers import guarded, make_async_wrapper, make_sync_wrapper

PROVIDER = "google"


# --------------------------------------------------------------------------- adapter protocol


def owns(client: Any) -> bool:
    """Whether ``client`` is a ``genai.Client`` or its ``.aio`` twin."""
    try:
        from google.genai.client import AsyncClient, Client

        return isinstance(client, (Client, AsyncClient))
    except Exception:  # pragma: no cover - layout change in the SDK
        return hasattr(client, "models") and hasattr(client, "_api_client")


def _base_url(api_client: Any) -> str:
    opts = getattr(api_client, "_http_options", None)
    url = getattr(opts, "base_url", None) or getattr(api_client, "custom_base_url", None) or ""
    return str(url)


def _detect(api_client: Any) -> Host | HostName:
    from urllib.parse import urlsplit

    host = urlsplit(_base_url(api_client)).hostname
    return host_name(host, vendor=PROVIDER, unknown=PROVIDER)


def detect_host(client: Any) -> Host:
    """What the base URL of a ``genai.Client`` (or of its API client) says, decided once."""
    return resolve(host_of(getattr(client, "_api_client", client), _detect))


def model_bases() -> tuple[type, ...]:
    from google.genai import _common

    return (_common.BaseModel,)


def settings_keys(client: Any) -> list[object]:
    """The client and its API client: ``Models``/``AsyncModels`` hold the latter, not the client."""
    return settings_keys_of(client, "_api_client")


def _models(cls: type) -> list[Target]:
    return [
        (cls, "generate_content", _scoped_sync(make_sync_wrapper("google.generate_content", _begin_generate, _complete_response))),
        (cls, "generate_content_stream", make_sync_wrapper("google.generate_content_stream", _begin_stream, _complete_sync_stream)),
        (cls, "embed_content", make_sync_wrapper("google.embed_content", _begin_embed, _complete_embed)),
        # Private, optional: one call per AFC round, so usage can be summed over rounds.
        (cls, "_generate_content_with_continuation", _round_sync()),
        (cls, "_generate_content_stream_with_continuation", _stream_round()),
    ]


def _async_models(cls: type) -> list[Target]:
    return [
        (cls, "generate_content", _scoped_async(make_async_wrapper("google.generate_content", _begin_generate, _complete_response))),
        (cls, "generate_content_stream", make_async_wrapper("google.generate_content_stream", _begin_stream, _complete_async_stream)),
        (cls, "embed_content", make_async_wrapper("google.embed_content", _begin_embed, _complete_embed)),
        (cls, "_generate_content_with_continuation", _round_async()),
        (cls, "_generate_content_stream_with_continuation", _stream_round()),
    ]


def sites() -> list[Site]:
    """The classes to patch (patched when the SDK loads them)."""
    return [
        Site("google.genai.models", "Models", _models),
        Site("google.genai.models", "AsyncModels", _async_models),
    ]


def targets() -> list[Target]:
    """(class, method, wrapper) for every call path, importing what is not loaded yet."""
    return targets_of(sites())


# --------------------------------------------------------------------------- per-call state

_active: contextvars.ContextVar[_State | None] = contextvars.ContextVar("otm_genai_call", default=None)
"""The call whose SDK code is running in this context (set around a non-streamed
call, and around each ``next()`` of a stream), so the per-round hooks can find it."""


class _State:
    """Usage of one user call: finished rounds summed, plus the current round's running total."""

    __slots__ = ("base", "call", "cur", "last", "rounds")

    def __init__(self) -> None:
        self.call: Call | None = None
        self.rounds = 0
        self.base: list[int] | None = None  # [input, cached, output, reasoning] of finished rounds
        self.cur: list[int] | None = None  # running total of the current round
        self.last: Any = None  # the latest chunk, which receives .otm at the end

    # -- rounds -----------------------------------------------------------------

    def new_round(self) -> None:
        """A streamed round starts: what the previous round reported is now final."""
        if self.rounds and self.cur is not None:
            self.base = _add(self.base, self.cur)
            self.cur = None
        self.rounds += 1

    def add_round(self, response: Any) -> None:
        """A non-streamed round returned: add its usage."""
        self.rounds += 1
        notes = self.call.notes if self.call is not None else []
        figures = _usage_figures(getattr(response, "usage_metadata", None), notes)
        if figures is not None:
            self.base = _add(self.base, figures)

    def apply(self, call: Call) -> None:
        total = self.base
        if self.cur is not None:
            total = _add(total, self.cur)
        if total is not None:
            call.input_tokens, call.cached_input_tokens, call.output_tokens, call.reasoning_tokens = total

    # -- the per-chunk hot path --------------------------------------------------

    def observe(self, call: Call, chunk: Any) -> None:
        self.last = chunk
        has_content = False
        candidates = chunk.candidates
        if candidates:
            for cand in candidates:
                reason = cand.finish_reason
                if reason is not None:
                    call.finish_reason(reason)
            content = candidates[0].content
            parts = content.parts if content is not None else None
            if parts:
                for part in parts:
                    text = part.text
                    if text:
                        has_content = True
                        call.text(text)
                    elif part.function_call is not None:
                        has_content = True
        call.chunk(has_content)
        usage = chunk.usage_metadata
        if usage is not None:
            self.cur = _usage_figures(usage, call.notes)
            self.apply(call)
        if call.served_model is None:
            model = chunk.model_version
            if model:
                call.served_model = model
        if call.request_id is None:
            rid = chunk.response_id
            if rid:
                call.request_id = rid
                call.response_id = rid

    def latest(self) -> Any:
        return self.last


def _add(a: list[int] | None, b: list[int]) -> list[int]:
    if a is None:
        return list(b)
    return [x + y for x, y in zip(a, b)]


def _usage_figures(usage: Any, notes: list[str]) -> list[int] | None:
    """[input incl. cached, cached, output incl. thoughts, thoughts] from usage metadata.

    The counts are added up here, so each is checked first (an unusable one
    counts as absent, noted in ``notes``)."""
    if usage is None:
        return None
    prompt = count(getattr(usage, "prompt_token_count", None), "prompt_token_count", notes)
    tool_prompt = count(
        getattr(usage, "tool_use_prompt_token_count", None), "tool_use_prompt_token_count", notes
    )
    cached = count(
        getattr(usage, "cached_content_token_count", None), "cached_content_token_count", notes
    )
    candidates = count(
        getattr(usage, "candidates_token_count", None), "candidates_token_count", notes
    )
    thoughts = count(getattr(usage, "thoughts_token_count", None), "thoughts_token_count", notes)
    if prompt is None and candidates is None and thoughts is None:
        return None
    return [
        (prompt or 0) + (tool_prompt or 0),
        cached or 0,
        (candidates or 0) + (thoughts or 0),
        thoughts or 0,
    ]


# --------------------------------------------------------------------------- starting a call


def _model_name(model: Any) -> str | None:
    if not isinstance(model, str):
        return None
    # "models/x", "publishers/google/models/x", "projects/.../models/x" -> "x"
    _, sep, tail = model.rpartition("models/")
    return tail if sep and tail else model


def _text_of(value: Any, depth: int = 0) -> str:
    """The text inside genai contents (str, Part, Content, dicts, lists of them)."""
    if value is None or depth > 6:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(t for t in (_text_of(v, depth + 1) for v in value) if t)
    if isinstance(value, dict):
        text = value.get("text")
        if isinstance(text, str):
            return text
        return _text_of(value.get("parts"), depth + 1)
    parts = getattr(value, "parts", None)
    if isinstance(parts, (list, tuple)):
        return _text_of(parts, depth + 1)
    text = getattr(value, "text", None)
    return text if isinstance(text, str) else ""


def _prompt_text(kwargs: dict[str, Any]) -> str:
    pieces = []
    config = kwargs.get("config")
    if config is not None:
        system = config.get("system_instruction") if isinstance(config, dict) else getattr(config, "system_instruction", None)
        if system is not None:
            pieces.append(_text_of(system))
    pieces.append(_text_of(kwargs.get("contents")))
    return "\n".join(p for p in pieces if p)


def _new_call(instance: Any, kwargs: dict[str, Any], operation: str, *, streamed: bool) -> Call:
    api_client = getattr(instance, "_api_client", None)
    call = Call(
        PROVIDER,
        operation,
        _model_name(kwargs.get("model")),
        get_client_settings(api_client),
        streamed=streamed,
        host=host_of(api_client, _detect) if api_client is not None else None,
    )
    call.server(server_of(getattr(instance, "_api_client", None), _base_url))
    try:
        prompt = _prompt_text(kwargs)
        call.input_text_length = len(prompt)
        if call.config.capture_prompts:
            call.prompt = prompt
            call.text_parts = []
    except Exception as exc:
        log_once("google.prompt", exc)
    return call


def _begin_generate(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
    call = _new_call(instance, kwargs, "generate_content", streamed=False)
    state = _active.get()
    if state is not None and state.call is None:
        state.call = call
    return call


def _begin_stream(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
    return _new_call(instance, kwargs, "generate_content", streamed=True)


def _begin_embed(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
    return _new_call(instance, kwargs, "embeddings", streamed=False)


# --------------------------------------------------------------------------- non-streamed


def _response_text(response: Any) -> str:
    texts: list[str] = []
    for cand in getattr(response, "candidates", None) or ():
        content = getattr(cand, "content", None)
        for part in getattr(content, "parts", None) or ():
            text = getattr(part, "text", None)
            if text:
                texts.append(text)
            else:
                fc = getattr(part, "function_call", None)
                if fc is not None:
                    try:
                        texts.append(json.dumps(getattr(fc, "args", None) or {}, separators=(",", ":")))
                    except (TypeError, ValueError):
                        pass
        break  # the first candidate is the answer
    return "".join(texts)


def _complete_response(call: Call, response: Any) -> Any:
    state = _active.get()
    if state is not None and state.call is call and state.rounds:
        state.apply(call)
    else:
        figures = _usage_figures(getattr(response, "usage_metadata", None), call.notes)
        if figures is not None:
            call.input_tokens, call.cached_input_tokens, call.output_tokens, call.reasoning_tokens = figures
    model = getattr(response, "model_version", None)
    if model:
        call.served_model = model
    rid = getattr(response, "response_id", None)
    if rid:
        call.request_id = rid
        call.response_id = rid
    for cand in getattr(response, "candidates", None) or ():
        call.finish_reason(getattr(cand, "finish_reason", None))
    text = _response_text(response)
    call.output_text_length = len(text)
    if call.config.capture_prompts:
        call.completion = text
    call.finish("ok", holder=response)
    return response


def _complete_embed(call: Call, response: Any) -> Any:
    usage = getattr(response, "usage_metadata", None)
    tokens = getattr(usage, "prompt_token_count", None) if usage is not None else None
    if tokens is None:
        # Vertex AI: per-embedding statistics.
        counts = [
            getattr(getattr(e, "statistics", None), "token_count", None)
            for e in getattr(response, "embeddings", None) or ()
        ]
        known = [c for c in counts if c is not None]
        if known:
            tokens = int(sum(known))
    if tokens is not None:
        call.input_tokens = int(tokens)
        call.output_tokens = 0
    call.finish("ok", holder=response)
    return response


def _scoped_sync(inner: Callable[..., Any]) -> Callable[..., Any]:
    """Run the wrapped call with a fresh :class:`_State` in context (for the round hooks)."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if is_inert(wrapper):
            return wrapped(*args, **kwargs)
        token = _active.set(_State())
        try:
            return inner(wrapped, instance, args, kwargs)
        finally:
            _active.reset(token)

    return wrapper


def _scoped_async(inner: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if is_inert(wrapper):
            return wrapped(*args, **kwargs)

        async def run() -> Any:
            token = _active.set(_State())
            try:
                return await inner(wrapped, instance, args, kwargs)
            finally:
                _active.reset(token)

        return run()

    return wrapper


# --------------------------------------------------------------------------- per-round hooks (private SDK methods)


def _round_sync() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state = _active.get()
        response = wrapped(*args, **kwargs)
        if state is not None and state.call is not None and not is_inert(wrapper):
            guarded("google.round", state.add_round, response)
        return response

    return wrapper


def _round_async() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state = _active.get()
        if state is None or is_inert(wrapper):
            return wrapped(*args, **kwargs)

        async def run() -> Any:
            response = await wrapped(*args, **kwargs)
            if state.call is not None:
                guarded("google.round", state.add_round, response)
            return response

        return run()

    return wrapper


def _stream_round() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state = _active.get()
        if state is not None and not is_inert(wrapper):
            guarded("google.stream_round", state.new_round)
        return wrapped(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- streams


class GenaiStream(SyncStreamProxy):
    """What ``generate_content_stream`` returns when instrumented: the SDK's generator, carrying ``.otm``."""

    __slots__ = ("_state",)

    def __init__(self, gen: Iterator[Any], call: Call, state: _State) -> None:
        self._state = state
        super().__init__(gen, call, state.observe)

    def __next__(self) -> Any:
        token = _active.set(self._state)
        try:
            return SyncStreamProxy.__next__(self)
        finally:
            _active.reset(token)


class AsyncGenaiStream(AsyncStreamProxy):
    """The async twin of :class:`GenaiStream` (``client.aio.models.generate_content_stream``)."""

    __slots__ = ("_state",)

    def __init__(self, gen: AsyncIterator[Any], call: Call, state: _State) -> None:
        self._state = state
        super().__init__(gen, call, state.observe)

    async def __anext__(self) -> Any:
        token = _active.set(self._state)
        try:
            return await AsyncStreamProxy.__anext__(self)
        finally:
            _active.reset(token)


def _stream_state(call: Call) -> _State:
    state = _State()
    state.call = call
    # The latest chunk receives .otm when the stream ends (core calls holders at finish).
    call.holders.append(state.latest)
    return state


def _complete_sync_stream(call: Call, gen: Any) -> Any:
    return GenaiStream(gen, call, _stream_state(call))


def _complete_async_stream(call: Call, gen: Any) -> Any:
    return AsyncGenaiStream(gen, call, _stream_state(call))


__all__ = ["PROVIDER", "model_bases", "AsyncGenaiStream", "GenaiStream", "detect_host", "owns", "settings_keys", "sites", "targets"]

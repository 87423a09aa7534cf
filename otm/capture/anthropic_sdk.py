"""Capture for the ``anthropic`` SDK (sync and async).

Call paths (patched at class level, on the classes the package re-exports):

* ``messages.create`` — a ``Message``, or a ``Stream``/``AsyncStream`` of raw
  events with ``stream=True``; also reached through ``with_raw_response`` /
  ``with_streaming_response`` (an ``APIResponse`` whose ``parse()`` is
  instrumented on the instance).
* ``messages.stream(...)`` — does not call ``create``: it builds its request
  itself and returns a stream manager. The manager's class is swapped so that
  ``__enter__``/``__aenter__`` starts the clock, instruments the raw stream the
  helper reads, and gives the ``MessageStream`` (and ``get_final_message()``)
  ``.otm`` when the stream ends.
* ``messages.parse`` — a ``ParsedMessage``.
* the same three on ``client.beta.messages``.

Usage semantics: anthropic's ``input_tokens`` excludes cache reads and writes,
so total input = ``input_tokens + cache_read_input_tokens +
cache_creation_input_tokens``; cached = ``cache_read_input_tokens``; output =
``output_tokens`` (thinking included); reasoning =
``output_tokens_details.thinking_tokens``. Streams report input at
``message_start`` and cumulative figures at ``message_delta`` (which overwrite).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import pydantic

from otm._log import log_once
from otm.capture.call import Call
from otm.capture.clients import get_client_settings, settings_keys_of
from otm.capture.hosts import Host, HostName, host_name, host_of, resolve, server_of
from otm.capture.patching import Target, is_inert
from otm.capture.sanitize import count
from otm.capture.settings import snapshot
from otm.capture.sites import Site, targets_of
from otm.capture.stacking import restack_after_init
from otm.capture.stainless import ASTREAM, STREAM, JsonView, StainlessSDK, swap_stream_manager
from otm.capture.streams import Observer
from otm.capture.wrappers import make_async_wrapper, make_sync_wrapper

PROVIDER = "anthropic"
OPERATION = "chat"
REQUEST_ID_HEADER = "request-id"


# --------------------------------------------------------------------------- adapter protocol


def owns(client: Any) -> bool:
    """Whether ``client`` is an anthropic client (``Anthropic``, ``AsyncAnthropic``, Bedrock, Vertex...)."""
    try:
        from anthropic._base_client import BaseClient

        return isinstance(client, BaseClient)
    except Exception:  # pragma: no cover - layout change in the SDK
        return type(client).__module__.split(".")[0] == "anthropic" and hasattr(client, "messages")


def _detect(client: Any) -> Host | HostName:
    host = str(getattr(getattr(client, "base_url", None), "host", "") or "")
    return host_name(host, vendor=PROVIDER, unknown=PROVIDER)


def detect_host(client: Any) -> Host:
    """What an anthropic client's ``base_url`` host says (decided once per client)."""
    return resolve(host_of(client, _detect))


def model_bases() -> tuple[type, ...]:
    return (anthropic.BaseModel,)


def settings_keys(client: Any) -> list[object]:
    """The client, and its HTTP client (shared by ``with_options()``/``copy()`` copies)."""
    return settings_keys_of(client)


def _messages(sync: bool) -> Callable[[type], list[Target]]:
    wrap = make_sync_wrapper if sync else make_async_wrapper

    def targets(cls: type) -> list[Target]:
        return [
            (cls, "create", wrap("anthropic.create", _begin, SDK.complete)),
            (cls, "parse", wrap("anthropic.parse", _begin, SDK.complete)),
            # AsyncMessages.stream is a plain method returning an async context manager.
            (cls, "stream", _make_stream_helper_wrapper()),
        ]

    return targets


def _restack(cls: type) -> list[Target]:
    # A resource being built: move back on top of tools that patched after otm.
    return [(cls, "__init__", restack_after_init())]


def sites() -> list[Site]:
    """Every class to patch, by the package the SDK re-exports it from (patched when loaded)."""
    return [
        Site("anthropic.resources.messages", "Messages", _messages(True)),
        Site("anthropic.resources.messages", "AsyncMessages", _messages(False)),
        # older SDKs: no beta messages
        Site("anthropic.resources.beta.messages", "Messages", _messages(True), True),
        Site("anthropic.resources.beta.messages", "AsyncMessages", _messages(False), True),
        Site("anthropic._resource", "SyncAPIResource", _restack, True),
        Site("anthropic._resource", "AsyncAPIResource", _restack, True),
    ]


def targets() -> list[Target]:
    """(class, method, wrapper) for every call path, importing what is not loaded yet."""
    return targets_of(sites())


# --------------------------------------------------------------------------- starting a call


def _block_text(block: Any) -> str:
    """The text of one content block (dict or model); other blocks count as nothing."""
    if isinstance(block, str):
        return block
    if isinstance(block, dict):
        kind = block.get("type")
        if kind == "text":
            return str(block.get("text") or "")
        if kind == "tool_result":
            return _content_text(block.get("content"))
        return ""
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(getattr(block, "text", "") or "")
    return ""


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        # Only sequences: walking a one-shot iterator would empty the request.
        return "".join(_block_text(b) for b in content)
    return ""


def _prompt_text(kwargs: dict[str, Any]) -> str:
    parts: list[str] = []
    system = kwargs.get("system")
    if system is not None and not _is_omitted(system):
        parts.append(_content_text(system))
    messages = kwargs.get("messages")
    if isinstance(messages, (list, tuple)):  # never consume a user's iterator
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
            parts.append(_content_text(content))
    return "\n".join(p for p in parts if p)


def _is_omitted(value: Any) -> bool:
    # anthropic's Omit / NotGiven sentinels are falsy and not str/list/dict.
    return type(value).__name__ in ("Omit", "NotGiven")


def _new_call(resource: Any, kwargs: dict[str, Any], *, streamed: bool) -> Call:
    model = kwargs.get("model")
    client = getattr(resource, "_client", None)
    call = Call(
        PROVIDER,
        OPERATION,
        model if isinstance(model, str) else None,
        get_client_settings(client),
        streamed=streamed,
        host=host_of(client, _detect) if client is not None else None,
    )
    call.server(server_of(getattr(resource, "_client", None)))
    if call.config.capture_prompts:
        call.text_parts = []
    # The prompt is measured when the call finishes, off the call's own path
    # (and not at all twice when usage arrives, as it nearly always does).
    call.extra = {"request": kwargs}
    call.prepare = _prepare_prompt
    return call


def _prepare_prompt(call: Call) -> None:
    kwargs = call.extra.pop("request", None) if call.extra else None
    if not kwargs:
        return
    prompt = _prompt_text(kwargs)
    call.input_text_length = len(prompt)
    if call.config.capture_prompts:
        call.prompt = prompt


def _begin(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
    stream = kwargs.get("stream")
    return _new_call(instance, kwargs, streamed=stream is True)


# --------------------------------------------------------------------------- usage


class _Usage:
    """The components of anthropic usage, overwritten as events arrive."""

    __slots__ = ("cache_read", "cache_write", "fresh")

    def __init__(self) -> None:
        self.fresh: int | None = None
        self.cache_read: int | None = None
        self.cache_write: int | None = None


def _apply_usage(call: Call, usage: Any, parts: _Usage) -> None:
    """Overwrite ``call``'s token figures with what ``usage`` reports (None fields keep theirs).

    The components are added up here, so each is checked first (a server
    sending text or negative counts costs only that count, noted)."""
    if usage is None:
        return
    notes = call.notes
    fresh = count(getattr(usage, "input_tokens", None), "input_tokens", notes)
    read = count(getattr(usage, "cache_read_input_tokens", None), "cache_read_input_tokens", notes)
    write = count(
        getattr(usage, "cache_creation_input_tokens", None), "cache_creation_input_tokens", notes
    )
    if fresh is not None:
        parts.fresh = fresh
    if read is not None:
        parts.cache_read = read
    if write is not None:
        parts.cache_write = write
    if parts.fresh is not None or parts.cache_read is not None or parts.cache_write is not None:
        call.input_tokens = (parts.fresh or 0) + (parts.cache_read or 0) + (parts.cache_write or 0)
        call.cached_input_tokens = parts.cache_read or 0
        call.cache_write_tokens = parts.cache_write
    out = getattr(usage, "output_tokens", None)
    if out is not None:
        call.output_tokens = out
    details = getattr(usage, "output_tokens_details", None)
    if details is not None:
        thinking = getattr(details, "thinking_tokens", None)
        if thinking is not None:
            call.reasoning_tokens = thinking


def _read_message(call: Call, message: Any) -> None:
    """Usage, model, request id and output text of a complete ``Message``."""
    _apply_usage(call, getattr(message, "usage", None), _Usage())
    model = getattr(message, "model", None)
    if isinstance(model, str):
        call.served_model = model
    rid = getattr(message, "_request_id", None)
    if isinstance(rid, str) and rid:
        call.request_id = rid
    mid = getattr(message, "id", None)
    if isinstance(mid, str) and mid:
        call.response_id = mid
    call.finish_reason(getattr(message, "stop_reason", None))
    content = getattr(message, "content", None) or ()
    texts: list[str] = []
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(getattr(block, "text", "") or "")
        elif kind == "thinking":
            texts.append(getattr(block, "thinking", "") or "")
        elif kind in ("tool_use", "server_tool_use"):
            value = getattr(block, "input", None)
            if isinstance(value, JsonView):
                value = value.data
            try:
                texts.append(json.dumps(value, separators=(",", ":")))
            except (TypeError, ValueError):
                pass
    call.output_text_length = sum(len(t) for t in texts)
    if call.config.capture_prompts:
        call.completion = "".join(t for t, b in zip(texts, content) if getattr(b, "type", None) == "text")


def _read_model(call: Call, message: Any) -> None:
    _read_message(call, message)
    if call.http_status is None:
        call.http_status = 200


# --------------------------------------------------------------------------- streams


def _stream_usage(call: Call) -> _Usage:
    extra = call.extra
    if extra is None:
        extra = call.extra = {}
    parts = extra.get("anthropic_usage")
    if parts is None:
        parts = extra["anthropic_usage"] = _Usage()
    return parts


def _observe(call: Call, event: Any) -> None:
    """One raw stream event (a module-level function: core caches stream classes per observer)."""
    kind = event.type
    if kind == "content_block_delta":
        delta = event.delta
        dkind = delta.type
        if dkind == "text_delta":
            call.chunk(True)
            call.text(delta.text)
        elif dkind == "thinking_delta":
            call.chunk(True)
            # Thinking arrives as visible deltas: it is part of the decode
            # stream, not hidden work before the first token.
            call.reasoning_streamed = True
            piece = delta.thinking
            if piece:
                call.output_text_length += len(piece)
        elif dkind == "input_json_delta":
            call.chunk(True)
            piece = delta.partial_json
            if piece:
                call.output_text_length += len(piece)
        else:  # signature_delta, citations_delta: no generated tokens
            call.chunk(False)
    elif kind == "message_start":
        call.chunk(False)
        message = event.message
        _apply_usage(call, getattr(message, "usage", None), _stream_usage(call))
        model = getattr(message, "model", None)
        if isinstance(model, str):
            call.served_model = model
        mid = getattr(message, "id", None)
        if isinstance(mid, str) and mid:
            call.response_id = mid
    elif kind == "message_delta":
        call.chunk(False)
        _apply_usage(call, getattr(event, "usage", None), _stream_usage(call))
        call.finish_reason(getattr(getattr(event, "delta", None), "stop_reason", None))
    else:
        call.chunk(False)


def _observer(call: Call) -> Observer:
    return _observe


SDK = StainlessSDK(
    anthropic,
    request_id_header=REQUEST_ID_HEADER,
    observer=_observer,
    read_model=_read_model,
    # parse(to=...) may return any pydantic model; the reader reads what it has.
    model_type=pydantic.BaseModel,
)


# --------------------------------------------------------------------------- messages.stream()


def _make_stream_helper_wrapper() -> Callable[..., Any]:
    """Wraps ``messages.stream``: the request is sent on ``__enter__``, so the call starts there."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        if snapshot().disabled or is_inert(wrapper):
            return manager
        try:
            manager.__dict__["_otm_begin"] = (instance, dict(kwargs))
            swap_stream_manager(manager, _HELPER_START, "anthropic.stream")
        except Exception as exc:
            log_once("anthropic.stream", exc)
        return manager

    return wrapper


class _HelperStart:
    """``messages.stream()`` never calls ``create()``: its call starts when the
    manager is entered, and reports to the raw stream the helper reads."""

    def begin(self, manager: Any) -> Call | None:
        begin = manager.__dict__.pop("_otm_begin", None)
        if begin is None or snapshot().disabled:
            return None
        resource, kwargs = begin
        return _new_call(resource, kwargs, streamed=True)

    def end(self, call: Call | None, helper: Any, exc: BaseException | None) -> Call | None:
        if call is None:
            return None
        if exc is not None:
            call.fail(exc)
            return None
        raw = getattr(helper, "_raw_stream", None)
        if raw is None or SDK.kind(type(raw)) not in (STREAM, ASTREAM):
            log_once(
                "anthropic.stream.raw",
                message="otm: anthropic stream helper without a raw stream; not measured",
            )
            return None
        SDK.start_stream(call, raw, is_async=SDK.kind(type(raw)) == ASTREAM)
        return call


_HELPER_START = _HelperStart()


__all__ = ["PROVIDER", "model_bases", "detect_host", "owns", "settings_keys", "sites", "targets"]

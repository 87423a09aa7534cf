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

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from otm._log import log_once
from otm.capture.core import (
    ATTR,
    Call,
    _inert,
    attach,
    get_client_settings,
    guarded,
    instrument_stream,
    make_async_wrapper,
    make_sync_wrapper,
    options,
    provider_from_host,
    settings_keys_of,
    stream_call,
)

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


def detect_provider(client: Any) -> str:
    """``"local"`` for a base URL on this machine or a private network, else ``"anthropic"``."""
    try:
        host = str(getattr(client.base_url, "host", "") or "")
    except Exception as exc:  # pragma: no cover - defensive
        log_once("anthropic.detect_provider", exc)
        return PROVIDER
    return provider_from_host(host, PROVIDER)


def settings_keys(client: Any) -> list[object]:
    """The client, and its HTTP client (shared by ``with_options()``/``copy()`` copies)."""
    return settings_keys_of(client)


def targets() -> list[tuple[type, str, Callable[..., Any]]]:
    """(class, method, wrapper) for every call path; fresh wrappers on each call."""
    out: list[tuple[type, str, Callable[..., Any]]] = []
    groups: list[tuple[Any, Any]] = []
    try:
        from anthropic.resources import AsyncMessages, Messages

        groups.append((Messages, AsyncMessages))
    except Exception as exc:  # pragma: no cover - layout change in the SDK
        log_once("anthropic.targets", exc)
    with contextlib.suppress(ImportError):  # older SDKs: no beta messages
        from anthropic.resources.beta import AsyncMessages as BetaAsyncMessages
        from anthropic.resources.beta import Messages as BetaMessages

        groups.append((BetaMessages, BetaAsyncMessages))
    for sync_cls, async_cls in groups:
        out.append((sync_cls, "create", make_sync_wrapper("anthropic.create", _begin, _complete_sync)))
        out.append((sync_cls, "parse", make_sync_wrapper("anthropic.parse", _begin, _complete_sync)))
        out.append((sync_cls, "stream", _make_stream_helper_wrapper(is_async=False)))
        out.append((async_cls, "create", make_async_wrapper("anthropic.create", _begin, _complete_async)))
        out.append((async_cls, "parse", make_async_wrapper("anthropic.parse", _begin, _complete_async)))
        # AsyncMessages.stream is a plain method returning an async context manager.
        out.append((async_cls, "stream", _make_stream_helper_wrapper(is_async=True)))
    return out


# --------------------------------------------------------------------------- starting a call


def _settings_for(resource: Any) -> Any:
    return get_client_settings(getattr(resource, "_client", None))


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
    call = Call(PROVIDER, OPERATION, model if isinstance(model, str) else None, _settings_for(resource), streamed=streamed)
    if options.capture_prompts:
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
    if options.capture_prompts:
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
    """Overwrite ``call``'s token figures with what ``usage`` reports (None fields keep theirs)."""
    if usage is None:
        return
    fresh = getattr(usage, "input_tokens", None)
    read = getattr(usage, "cache_read_input_tokens", None)
    write = getattr(usage, "cache_creation_input_tokens", None)
    if fresh is not None:
        parts.fresh = fresh
    if read is not None:
        parts.cache_read = read
    if write is not None:
        parts.cache_write = write
    if parts.fresh is not None or parts.cache_read is not None or parts.cache_write is not None:
        call.input_tokens = (parts.fresh or 0) + (parts.cache_read or 0) + (parts.cache_write or 0)
        call.cached_input_tokens = parts.cache_read or 0
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
            if isinstance(value, _AttrView):
                value = value._d
            try:
                texts.append(json.dumps(value, separators=(",", ":")))
            except (TypeError, ValueError):
                pass
    call.output_text_length = sum(len(t) for t in texts)
    if options.capture_prompts:
        call.completion = "".join(t for t, b in zip(texts, content) if getattr(b, "type", None) == "text")


def _finish_message(call: Call, message: Any) -> Any:
    _read_message(call, message)
    if call.http_status is None:
        call.http_status = 200
    call.finish("ok", holder=message)
    return message


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
    elif kind == "message_delta":
        call.chunk(False)
        _apply_usage(call, getattr(event, "usage", None), _stream_usage(call))
    else:
        call.chunk(False)


def _instrument_raw_stream(call: Call, stream: Any, *, is_async: bool) -> Any:
    """Request id and status from the HTTP response, then the class swap of core."""
    response = getattr(stream, "response", None)
    if response is not None:
        try:
            rid = response.headers.get(REQUEST_ID_HEADER)
            if rid:
                call.request_id = rid
            call.http_status = response.status_code
        except Exception as exc:
            log_once("anthropic.stream.headers", exc)
    return instrument_stream(stream, call, _observe, is_async=is_async)


def _is_stream(obj: Any) -> bool:
    try:
        from anthropic import AsyncStream, Stream

        return isinstance(obj, (Stream, AsyncStream))
    except Exception:  # pragma: no cover
        return False


def _is_api_response(obj: Any) -> bool:
    try:
        from anthropic._response import BaseAPIResponse

        return isinstance(obj, BaseAPIResponse)
    except Exception:  # pragma: no cover
        return False


def _complete_sync(call: Call, result: Any) -> Any:
    if _is_stream(result):
        return _instrument_raw_stream(call, result, is_async=False)
    if _is_api_response(result):
        return _instrument_api_response(call, result, is_async=False)
    return _finish_message(call, result)


def _complete_async(call: Call, result: Any) -> Any:
    if _is_stream(result):
        return _instrument_raw_stream(call, result, is_async=True)
    if _is_api_response(result):
        return _instrument_api_response(call, result, is_async=True)
    return _finish_message(call, result)


# --------------------------------------------------------------------------- raw responses

_swapped: dict[tuple[type, str], type] = {}
_swapped_lock = threading.Lock()


def _swap_class(obj: Any, kind: str, make: Callable[[Any], type]) -> None:
    """Give ``obj`` a cached subclass of its class (same name, same isinstance)."""
    base = type(obj)
    key = (base, kind)
    sub = _swapped.get(key)
    if sub is None:
        with _swapped_lock:
            sub = _swapped.get(key)
            if sub is None:
                sub = make(base)
                _swapped[key] = sub
    obj.__class__ = sub


def _after_parse(resp: Any, call: Call, parsed: Any, is_async: bool) -> None:
    if _is_stream(parsed):
        if stream_call(parsed) is None:
            _instrument_raw_stream(call, parsed, is_async=is_async)
        return
    if call.status == "pending":
        if _is_model(parsed):
            _finish_message(call, parsed)
        else:  # parse(to=dict) and the like: read the body instead
            _finish_from_body(call, resp)
    elif call.record is not None and _is_model(parsed):
        attach(parsed, call.record)


def _is_model(obj: Any) -> bool:
    try:
        import pydantic

        return isinstance(obj, pydantic.BaseModel)
    except Exception:  # pragma: no cover
        return False


def _make_sync_response_class(base: Any) -> type:
    def parse(self: Any, **kwargs: Any) -> Any:
        parsed = base.parse(self, **kwargs)
        call = self.__dict__.get("_otm_call")
        if call is not None:
            guarded("anthropic.raw.parse", _after_parse, self, call, parsed, False)
        return parsed

    def close(self: Any) -> Any:
        try:
            return base.close(self)
        finally:
            call = self.__dict__.get("_otm_call")
            if call is not None:
                guarded("anthropic.raw.close", _close_unparsed, self, call)

    return type(base.__name__, (base,), {"parse": parse, "close": close, "__module__": base.__module__})


def _make_async_response_class(base: Any) -> type:
    async def parse(self: Any, **kwargs: Any) -> Any:
        parsed = await base.parse(self, **kwargs)
        call = self.__dict__.get("_otm_call")
        if call is not None:
            guarded("anthropic.raw.parse", _after_parse, self, call, parsed, True)
        return parsed

    async def close(self: Any) -> Any:
        try:
            return await base.close(self)
        finally:
            call = self.__dict__.get("_otm_call")
            if call is not None:
                guarded("anthropic.raw.close", _close_unparsed, self, call)

    return type(base.__name__, (base,), {"parse": parse, "close": close, "__module__": base.__module__})


def _close_unparsed(resp: Any, call: Call) -> None:
    """A raw response closed without ``parse()``: read usage from the body if it was read."""
    if call.status != "pending":
        return
    if call.streamed:
        # Streamed bytes read by hand (iter_lines...): no events were observed.
        call.finish("abandoned")
        return
    _finish_from_body(call, resp)


class _AttrView:
    """Attribute access over a JSON dict, so the model readers work on raw bodies."""

    __slots__ = ("_d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __getattr__(self, name: str) -> Any:
        value = self._d.get(name)
        if isinstance(value, dict):
            return _AttrView(value)
        if isinstance(value, list):
            return [_AttrView(v) if isinstance(v, dict) else v for v in value]
        return value


def _instrument_api_response(call: Call, resp: Any, *, is_async: bool) -> Any:
    """``with_raw_response`` / ``with_streaming_response``: figures when ``parse()`` runs."""
    try:
        call.http_status = resp.status_code
        rid = resp.headers.get(REQUEST_ID_HEADER)
        if rid:
            call.request_id = rid
    except Exception as exc:
        log_once("anthropic.raw.headers", exc)
    resp.__dict__["_otm_call"] = call
    resp.__dict__.setdefault(ATTR, None)
    _swap_class(resp, "async" if is_async else "sync", _make_async_response_class if is_async else _make_sync_response_class)
    call.hold(resp)
    if not call.streamed and _body_read(resp):
        # with_raw_response: the body is already here, so the call is over. Usage is
        # read from the JSON (no SDK parse on the user's behalf); the object the
        # user's own parse() returns receives .otm too.
        _finish_from_body(call, resp)
    else:
        call.finalise_on_gc(resp)
    return resp


def _body_read(resp: Any) -> bool:
    try:
        resp.http_response.content  # noqa: B018 - raises ResponseNotRead when not read
        return True
    except Exception:
        return False


def _finish_from_body(call: Call, resp: Any) -> None:
    """Usage, model and text from a raw response's JSON body (when it has been read)."""
    body: Any = None
    if _body_read(resp):
        try:
            body = json.loads(resp.http_response.content)
        except ValueError:
            body = None
    if isinstance(body, dict):
        _read_message(call, _AttrView(body))
    call.finish("ok", holder=resp)


# --------------------------------------------------------------------------- messages.stream()


def _make_stream_helper_wrapper(*, is_async: bool) -> Callable[..., Any]:
    """Wraps ``messages.stream``: the request is sent on ``__enter__``, so the call starts there."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        if not options.enabled or id(wrapper) in _inert:
            return manager
        try:
            manager.__dict__["_otm_begin"] = (instance, dict(kwargs))
            _swap_class(manager, "manager", _make_async_manager_class if is_async else _make_sync_manager_class)
        except Exception as exc:
            log_once("anthropic.stream", exc)
        return manager

    return wrapper


def _link_helper(call: Call, helper: Any, *, is_async: bool) -> None:
    raw = getattr(helper, "_raw_stream", None)
    if raw is None or not _is_stream(raw):
        log_once("anthropic.stream.raw", message="otm: anthropic stream helper without a raw stream; not measured")
        return
    _instrument_raw_stream(call, raw, is_async=is_async)
    helper.__dict__.setdefault(ATTR, None)
    _swap_class(helper, "helper", _make_async_helper_class if is_async else _make_sync_helper_class)
    call.hold(helper)


def _start_helper_call(manager: Any) -> Call | None:
    begin = manager.__dict__.pop("_otm_begin", None)
    if begin is None or not options.enabled:
        return None
    resource, kwargs = begin
    return _new_call(resource, kwargs, streamed=True)


def _make_sync_manager_class(base: Any) -> type:
    def __enter__(self: Any) -> Any:
        call = guarded("anthropic.stream.begin", _start_helper_call, self)
        if call is None:
            return base.__enter__(self)
        try:
            helper = base.__enter__(self)
        except BaseException as exc:
            guarded("anthropic.stream.fail", call.fail, exc)
            raise
        guarded("anthropic.stream.link", lambda: _link_helper(call, helper, is_async=False))
        return helper

    return type(base.__name__, (base,), {"__enter__": __enter__, "__module__": base.__module__})


def _make_async_manager_class(base: Any) -> type:
    async def __aenter__(self: Any) -> Any:
        call = guarded("anthropic.stream.begin", _start_helper_call, self)
        if call is None:
            return await base.__aenter__(self)
        try:
            helper = await base.__aenter__(self)
        except BaseException as exc:
            guarded("anthropic.stream.fail", call.fail, exc)
            raise
        guarded("anthropic.stream.link", lambda: _link_helper(call, helper, is_async=True))
        return helper

    return type(base.__name__, (base,), {"__aenter__": __aenter__, "__module__": base.__module__})


def _attach_final(helper: Any, message: Any) -> None:
    record = helper.__dict__.get(ATTR)
    if record is not None:
        attach(message, record)


def _make_sync_helper_class(base: Any) -> type:
    def get_final_message(self: Any) -> Any:
        message = base.get_final_message(self)
        guarded("anthropic.stream.final", _attach_final, self, message)
        return message

    return type(base.__name__, (base,), {"get_final_message": get_final_message, "__module__": base.__module__})


def _make_async_helper_class(base: Any) -> type:
    async def get_final_message(self: Any) -> Any:
        message = await base.get_final_message(self)
        guarded("anthropic.stream.final", _attach_final, self, message)
        return message

    return type(base.__name__, (base,), {"get_final_message": get_final_message, "__module__": base.__module__})


__all__ = ["detect_provider", "owns", "settings_keys", "targets"]

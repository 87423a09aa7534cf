"""LiteLLM's streams as the caller reads them: each chunk seen, and every ending recorded once.

LiteLLM logs a stream when it has been read to its end. One the caller breaks
off (a ``break`` and a close or a drop, an exception in the loop, a
cancelled task) gets no callback from LiteLLM. So otm puts a thin layer on
LiteLLM's stream classes (chat: ``CustomStreamWrapper``, which a Router's
streams and ``text_completion``'s wrap; Responses API: the sync and async
streaming iterators), as it does on the official SDKs' streams:

* ``__init__``: the stream joins its call's flight (:func:`.litellm_calls.watch_stream`);
* ``__next__`` / ``__anext__``, per chunk: a clock read and attribute reads
  (did the chunk carry output?), giving the record its last token and chunk
  counts. An exception or a cancellation out of LiteLLM's iteration finishes
  the call there (``error`` / ``cancelled``) with what it carried so far;
  the end of the iteration marks the end where LiteLLM has no assembly step;
* ``close`` / ``aclose`` (and so ``with`` / ``async with``): ``abandoned``
  unless the stream ended or LiteLLM closes it itself inside its iteration;
* the garbage collector freeing a stream left unfinished: ``abandoned`` at
  the last chunk seen (a weak-reference finaliser; LiteLLM's stream sits in a
  reference cycle, so that may be the next collection, not the ``break``).

Each of these finishes the call at most once, and never after it ended
normally; LiteLLM's own callback, if it comes later, finds it finished.
Where the stream ends normally, :mod:`.litellm_attach` sees the end.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from otm._log import log_once
from otm.capture import litellm_calls
from otm.capture.call import Call, _perf
from otm.capture.wrappers import guarded

FLIGHT = "_otm_flight"
"""Where a watched stream keeps its call's flight (its instance ``__dict__``)."""

INNER = "_otm_inner"
"""Where ``atext_completion``'s stream wrapper keeps the LiteLLM stream it reads."""


# --------------------------------------------------------------------------- per chunk


def _field(obj: Any, name: str) -> Any:
    """A field of a LiteLLM chunk (None when absent), read from the pydantic model's own
    dicts: LiteLLM keeps most of a chunk's fields as pydantic extras, which attribute
    access reaches only through pydantic's ``__getattr__`` (~0.6 us a field, and an
    exception for one LiteLLM removed)."""
    try:
        extra = obj.__pydantic_extra__
        fields = obj.__dict__
    except AttributeError:  # not a pydantic model
        return getattr(obj, name, None)
    if extra:
        value = extra.get(name)
        if value is not None:
            return value
    return fields.get(name)


def observe_chat(call: Call, item: Any) -> None:
    """A chat chunk: did it carry output (text, reasoning, tool arguments)?"""
    has = False
    choices = _field(item, "choices")
    if choices:
        delta = _field(choices[0], "delta")
        if delta is not None:
            has = bool(
                _field(delta, "content")
                or _field(delta, "tool_calls")
                or _field(delta, "reasoning_content")
            )
    call.chunk(has)


def observe_responses(call: Call, item: Any) -> None:
    """A Responses API event: a text, reasoning or arguments delta is output (its length counted)."""
    delta = _field(item, "delta")
    kind = _field(item, "type")
    if isinstance(delta, str) and delta and not (isinstance(kind, str) and "audio" in kind):
        call.chunk(True)
        call.output_text_length += len(delta)
    else:
        call.chunk(False)


# --------------------------------------------------------------------------- joining a call


def _watch(stream: Any, observe: Callable[[Call, Any], None], partial: Any) -> None:
    flight = litellm_calls.watch_stream(stream, observe, partial, _collected)
    if flight is not None:
        stream.__dict__[FLIGHT] = flight


def watch_chat(stream: Any) -> None:
    """A ``CustomStreamWrapper`` was made: the chunks it keeps are what a cut is read from."""
    _watch(stream, observe_chat, getattr(stream, "chunks", None))


def watch_responses(stream: Any) -> None:
    """A Responses API streaming iterator was made (its text so far is read when it is cut)."""
    _watch(stream, observe_responses, None)


def link_inner(wrapper: Any) -> None:
    """``atext_completion(stream=True)`` hands back a ``TextCompletionStreamWrapper`` around an
    async generator that reads LiteLLM's stream: keep that stream, which carries the record."""
    gen = getattr(wrapper, "completion_stream", None)
    frame = getattr(gen, "ag_frame", None) if inspect.isasyncgen(gen) else None
    if frame is None:
        return
    inner = frame.f_locals.get("response")
    if inner is not None and hasattr(inner, "completion_stream"):
        wrapper.__dict__[INNER] = inner


def inner_stream(wrapper: Any) -> Any:
    """The LiteLLM stream a ``TextCompletionStreamWrapper`` reads (through one more wrapper, if any)."""
    for _ in range(3):
        inner = wrapper.__dict__.get(INNER) or getattr(wrapper, "completion_stream", None)
        if inner is None or hasattr(inner, "logging_obj"):
            return inner
        wrapper = inner
    return None


# --------------------------------------------------------------------------- how a stream is cut


def _collected(flight: Any) -> None:
    """The garbage collector freed a stream left unfinished: abandoned at the last chunk seen."""
    try:
        call = flight.call
        at = call.t_last_chunk
        if at is None:
            at = call.t_headers if call.t_headers is not None else flight.t_response
        litellm_calls.cut(flight, "abandoned", at)
    except Exception as exc:  # a finaliser must never raise
        log_once("litellm.stream_collected", exc)


def _text_so_far(stream: Any) -> str | None:
    """A Responses stream's output so far, as LiteLLM kept it (None for a chat stream)."""
    content = getattr(stream, "_generated_content", None)
    if not isinstance(content, str):
        return None
    args = getattr(stream, "_generated_tool_arguments", None)
    return content + args if isinstance(args, str) else content


def broke(stream: Any, flight: Any, exc: BaseException) -> None:
    """LiteLLM's iteration raised (the provider failed, or the task was cancelled)."""
    litellm_calls.cut(flight, "error", _perf(), exc, _text_so_far(stream))


def closed(stream: Any, at: float) -> None:
    """The caller closed ``stream`` (``close``, ``aclose``, the end of a ``with``)."""
    flight = stream.__dict__.get(FLIGHT)
    if flight is None or flight.reading or flight.t_stream_end is not None:
        return  # LiteLLM's own close inside its iteration, or after the end
    litellm_calls.cut(flight, "abandoned", at, None, _text_so_far(stream))


# --------------------------------------------------------------------------- the layers


def init_layer(watch: Callable[[Any], None]) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        guarded("litellm.stream_init", watch, instance)
        return result

    return wrapper


def next_layer(end: Callable[[Any, float], None]) -> Callable[..., Any]:
    """``__next__``: each chunk observed; the end, an error or an interruption seen."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        flight = instance.__dict__.get(FLIGHT)
        if flight is None:
            return wrapped(*args, **kwargs)
        flight.reading = True
        try:
            item = wrapped(*args, **kwargs)
        except StopIteration:
            flight.reading = False
            guarded("litellm.stream_end", end, instance, _perf())
            raise
        except BaseException as exc:
            flight.reading = False
            guarded("litellm.stream_cut", broke, instance, flight, exc)
            raise
        flight.reading = False
        try:
            flight.observe(flight.call, item)
        except Exception as exc:
            log_once("litellm.observe", exc)
        return item

    return wrapper


def anext_layer(end: Callable[[Any, float], None]) -> Callable[..., Any]:
    """``__anext__``: the async twin of :func:`next_layer`."""

    async def anext(coro: Any, instance: Any, flight: Any) -> Any:
        flight.reading = True
        try:
            item = await coro
        except StopAsyncIteration:
            flight.reading = False
            guarded("litellm.stream_end", end, instance, _perf())
            raise
        except BaseException as exc:
            flight.reading = False
            guarded("litellm.stream_cut", broke, instance, flight, exc)
            raise
        flight.reading = False
        try:
            flight.observe(flight.call, item)
        except Exception as exc:
            log_once("litellm.observe", exc)
        return item

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        flight = instance.__dict__.get(FLIGHT)
        if flight is None:
            return wrapped(*args, **kwargs)
        return anext(wrapped(*args, **kwargs), instance, flight)

    return wrapper


def close_layer() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        t = _perf()
        try:
            return wrapped(*args, **kwargs)
        finally:
            guarded("litellm.stream_close", closed, instance, t)

    return wrapper


def aclose_layer() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        async def aclose() -> Any:
            t = _perf()
            try:
                return await wrapped(*args, **kwargs)
            finally:
                guarded("litellm.stream_close", closed, instance, t)

        return aclose()

    return wrapper


__all__ = [
    "FLIGHT",
    "INNER",
    "aclose_layer",
    "anext_layer",
    "broke",
    "close_layer",
    "closed",
    "init_layer",
    "inner_stream",
    "link_inner",
    "next_layer",
    "observe_chat",
    "observe_responses",
    "watch_chat",
    "watch_responses",
]

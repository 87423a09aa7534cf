"""``.otm`` on what LiteLLM returns, and the thin layer on LiteLLM's classes that serves it.

LiteLLM logs a call after it returned (a stream: after it ended), so a record
may not exist yet when the caller first reads ``.otm``. These descriptors ask
:mod:`.litellm_calls` on that first read, which finishes the call then if
LiteLLM has not (one record either way); the record is then kept on the object.

* ``ModelResponse``, ``TextCompletionResponse``, ``EmbeddingResponse``,
  ``ResponsesAPIResponse``: a lazy :class:`~otm.capture.attach.LazyRecordAttribute`
  (the record stays out of ``model_dump()``, ``vars()``, ``==``); ``.otm`` is
  missing (AttributeError) on a response otm did not record (a cache hit, a
  call made while otm was not instrumented). ``text_completion`` converts
  LiteLLM's chat response into the ``TextCompletionResponse`` the caller gets:
  that conversion hands it the record too.
* LiteLLM's streams (``CustomStreamWrapper``, the Router's and
  ``text_completion``'s wrappers around it, the Responses API's streaming
  iterators): ``.otm`` is None until the stream has ended (read to its end,
  or cut short: :mod:`.litellm_streams`), then the record. The normal end is
  seen where LiteLLM assembles the stream's response for its callback (once
  per stream).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otm.capture import litellm_streams as streams
from otm.capture.attach import LazyRecordAttribute, ResolvedAttribute, give_records
from otm.capture.call import _perf
from otm.capture.litellm_calls import (
    converted,
    record_for_response,
    record_for_stream,
    stream_ended,
)
from otm.capture.patching import Target, is_inert
from otm.capture.sites import Site, targets_of
from otm.capture.wrappers import guarded


def _inner_record(wrapper: Any) -> Any:
    """A ``TextCompletionStreamWrapper``'s record is its inner LiteLLM stream's."""
    inner = streams.inner_stream(wrapper)
    return None if inner is None else record_for_stream(inner)


def install() -> None:
    """Give LiteLLM's response and stream classes their ``.otm`` (once)."""
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper
    from litellm.types.utils import EmbeddingResponse, ModelResponse, TextCompletionResponse

    for cls in (ModelResponse, TextCompletionResponse, EmbeddingResponse):
        give_records(cls, LazyRecordAttribute(record_for_response))
    give_records(CustomStreamWrapper, ResolvedAttribute(record_for_stream))
    try:
        from litellm.text_completions.streaming_iterator import TextCompletionStreamWrapper
    except ImportError:  # pragma: no cover - other LiteLLM layouts
        pass
    else:
        give_records(TextCompletionStreamWrapper, ResolvedAttribute(_inner_record))
    try:
        from litellm.responses.streaming_iterator import BaseResponsesAPIStreamingIterator
        from litellm.types.llms.openai import ResponsesAPIResponse
    except ImportError:  # pragma: no cover - other LiteLLM layouts
        return
    give_records(ResponsesAPIResponse, LazyRecordAttribute(record_for_response))
    give_records(BaseResponsesAPIStreamingIterator, ResolvedAttribute(record_for_stream))


# LiteLLM assembles a stream's whole response (for its own callback) once the
# stream has been read to its end: otm's end of the stream, and the response
# a first read of .otm finishes the call from (no second assembly, which costs
# LiteLLM milliseconds per stream). Where LiteLLM has no such methods, the end
# of the iteration itself (StopIteration, seen by the per-chunk layer) marks it.
_ASSEMBLE = ("_build_complete_streaming_response", "_async_build_complete_streaming_response")


def _sync_assembly() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        t = _perf()
        result = wrapped(*args, **kwargs)
        if not is_inert(wrapper):
            guarded("litellm.stream_end", stream_ended, instance, t, result)
        return result

    return wrapper


def _async_assembly() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        async def assemble() -> Any:
            t = _perf()
            result = await wrapped(*args, **kwargs)
            if not is_inert(wrapper):
                guarded("litellm.stream_end", stream_ended, instance, t, result)
            return result

        return assemble()

    return wrapper


def _responses_end() -> Callable[..., Any]:
    """A Responses stream's last event was read: LiteLLM logs its completed response."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if not is_inert(wrapper):
            done = getattr(instance, "completed_response", None)
            guarded("litellm.stream_end", stream_ended, instance, _perf(), getattr(done, "response", None))
        return wrapped(*args, **kwargs)

    return wrapper


def _converted() -> Callable[..., Any]:
    """``text_completion``'s conversion of LiteLLM's chat response: the result carries the record."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        if not is_inert(wrapper):
            chat = kwargs.get("response", args[0] if args else None)
            guarded("litellm.text_completion", converted, chat, result)
        return result

    return wrapper


def _stream_targets(cls: type) -> list[Target]:
    """LiteLLM's chat stream: joining its call, each chunk, the close, and its end
    (where LiteLLM assembles its response; else the end of its iteration)."""
    out: list[Target] = [
        (cls, "__init__", streams.init_layer(streams.watch_chat)),
        (cls, "__next__", streams.next_layer(stream_ended)),
        (cls, "__anext__", streams.anext_layer(stream_ended)),
        (cls, "close", streams.close_layer()),
        (cls, "aclose", streams.aclose_layer()),
    ]
    if _ASSEMBLE[0] in cls.__dict__:
        out.append((cls, _ASSEMBLE[0], _sync_assembly()))
    if _ASSEMBLE[1] in cls.__dict__:
        out.append((cls, _ASSEMBLE[1], _async_assembly()))
    return out


def _text_stream_targets(cls: type) -> list[Target]:
    return [(cls, "__init__", streams.init_layer(streams.link_inner))]


def _conversion_targets(cls: type) -> list[Target]:
    return [(cls, "convert_chat_to_text_completion", _converted())]


def _responses_base_targets(cls: type) -> list[Target]:
    return [
        (cls, "__init__", streams.init_layer(streams.watch_responses)),
        (cls, "_log_completed_response", _responses_end()),
    ]


def _responses_sync_targets(cls: type) -> list[Target]:
    return [(cls, "__next__", streams.next_layer(stream_ended)), (cls, "close", streams.close_layer())]


def _responses_async_targets(cls: type) -> list[Target]:
    return [(cls, "__anext__", streams.anext_layer(stream_ended)), (cls, "aclose", streams.aclose_layer())]


_RESPONSES = "litellm.responses.streaming_iterator"


def sites() -> list[Site]:
    """LiteLLM's stream classes and its text-completion conversion (loaded with ``import litellm``)."""
    return [
        Site("litellm.litellm_core_utils.streaming_handler", "CustomStreamWrapper", _stream_targets),
        Site(
            "litellm.text_completions.streaming_iterator",
            "TextCompletionStreamWrapper",
            _text_stream_targets,
            optional=True,
        ),
        Site(
            "litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response",
            "LiteLLMResponseObjectHandler",
            _conversion_targets,
            optional=True,
        ),
        Site(_RESPONSES, "BaseResponsesAPIStreamingIterator", _responses_base_targets, optional=True),
        Site(_RESPONSES, "SyncResponsesAPIStreamingIterator", _responses_sync_targets, optional=True),
        Site(_RESPONSES, "ResponsesAPIStreamingIterator", _responses_async_targets, optional=True),
    ]


def targets() -> list[Target]:
    """The layer's (class, method, wrapper), importing what is not loaded yet."""
    return targets_of(sites())


__all__ = ["install", "sites", "targets"]

"""``.otm`` on what LiteLLM returns: its responses, and its streams once they have ended.

LiteLLM logs a call after it returned (a stream: after it ended), so a record
may not exist yet when the caller first reads ``.otm``. These descriptors ask
:mod:`.litellm_calls` on that first read, which finishes the call then if
LiteLLM has not (one record either way); the record is then kept on the object.

* ``ModelResponse``, ``TextCompletionResponse``, ``EmbeddingResponse``: a
  lazy :class:`~otm.capture.records.LazyRecordAttribute` (the record stays out
  of ``model_dump()``, ``vars()``, ``==``); ``.otm`` is missing (AttributeError)
  on a response otm did not record (a cache hit, a call made while otm was not
  instrumented).
* ``CustomStreamWrapper`` (and ``TextCompletionStreamWrapper`` around it):
  ``.otm`` is None until the stream has been read to its end, then the record.
  The end is seen where LiteLLM assembles the stream's response for its
  callback (once per stream, nothing per chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otm.capture.attach import LazyRecordAttribute, ResolvedAttribute, give_records
from otm.capture.call import _perf
from otm.capture.litellm_calls import record_for_response, record_for_stream, stream_ended
from otm.capture.patching import Target, is_inert
from otm.capture.sites import Site, targets_of
from otm.capture.wrappers import guarded


def _inner_record(wrapper: Any) -> Any:
    """A ``TextCompletionStreamWrapper``'s record is its inner LiteLLM stream's."""
    return record_for_stream(getattr(wrapper, "completion_stream", None))


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
        return
    give_records(TextCompletionStreamWrapper, ResolvedAttribute(_inner_record))


# LiteLLM assembles a stream's whole response (for its own callback) once the
# stream has been read to its end: otm's end of the stream, and the response
# a first read of .otm finishes the call from (no second assembly, which costs
# LiteLLM milliseconds per stream). Where LiteLLM has no such methods, the end
# of the iteration itself (StopIteration) marks the end instead.
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


def _sync_end() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            return wrapped(*args, **kwargs)
        except StopIteration:
            if not is_inert(wrapper):
                guarded("litellm.stream_end", stream_ended, instance, _perf())
            raise

    return wrapper


def _async_end() -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        async def anext() -> Any:
            try:
                return await wrapped(*args, **kwargs)
            except StopAsyncIteration:
                if not is_inert(wrapper):
                    guarded("litellm.stream_end", stream_ended, instance, _perf())
                raise

        return anext()

    return wrapper


def _stream_targets(cls: type) -> list[Target]:
    """Where LiteLLM's streams end (sync and async): its assembly, else its iteration."""
    sync, async_ = (name in cls.__dict__ for name in _ASSEMBLE)
    return [
        (cls, _ASSEMBLE[0], _sync_assembly()) if sync else (cls, "__next__", _sync_end()),
        (cls, _ASSEMBLE[1], _async_assembly()) if async_ else (cls, "__anext__", _async_end()),
    ]


def sites() -> list[Site]:
    """LiteLLM's stream class (loaded with ``import litellm``)."""
    return [Site("litellm.litellm_core_utils.streaming_handler", "CustomStreamWrapper", _stream_targets)]


def targets() -> list[Target]:
    """The stream-end layer's (class, method, wrapper), importing what is not loaded yet."""
    return targets_of(sites())


__all__ = ["install", "sites", "targets"]

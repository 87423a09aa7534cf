"""Capture for LiteLLM, through its own callback interface (``CustomLogger``).

LiteLLM reaches most providers with its own HTTP code, so there is no SDK
method to patch; instead otm registers one ``CustomLogger`` in
``litellm.callbacks`` (``otm.instrument()`` when litellm is installed, or
``otm.instrument(["litellm"])``), and ``otm.uninstrument()`` removes it from
every list LiteLLM copied it into. What LiteLLM tells the logger:

* ``log_pre_api_call`` / ``log_post_api_call``, in the caller's thread or task,
  right around the provider request: the request starts (otm's clock starts
  here, after LiteLLM's own pre-processing) and, for a stream, its headers
  arrived. Between the two the context is *claimed* (``otm.capture.handoff``)
  so that the official SDK wrappers stand aside when LiteLLM sends the request
  through an SDK client otm patches (Azure, embeddings): one user call, one
  record, made here.
* ``log_success_event`` / ``async_log_success_event``: start, completion start
  (the first chunk of a stream), end, usage, the served model, the provider
  (``custom_llm_provider``), the response id and the response headers (the
  request id). For a stream this comes once, when the stream has ended.
* ``log_failure_event`` / ``async_log_failure_event``: the exception.

LiteLLM runs the sync success hooks on a worker thread and the async ones in a
task, a few milliseconds after the call returned; the record keeps the scope
(tracked run, experiment) of the context that made the request.

Token counts: LiteLLM fills usage itself when a stream carried none (it counts
the text); an OpenAI-style stream carries usage only when it was asked for
(``stream_options={"include_usage": True}``), so such counts are flagged as
estimated. Cache hits made no provider request and make no record.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from otm._log import log_once
from otm.capture import handoff
from otm.capture.call import _CANCELLED, Call, _perf
from otm.capture.hosts import Host, host_from_name
from otm.capture.wrappers import guarded

PROVIDER = "litellm"

# LiteLLM call types -> otm operations; other call types (images, audio,
# rerank, ...) are not text generation and make no record.
_OPERATIONS = {
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "completion",
    "atext_completion": "completion",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "responses": "responses",
    "aresponses": "responses",
}

# LiteLLM provider names that otm.data does not know by that spelling.
_PROVIDER_NAMES = {
    "azure": "azure-openai",
    "azure_ai": "azure-openai",
    "azure_text": "azure-openai",
    "text-completion-openai": "openai",
    "vertex_ai": "google",
    "vertex_ai_beta": "google",
    "gemini": "google",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "cohere_chat": "cohere",
    "codestral": "mistral",
    "text-completion-codestral": "mistral",
}

# OpenAI-compatible servers one runs oneself: named by where they are (a host
# on this machine or a private network is "local"; a known API host is that
# provider; anything else is "openai-compatible").
_SELF_HOSTED = frozenset(
    {
        "hosted_vllm",
        "vllm",
        "openai_like",
        "custom_openai",
        "lm_studio",
        "llamafile",
        "xinference",
        "ollama",
        "ollama_chat",
        "oobabooga",
        "llamacpp",
    }
)

# Providers whose streams report usage only when asked to (OpenAI's wire format).
_USAGE_ON_REQUEST = frozenset(
    {"openai", "azure", "azure_ai", "text-completion-openai", "custom_openai", "openai_like"}
    | _SELF_HOSTED
) - {"ollama", "ollama_chat"}

_REQUEST_ID_HEADERS = (
    "llm_provider-x-request-id",
    "llm_provider-request-id",
    "x-request-id",
    "request-id",
)


def provider_for(litellm_provider: str | None, api_base: str | None) -> str:
    """otm's provider name for a LiteLLM provider name and the API base it was sent to.

    The host decides first where it is telling (this machine, a private
    network, a known provider's API host); otherwise LiteLLM's name, spelled
    the way otm.data knows it. See docs/integrations.md for the table.
    """
    name = (litellm_provider or "").strip().lower()
    host = _host_of(api_base)
    if host:
        found = host_from_name(host, vendor="", unknown="").provider
        if found:
            return found
    if name in _SELF_HOSTED:
        return "openai-compatible" if host else "local"
    mapped = _PROVIDER_NAMES.get(name)
    if mapped:
        return mapped
    if not name:
        return PROVIDER
    try:
        from otm.data import find_provider

        spec = find_provider(name)
        if spec is not None:
            return spec.id
    except Exception as exc:
        log_once("litellm.provider_for", exc)
    return name


def _host_of(api_base: Any) -> str | None:
    if not isinstance(api_base, str) or not api_base.strip():
        return None
    from urllib.parse import urlsplit

    try:
        url = api_base.strip()
        return urlsplit(url if "://" in url else f"//{url}").hostname
    except ValueError:
        return None


# --------------------------------------------------------------------------- the calls in flight

_MAX_PENDING = 10_000
"""Calls whose end LiteLLM never reports (an abandoned stream) are forgotten past this many."""

_pending: OrderedDict[str, Call] = OrderedDict()
_pending_lock = threading.Lock()
_anonymous = itertools.count()


def _call_id(kwargs: Mapping[str, Any]) -> str:
    cid = kwargs.get("litellm_call_id")
    return cid if isinstance(cid, str) and cid else f"otm-{next(_anonymous)}"


def _operation(kwargs: Mapping[str, Any]) -> str | None:
    return _OPERATIONS.get(str(kwargs.get("call_type") or "completion"))


def _new_call(kwargs: Mapping[str, Any], operation: str) -> Call:
    params = kwargs.get("litellm_params") or {}
    api_base = params.get("api_base") if isinstance(params, Mapping) else None
    model = kwargs.get("model")
    call = Call(
        provider_for(kwargs.get("custom_llm_provider"), api_base),
        operation,
        model if isinstance(model, str) else None,
        None,
        streamed=kwargs.get("stream") is True,
    )
    call.extra = {"litellm_provider": kwargs.get("custom_llm_provider")}
    return call


def _begin(kwargs: Mapping[str, Any]) -> None:
    """The provider request is about to be sent (caller's thread or task)."""
    operation = _operation(kwargs)
    if operation is None:
        return
    cid = _call_id(kwargs)
    handoff.claim(cid)
    with _pending_lock:
        if cid in _pending:  # a retry of the same call: the record covers all attempts
            return
        _pending[cid] = _new_call(kwargs, operation)
        while len(_pending) > _MAX_PENDING:
            _pending.popitem(last=False)


def _take(kwargs: Mapping[str, Any]) -> Call | None:
    """The call this event ends (made now if no pre-call hook was seen), removed from the pending."""
    cid = kwargs.get("litellm_call_id")
    if isinstance(cid, str):
        handoff.release(cid)
        with _pending_lock:
            call = _pending.pop(cid, None)
        if call is not None:
            return call
    operation = _operation(kwargs)
    if operation is None:
        return None
    call = _new_call(kwargs, operation)
    start = _wall_of(kwargs.get("api_call_start_time")) or _wall_of(kwargs.get("start_time"))
    if start is not None:  # no pre-call hook seen: place the start on otm's clocks
        call.t0 -= call.start_wall - start
        call.start_wall = start
    return call


def _wall_of(value: Any) -> float | None:
    """A LiteLLM time (a naive local ``datetime`` or unix seconds) as unix seconds."""
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _perf_of(call: Call, value: Any) -> float | None:
    """A LiteLLM wall-clock time on the call's monotonic clock (never before its start)."""
    wall = _wall_of(value)
    if wall is None:
        return None
    return call.t0 + max(0.0, wall - call.start_wall)


# --------------------------------------------------------------------------- reading the result


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _read_usage(call: Call, usage: Any) -> None:
    """LiteLLM's OpenAI-shaped usage; ``prompt_tokens`` already includes cache reads and writes."""
    if usage is None:
        return
    call.input_tokens = _int(_get(usage, "prompt_tokens") or _get(usage, "input_tokens"))
    out = _get(usage, "completion_tokens")
    if out is None:
        out = _get(usage, "output_tokens")
    call.output_tokens = _int(out) if call.operation != "embeddings" else 0
    details = _get(usage, "prompt_tokens_details")
    cached = _int(_get(details, "cached_tokens")) if details is not None else None
    if cached is None:
        cached = _int(_get(usage, "cache_read_input_tokens"))
    call.cached_input_tokens = cached
    details = _get(usage, "completion_tokens_details")
    if details is not None:
        call.reasoning_tokens = _int(_get(details, "reasoning_tokens"))


def _output_text(call: Call, response: Any) -> None:
    n = 0
    visible_reasoning = False
    texts: list[str] | None = [] if call.config.capture_prompts else None
    for choice in _get(response, "choices") or ():
        message = _get(choice, "message")
        text = _get(message, "content") if message is not None else _get(choice, "text")
        if isinstance(text, str):
            n += len(text)
            if texts is not None:
                texts.append(text)
        if message is None:
            continue
        reasoning = _get(message, "reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            n += len(reasoning)
            visible_reasoning = True
        for tc in _get(message, "tool_calls") or ():
            args = _get(_get(tc, "function"), "arguments")
            if isinstance(args, str):
                n += len(args)
    call.output_text_length = n
    # A stream that carried the reasoning as deltas showed it between the
    # first and the last chunk (unlike hidden reasoning, before the first).
    call.reasoning_streamed = call.streamed and visible_reasoning
    if texts:
        call.completion = "".join(texts)


def _input_text(call: Call, kwargs: Mapping[str, Any]) -> None:
    parts: list[str] = []
    messages = kwargs.get("messages")
    if isinstance(messages, (list, tuple)):
        for m in messages:
            content = _get(m, "content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, (list, tuple)):
                for part in content:
                    text = part if isinstance(part, str) else _get(part, "text")
                    if isinstance(text, str):
                        parts.append(text)
    elif isinstance(kwargs.get("input"), str):
        parts.append(kwargs["input"])
    if parts:
        call.input_text_length = sum(len(p) for p in parts)
        if call.config.capture_prompts:
            call.prompt = "\n".join(parts)


def _request_id(response: Any, kwargs: Mapping[str, Any]) -> str | None:
    hidden = getattr(response, "_hidden_params", None)
    headers = _get(hidden, "additional_headers") if hidden is not None else None
    if not isinstance(headers, Mapping):
        headers = kwargs.get("response_headers")
    if isinstance(headers, Mapping):
        for name in _REQUEST_ID_HEADERS:
            value = headers.get(name)
            if isinstance(value, str) and value:
                return value
    return None


def _usage_was_requested(kwargs: Mapping[str, Any]) -> bool:
    for source in (kwargs.get("optional_params"), kwargs):
        if isinstance(source, Mapping):
            so = source.get("stream_options")
            if isinstance(so, Mapping) and so.get("include_usage"):
                return True
    return False


def _success(kwargs: Mapping[str, Any], response: Any, start: Any, end: Any) -> None:
    if kwargs.get("cache_hit") is True:
        cid = kwargs.get("litellm_call_id")
        if isinstance(cid, str):  # answered from LiteLLM's cache: no provider request
            handoff.release(cid)
            with _pending_lock:
                _pending.pop(cid, None)
        return
    call = _take(kwargs)
    if call is None or call.status != "pending":
        return
    streamed = kwargs.get("stream") is True
    call.streamed = streamed
    call.chunks_counted = False  # LiteLLM reports the first chunk and the end, not each chunk
    final = kwargs.get("complete_streaming_response") if streamed else None
    result = final if final is not None else response
    _read_usage(call, _get(result, "usage"))
    if (
        streamed
        and (call.extra or {}).get("litellm_provider") in _USAGE_ON_REQUEST
        and not _usage_was_requested(kwargs)
    ):
        # LiteLLM counted this stream's tokens itself (no usage chunk was asked for).
        call.input_estimated = call.output_estimated = True
    model = _get(result, "model")
    call.served_model = model if isinstance(model, str) and model else None
    rid = _request_id(result, kwargs) or _request_id(response, kwargs)
    if rid:
        call.request_id = rid
    response_id = _get(result, "id")
    if isinstance(response_id, str) and response_id:
        call.response_id = response_id
    call.extra = None
    _output_text(call, result)
    _input_text(call, kwargs)
    t_end = _perf_of(call, end) or _perf()
    if streamed:
        t_first = _perf_of(call, kwargs.get("completion_start_time"))
        call.t_first_chunk = call.t_first_token = t_first
        call.t_last = call.t_last_chunk = t_end
    call.finish("ok", at=t_end)


def _failure(kwargs: Mapping[str, Any], start: Any, end: Any) -> None:
    call = _take(kwargs)
    if call is None or call.status != "pending":
        return
    exc = kwargs.get("exception")
    t_end = _perf_of(call, end) or _perf()
    if isinstance(exc, BaseException):
        code = getattr(exc, "status_code", None)
        if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
            call.http_status = code
        call.error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
        status = "cancelled" if type(exc).__name__ in _CANCELLED else "error"
    else:
        status = "error"
    slo = kwargs.get("standard_logging_object")
    info = slo.get("error_information") if isinstance(slo, Mapping) else None
    if isinstance(info, Mapping) and isinstance(info.get("error_provider_request_id"), str):
        call.request_id = info["error_provider_request_id"]
    call.extra = None
    call.finish(status, at=t_end)


class OtmLogger(CustomLogger):  # type: ignore[misc]
    """otm's LiteLLM logger: one record per LiteLLM call. Never raises into LiteLLM."""

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        guarded("litellm.pre_api_call", _begin, kwargs)

    def log_post_api_call(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        cid = kwargs.get("litellm_call_id") if isinstance(kwargs, Mapping) else None
        if isinstance(cid, str):
            handoff.release(cid)  # the SDK call (if any) has returned

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        guarded("litellm.success", _success, kwargs, response_obj, start_time, end_time)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        guarded("litellm.failure", _failure, kwargs, start_time, end_time)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        guarded("litellm.success", _success, kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        guarded("litellm.failure", _failure, kwargs, start_time, end_time)


# --------------------------------------------------------------------------- install

_logger: OtmLogger | None = None
_install_lock = threading.Lock()


def install() -> int:
    """Register otm's logger in ``litellm.callbacks`` (once); returns 1 if it was added."""
    import litellm

    global _logger
    with _install_lock:
        if _logger is not None and _logger in litellm.callbacks:
            return 0
        _logger = OtmLogger()
        manager = getattr(litellm, "logging_callback_manager", None)
        if manager is not None and hasattr(manager, "add_litellm_callback"):
            manager.add_litellm_callback(_logger)
        else:  # older LiteLLM: the documented list
            litellm.callbacks.append(_logger)
        return 1


def uninstall() -> None:
    """Remove otm's logger from every callback list LiteLLM copied it into."""
    import litellm

    global _logger
    with _install_lock:
        logger, _logger = _logger, None
        if logger is None:
            return
        lists = (
            "callbacks",
            "input_callback",
            "success_callback",
            "failure_callback",
            "_async_input_callback",
            "_async_success_callback",
            "_async_failure_callback",
        )
        for name in lists:
            callbacks = getattr(litellm, name, None)
            if isinstance(callbacks, list):
                callbacks[:] = [cb for cb in callbacks if cb is not logger]
    with _pending_lock:
        for cid in _pending:
            handoff.release(cid)
        _pending.clear()


def owns(client: Any) -> bool:
    """LiteLLM has no client object to ``otm.wrap()``."""
    return False


def detect_host(client: Any) -> Host:
    """Per call instead (:func:`provider_for`); there is no client to look at."""
    return Host(PROVIDER, "api")


def model_bases() -> tuple[type, ...]:
    """LiteLLM's responses carry no ``.otm`` (records arrive through its callbacks)."""
    return ()


def settings_keys(client: Any) -> list[object]:
    return []


def sites() -> list[Any]:
    """LiteLLM is captured through its callbacks, not by patching classes."""
    return []


def targets() -> list[Any]:
    """LiteLLM is captured through its callbacks, not by patching methods."""
    return []


__all__ = [
    "OtmLogger",
    "detect_host",
    "model_bases",
    "install",
    "owns",
    "provider_for",
    "settings_keys",
    "sites",
    "targets",
    "uninstall",
]

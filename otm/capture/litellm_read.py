"""What LiteLLM's call details and results say, read into a :class:`~otm.capture.call.Call`.

Pure reading, shared by the two ways a LiteLLM call is finished
(:mod:`otm.capture.litellm_logger`): LiteLLM's success and failure callbacks,
and a first read of ``.otm`` on what LiteLLM returned. Both read the same
sources (the call's details dict, LiteLLM's usage, LiteLLM's first-chunk
time) so the record is the same whichever comes first.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from otm._log import log_once
from otm.capture.call import _CANCELLED, Call
from otm.capture.hosts import host_from_name

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


# --------------------------------------------------------------------------- the call


def operation(kwargs: Mapping[str, Any]) -> str | None:
    """otm's operation for a LiteLLM call type, or None for what otm does not record."""
    return _OPERATIONS.get(str(kwargs.get("call_type") or "completion"))


def new_call(kwargs: Mapping[str, Any], operation: str) -> Call:
    """A Call for a LiteLLM call about to be sent (its clock starts now)."""
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
    call.chunks_counted = False  # until otm's layer on LiteLLM's stream sees each chunk
    return call


def wall_of(value: Any) -> float | None:
    """A LiteLLM time (a naive local ``datetime`` or unix seconds) as unix seconds."""
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def perf_of(call: Call, value: Any) -> float | None:
    """A LiteLLM wall-clock time on the call's monotonic clock (never before its start)."""
    wall = wall_of(value)
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


def read_usage(call: Call, usage: Any) -> None:
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


def _responses_output(response: Any) -> list[str]:
    """The texts of a Responses API result: messages, reasoning summaries, tool arguments."""
    texts: list[str] = []
    for item in _get(response, "output") or ():
        kind = _get(item, "type")
        if kind == "function_call":
            parts: Any = [item]
            field = "arguments"
        else:
            parts = _get(item, "content" if kind == "message" else "summary") or ()
            field = "text"
        for part in parts:
            text = _get(part, field)
            if isinstance(text, str) and text:
                texts.append(text)
    return texts


def _output_text(call: Call, response: Any) -> None:
    if call.operation == "responses":
        found = _responses_output(response)
        call.output_text_length = sum(map(len, found))
        if found and call.config.capture_prompts:
            call.completion = "".join(found)
        return
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


def _request_id(holder: Any, kwargs: Mapping[str, Any]) -> str | None:
    hidden = getattr(holder, "_hidden_params", None)
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


def fill_success(
    call: Call, kwargs: Mapping[str, Any], result: Any, *others: Any
) -> None:
    """What a successful call's details and result say (tokens, model, ids, text sizes).

    ``result`` is the whole response (for a stream, the one LiteLLM assembles
    from its chunks); ``others`` are further objects whose response headers may
    name the request id (what the user holds, the stream wrapper).
    """
    streamed = kwargs.get("stream") is True
    call.streamed = streamed
    read_usage(call, _get(result, "usage"))
    if (
        streamed
        and call.operation != "responses"  # (a Responses API stream always ends with its usage)
        and (call.extra or {}).get("litellm_provider") in _USAGE_ON_REQUEST
        and not _usage_was_requested(kwargs)
    ):
        # LiteLLM counted this stream's tokens itself (no usage chunk was asked for).
        call.input_estimated = call.output_estimated = True
    model = _get(result, "model")
    call.served_model = model if isinstance(model, str) and model else None
    for holder in (result, *others):
        rid = _request_id(holder, kwargs)
        if rid:
            call.request_id = rid
            break
    response_id = _get(result, "id")
    if isinstance(response_id, str) and response_id:
        call.response_id = response_id
    call.extra = None
    _output_text(call, result)
    _input_text(call, kwargs)


def first_chunk(call: Call, kwargs: Mapping[str, Any]) -> None:
    """A stream's first chunk: LiteLLM's completion start time (the one LiteLLM's other
    loggers report). Its first token too, unless otm saw the chunks and which carried output."""
    t_first = perf_of(call, kwargs.get("completion_start_time"))
    if t_first is None:
        return
    call.t_first_chunk = t_first
    if not (call.chunks_counted and call.content_chunks):
        call.t_first_token = t_first


def request_id_of(holder: Any) -> str | None:
    """The provider's request id among the response headers LiteLLM kept on ``holder``."""
    return _request_id(holder, {})


def input_text(call: Call, kwargs: Mapping[str, Any]) -> None:
    """The request's text size (and the prompt, when it is captured)."""
    _input_text(call, kwargs)


def fill_partial(call: Call, chunks: Any, text: str | None = None) -> None:
    """A stream cut short, from what it carried so far.

    ``chunks``: the chunks LiteLLM kept of a chat stream (with the usage they
    carried, e.g. the input tokens of anthropic's ``message_start``); else
    ``text``, the output a Responses stream generated so far, or nothing (the
    text length counted per event). The output has no count from the provider
    (it comes at the end): it is counted from the text and flagged estimated.
    """
    call.streamed = True
    parts: list[str] = []
    for chunk in chunks or ():
        usage = _get(chunk, "usage")
        if usage is not None and _int(_get(usage, "prompt_tokens")):
            read_usage(call, usage)
        model = _get(chunk, "model")
        if isinstance(model, str) and model:
            call.served_model = model
        rid = _get(chunk, "id")
        if isinstance(rid, str) and rid:
            call.response_id = rid
        for choice in (_get(chunk, "choices") or ())[:1]:
            delta = _get(choice, "delta")
            if delta is None:
                continue
            for name in ("reasoning_content", "content"):
                piece = _get(delta, name)
                if isinstance(piece, str) and piece:
                    parts.append(piece)
            for tc in _get(delta, "tool_calls") or ():
                args = _get(_get(tc, "function"), "arguments")
                if isinstance(args, str) and args:
                    parts.append(args)
    if chunks is not None:
        text = "".join(parts)
    if text is not None:
        call.output_text_length = len(text)
        call.text_parts = [text] if text else None
        if text and call.config.capture_prompts:
            call.completion = text
    call.output_tokens = None  # counted from the text when the record is made
    call.output_estimated = True
    call.input_estimated = call.input_tokens is None
    call.extra = None


def fill_exception(call: Call, exc: BaseException) -> str:
    """What the exception that ended a stream says; returns the status (``error`` or
    ``cancelled``). A wrapper LiteLLM raises for its Router's fallback names the provider's."""
    inner = getattr(exc, "original_exception", None)
    cause = inner if isinstance(inner, BaseException) else exc
    call.error_type = f"{type(cause).__module__}.{type(cause).__qualname__}"
    code = getattr(cause, "status_code", None)
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        call.http_status = code
    return "cancelled" if type(exc).__name__ in _CANCELLED else "error"


def fill_failure(call: Call, kwargs: Mapping[str, Any]) -> str:
    """What a failed call's details say; returns the status (``error`` or ``cancelled``)."""
    exc = kwargs.get("exception")
    status = "error"
    if isinstance(exc, BaseException):
        code = getattr(exc, "status_code", None)
        if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
            call.http_status = code
        call.error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
        if type(exc).__name__ in _CANCELLED:
            status = "cancelled"
    slo = kwargs.get("standard_logging_object")
    info = slo.get("error_information") if isinstance(slo, Mapping) else None
    if isinstance(info, Mapping) and isinstance(info.get("error_provider_request_id"), str):
        call.request_id = info["error_provider_request_id"]
    call.extra = None
    return status


def response_end(kwargs: Mapping[str, Any], response: Any) -> float | None:
    """When LiteLLM had a non-streamed response (unix seconds), from its own timing of the
    call (``_response_ms`` from the call's start); for the rare provider route that sends
    no post-API-call hook."""
    hidden = getattr(response, "_hidden_params", None)
    ms = _get(hidden, "_response_ms") if hidden is not None else None
    start = wall_of(kwargs.get("start_time"))
    if not isinstance(ms, (int, float)) or isinstance(ms, bool) or start is None:
        return None
    return start + max(0.0, float(ms)) / 1000.0


__all__ = [
    "PROVIDER",
    "fill_exception",
    "fill_failure",
    "fill_partial",
    "fill_success",
    "first_chunk",
    "input_text",
    "new_call",
    "operation",
    "perf_of",
    "provider_for",
    "read_usage",
    "request_id_of",
    "response_end",
    "wall_of",
]

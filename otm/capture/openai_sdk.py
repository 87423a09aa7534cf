"""Capture for the official ``openai`` client (and every OpenAI-compatible endpoint).

Patched at class level (so clients created before ``instrument()`` are
covered), each class named by the package that re-exports it and patched
when the SDK loads it (:mod:`otm.capture.sites`; openai loads its resource
modules when a client first uses them):

=============================================  ===============================
``chat.completions`` (also ``beta.chat``)      ``create``, ``parse``, ``stream``
``responses``                                  ``create``, ``parse``, ``stream``,
                                               ``retrieve`` (streamed resume only)
``embeddings``                                 ``create``
``completions`` (legacy text completions)      ``create``
=============================================  ===============================

and the async twins. What comes back decides what is recorded:

* a model (``ChatCompletion``, ``Response``, ...): usage, served model and
  request id are read and ``.otm`` is attached at once;
* a ``Stream``/``AsyncStream``: its class is swapped (streams.instrument_stream)
  so each chunk is timed; ``.otm`` lands on the stream when it ends;
* a raw response (``with_raw_response`` → ``LegacyAPIResponse``,
  ``with_streaming_response`` → ``APIResponse``): status and headers are
  recorded and the instance's ``parse()`` is wrapped so the model or stream
  it returns carries ``.otm`` too;
* the ``.stream()`` helpers' managers are class-swapped so the helper object
  (``ChatCompletionStream``/``ResponseStream``) is linked, through a
  contextvar, to the raw stream its ``__enter__`` creates.

Chat streams without usage (no ``stream_options.include_usage``) are counted
from their text and flagged ``tokens_estimated``; the ``request_usage`` setting
opts in to asking for usage. Nothing here reads or keeps credentials.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping
from typing import Any

import openai

from otm.capture.call import Call
from otm.capture.clients import get_client_settings, settings_keys_of
from otm.capture.hosts import Host, HostName, host_name, host_of, resolve, server_of
from otm.capture.patching import Target
from otm.capture.sites import Site, targets_of
from otm.capture.stacking import restack_after_init
from otm.capture.stainless import JsonView, StainlessSDK, swap_stream_manager
from otm.capture.streams import Observer, stream_call
from otm.capture.tokens import tokenizer_available
from otm.capture.wrappers import make_async_wrapper, make_passthrough_wrapper, make_sync_wrapper

PROVIDER = "openai"
_perf = time.perf_counter
REQUEST_ID_HEADER = "x-request-id"

# --------------------------------------------------------------------------- provider detection

UNKNOWN_HOST = "openai-compatible"
"""Provider name for an OpenAI-compatible endpoint whose host is not recognised."""


def _detect(client: Any) -> Host | HostName:
    if "Azure" in type(client).__name__:
        return Host("azure-openai", "api")
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    if host is None and base_url is not None:
        from urllib.parse import urlsplit

        host = urlsplit(str(base_url)).hostname
    return host_name(host, vendor=PROVIDER, unknown=UNKNOWN_HOST)


def detect_host(client: Any) -> Host:
    """What an openai client's class and ``base_url`` host say (decided once per client)."""
    return resolve(host_of(client, _detect))


def owns(client: Any) -> bool:
    return isinstance(client, (openai.OpenAI, openai.AsyncOpenAI))


def model_bases() -> tuple[type, ...]:
    return (openai.BaseModel,)


def settings_keys(client: Any) -> list[object]:
    """The client, and its HTTP client (shared by ``with_options()``/``copy()`` copies)."""
    return settings_keys_of(client)


# --------------------------------------------------------------------------- small helpers

_OMITTED: tuple[type, ...] = tuple(
    t
    for t in (getattr(openai, "Omit", None), getattr(openai, "NotGiven", None))
    if isinstance(t, type)
)


def _given(value: Any) -> bool:
    return value is not None and not isinstance(value, _OMITTED)


def _request_id_of(model: Any) -> str | None:
    # openai sets ``_request_id`` in the instance __dict__ (not a pydantic field).
    try:
        rid = model.__dict__.get("_request_id")
    except AttributeError:
        return None
    return rid if isinstance(rid, str) else None


def _client_of(instance: Any) -> Any:
    return getattr(instance, "_client", None)


def _new_call(instance: Any, operation: str, model: Any, streamed: bool) -> Call:
    client = _client_of(instance)
    call = Call(
        PROVIDER,
        operation,
        model if isinstance(model, str) else None,
        get_client_settings(client),
        streamed=streamed,
        host=host_of(client, _detect) if client is not None else None,
    )
    call.server(server_of(client))
    collector = _helper_calls.get()
    if collector is not None:
        collector.append(call)
    return call


# --------------------------------------------------------------------------- measuring requests


def _text_of_part(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping):
        text = part.get("text")
        if text is None:
            text = part.get("output")  # responses: function_call_output items
    else:
        text = getattr(part, "text", None)
    return text if isinstance(text, str) else None


def _add_content(content: Any, parts: list[str]) -> None:
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, (list, tuple)):
        for part in content:
            text = _text_of_part(part)
            if text:
                parts.append(text)


def _messages_text(messages: Any, parts: list[str]) -> None:
    """Chat messages (dicts or SDK models): contents, text parts and tool-call arguments."""
    if not isinstance(messages, (list, tuple)):
        return  # an iterator the SDK already consumed: nothing left to measure
    for m in messages:
        if isinstance(m, Mapping):
            content, tool_calls = m.get("content"), m.get("tool_calls")
        else:
            content, tool_calls = getattr(m, "content", None), getattr(m, "tool_calls", None)
        _add_content(content, parts)
        if tool_calls:
            for tc in tool_calls:
                fn = (
                    tc.get("function") if isinstance(tc, Mapping) else getattr(tc, "function", None)
                )
                args = (
                    fn.get("arguments")
                    if isinstance(fn, Mapping)
                    else getattr(fn, "arguments", None)
                )
                if isinstance(args, str):
                    parts.append(args)


def _responses_input_text(request: Mapping[str, Any], parts: list[str]) -> None:
    instructions = request.get("instructions")
    if isinstance(instructions, str):
        parts.append(instructions)
    value = request.get("input")
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, Mapping):
                content = item.get("content")
                if content is None:
                    content = item.get("output", item.get("arguments"))
            else:
                content = getattr(item, "content", None)
            _add_content(content, parts)


def _embedding_input_text(request: Mapping[str, Any], parts: list[str]) -> int:
    """Text pieces of an embeddings input; returns the number of tokens given as token ids."""
    value = request.get("input")
    if isinstance(value, str):
        parts.append(value)
        return 0
    if not isinstance(value, (list, tuple)):
        return 0
    ids = 0
    for item in value:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, int):
            ids += 1
        elif isinstance(item, (list, tuple)):
            ids += len(item)
    return ids


def _prepare_request(call: Call) -> None:
    """At finish: measure the request's text (and keep it when it will be used)."""
    request = call.extra
    if not request:
        return
    parts: list[str] = []
    op = call.operation
    ids = 0
    if op == "chat":
        _messages_text(request.get("messages"), parts)
    elif op == "responses":
        _responses_input_text(request, parts)
    elif op == "embeddings":
        ids = _embedding_input_text(request, parts)
    elif op == "completion":
        _add_content(request.get("prompt"), parts)
    call.extra = None  # drop the reference to the request
    n = 0
    for p in parts:
        n += len(p)
    call.input_text_length = n if parts else None
    if call.input_tokens is None and ids and not parts:
        call.input_tokens = ids
        return
    if call.config.capture_prompts or (
        call.input_tokens is None and n and tokenizer_available(call.model)
    ):
        call.prompt = "\n".join(parts)


def _keep_request(call: Call, kwargs: dict[str, Any]) -> None:
    call.extra = kwargs  # the request's own dict; measured only when the call finishes
    call.prepare = _prepare_request


# --------------------------------------------------------------------------- usage readers


def _chat_usage(call: Call, u: Any) -> None:
    """openai ``CompletionUsage`` (chat, legacy completions); mapping in docs/capture.md."""
    call.input_tokens = u.prompt_tokens
    call.output_tokens = u.completion_tokens
    d = u.prompt_tokens_details
    if d is not None:
        call.cached_input_tokens = d.cached_tokens
        call.cache_write_tokens = getattr(d, "cache_write_tokens", None)
    d = u.completion_tokens_details
    if d is not None:
        call.reasoning_tokens = d.reasoning_tokens
    if call.cached_input_tokens is None:
        extra = u.__pydantic_extra__
        if extra:
            # DeepSeek reports its context cache as prompt_cache_hit_tokens.
            hit = extra.get("prompt_cache_hit_tokens")
            if isinstance(hit, int):
                call.cached_input_tokens = hit


def _responses_usage(call: Call, u: Any) -> None:
    call.input_tokens = u.input_tokens
    call.output_tokens = u.output_tokens
    d = u.input_tokens_details
    if d is not None:
        call.cached_input_tokens = d.cached_tokens
        call.cache_write_tokens = getattr(d, "cache_write_tokens", None)
    d = u.output_tokens_details
    if d is not None:
        call.reasoning_tokens = d.reasoning_tokens


# --------------------------------------------------------------------------- non-streamed results


def _read_chat_completion(call: Call, r: Any) -> None:
    usage = r.usage
    if usage is not None:
        _chat_usage(call, usage)
    call.served_model = r.model
    call.request_id = _request_id_of(r) or call.request_id
    call.response_id = getattr(r, "id", None) or call.response_id
    n = 0
    texts: list[str] | None = [] if call.config.capture_prompts else None
    for choice in r.choices or ():
        call.finish_reason(choice.finish_reason)
        message = choice.message
        if message is None:
            continue
        content = message.content
        if content:
            n += len(content)
            if texts is not None:
                texts.append(content)
        refusal = message.refusal
        if refusal:
            n += len(refusal)
        tool_calls = message.tool_calls
        if tool_calls:
            for tc in tool_calls:
                fn = getattr(tc, "function", None)
                args = getattr(fn, "arguments", None)
                if isinstance(args, str):
                    n += len(args)
    call.output_text_length = n
    if texts:
        call.completion = "".join(texts)


def _read_legacy_completion(call: Call, r: Any) -> None:
    usage = r.usage
    if usage is not None:
        _chat_usage(call, usage)
    call.served_model = r.model
    call.request_id = _request_id_of(r) or call.request_id
    call.response_id = getattr(r, "id", None) or call.response_id
    n = 0
    texts: list[str] | None = [] if call.config.capture_prompts else None
    for choice in r.choices or ():
        call.finish_reason(choice.finish_reason)
        text = choice.text
        if text:
            n += len(text)
            if texts is not None:
                texts.append(text)
    call.output_text_length = n
    if texts:
        call.completion = "".join(texts)


def _read_response(call: Call, r: Any) -> None:
    usage = r.usage
    if usage is not None:
        _responses_usage(call, usage)
    call.served_model = r.model
    call.request_id = _request_id_of(r) or call.request_id
    call.response_id = getattr(r, "id", None) or call.response_id
    _response_finish(call, r)
    status = r.status
    if status == "failed":
        call.outcome = "error"
        call.error_type = "openai.response.failed"
    n = 0
    texts: list[str] | None = [] if call.config.capture_prompts else None
    for item in r.output or ():
        kind = item.type
        if kind == "message":
            for part in item.content or ():
                text = getattr(part, "text", None) or getattr(part, "refusal", None)
                if isinstance(text, str):
                    n += len(text)
                    if texts is not None:
                        texts.append(text)
        elif kind == "function_call":
            args = item.arguments
            if isinstance(args, str):
                n += len(args)
    call.output_text_length = n
    if texts:
        call.completion = "".join(texts)


def _response_finish(call: Call, r: Any) -> None:
    """The Responses API has a status, not finish reasons: completed -> ``stop``,
    incomplete -> its reason (``max_output_tokens``, ``content_filter``), failed -> ``error``."""
    status = r.status
    if status == "completed":
        call.finish_reason("stop")
    elif status == "incomplete":
        details = r.incomplete_details
        call.finish_reason(getattr(details, "reason", None) or "incomplete")
    elif status == "failed":
        call.finish_reason("error")


def _read_embeddings(call: Call, r: Any) -> None:
    usage = r.usage
    if usage is not None:
        call.input_tokens = usage.prompt_tokens
    call.output_tokens = 0
    call.served_model = r.model
    call.request_id = _request_id_of(r) or call.request_id
    call.response_id = getattr(r, "id", None) or call.response_id


_MODEL_READERS: dict[str, Callable[[Call, Any], None]] = {
    "chat": _read_chat_completion,
    "responses": _read_response,
    "embeddings": _read_embeddings,
    "completion": _read_legacy_completion,
}


# ----------------------------------------------------------------- stream observers (hot path)


def _observe_chat(call: Call, chunk: Any) -> None:
    """One ``ChatCompletionChunk``: a clock read and a few attribute reads.

    The hot path of a stream (every chunk of every stream goes through here),
    so ``Call.chunk`` is inlined and rare cases are only looked at on chunks
    without content.
    """
    t = _perf()
    has = False
    choices = chunk.choices
    if choices:
        for choice in choices:
            reason = choice.finish_reason
            if reason is not None:
                call.finish_reason(reason)
            delta = choice.delta
            if delta is None:
                continue
            content = delta.content
            if content:
                has = True
                call.output_text_length += len(content)
                parts = call.text_parts
                if parts is not None:
                    parts.append(content)
            elif _observe_other_delta(call, delta):
                has = True
    usage = chunk.usage
    if usage is not None:
        _chat_usage(call, usage)
    elif not has:
        extra = chunk.__pydantic_extra__
        if extra:
            # Groq puts the usage of a stream in x_groq.usage on its last chunk.
            x = extra.get("x_groq")
            if isinstance(x, Mapping) and isinstance(x.get("usage"), Mapping):
                _chat_usage(call, JsonView(x["usage"]))
    # Call.chunk(has), inlined
    call.chunks += 1
    call.t_last_chunk = t
    if has:
        call.t_last = t
        call.content_chunks += 1
        if call.t_first_token is None:
            call.t_first_token = t
    if call.t_first_chunk is None:
        call.t_first_chunk = t
        call.served_model = chunk.model
        call.response_id = chunk.id


def _observe_other_delta(call: Call, delta: Any) -> bool:
    """A chat delta without text content: tool-call arguments, a refusal, reasoning."""
    tool_calls = delta.tool_calls
    if tool_calls:
        for tc in tool_calls:
            fn = tc.function
            if fn is not None and fn.arguments:
                call.text(fn.arguments)
        return True
    refusal = delta.refusal
    if refusal:
        call.text(refusal)
        return True
    extra = delta.__pydantic_extra__
    if extra:
        # OpenAI-compatible servers stream reasoning as reasoning_content
        # (DeepSeek, vLLM) or reasoning (OpenRouter, Groq): output too.
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            call.text(reasoning)
            return True
    return False


def _observe_completion(call: Call, chunk: Any) -> None:
    """One legacy ``Completion`` chunk (``completions.create(stream=True)``)."""
    has = False
    for choice in chunk.choices or ():
        text = choice.text
        if text:
            has = True
            call.text(text)
        call.finish_reason(choice.finish_reason)
    if call.served_model is None:
        call.served_model = chunk.model
        call.response_id = chunk.id
    usage = chunk.usage
    if usage is not None:
        _chat_usage(call, usage)
    call.chunk(has)


# Responses stream events that carry generated output (text, arguments, reasoning).
_RESPONSE_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.audio.transcript.delta",
        "response.code_interpreter_call_code.delta",
        "response.mcp_call_arguments.delta",
    }
)
_RESPONSE_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _observe_response_event(call: Call, event: Any) -> None:
    """One Responses stream event."""
    kind = event.type
    if kind in _RESPONSE_DELTAS:
        delta = event.delta
        if delta and isinstance(delta, str):
            call.output_text_length += len(delta)
            parts = call.text_parts
            if parts is not None:
                parts.append(delta)
        call.chunk(True)
        return
    if kind in _RESPONSE_FINAL:
        response = event.response
        if response is not None:
            usage = response.usage
            if usage is not None:
                _responses_usage(call, usage)
            call.served_model = response.model or call.served_model
            call.response_id = response.id or call.response_id
            _response_finish(call, response)
        if kind == "response.failed":
            call.outcome = "error"
            call.error_type = "openai.response.failed"
    elif kind == "response.audio.delta":
        call.chunk(True)
        return
    elif kind == "response.created":
        response = event.response
        if response is not None:
            call.response_id = response.id
            if call.served_model is None:
                call.served_model = response.model
    elif kind == "error":
        call.outcome = "error"
        call.error_type = "openai.response.error"
    call.chunk(False)


_OBSERVERS: dict[str, Observer] = {
    "chat": _observe_chat,
    "responses": _observe_response_event,
    "completion": _observe_completion,
}


# --------------------------------------------------------------------------- what came back


def _observer(call: Call) -> Observer:
    return _OBSERVERS.get(call.operation, _observe_chat)


def _read_model(call: Call, r: Any) -> None:
    _MODEL_READERS[call.operation](call, r)


def _legacy_response_class() -> tuple[type, ...]:
    try:
        from openai._legacy_response import LegacyAPIResponse

        return (LegacyAPIResponse,)
    except Exception:
        return ()


SDK = StainlessSDK(
    openai,
    request_id_header=REQUEST_ID_HEADER,
    observer=_observer,
    read_model=_read_model,
    raw_types=_legacy_response_class(),
)


# --------------------------------------------------------------------------- .stream() helpers

_helper_calls: contextvars.ContextVar[list[Call] | None] = contextvars.ContextVar(
    "otm_openai_helper", default=None
)
"""Set while a helper manager's ``__enter__`` runs: the create() inside reports its Call here."""


class _HelperStart:
    """openai's helpers call ``create()`` (or ``retrieve``) inside ``__enter__``:
    that call reports itself through a context variable."""

    def begin(self, manager: Any) -> Any:
        calls: list[Call] = []
        return calls, _helper_calls.set(calls)

    def end(self, token: Any, helper: Any, exc: BaseException | None) -> Call | None:
        calls, reset = token
        _helper_calls.reset(reset)
        if exc is not None:
            return None  # the inner create() recorded the failure
        return calls[-1] if calls else stream_call(getattr(helper, "_raw_stream", None))


_HELPER_START = _HelperStart()


def _swap_manager(manager: Any) -> Any:
    return swap_stream_manager(manager, _HELPER_START, "openai.stream")


# --------------------------------------------------------------------------- begin (per method)


def _begin_stream_options(operation: str) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], Call]:
    """Chat and legacy completions: streams carry usage only with ``include_usage``."""

    def begin(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        streamed = kwargs.get("stream") is True
        model = kwargs.get("model")
        call = _new_call(instance, operation, model, streamed)
        if streamed:
            stream_options = kwargs.get("stream_options")
            if _given(stream_options):
                usage_expected = isinstance(stream_options, Mapping) and bool(
                    stream_options.get("include_usage")
                )
            elif call.config.request_usage:
                kwargs["stream_options"] = {"include_usage": True}
                usage_expected = True
            else:
                usage_expected = False
            if call.config.capture_prompts or (
                not usage_expected and tokenizer_available(model)
            ):
                call.text_parts = []
        _keep_request(call, kwargs)
        return call

    return begin


def _begin_plain(operation: str) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], Call]:
    """Calls that never stream (parse, embeddings)."""

    def begin(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        call = _new_call(instance, operation, kwargs.get("model"), False)
        _keep_request(call, kwargs)
        return call

    return begin


def _begin_responses(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
    streamed = kwargs.get("stream") is True
    call = _new_call(instance, "responses", kwargs.get("model"), streamed)
    if streamed and call.config.capture_prompts:
        call.text_parts = []
    _keep_request(call, kwargs)
    return call


def _begin_responses_retrieve(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Call | None:
    if kwargs.get("stream") is not True:
        return None  # a plain retrieve is no model call
    call = _new_call(instance, "responses", None, True)
    if call.config.capture_prompts:
        call.text_parts = []
    return call


# --------------------------------------------------------------------------- targets


def _pair(
    package: str,
    sync_name: str,
    async_name: str,
    methods: list[tuple[str, Any, str]],
    optional: bool = False,
) -> list[Site]:
    """The sync and async resource classes of ``package``, each with ``methods``
    ((method, begin, where) triples); fresh wrappers whenever targets are made."""

    def make(wrap: Callable[..., Any]) -> Callable[[type], list[Target]]:
        return lambda cls: [
            (cls, name, wrap(where, begin, SDK.complete)) for name, begin, where in methods
        ]

    return [
        Site(package, sync_name, make(make_sync_wrapper), optional),
        Site(package, async_name, make(make_async_wrapper), optional),
    ]


def _stream_helper(key: str) -> Callable[[type], list[Target]]:
    # The .stream() helpers: sync methods (also on the async resources) that
    # return a context manager; the request starts in its __enter__/__aenter__.
    return lambda cls: [
        (cls, "stream", make_passthrough_wrapper(f"openai.{key}.stream", _swap_manager))
    ]


def _restack(cls: type) -> list[Target]:
    # A resource being built: move back on top of tools that patched after otm.
    return [(cls, "__init__", restack_after_init())]


def sites() -> list[Site]:
    """Every class to patch, by the package the SDK re-exports it from (patched when loaded)."""
    chat = _pair(
        "openai.resources.chat",
        "Completions",
        "AsyncCompletions",
        [
            ("create", _begin_stream_options("chat"), "openai.chat.create"),
            ("parse", _begin_plain("chat"), "openai.chat.parse"),
        ],
    )
    responses_methods = [
        ("create", _begin_responses, "{}.create"),
        ("parse", _begin_plain("responses"), "{}.parse"),
        ("retrieve", _begin_responses_retrieve, "{}.retrieve"),
    ]
    responses = _pair(
        "openai.resources.responses",
        "Responses",
        "AsyncResponses",
        [(m, b, w.format("openai.responses")) for m, b, w in responses_methods],
    )
    # client.beta.responses: its own classes (same wire format, BetaResponse models);
    # only in SDK versions that have it.
    beta_responses = _pair(
        "openai.resources.beta.responses",
        "Responses",
        "AsyncResponses",
        [(m, b, w.format("openai.beta.responses")) for m, b, w in responses_methods],
        optional=True,
    )
    out = chat + responses + beta_responses
    out += _pair(
        "openai.resources.embeddings",
        "Embeddings",
        "AsyncEmbeddings",
        [("create", _begin_plain("embeddings"), "openai.embeddings.create")],
    )
    out += _pair(
        "openai.resources.completions",
        "Completions",
        "AsyncCompletions",
        [("create", _begin_stream_options("completion"), "openai.completions.create")],
    )
    for key, group in (("chat", chat), ("responses", responses), ("beta_responses", beta_responses)):
        out += [Site(s.package, s.name, _stream_helper(key), s.optional) for s in group]
    out += [
        Site("openai._resource", "SyncAPIResource", _restack, True),
        Site("openai._resource", "AsyncAPIResource", _restack, True),
    ]
    return out


def targets() -> list[Target]:
    """Every (class, method, wrapper) to patch, importing what the SDK has not loaded yet."""
    return targets_of(sites())


__all__ = ["PROVIDER", "model_bases", "detect_host", "owns", "settings_keys", "sites", "targets"]

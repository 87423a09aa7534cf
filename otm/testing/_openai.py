"""OpenAI-shaped endpoints: Chat Completions, Responses, Embeddings.

Payloads follow what openai 3.x validates with ``_strict_response_validation``.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from ._common import (
    Call,
    JsonReply,
    Reply,
    StreamPlan,
    content_pieces,
    dumps,
    example_for_schema,
    json_reply,
    new_id,
    sse,
)

REQUEST_ID_HEADER = "x-request-id"

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (fake server)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (fake server)."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Forbidden (fake server).",
    ),
    404: ("invalid_request_error", "model_not_found", "The model does not exist (fake server)."),
    409: ("invalid_request_error", None, "Conflict (fake server)."),
    422: ("invalid_request_error", None, "Unprocessable entity (fake server)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (fake server)."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request (fake server).",
    ),
    503: ("server_error", None, "The engine is currently overloaded (fake server)."),
}


def error_object(status: int, message: str | None = None) -> dict[str, Any]:
    kind, code, default = _ERRORS.get(
        status,
        (
            "server_error" if status >= 500 else "invalid_request_error",
            None,
            f"HTTP {status} (fake server).",
        ),
    )
    return {"message": message or default, "type": kind, "param": None, "code": code}


def error_reply(status: int, request_id: str, message: str | None = None) -> JsonReply:
    return json_reply(
        {"error": error_object(status, message)}, [(REQUEST_ID_HEADER, request_id)], status
    )


def _headers(call: Call) -> list[tuple[str, str]]:
    return [(REQUEST_ID_HEADER, call.request_id), ("openai-processing-ms", "1")]


# --- Chat Completions ---------------------------------------------------------


def _chat_json_schema(body: dict[str, Any]) -> tuple[bool, Any]:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return False, None
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return True, example_for_schema(schema)
    if fmt.get("type") == "json_object":
        return True, {}
    return False, None


def _chat_usage(call: Call) -> dict[str, Any]:
    s = call.scenario
    prompt_details: dict[str, Any] = {"cached_tokens": call.cached, "audio_tokens": 0}
    if call.cache_write:
        prompt_details["cache_write_tokens"] = call.cache_write
    completion = call.output_with_reasoning
    return {
        "prompt_tokens": s.input_tokens,
        "completion_tokens": completion,
        "total_tokens": s.input_tokens + completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": s.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completions(call: Call) -> Reply:
    json_wanted, json_value = _chat_json_schema(call.body)
    pieces = content_pieces(call.scenario, json_value, json_wanted=json_wanted)
    cid = new_id("chatcmpl-")
    s = call.scenario
    if not call.stream:
        body: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": call.created,
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(pieces),
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "service_tier": "default",
            "system_fingerprint": None,
        }
        if s.include_usage is not False:
            body["usage"] = _chat_usage(call)
        return json_reply(body, _headers(call))

    stream_options = call.body.get("stream_options")
    requested = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    with_usage = requested if s.include_usage is None else s.include_usage
    # The real API sends "usage":null on every chunk once include_usage is on.
    usage_null = ',"usage":null' if with_usage else ""
    head = (
        '{"id":'
        + dumps(cid)
        + ',"object":"chat.completion.chunk","created":'
        + str(call.created)
        + ',"model":'
        + dumps(call.model)
        + ',"service_tier":"default","system_fingerprint":null,"choices":'
    )
    prefix = ("data: " + head + '[{"index":0,"delta":{"content":').encode()
    suffix = ('},"logprobs":null,"finish_reason":null}]' + usage_null + "}\n\n").encode()

    preamble = [
        sse(
            head
            + '[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]'
            + usage_null
            + "}"
        )
    ]
    content = (prefix + dumps(p).encode() + suffix for p in pieces)
    postamble = [
        sse(
            head
            + '[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]'
            + usage_null
            + "}"
        )
    ]
    if with_usage:
        postamble.append(sse(head + '[],"usage":' + dumps(_chat_usage(call)) + "}"))
    postamble.append(b"data: [DONE]\n\n")

    def error(_k: int) -> bytes:
        return sse(dumps({"error": error_object(500)}))

    return StreamPlan(_headers(call), preamble, content, postamble, error)


# --- Responses ----------------------------------------------------------------


def _responses_format(body: dict[str, Any]) -> tuple[bool, Any]:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return False, None
    if fmt.get("type") == "json_schema":
        return True, example_for_schema(fmt.get("schema") or {})
    if fmt.get("type") == "json_object":
        return True, {}
    return False, None


def _responses_usage(call: Call) -> dict[str, Any]:
    s = call.scenario
    out = call.output_with_reasoning
    return {
        "input_tokens": s.input_tokens,
        "input_tokens_details": {
            "cached_tokens": call.cached,
            "cache_write_tokens": call.cache_write,
        },
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": s.reasoning_tokens},
        "total_tokens": s.input_tokens + out,
    }


def _response_object(
    call: Call, rid: str, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    body = call.body
    return {
        "id": rid,
        "object": "response",
        "created_at": call.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": call.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": body.get("text")
        if isinstance(body.get("text"), dict)
        else {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def _message_item(mid: str, text: str | None, status: str) -> dict[str, Any]:
    content = (
        []
        if text is None
        else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    )
    return {"id": mid, "type": "message", "status": status, "role": "assistant", "content": content}


def responses(call: Call) -> Reply:
    json_wanted, json_value = _responses_format(call.body)
    pieces = content_pieces(call.scenario, json_value, json_wanted=json_wanted)
    text = "".join(pieces)
    s = call.scenario
    rid = new_id("resp_")
    mid = new_id("msg_")
    usage = _responses_usage(call) if s.include_usage is not False else None
    # Reasoning models put a reasoning item before the message.
    reasoning_item = (
        {"id": new_id("rs_"), "type": "reasoning", "summary": []}
        if s.reasoning_tokens > 0
        else None
    )
    final_output = ([reasoning_item] if reasoning_item else []) + [
        _message_item(mid, text, "completed")
    ]
    if not call.stream:
        return json_reply(
            _response_object(call, rid, "completed", final_output, usage), _headers(call)
        )

    msg_index = 1 if reasoning_item else 0
    seq = 0
    preamble: list[bytes] = []

    def event(obj: dict[str, Any]) -> bytes:
        nonlocal seq
        obj["sequence_number"] = seq
        seq += 1
        return sse(dumps(obj), obj["type"])

    in_progress = _response_object(call, rid, "in_progress", [], None)
    preamble.append(event({"type": "response.created", "response": in_progress}))
    preamble.append(event({"type": "response.in_progress", "response": in_progress}))
    if reasoning_item:
        preamble.append(
            event({"type": "response.output_item.added", "output_index": 0, "item": reasoning_item})
        )
        preamble.append(
            event({"type": "response.output_item.done", "output_index": 0, "item": reasoning_item})
        )
    preamble.append(
        event(
            {
                "type": "response.output_item.added",
                "output_index": msg_index,
                "item": _message_item(mid, None, "in_progress"),
            }
        )
    )
    preamble.append(
        event(
            {
                "type": "response.content_part.added",
                "item_id": mid,
                "output_index": msg_index,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            }
        )
    )

    first_delta_seq = seq
    prefix = (
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":'
        + dumps(mid)
        + ',"output_index":'
        + str(msg_index)
        + ',"content_index":0,"logprobs":[],"delta":'
    ).encode()
    content = (
        prefix + dumps(p).encode() + b',"sequence_number":%d}\n\n' % (first_delta_seq + i)
        for i, p in enumerate(pieces)
    )
    seq += len(pieces)

    postamble = [
        event(
            {
                "type": "response.output_text.done",
                "item_id": mid,
                "output_index": msg_index,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            }
        ),
        event(
            {
                "type": "response.content_part.done",
                "item_id": mid,
                "output_index": msg_index,
                "content_index": 0,
                "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []},
            }
        ),
        event(
            {
                "type": "response.output_item.done",
                "output_index": msg_index,
                "item": _message_item(mid, text, "completed"),
            }
        ),
        event(
            {
                "type": "response.completed",
                "response": _response_object(call, rid, "completed", final_output, usage),
            }
        ),
    ]

    def error(k: int) -> bytes:
        # The API nests the error object in its `error` event; openai-python raises APIError on it.
        err = error_object(500)
        return sse(
            dumps({"type": "error", "sequence_number": first_delta_seq + k, "error": err}), "error"
        )

    return StreamPlan(_headers(call), preamble, content, postamble, error)


# --- Embeddings -----------------------------------------------------------------


def embedding_vector(seed: str, dims: int) -> list[float]:
    """Deterministic, cheap pseudo-embedding (same text → same vector)."""
    h = 0
    for ch in seed[:64]:
        h = (h * 31 + ord(ch)) & 0xFFFF
    return [((h + 37 * i) % 201) / 100.0 - 1.0 for i in range(dims)]


def embeddings(call: Call) -> Reply:
    body = call.body
    raw = body.get("input", "")
    # A string or one token array is a single input; a list of those is a batch.
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        inputs: list[Any] = [raw]
    elif isinstance(raw, list):
        inputs = raw
    else:
        inputs = [raw]
    requested_dims = body.get("dimensions")
    dims = requested_dims if isinstance(requested_dims, int) and requested_dims > 0 else 16
    as_base64 = body.get("encoding_format") == "base64"  # the SDK asks for base64 by default
    data = []
    for i, item in enumerate(inputs):
        vec = embedding_vector(str(item), dims)
        value: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_base64 else vec
        data.append({"object": "embedding", "index": i, "embedding": value})
    n = call.scenario.input_tokens
    out = {
        "object": "list",
        "data": data,
        "model": call.model,
        "usage": {"prompt_tokens": n, "total_tokens": n},
    }
    return json_reply(out, _headers(call))

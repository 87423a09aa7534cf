"""Anthropic-shaped endpoint: ``POST /v1/messages`` (plain and streamed).

The SDK drops SSE frames without an ``event:`` line, so every frame has one.
"""

from __future__ import annotations

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

REQUEST_ID_HEADER = "request-id"

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (fake server)."),
    401: ("authentication_error", "invalid x-api-key (fake server)."),
    403: ("permission_error", "Permission denied (fake server)."),
    404: ("not_found_error", "Not found (fake server)."),
    413: ("request_too_large", "Request exceeds the maximum allowed size (fake server)."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (fake server)."),
    500: ("api_error", "Internal server error (fake server)."),
    529: ("overloaded_error", "Overloaded (fake server)."),
}

_THINKING_TEXT = "Thinking about the answer."
_SIGNATURE = "ZmFrZS1zaWduYXR1cmU="


def error_reply(status: int, request_id: str, message: str | None = None) -> JsonReply:
    kind, default = _ERRORS.get(
        status,
        (
            "api_error" if status >= 500 else "invalid_request_error",
            f"HTTP {status} (fake server).",
        ),
    )
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or default},
        "request_id": request_id,
    }
    return json_reply(body, [(REQUEST_ID_HEADER, request_id)], status)


def _json_format(body: dict[str, Any]) -> tuple[bool, Any]:
    # messages.parse(output_format=Model) sends output_config.format; older builds used output_format.
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return True, example_for_schema(fmt.get("schema") or {})
    return False, None


def _usage(call: Call, output_tokens: int, *, delta: bool = False) -> dict[str, Any]:
    # input_tokens excludes cache reads and writes (anthropic's documented semantics).
    usage: dict[str, Any] = {
        "input_tokens": call.uncached_input,
        "cache_creation_input_tokens": call.cache_write,
        "cache_read_input_tokens": call.cached,
        "output_tokens": output_tokens,
    }
    if not delta:  # message_delta's usage carries only the counters
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": call.cache_write,
            "ephemeral_1h_input_tokens": 0,
        }
        usage["service_tier"] = "standard"
    if call.scenario.reasoning_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": call.scenario.reasoning_tokens}
    return usage


def messages(call: Call) -> Reply:
    json_wanted, json_value = _json_format(call.body)
    pieces = content_pieces(call.scenario, json_value, json_wanted=json_wanted)
    s = call.scenario
    mid = new_id("msg_")
    headers = [(REQUEST_ID_HEADER, call.request_id)]
    thinking = s.reasoning_tokens > 0
    if not call.stream:
        blocks: list[dict[str, Any]] = []
        if thinking:
            blocks.append({"type": "thinking", "thinking": _THINKING_TEXT, "signature": _SIGNATURE})
        blocks.append({"type": "text", "text": "".join(pieces)})
        body = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": blocks,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _usage(call, call.output_with_reasoning),
        }
        return json_reply(body, headers)

    def ev(obj: dict[str, Any]) -> bytes:
        return sse(dumps(obj), obj["type"])

    start: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        # The API reports a token or so of output at message_start; the real count comes in message_delta.
        "usage": _usage(call, 1),
    }
    preamble = [ev({"type": "message_start", "message": start})]
    index = 0
    if thinking:
        preamble += [
            ev(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                }
            ),
            ev(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": _THINKING_TEXT},
                }
            ),
            ev(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": _SIGNATURE},
                }
            ),
            ev({"type": "content_block_stop", "index": 0}),
        ]
        index = 1
    preamble.append(
        ev(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
        )
    )
    preamble.append(b'event: ping\ndata: {"type": "ping"}\n\n')

    prefix = (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        + str(index)
        + ',"delta":{"type":"text_delta","text":'
    ).encode()
    content = (prefix + dumps(p).encode() + b"}}\n\n" for p in pieces)
    postamble = [
        ev({"type": "content_block_stop", "index": index}),
        # message_delta usage is cumulative and overwrites message_start's in the SDK accumulator.
        ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": _usage(call, call.output_with_reasoning, delta=True),
            }
        ),
        ev({"type": "message_stop"}),
    ]

    def error(_k: int) -> bytes:
        return ev({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})

    return StreamPlan(headers, preamble, content, postamble, error)

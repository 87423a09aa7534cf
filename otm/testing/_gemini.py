"""Gemini-shaped endpoints (Developer API paths, ``/v1`` or ``/v1beta``).

``generateContent``, ``streamGenerateContent?alt=sse``, ``embedContent`` and
``batchEmbedContents``. Usage is camelCase ``usageMetadata``; streamed chunks
carry running totals and the last one is final.
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
    sse,
)
from ._openai import embedding_vector

_STATUSES: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument (fake server)."),
    401: ("UNAUTHENTICATED", "API key not valid (fake server)."),
    403: ("PERMISSION_DENIED", "Permission denied (fake server)."),
    404: ("NOT_FOUND", "Model not found (fake server)."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota) (fake server)."),
    500: ("INTERNAL", "An internal error has occurred (fake server)."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later (fake server)."),
    504: ("DEADLINE_EXCEEDED", "Deadline exceeded (fake server)."),
}


def error_object(status: int, message: str | None = None) -> dict[str, Any]:
    name, default = _STATUSES.get(
        status,
        ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", f"HTTP {status} (fake server)."),
    )
    return {"code": status, "message": message or default, "status": name}


def error_reply(status: int, request_id: str, message: str | None = None) -> JsonReply:
    return json_reply({"error": error_object(status, message)}, [], status)


def _json_format(body: dict[str, Any]) -> tuple[bool, Any]:
    config = body.get("generationConfig")
    if not isinstance(config, dict) or config.get("responseMimeType") != "application/json":
        return False, None
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
    return True, example_for_schema(schema)


def _usage(call: Call, candidates: int) -> dict[str, Any]:
    # promptTokenCount includes cached content; candidates exclude thoughts (Gemini semantics).
    s = call.scenario
    usage: dict[str, Any] = {
        "promptTokenCount": s.input_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": s.input_tokens + candidates + s.reasoning_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": s.input_tokens}],
    }
    if s.reasoning_tokens:
        usage["thoughtsTokenCount"] = s.reasoning_tokens
    if call.cached:
        usage["cachedContentTokenCount"] = call.cached
    return usage


def _chunk(call: Call, text: str, usage: dict[str, Any] | None, finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = "STOP"
    obj: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        obj["usageMetadata"] = usage
    obj["modelVersion"] = call.model
    obj["responseId"] = call.request_id
    return obj


def generate_content(call: Call) -> Reply:
    json_wanted, json_value = _json_format(call.body)
    pieces = content_pieces(call.scenario, json_value, json_wanted=json_wanted)
    with_usage = call.scenario.include_usage is not False
    if not call.stream:
        usage = _usage(call, call.scenario.output_tokens) if with_usage else None
        return json_reply(_chunk(call, "".join(pieces), usage, True), [])

    # Every chunk carries one piece and the running usage; the last also carries finishReason.
    # An empty reply is still one chunk, as the API sends.
    parts = pieces or [""]
    last = len(parts) - 1
    n_out = call.scenario.output_tokens

    def frame(i: int, text: str) -> bytes:
        candidates = n_out if i == last else min(i + 1, n_out)
        usage = _usage(call, candidates) if with_usage else None
        return sse(dumps(_chunk(call, text, usage, i == last)))

    content = (frame(i, p) for i, p in enumerate(parts))

    def error(_k: int) -> bytes:
        return sse(dumps({"error": error_object(500)}))

    return StreamPlan([], [], content, [], error)


def embed_content(call: Call, batch: bool) -> Reply:
    body = call.body
    items = body.get("requests") if batch else [body]
    if not isinstance(items, list):
        items = []
    vectors = []
    for item in items:
        item = item if isinstance(item, dict) else {}
        dims = item.get("outputDimensionality")
        dims = dims if isinstance(dims, int) and dims > 0 else 16
        vectors.append({"values": embedding_vector(dumps(item.get("content")), dims)})
    n = call.scenario.input_tokens
    usage = {"promptTokenCount": n, "totalTokenCount": n}
    out: dict[str, Any] = (
        {"embeddings": vectors, "usageMetadata": usage}
        if batch
        else {"embedding": vectors[0] if vectors else {"values": []}}
    )
    return json_reply(out, [])

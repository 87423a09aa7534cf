"""Pieces shared by the fake provider endpoints: replies, SSE framing, text.

Everything here is stdlib only, because ``otm.testing`` ships in the package
and ``otm demo`` runs it in-process without network access.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Scenario

Headers = list[tuple[str, str]]


def dumps(obj: Any) -> str:
    """Compact JSON, as the providers send it (no spaces after separators)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def new_id(prefix: str, nbytes: int = 12) -> str:
    # os.urandom is cheaper than uuid4 and unique enough for a test server.
    return prefix + os.urandom(nbytes).hex()


def sse(data: str, event: str | None = None) -> bytes:
    """One SSE frame. ``data: `` keeps its space: google-genai requires it."""
    if event is None:
        return f"data: {data}\n\n".encode()
    return f"event: {event}\ndata: {data}\n\n".encode()


@dataclass
class Call:
    """One request, resolved: its effective scenario and what it asked for."""

    scenario: Scenario
    body: dict[str, Any]
    requested_model: str
    request_id: str
    stream: bool
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def model(self) -> str:
        """The model reported as served."""
        return self.scenario.model or self.requested_model

    # Token counts in each provider's vocabulary, derived in one place so the
    # normalised figures (total input, cached, output incl. reasoning) agree
    # across providers for the same scenario.
    @property
    def cached(self) -> int:
        return min(self.scenario.cached_input_tokens, self.scenario.input_tokens)

    @property
    def cache_write(self) -> int:
        return min(self.scenario.cache_write_tokens, self.scenario.input_tokens - self.cached)

    @property
    def uncached_input(self) -> int:
        """Input that was neither read from nor written to the cache (anthropic's ``input_tokens``)."""
        return self.scenario.input_tokens - self.cached - self.cache_write

    @property
    def output_with_reasoning(self) -> int:
        return self.scenario.output_tokens + self.scenario.reasoning_tokens


@dataclass
class JsonReply:
    """A complete JSON response, sent with Content-Length (keep-alive friendly)."""

    body: bytes
    headers: Headers
    status: int = 200


@dataclass
class StreamPlan:
    """An SSE response, split so the server can apply the scenario's timing.

    ``preamble`` is sent right after ``ttfb_s`` together with the first content
    frame, ``content`` frames are spaced by ``gap_s``, ``postamble`` follows
    the last content frame. ``error(k)`` is the provider's mid-stream error
    frame after ``k`` content frames.
    """

    headers: Headers
    preamble: list[bytes]
    content: Iterable[bytes]
    postamble: list[bytes]
    error: Callable[[int], bytes]


Reply = JsonReply | StreamPlan


def json_reply(obj: Any, headers: Headers, status: int = 200) -> JsonReply:
    return JsonReply(dumps(obj).encode(), [("Content-Type", "application/json"), *headers], status)


def split_text(text: str, parts: int) -> list[str]:
    """Split ``text`` into at most ``parts`` non-empty slices of near-equal length."""
    if parts <= 0 or not text:
        return []
    k = min(parts, len(text))
    n = len(text)
    return [text[(i * n) // k : ((i + 1) * n) // k] for i in range(k)]


def default_words(n: int) -> list[str]:
    return [f"tok{i}" if i == 0 else f" tok{i}" for i in range(n)]


def content_pieces(
    scenario: Scenario, json_value: Any = None, *, json_wanted: bool = False
) -> list[str]:
    """The content deltas of a reply: one per output token where possible.

    Structured-output requests get valid JSON (so the SDKs' ``parse`` helpers
    succeed), split into ``output_tokens`` pieces; otherwise the scenario's
    fixed text, split likewise; otherwise ``tok0 tok1 ...``.
    """
    n = scenario.output_tokens
    if json_wanted:
        return split_text(dumps(json_value), max(n, 1))
    if scenario.text is not None:
        return split_text(scenario.text, n)
    return default_words(n)


# --- JSON Schema → example value -------------------------------------------

_STRING_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "duration": "PT1S",
    "ipv4": "127.0.0.1",
}


def _resolve_ref(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return {}
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node


def example_for_schema(schema: Any, root: Any = None, _depth: int = 0) -> Any:
    """A plausible value that satisfies a simple JSON Schema.

    Covers what pydantic models produce for the SDKs' ``parse`` helpers
    (``$ref``/``$defs``, ``anyOf`` with null, enums, nested objects, arrays,
    common string formats) and Gemini's upper-case OpenAPI types. Every
    declared property is filled, because strict structured outputs require
    all of them.
    """
    if root is None:
        root = schema
    if _depth > 32 or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return example_for_schema(_resolve_ref(schema["$ref"], root), root, _depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            non_null = [
                o
                for o in options
                if not (isinstance(o, dict) and str(o.get("type", "")).lower() == "null")
            ]
            return example_for_schema((non_null or options)[0], root, _depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                part = _resolve_ref(part["$ref"], root) if "$ref" in part else part
                merged.update(part)
        return example_for_schema(merged, root, _depth + 1)

    kind = schema.get("type")
    if isinstance(kind, list):
        non_null_kinds = [k for k in kind if str(k).lower() != "null"]
        kind = non_null_kinds[0] if non_null_kinds else "null"
    kind = str(kind).lower() if kind is not None else None
    if kind is None:
        if "properties" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"

    if kind == "object":
        props = schema.get("properties") or {}
        return {name: example_for_schema(sub, root, _depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = int(schema.get("minItems") or 0)
        item = schema.get("items") or {}
        return [example_for_schema(item, root, _depth + 1) for _ in range(count)]
    if kind == "string":
        fmt = schema.get("format")
        if fmt in _STRING_FORMATS:
            return _STRING_FORMATS[fmt]
        return "x" * max(1, int(schema.get("minLength") or 1))
    if kind in ("integer", "number"):
        value: float = 1
        if "minimum" in schema:
            value = max(value, schema["minimum"])
        if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
            value = max(value, schema["exclusiveMinimum"] + 1)
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
            value = min(value, schema["exclusiveMaximum"] - 1)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    return None


def chunked(frames: Sequence[bytes]) -> bytes:
    """Frames as one HTTP/1.1 chunk (one write on the socket)."""
    payload = b"".join(frames)
    if not payload:
        return b""
    return b"%x\r\n%s\r\n" % (len(payload), payload)

"""Telemetry: what the client saw of one request. The user layer's input.

Times are unix seconds (wall clock at the start; later marks are derived from a
monotonic clock so durations are exact). Token counts are normalised across
providers: ``input_tokens`` counts every prompt token including cached ones,
``output_tokens`` includes reasoning tokens.

It also loads the camelCase record that OTM-style collectors emit
(``startTime``, ``firstTokenTime``, ``lastTokenTime``, ``inputTokens``, ...).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

Status = Literal["ok", "error", "cancelled", "abandoned"]
Operation = Literal["chat", "responses", "embeddings", "generate_content", "completion"]

# Collectors in the wild emit milliseconds as often as seconds; no unix time in
# seconds exceeds this until the year 5138, so larger values are milliseconds.
_MS_THRESHOLD = 1e11


def _alias(*names: str) -> Any:
    return AliasChoices(*names)


class Telemetry(BaseModel):
    """One LLM request as the client observed it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_assignment=False)

    provider: str | None = Field(default=None, validation_alias=_alias("provider", "platform"))
    model: str | None = Field(default=None, validation_alias=_alias("model", "modelName"))
    request_id: str | None = Field(default=None, validation_alias=_alias("request_id", "requestId"))
    response_id: str | None = Field(
        default=None, validation_alias=_alias("response_id", "responseId")
    )
    """The provider's id of the completion (``chatcmpl-...``, ``resp_...``), not the HTTP request's."""
    operation: Operation = "chat"

    start_time: float | None = Field(default=None, validation_alias=_alias("start_time", "startTime"))
    first_chunk_time: float | None = Field(
        default=None, validation_alias=_alias("first_chunk_time", "firstChunkTime")
    )
    first_token_time: float | None = Field(
        default=None, validation_alias=_alias("first_token_time", "firstTokenTime")
    )
    last_token_time: float | None = Field(
        default=None, validation_alias=_alias("last_token_time", "lastTokenTime")
    )
    end_time: float | None = Field(default=None, validation_alias=_alias("end_time", "endTime"))

    input_tokens: int = Field(default=0, validation_alias=_alias("input_tokens", "inputTokens"))
    cached_input_tokens: int = Field(
        default=0, validation_alias=_alias("cached_input_tokens", "cachedInputTokens")
    )
    output_tokens: int = Field(default=0, validation_alias=_alias("output_tokens", "outputTokens"))
    reasoning_tokens: int = Field(
        default=0, validation_alias=_alias("reasoning_tokens", "reasoningTokens")
    )
    reasoning_streamed: bool = False
    """Reasoning was streamed as visible chunks (anthropic thinking deltas). When
    False (openai, gemini) hidden reasoning is generated before the first
    visible token, inside the time to first token, and is not part of the
    inter-token latency."""
    tokens_estimated: bool = False
    """Some token count is an estimate (either flag below). Records logged before
    the two flags existed carry only this one; loading them sets both."""
    input_tokens_estimated: bool = False
    """``input_tokens`` was counted from the request's text, not reported by the provider."""
    output_tokens_estimated: bool = False
    """``output_tokens`` was counted from the generated text, not reported by the provider."""
    input_text_length: int | None = Field(
        default=None, validation_alias=_alias("input_text_length", "inputTextLength")
    )
    output_text_length: int | None = Field(
        default=None, validation_alias=_alias("output_text_length", "outputTextLength")
    )

    streamed: bool = False
    chunk_count: int | None = None
    """Every chunk (event) of a stream, including those without output."""
    content_chunk_count: int | None = None
    """Chunks that carried output (text, tool arguments, reasoning), from the
    first token to the last; exact even when the token counts are estimates."""
    status: Status = "ok"
    http_status: int | None = None
    error_type: str | None = None

    # Only filled when the user opts in to prompt capture (privacy by default).
    prompt: str | None = None
    completion: str | None = None

    provider_source: str | None = None
    """How capture decided ``provider``: ``"client"`` (``wrap(provider=...)``),
    ``"api"`` (the SDK's own API or a known API host), ``"gateway"`` (a closed
    model reached through a local or private URL, such as a LiteLLM proxy or a
    company gateway: attributed to the model's own provider), ``"self-hosted"``
    (an open-weight model behind a local or private URL), ``"unknown-host"``."""
    capture_notes: list[str] | None = None
    """What capture repaired in what the server sent (usage as text, negative or
    fractional counts, text that was not valid Unicode); the record is kept."""

    # What the API named, for export (OpenTelemetry GenAI conventions); None when unknown.
    request_model: str | None = Field(
        default=None, validation_alias=_alias("request_model", "requestModel")
    )
    """The model the request asked for (``model`` is the served one when the response named it)."""
    response_model: str | None = Field(
        default=None, validation_alias=_alias("response_model", "responseModel")
    )
    """The model the response said served it."""
    finish_reasons: tuple[str, ...] | None = None
    """Why each choice (candidate) ended, as the provider reported it."""
    server_address: str | None = None
    server_port: int | None = Field(default=None, ge=0, le=65535)
    cache_write_input_tokens: int = Field(
        default=0, validation_alias=_alias("cache_write_input_tokens", "cacheWriteInputTokens")
    )
    """Input tokens written to the provider's prompt cache (part of ``input_tokens``)."""

    @field_validator(
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cache_write_input_tokens",
        mode="before",
    )
    @classmethod
    def _tokens(cls, v: Any) -> Any:
        if v is None:
            return 0
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError("token count must be finite")
            if v != int(v):
                raise ValueError("token count must be a whole number")
            v = int(v)
        if isinstance(v, int) and v < 0:
            raise ValueError("token count must be >= 0")
        return v

    @model_validator(mode="before")
    @classmethod
    def _legacy_estimate_flag(cls, data: Any) -> Any:
        # A record from before the per-side flags: its one flag covered both counts.
        if isinstance(data, dict) and data.get("tokens_estimated") is True:
            if "input_tokens_estimated" not in data and "output_tokens_estimated" not in data:
                data = {**data, "input_tokens_estimated": True, "output_tokens_estimated": True}
        return data

    @field_validator("input_text_length", "output_text_length", "chunk_count", "content_chunk_count")
    @classmethod
    def _non_negative(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator(
        "start_time", "first_chunk_time", "first_token_time", "last_token_time", "end_time", mode="before"
    )
    @classmethod
    def _time(cls, v: Any) -> Any:
        if v is None:
            return None
        f = float(v)
        if not math.isfinite(f):
            raise ValueError("time must be a finite number of unix seconds")
        if f < 0:
            raise ValueError("time must be >= 0 (unix seconds)")
        return f / 1000.0 if f > _MS_THRESHOLD else f

    @model_validator(mode="after")
    def _consistent(self) -> Telemetry:
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError(
                f"cached_input_tokens ({self.cached_input_tokens}) exceeds input_tokens ({self.input_tokens})"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceeds output_tokens ({self.output_tokens})"
            )
        order = [
            ("start_time", self.start_time),
            ("first_token_time", self.first_token_time),
            ("last_token_time", self.last_token_time),
        ]
        known = [(n, t) for n, t in order if t is not None]
        for (n1, t1), (n2, t2) in zip(known, known[1:]):
            if t2 < t1:
                raise ValueError(f"{n2} ({t2}) is before {n1} ({t1})")
        if self.first_chunk_time is not None and self.start_time is not None:
            if self.first_chunk_time < self.start_time:
                raise ValueError("first_chunk_time is before start_time")
        if self.first_chunk_time is not None and self.first_token_time is not None:
            if self.first_chunk_time > self.first_token_time:
                raise ValueError(
                    f"first_chunk_time ({self.first_chunk_time}) is after first_token_time "
                    f"({self.first_token_time}): the first token arrives in a chunk"
                )
        if self.end_time is not None and self.start_time is not None:
            if self.end_time < self.start_time:
                raise ValueError(f"end_time ({self.end_time}) is before start_time ({self.start_time})")
        return self

    # --- derived timings (None when the record does not carry what they need) ---

    @property
    def ttft_s(self) -> float | None:
        """Time to first token (queue + prefill + network), seconds."""
        if self.start_time is None or self.first_token_time is None:
            return None
        return self.first_token_time - self.start_time

    @property
    def duration_s(self) -> float | None:
        """Start to last token (or to the end of the call), seconds."""
        if self.start_time is None:
            return None
        end = self.last_token_time if self.last_token_time is not None else self.end_time
        return None if end is None else end - self.start_time

    @property
    def decode_s(self) -> float | None:
        """First to last token, seconds: the decode phase as the client saw it."""
        if self.first_token_time is None or self.last_token_time is None:
            return None
        return self.last_token_time - self.first_token_time

    @property
    def itl_s(self) -> float | None:
        """Mean inter-token latency of a streamed response with >= 2 output tokens.

        When the output count is an estimate (no usage in the stream) and the
        stream's content chunks were counted, the chunks set the pace instead
        (:attr:`inter_chunk_latency_s`): servers stream one token per chunk,
        and a count of chunks is exact where a text-based token count is not.
        A record whose first and last token times differ was streamed whatever
        its flag says (collectors that emit camelCase records do not set one);
        a non-streamed call has first == last, so it has no inter-token latency.
        """
        if self.output_tokens_estimated:
            icl = self.inter_chunk_latency_s
            if icl is not None:
                return icl
        d = self.decode_s
        n = self.visible_output_tokens
        if d is None or n < 2 or (not self.streamed and d <= 0):
            return None
        return d / (n - 1)

    @property
    def inter_chunk_latency_s(self) -> float | None:
        """Mean time between the content chunks of a stream (first to last token), seconds."""
        d = self.decode_s
        n = self.content_chunk_count
        if d is None or n is None or n < 2:
            return None
        return d / (n - 1)

    @property
    def output_tps(self) -> float | None:
        """Observed output speed, tokens per second of decode."""
        itl = self.itl_s
        if itl is not None:
            return 1.0 / itl if itl > 0 else None
        return None

    @property
    def visible_output_tokens(self) -> int:
        """Output tokens that arrived between the first and the last token."""
        if self.reasoning_streamed:
            return self.output_tokens
        return self.output_tokens - self.reasoning_tokens

    @property
    def fresh_input_tokens(self) -> int:
        return self.input_tokens - self.cached_input_tokens

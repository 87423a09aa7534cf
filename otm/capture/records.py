"""Turning a finished :class:`~otm.capture.call.Call` into Telemetry and a Record.

Counts missing from the response are estimated from text here (and flagged);
region and tags follow the one precedence rule of :func:`otm.config.effective`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from otm._log import log_once
from otm.capture.tokens import count_tokens
from otm.config import effective
from otm.record import Record
from otm.telemetry import Telemetry

if TYPE_CHECKING:
    from otm.capture.call import Call

ATTR = "otm"
"""Name of the attribute carrying the record on responses, streams and helpers."""

_perf = time.perf_counter


def build_record(call: Call) -> Record:
    """The Telemetry and the Record of a finished call."""
    prepare = call.prepare
    if prepare is not None:
        call.prepare = None
        try:
            prepare(call)
        except Exception as exc:
            log_once(f"capture.prepare[{call.provider}]", exc)
    w0, t0 = call.start_wall, call.t0
    t_end = call.t_end if call.t_end is not None else _perf()
    if call.streamed:
        first_chunk = call.t_first_chunk
        first_token = call.t_first_token
        last = call.t_last
    else:
        # A non-streamed response arrives whole: first and last token = return.
        first_chunk = first_token = last = t_end if call.status == "ok" else None

    out_tokens = call.output_tokens
    in_tokens = call.input_tokens
    estimated = call.tokens_estimated
    text = "".join(call.text_parts) if call.text_parts else None
    if out_tokens is None and (call.output_text_length or text):
        out_tokens = count_tokens(
            text, call.output_text_length, call.served_model or call.model
        )
        estimated = True
    if (
        in_tokens is None
        and call.input_text_length
        and (call.status == "ok" or call.t_headers is not None or call.chunks)
    ):
        # Only when the server answered: a request refused or cancelled
        # before its response began was (as far as we know) not processed.
        in_tokens = count_tokens(
            call.prompt, call.input_text_length, call.served_model or call.model
        )
        estimated = True
    in_tokens = in_tokens or 0
    cached = min(call.cached_input_tokens or 0, in_tokens)
    out_tokens = out_tokens or 0
    reasoning = min(call.reasoning_tokens or 0, out_tokens)

    settings = call.settings
    config = call.config
    capture = config.capture_prompts
    telemetry = _make_telemetry(
        {
            "provider": call.provider,
            "model": call.served_model or call.model,
            "request_id": call.request_id,
            "operation": call.operation,
            "start_time": w0,
            "first_chunk_time": None if first_chunk is None else w0 + (first_chunk - t0),
            "first_token_time": None if first_token is None else w0 + (first_token - t0),
            "last_token_time": None if last is None else w0 + (last - t0),
            "end_time": w0 + (t_end - t0),
            "input_tokens": in_tokens,
            "cached_input_tokens": cached,
            "output_tokens": out_tokens,
            "reasoning_tokens": reasoning,
            "reasoning_streamed": call.reasoning_streamed,
            "tokens_estimated": estimated,
            "input_text_length": call.input_text_length,
            "output_text_length": call.output_text_length or None,
            "streamed": call.streamed,
            "chunk_count": call.chunks if call.streamed else None,
            "status": call.status,
            "http_status": call.http_status,
            "error_type": call.error_type,
            "prompt": call.prompt if capture else None,
            "completion": (call.completion or text) if capture else None,
            # what the API named (OpenTelemetry GenAI export)
            "request_model": call.model,
            "response_model": call.served_model,
            "response_id": call.response_id,
            "finish_reasons": None if not call.finish_reasons else tuple(call.finish_reasons),
            "server_address": call.server_address,
            "server_port": call.server_port,
            "cache_write_input_tokens": min(call.cache_write_tokens or 0, in_tokens),
        }
    )
    # Tags: configured defaults < the runs the call was made in (outer to
    # inner; a collector offering ``record_tags``) < the client's.
    layers = [getattr(collector, "record_tags", None) for collector in call.scope]
    if settings is not None:
        layers.append(settings.tags)
    region, tags = effective(
        region=None if settings is None else settings.region, tags=layers, settings=config
    )
    return Record(
        telemetry,
        deployment=None if settings is None else settings.deployment,
        region=region,
        tags=tags,
        scope=call.scope,
    )


_TELEMETRY_FIELDS = frozenset(Telemetry.model_fields)
_telemetry_new = Telemetry.__new__
_set = object.__setattr__
_fast_telemetry: bool | None = None
"""Whether the fast construction applies (decided on the first record: no
private attributes, and the values name exactly the model's fields)."""


def _make_telemetry(values: dict[str, Any]) -> Telemetry:
    """Telemetry from trusted values, skipping validation (the hot end of every call).

    Equivalent to ``Telemetry.model_construct(**values)`` when ``values`` names
    every field (several times faster); falls back to it otherwise.
    """
    global _fast_telemetry
    fast = _fast_telemetry
    if fast is None:
        fast = _fast_telemetry = (
            not Telemetry.__private_attributes__ and values.keys() == _TELEMETRY_FIELDS
        )
    if fast:
        obj = _telemetry_new(Telemetry)
        _set(obj, "__dict__", values)
        _set(obj, "__pydantic_fields_set__", set(values))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj
    return Telemetry.model_construct(**values)


def attach(obj: Any, record: Record) -> None:
    """Put ``record`` on ``obj`` as ``.otm`` without touching its fields or equality."""
    try:
        object.__setattr__(obj, ATTR, record)
    except Exception as exc:  # frozen or slotted objects: nothing to attach to
        log_once(f"attach to {type(obj).__name__}", exc)

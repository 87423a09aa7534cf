"""Turning a finished :class:`~otm.capture.call.Call` into Telemetry and a Record.

Counts missing from the response are estimated from text here (and flagged);
region and tags follow the one precedence rule of :func:`otm.config.effective`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from otm._log import log_once
from otm.capture.attribution import attribution_of
from otm.capture.sanitize import count, text
from otm.capture.tokens import count_tokens
from otm.config import effective
from otm.record import Record
from otm.telemetry import Telemetry

if TYPE_CHECKING:
    from otm.capture.call import Call

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

    # What the server sent is checked here, once: a bad value is coerced or
    # dropped (and noted), never allowed to cost the record.
    notes = list(call.notes)  # adapters that add counts up note their repairs there
    out_tokens = count(call.output_tokens, "output_tokens", notes)
    in_tokens = count(call.input_tokens, "input_tokens", notes)
    cached = count(call.cached_input_tokens, "cached_input_tokens", notes)
    reasoning = count(call.reasoning_tokens, "reasoning_tokens", notes)
    model = text(call.served_model or call.model, "model", notes)
    request_id = text(call.request_id, "request_id", notes)
    prompt = text(call.prompt, "prompt", notes)
    joined = text("".join(call.text_parts), "output text", notes) if call.text_parts else None
    in_estimated = call.input_estimated
    out_estimated = call.output_estimated
    if out_tokens is None and (call.output_text_length or joined):
        out_tokens = count_tokens(joined, call.output_text_length, model)
        out_estimated = True
    if (
        in_tokens is None
        and call.input_text_length
        and (call.status == "ok" or call.t_headers is not None or call.chunks)
    ):
        # Only when the server answered: a request refused or cancelled
        # before its response began was (as far as we know) not processed.
        in_tokens = count_tokens(prompt, call.input_text_length, model)
        in_estimated = True
    in_tokens = in_tokens or 0
    out_tokens = out_tokens or 0
    if cached is not None and cached > in_tokens:
        notes.append(f"cached_input_tokens={cached} exceeds input_tokens={in_tokens}: capped")
        cached = in_tokens
    if reasoning is not None and reasoning > out_tokens:
        notes.append(f"reasoning_tokens={reasoning} exceeds output_tokens={out_tokens}: capped")
        reasoning = out_tokens
    cached = cached or 0
    reasoning = reasoning or 0

    settings = call.settings
    config = call.config
    capture = config.capture_prompts
    completion = (text(call.completion, "completion", notes) or joined) if capture else None
    provider, provider_source = attribution_of(call, model)
    telemetry = _make_telemetry(
        {
            "provider": provider,
            "model": model,
            "request_id": request_id,
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
            "tokens_estimated": in_estimated or out_estimated,
            "input_tokens_estimated": in_estimated,
            "output_tokens_estimated": out_estimated,
            "response_id": call.response_id,
            "input_text_length": call.input_text_length,
            "output_text_length": call.output_text_length or None,
            "streamed": call.streamed,
            "chunk_count": call.chunks if call.streamed and call.chunks_counted else None,
            "content_chunk_count": (
                call.content_chunks if call.streamed and call.chunks_counted else None
            ),
            "status": call.status,
            "http_status": call.http_status,
            "error_type": call.error_type,
            "prompt": prompt if capture else None,
            "completion": completion,
            "provider_source": provider_source,
            "capture_notes": notes or None,
            **_api_names(call, in_tokens, notes),
        }
    )
    if notes:
        log_once(
            f"capture.repaired[{call.provider}]",
            message=f"otm: {call.provider} sent values that needed repair ({'; '.join(notes)}); "
            "the record is kept (telemetry.capture_notes)",
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


def _api_names(call: Call, in_tokens: int, notes: list[str]) -> dict[str, Any]:
    """What the API named, for export under the OpenTelemetry GenAI conventions."""
    reasons = call.finish_reasons
    writes = count(call.cache_write_tokens, "cache_write_tokens", notes) or 0
    return {
        "request_model": text(call.model, "request model", notes),
        "response_model": text(call.served_model, "response model", notes),
        "response_id": text(call.response_id, "response_id", notes),
        "finish_reasons": None
        if not reasons
        else tuple(text(r, "finish_reason", notes) or "" for r in reasons),
        "server_address": call.server_address,
        "server_port": call.server_port,
        "cache_write_input_tokens": min(writes, in_tokens),
    }


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

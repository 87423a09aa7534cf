"""User layer: telemetry -> phases (docs/methodology.md "User layer").

What the client saw, turned into columns the other layers compute on: fresh
and cached input, output tokens (hidden reasoning included), time to first
token, the total duration and the decode speed, with how it was obtained:

* ``itl``: a stream's first and last visible token give the inter-token
  latency, exactly as :attr:`otm.telemetry.Telemetry.itl_s` defines it
  (visible tokens only: hidden reasoning is decoded before the first one);
* ``latency``: a non-streamed call gives only its total duration;
* ``tokens``: no timing at all, only token counts (widest range).

Which streams are clean enough to teach a deployment's history is decided
here too (``floor_ok``); the history itself lives in :mod:`.floor`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from otm.telemetry import Telemetry

__all__ = [
    "METHODS",
    "METHOD_ITL",
    "METHOD_LATENCY",
    "METHOD_TOKENS",
    "Columns",
    "Row",
    "columns",
    "itl_columns",
    "row",
]

METHOD_ITL, METHOD_LATENCY, METHOD_TOKENS = 0, 1, 2
METHODS = ("itl", "latency", "tokens")

_TIME_FIELDS = ("start_time", "first_token_time", "last_token_time", "end_time")
_TOKEN_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


@dataclass
class Columns:
    """One request per row; NaN where a timing is unknown."""

    provider: np.ndarray  # object (str | None)
    model: np.ndarray  # object (str | None)
    fresh_in: np.ndarray
    cached_in: np.ndarray
    output: np.ndarray
    reasoning: np.ndarray
    ttft_s: np.ndarray
    decode_s: np.ndarray
    duration_s: np.ndarray
    itl_s: np.ndarray
    """Observed inter-token latency of visible decode (NaN unless method is itl)."""
    method: np.ndarray  # int8, METHOD_*
    floor_ok: np.ndarray
    """Rows whose ITL is clean enough to teach the floor."""
    status: np.ndarray  # object: ok | error | cancelled | abandoned
    grid_override: np.ndarray
    """Per-record grid intensity, gCO2e/kWh (NaN: the region's)."""

    def __len__(self) -> int:
        return int(self.output.shape[0])

    def take(self, idx: np.ndarray) -> Columns:
        """The rows ``idx`` (a subset for one group)."""
        return Columns(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})


def _num(x: Any, n: int, default: float = np.nan) -> np.ndarray:
    if x is None:
        return np.full(n, default)
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        return np.full(n, float(a))
    return a.astype(float, copy=True)


def _obj(x: Any, n: int) -> np.ndarray:
    if x is None or isinstance(x, str):
        out = np.empty(n, dtype=object)
        out[:] = x
        return out
    a = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=object)
    return a


def _as_telemetry(x: Any) -> Telemetry:
    if isinstance(x, Telemetry):
        return x
    if isinstance(x, Mapping):
        return Telemetry.model_validate(x)
    raise TypeError(
        f"expected Telemetry or a mapping of its fields (snake_case or camelCase), got {type(x).__name__}"
    )


def _from_telemetry(items: Sequence[Telemetry]) -> dict[str, Any]:
    n = len(items)
    cols: dict[str, Any] = {k: np.empty(n) for k in (*_TIME_FIELDS, *_TOKEN_FIELDS)}
    visible = np.empty(n)
    itl = np.empty(n)
    prov = np.empty(n, dtype=object)
    model = np.empty(n, dtype=object)
    status = np.empty(n, dtype=object)
    nan = np.nan
    st, ft, lt, et = (cols[k] for k in _TIME_FIELDS)
    it, ct, ot, rt = (cols[k] for k in _TOKEN_FIELDS)
    for i, t in enumerate(items):
        prov[i] = t.provider
        model[i] = t.model
        status[i] = t.status
        s0, f0, l0, e0 = t.start_time, t.first_token_time, t.last_token_time, t.end_time
        st[i] = nan if s0 is None else s0
        ft[i] = nan if f0 is None else f0
        lt[i] = nan if l0 is None else l0
        et[i] = nan if e0 is None else e0
        it[i] = t.input_tokens
        ct[i] = t.cached_input_tokens
        ot[i] = t.output_tokens
        rt[i] = t.reasoning_tokens
        # the record's own definitions: visible tokens and inter-token latency
        visible[i] = t.visible_output_tokens
        x = t.itl_s
        itl[i] = nan if x is None else x
    cols["provider"] = prov
    cols["model"] = model
    cols["status"] = status
    cols["visible_output_tokens"] = visible
    cols["itl_s"] = itl
    return cols


def itl_columns(decode_s: np.ndarray, visible: np.ndarray, streamed: np.ndarray) -> np.ndarray:
    """:attr:`Telemetry.itl_s` over columns (NaN where it would be None).

    The columnar twin of the record's property, for logs handed over as
    arrays; ``tests/test_estimate.py`` checks the two agree record by record.
    """
    ok = np.isfinite(decode_s) & (visible >= 2) & (streamed | (decode_s > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, decode_s / (visible - 1.0), np.nan)


def columns(
    data: Sequence[Telemetry | Mapping[str, Any]] | Mapping[str, Any],
    *,
    min_plausible_itl_s: float,
    min_tokens_for_floor: int,
) -> Columns:
    """Normalise telemetry into :class:`Columns`.

    ``data`` is a sequence of :class:`Telemetry` (or of mappings of its
    fields, camelCase included), or one columnar mapping: Telemetry's own
    field names (``start_time``, ``first_token_time``, ``last_token_time``,
    ``end_time``, token counts, ``streamed``, ``reasoning_streamed``,
    ``provider``, ``model``), or the derived timings ``ttft_s``, ``decode_s``,
    ``duration_s`` (and optionally ``itl_s``, ``visible_output_tokens``)
    directly. Scalars broadcast.
    """
    if isinstance(data, Mapping):
        raw: Mapping[str, Any] = data
        n = _length(raw)
        _check_columns(raw, n)
    else:
        items = [_as_telemetry(x) for x in data]
        n = len(items)
        raw = _from_telemetry(items)

    inp = np.maximum(_num(raw.get("input_tokens"), n, 0.0), 0.0)
    cached = np.clip(_num(raw.get("cached_input_tokens"), n, 0.0), 0.0, None)
    cached = np.minimum(cached, inp)
    out = np.maximum(_num(raw.get("output_tokens"), n, 0.0), 0.0)
    reasoning = np.clip(_num(raw.get("reasoning_tokens"), n, 0.0), 0.0, None)
    reasoning = np.minimum(reasoning, out)
    for a in (inp, cached, out, reasoning):
        if not np.isfinite(a).all():
            np.nan_to_num(a, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    st = _num(raw.get("start_time"), n)
    ft = _num(raw.get("first_token_time"), n)
    lt = _num(raw.get("last_token_time"), n)
    et = _num(raw.get("end_time"), n)
    ttft = _num(raw.get("ttft_s"), n) if "ttft_s" in raw else ft - st
    decode = _num(raw.get("decode_s"), n) if "decode_s" in raw else lt - ft
    if "duration_s" in raw:
        duration = _num(raw.get("duration_s"), n)
    else:
        end = np.where(np.isfinite(lt), lt, et)
        duration = end - st

    # negative or non-finite durations are unknown, not errors
    for a in (ttft, decode, duration):
        a[~np.isfinite(a) | (a < 0)] = np.nan

    if "visible_output_tokens" in raw:
        visible = np.clip(_num(raw.get("visible_output_tokens"), n, 0.0), 0.0, None)
        visible = np.minimum(np.nan_to_num(visible, nan=0.0), out)
    else:
        # hidden reasoning (openai, gemini) arrives before the first visible
        # token; streamed reasoning (anthropic thinking) is part of the stream
        rs = _flag(raw.get("reasoning_streamed", False), n)
        visible = np.where(rs, out, out - reasoning)
    if "itl_s" in raw:
        itl = _num(raw.get("itl_s"), n)
    else:
        itl = itl_columns(decode, visible, _flag(raw.get("streamed", False), n))
        if "content_chunk_count" in raw:
            # an output count estimated from text says little about the steps; the
            # chunks the stream carried say exactly how many arrived (as Telemetry.itl_s)
            chunks = _num(raw.get("content_chunk_count"), n)
            est = _flag(raw.get("output_tokens_estimated", raw.get("tokens_estimated", False)), n)
            with np.errstate(divide="ignore", invalid="ignore"):
                by_chunk = np.where(chunks >= 2, decode / (chunks - 1.0), np.nan)
            itl = np.where(est & np.isfinite(by_chunk), by_chunk, itl)

    itl_ok = np.isfinite(itl) & (itl >= min_plausible_itl_s)
    lat_ok = ~itl_ok & np.isfinite(duration) & (duration > 0) & (out >= 1)
    method = np.where(itl_ok, METHOD_ITL, np.where(lat_ok, METHOD_LATENCY, METHOD_TOKENS)).astype(
        np.int8
    )
    itl = np.where(itl_ok, itl, np.nan)
    floor_ok = itl_ok & (visible >= min_tokens_for_floor)

    return Columns(
        provider=_obj(raw.get("provider"), n),
        model=_obj(raw.get("model"), n),
        fresh_in=inp - cached,
        cached_in=cached,
        output=out,
        reasoning=reasoning,
        ttft_s=ttft,
        decode_s=decode,
        duration_s=duration,
        itl_s=itl,
        method=method,
        floor_ok=floor_ok,
        status=_obj(raw.get("status", "ok"), n),
        grid_override=_num(raw.get("grid_gco2e_per_kwh"), n) if "grid_gco2e_per_kwh" in raw else np.full(n, np.nan),
    )


class Row(NamedTuple):
    """One request as plain floats: :func:`row`, the one-record twin of :class:`Columns`."""

    provider: str | None
    model: str | None
    fresh_in: float
    cached_in: float
    output: float
    duration_s: float
    itl_s: float
    method: int
    floor_ok: bool
    status: str | None


def row(t: Telemetry, *, min_plausible_itl_s: float, min_tokens_for_floor: int) -> Row:
    """:func:`columns` of one :class:`Telemetry`, in plain floats (the one-record path).

    The same rules, value for value: ``tests/test_estimate_fast.py`` checks the
    two agree record by record.
    """
    nan = math.nan
    inp = max(float(t.input_tokens), 0.0)
    cached = min(max(float(t.cached_input_tokens), 0.0), inp)
    out = max(float(t.output_tokens), 0.0)
    st, lt = t.start_time, t.last_token_time
    end = lt if lt is not None else t.end_time
    duration = nan if st is None or end is None else float(end) - float(st)
    if not (duration >= 0.0 and math.isfinite(duration)):
        duration = nan  # negative or non-finite durations are unknown, not errors
    x = t.itl_s
    itl = nan if x is None else float(x)
    itl_ok = math.isfinite(itl) and itl >= min_plausible_itl_s
    if itl_ok:
        method = METHOD_ITL
    elif math.isfinite(duration) and duration > 0 and out >= 1:
        method = METHOD_LATENCY
    else:
        method = METHOD_TOKENS
    return Row(
        provider=t.provider,
        model=t.model,
        fresh_in=inp - cached,
        cached_in=cached,
        output=out,
        duration_s=duration,
        itl_s=itl if itl_ok else nan,
        method=method,
        floor_ok=itl_ok and t.visible_output_tokens >= min_tokens_for_floor,
        status=t.status,
    )


_COUNTS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "visible_output_tokens")


def _check_columns(raw: Mapping[str, Any], n: int) -> None:
    """Columns of one length, token counts finite and >= 0: a clear error, never a smaller sum."""
    for name, v in raw.items():
        if isinstance(v, (str, bytes)) or v is None or np.ndim(v) == 0:
            continue
        k = len(v)
        if k != n:
            raise ValueError(f"estimate_many: column {name!r} has {k} values, the others {n}")
    for name in _COUNTS:
        if name not in raw or raw[name] is None:
            continue
        a = np.asarray(raw[name], dtype=float)
        bad = ~np.isfinite(a) | (a < 0)
        if bad.any():
            i = int(np.flatnonzero(np.atleast_1d(bad))[0])
            shown = a.flat[i] if a.ndim else float(a)
            raise ValueError(
                f"estimate_many: column {name!r} must hold token counts >= 0; "
                f"{int(bad.sum())} value(s) are not (the first, at row {i}: {shown})"
            )


def _flag(x: Any, n: int) -> np.ndarray:
    a = np.asarray(x, dtype=bool)
    return np.full(n, bool(a)) if a.ndim == 0 else a


def _length(raw: Mapping[str, Any]) -> int:
    for v in raw.values():
        if isinstance(v, (str, bytes)) or v is None:
            continue
        try:
            a = np.asarray(v) if not isinstance(v, np.ndarray) else v
        except Exception:  # noqa: BLE001, S112 - never raise from a lookup
            continue
        if a.ndim >= 1:
            return int(a.shape[0])
    return 1

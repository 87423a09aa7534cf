"""User layer: telemetry -> phases (docs/methodology.md "User layer").

What the client saw, turned into columns the other layers compute on: fresh
and cached input, output tokens (reasoning included), time to first token,
and the decode speed, with how it was obtained:

* ``itl``: a stream's first and last token times give the inter-token latency;
* ``latency``: a non-streamed call gives only the total, so the decode time is
  the total minus an estimated time to first token (wider range);
* ``tokens``: no timing at all, only token counts (widest range).

It also keeps the per-deployment floor: the fastest stream seen for a
(provider, model, deployment), which bounds how slow the serving engine's
step can be (docs "Learning the floor").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from otm.telemetry import Telemetry

__all__ = [
    "FLOORS",
    "METHODS",
    "METHOD_ITL",
    "METHOD_LATENCY",
    "METHOD_TOKENS",
    "Columns",
    "FloorTracker",
    "columns",
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


def _from_telemetry(items: Sequence[Telemetry]) -> dict[str, Any]:
    n = len(items)
    cols: dict[str, Any] = {k: np.empty(n) for k in (*_TIME_FIELDS, *_TOKEN_FIELDS)}
    prov = np.empty(n, dtype=object)
    model = np.empty(n, dtype=object)
    streamed = np.zeros(n, dtype=bool)
    nan = np.nan
    st, ft, lt, et = (cols[k] for k in _TIME_FIELDS)
    it, ct, ot, rt = (cols[k] for k in _TOKEN_FIELDS)
    for i, t in enumerate(items):
        prov[i] = t.provider
        model[i] = t.model
        st[i] = nan if t.start_time is None else t.start_time
        ft[i] = nan if t.first_token_time is None else t.first_token_time
        lt[i] = nan if t.last_token_time is None else t.last_token_time
        et[i] = nan if t.end_time is None else t.end_time
        it[i] = t.input_tokens
        ct[i] = t.cached_input_tokens
        ot[i] = t.output_tokens
        rt[i] = t.reasoning_tokens
        streamed[i] = t.streamed
    cols["provider"] = prov
    cols["model"] = model
    cols["streamed"] = streamed
    cols["status"] = np.array([t.status for t in items], dtype=object)
    return cols


def columns(
    data: Sequence[Telemetry] | Mapping[str, Any],
    *,
    min_plausible_itl_s: float,
    min_tokens_for_floor: int,
) -> Columns:
    """Normalise telemetry (objects or a columnar mapping) into :class:`Columns`.

    A mapping may carry Telemetry's own field names (``start_time``,
    ``first_token_time``, ``last_token_time``, ``end_time``, token counts,
    ``streamed``, ``provider``, ``model``) or the derived timings ``ttft_s``,
    ``decode_s``, ``duration_s`` directly. Scalars broadcast.
    """
    if isinstance(data, Mapping):
        raw: Mapping[str, Any] = data
        n = _length(raw)
    else:
        items = list(data)
        n = len(items)
        raw = _from_telemetry(items)

    inp = np.maximum(_num(raw.get("input_tokens"), n, 0.0), 0.0)
    cached = np.clip(_num(raw.get("cached_input_tokens"), n, 0.0), 0.0, None)
    cached = np.minimum(cached, inp)
    out = np.maximum(_num(raw.get("output_tokens"), n, 0.0), 0.0)
    reasoning = np.clip(_num(raw.get("reasoning_tokens"), n, 0.0), 0.0, None)
    reasoning = np.minimum(reasoning, out)
    for a in (inp, cached, out, reasoning):
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
    streamed = np.asarray(raw.get("streamed", False), dtype=bool)
    if streamed.ndim == 0:
        streamed = np.full(n, bool(streamed))

    # negative or non-finite durations are unknown, not errors
    for a in (ttft, decode, duration):
        a[~np.isfinite(a) | (a < 0)] = np.nan

    visible = out - reasoning
    with np.errstate(divide="ignore", invalid="ignore"):
        # Hidden reasoning is decoded before the first visible token: the stream
        # then shows only the visible tokens. If the reasoning could not have
        # fitted in the time to first token at that speed, it was streamed too.
        itl_visible = decode / (visible - 1.0)
        itl_all = decode / (out - 1.0)
        hidden_fits = reasoning * itl_visible <= np.where(np.isfinite(ttft), ttft, np.inf)
        use_visible = (reasoning > 0) & (visible >= 2) & hidden_fits
        itl = np.where(use_visible, itl_visible, itl_all)
    # a stream with >= 2 tokens whose first and last token differ in time
    streamish = (streamed | (decode > 0)) & (out >= 2)
    itl_ok = streamish & np.isfinite(itl) & (itl >= min_plausible_itl_s)
    lat_ok = ~itl_ok & np.isfinite(duration) & (duration > 0) & (out >= 1)
    method = np.where(itl_ok, METHOD_ITL, np.where(lat_ok, METHOD_LATENCY, METHOD_TOKENS)).astype(
        np.int8
    )
    itl = np.where(itl_ok, itl, np.nan)
    floor_ok = itl_ok & (np.where(use_visible, visible, out) >= min_tokens_for_floor)

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
    )


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


class FloorTracker:
    """The fastest clean stream seen per deployment key (thread-safe, bounded).

    The fastest inter-token latency ever observed for a deployment is an upper
    bound on its per-step floor: a step can take no longer than the fastest
    step we saw. The estimator lowers its assumed floor to it, never raises it
    (a busy service may never show its idle speed).
    """

    def __init__(self, max_keys: int = 4096) -> None:
        self._lock = threading.Lock()
        self._floors: OrderedDict[Hashable, float] = OrderedDict()
        self._max = max_keys

    def get(self, key: Hashable) -> float | None:
        with self._lock:
            v = self._floors.get(key)
            if v is not None:
                self._floors.move_to_end(key)
            return v

    def observe(self, key: Hashable, itl_s: float) -> None:
        if not np.isfinite(itl_s) or itl_s <= 0:
            return
        with self._lock:
            old = self._floors.get(key)
            if old is None or itl_s < old:
                self._floors[key] = float(itl_s)
            self._floors.move_to_end(key)
            while len(self._floors) > self._max:
                self._floors.popitem(last=False)

    def reset(self) -> None:
        with self._lock:
            self._floors.clear()

    def items(self) -> Iterable[tuple[Hashable, float]]:
        with self._lock:
            return list(self._floors.items())


FLOORS = FloorTracker()
"""The process-wide tracker that :func:`otm.estimate` reads and updates."""

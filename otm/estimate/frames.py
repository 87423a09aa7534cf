"""Data frames into the estimator: pandas, Arrow and polars.

:func:`to_columns` turns a pandas ``DataFrame``, a pyarrow ``Table`` or
``RecordBatch``, a polars ``DataFrame`` (or a dict of arrays, Series or
Arrow arrays) into the columnar mapping of numpy arrays that
:func:`~otm.estimate.estimate_many` takes: Telemetry's field names (or their
camelCase aliases), or the derived timings ``ttft_s``, ``decode_s``,
``duration_s``, ``itl_s``. Numeric columns without nulls come through
without a copy; datetimes become unix seconds, durations seconds, times in
unix milliseconds seconds (as :class:`~otm.telemetry.Telemetry` reads them),
nulls NaN (unknown). Columns the estimator does not read are left alone.

Out of it: :mod:`.tables`. pandas, pyarrow and polars are optional (extras
``pandas``, ``arrow``, ``polars``); a frame given is read through its own
library, which this module never imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from otm.telemetry import Telemetry

__all__ = ["is_frame", "to_columns"]

TIME_COLUMNS = ("start_time", "first_chunk_time", "first_token_time", "last_token_time", "end_time")
DURATION_COLUMNS = ("ttft_s", "decode_s", "duration_s", "itl_s")
TEXT_COLUMNS = ("provider", "model", "status")
FLAG_COLUMNS = ("streamed", "reasoning_streamed", "output_tokens_estimated", "tokens_estimated")
COUNT_COLUMNS = (
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "visible_output_tokens",
)
OVERRIDE_COLUMNS = ("grid_gco2e_per_kwh", "content_chunk_count")
"""Per-record inputs beside the telemetry (a live grid intensity for the hour served)."""
READ = frozenset(
    (*TIME_COLUMNS, *DURATION_COLUMNS, *TEXT_COLUMNS, *FLAG_COLUMNS, *COUNT_COLUMNS, *OVERRIDE_COLUMNS)
)
"""The columns the estimator reads; the others are not converted."""

_MS_THRESHOLD = 1e11  # as Telemetry: no unix time in seconds exceeds it before the year 5138


def _aliases() -> dict[str, str]:
    """camelCase (and other validation aliases) -> Telemetry field name, from the model itself."""
    out: dict[str, str] = {}
    for name, field in Telemetry.model_fields.items():
        alias = field.validation_alias
        for choice in getattr(alias, "choices", ()) or ():
            if isinstance(choice, str):
                out[choice] = name
    out.update({"platform": "provider", "modelName": "model"})
    return out


_ALIASES = _aliases()


# ---------------------------------------------------------------------- in


def _module(obj: Any) -> str:
    return type(obj).__module__.split(".", 1)[0]


def is_frame(data: Any) -> bool:
    """A pandas/polars DataFrame or a pyarrow Table/RecordBatch (without importing any of them)."""
    mod = _module(data)
    if mod == "pandas":
        return type(data).__name__ == "DataFrame"
    if mod == "polars":
        return type(data).__name__ in ("DataFrame", "LazyFrame")
    if mod == "pyarrow":
        return type(data).__name__ in ("Table", "RecordBatch")
    return False


def _is_columnar_value(v: Any) -> bool:
    return _module(v) in ("pandas", "polars", "pyarrow") or isinstance(v, np.ndarray)


def wants_columns(data: Any) -> bool:
    """True when ``data`` should go through :func:`to_columns`: a frame, or a dict holding columns."""
    if is_frame(data):
        return True
    return isinstance(data, Mapping) and any(_is_columnar_value(v) for v in data.values())


def _named_columns(data: Any) -> list[tuple[str, Any]]:
    """(name, column) pairs of a frame or mapping, names as given."""
    mod = _module(data)
    if mod == "polars" and type(data).__name__ == "LazyFrame":
        data = data.collect()
    if isinstance(data, Mapping):
        return [(str(k), v) for k, v in data.items()]
    if mod == "pandas":
        return [(str(k), data[k]) for k in data.columns]
    if mod == "polars":
        return [(name, data.get_column(name)) for name in data.columns]
    if mod == "pyarrow":
        return [(name, data.column(name)) for name in data.schema.names]
    raise TypeError(f"not a data frame: {type(data).__name__}")


def to_columns(data: Any) -> dict[str, Any]:
    """The columnar mapping :func:`~otm.estimate.estimate_many` reads, from a frame or a dict.

    Names are Telemetry's (``start_time``, ``input_tokens``, ...), their
    camelCase aliases (``startTime``, ``inputTokens``, ``platform``,
    ``modelName``), or ``ttft_s``, ``decode_s``, ``duration_s``, ``itl_s``,
    ``visible_output_tokens``. Scalars in a dict broadcast, as in
    ``estimate_many``.
    """
    out: dict[str, Any] = {}
    for raw_name, col in _named_columns(data):
        name = _ALIASES.get(raw_name, raw_name)
        if name not in READ or (name in out and raw_name != name):
            continue  # a column otm does not read, or an alias of one already given by name
        out[name] = _convert(name, col)
    return out


def _convert(name: str, col: Any) -> Any:
    if not _is_columnar_value(col) and not isinstance(col, (list, tuple)):
        return col  # a scalar: estimate_many broadcasts it
    if name in TEXT_COLUMNS:
        return _text(col)
    if name in FLAG_COLUMNS:
        return _flags(col)
    a = _numeric(col, duration=name in DURATION_COLUMNS)
    if name in TIME_COLUMNS:
        a = _seconds_since_epoch(a)
    return a


def _numeric(col: Any, *, duration: bool) -> np.ndarray:
    """float64 numpy, NaN for nulls; datetimes as unix seconds, durations as seconds."""
    mod = _module(col)
    if mod == "pyarrow":
        return _arrow_numeric(col)
    if mod == "polars":
        return _polars_numeric(col)
    if mod == "pandas":
        dtype = col.dtype
        kind = getattr(dtype, "kind", "")
        if kind in "mM":
            if getattr(dtype, "tz", None) is not None:
                col = col.dt.tz_convert(None)  # an instant: UTC, then the zone dropped
            return _datetime_like(col.to_numpy())
        if isinstance(dtype, np.dtype) and kind == "f":
            return col.to_numpy(copy=False)  # a view: no copy for plain float columns
        return np.asarray(col.to_numpy(dtype="float64", na_value=np.nan), dtype=np.float64)
    a = np.asarray(col)
    if a.dtype.kind in "mM":
        return _datetime_like(a)
    if a.dtype.kind == "O":
        return np.array([np.nan if v is None else v for v in a], dtype=np.float64)
    return a


def _datetime_like(a: np.ndarray) -> np.ndarray:
    """datetime64 -> unix seconds, timedelta64 -> seconds (NaT -> NaN)."""
    if a.dtype.kind == "M":
        ns = a.astype("datetime64[ns]")
    else:
        ns = a.astype("timedelta64[ns]")
    out = ns.view(np.int64).astype(np.float64) / 1e9
    out[np.isnat(ns)] = np.nan
    return out


def _arrow_numeric(col: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray) and col.num_chunks == 1:
        col = col.chunk(0)
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        col = pc.cast(col, pa.timestamp("ns", tz=getattr(t, "tz", None)))
        return _datetime_like(np.asarray(col.to_numpy(zero_copy_only=False)))
    if pa.types.is_duration(t):
        return _datetime_like(
            np.asarray(pc.cast(col, pa.duration("ns")).to_numpy(zero_copy_only=False))
        )
    if col.null_count:
        col = pc.cast(col, pa.float64()).fill_null(float("nan"))
    # one chunk of a fixed-width type without nulls: a view of Arrow's buffer
    return np.asarray(col.to_numpy(zero_copy_only=False))


def _polars_numeric(col: Any) -> np.ndarray:
    import polars as pl

    dtype = col.dtype
    if dtype.is_temporal():
        if dtype == pl.Duration or isinstance(dtype, pl.Duration):
            return (
                col.dt.total_nanoseconds().cast(pl.Float64).fill_null(float("nan")).to_numpy() / 1e9
            )
        if dtype == pl.Date:
            col = col.cast(pl.Datetime("ns"))
        return col.dt.epoch("ns").cast(pl.Float64).fill_null(float("nan")).to_numpy() / 1e9
    if col.null_count():
        col = col.cast(pl.Float64).fill_null(float("nan"))
    return col.to_numpy()  # zero-copy for numeric columns without nulls


def _seconds_since_epoch(a: np.ndarray) -> np.ndarray:
    """Unix milliseconds -> seconds, element by element, as Telemetry reads times."""
    if a.dtype.kind not in "fiu" or a.size == 0:
        return a
    with np.errstate(invalid="ignore"):
        ms = a > _MS_THRESHOLD
    if not ms.any():
        return a
    return np.where(ms, a / 1000.0, a)


def _text(col: Any) -> np.ndarray:
    """An object array of str or None (categoricals and Arrow dictionaries decoded)."""
    mod = _module(col)
    if mod == "pyarrow":
        a = col.to_numpy(zero_copy_only=False)
    elif mod == "polars":
        import polars as pl

        a = col.cast(pl.String).to_numpy()
    elif mod == "pandas":
        a = col.to_numpy(dtype=object, na_value=None)
    else:
        a = np.asarray(col, dtype=object)
    a = np.asarray(a, dtype=object)
    if a.size and not all(v is None or isinstance(v, str) for v in a[:64]):
        a = np.array([None if v is None or v != v else str(v) for v in a], dtype=object)
    return a


def _flags(col: Any) -> np.ndarray:
    """A bool array; null is False."""
    mod = _module(col)
    if mod == "pyarrow":
        import pyarrow.compute as pc

        return np.asarray(pc.fill_null(col, False).to_numpy(zero_copy_only=False), dtype=bool)
    if mod == "polars":
        return col.fill_null(False).to_numpy().astype(bool, copy=False)
    if mod == "pandas":
        return col.to_numpy(dtype=bool, na_value=False)
    a = np.asarray(col)
    if a.dtype.kind == "O":
        return np.array([bool(v) if v is not None else False for v in a], dtype=bool)
    return a.astype(bool, copy=False)

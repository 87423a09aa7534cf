"""Data frames in and out of the estimator: pandas, Arrow and polars.

In: :func:`to_columns` turns a pandas ``DataFrame``, a pyarrow ``Table`` or
``RecordBatch``, a polars ``DataFrame`` (or a dict of arrays, Series or
Arrow arrays) into the columnar mapping of numpy arrays that
:func:`~otm.estimate.estimate_many` takes: Telemetry's field names (or their
camelCase aliases), or the derived timings ``ttft_s``, ``decode_s``,
``duration_s``, ``itl_s``. Numeric columns without nulls come through
without a copy; datetimes become unix seconds, durations seconds, times in
unix milliseconds seconds (as :class:`~otm.telemetry.Telemetry` reads them),
nulls NaN (unknown). Columns the estimator does not read are left alone.

Out: :func:`impact_columns` flattens an ``ImpactBatch`` (its public
attributes only) into named numpy columns, and :func:`to_pandas`,
:func:`to_arrow`, :func:`to_polars` make a frame of them, one row per
request, in the input's order. The same builders serve any columnar table
(:func:`frame`), e.g. the records of an experiment.

pandas, pyarrow and polars are optional (extras ``pandas``, ``arrow``,
``polars``) and imported only when a frame of theirs is asked for or given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from otm.telemetry import Telemetry

if TYPE_CHECKING:
    from .batch import ImpactBatch

__all__ = [
    "Categorical",
    "frame",
    "impact_columns",
    "is_frame",
    "to_arrow",
    "to_columns",
    "to_pandas",
    "to_polars",
]

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


# ---------------------------------------------------------------------- out


class Categorical:
    """A column of few distinct values: integer ``codes`` into ``categories`` (-1: missing).

    Frames store it as pandas ``category``, an Arrow dictionary or a polars
    ``Categorical``, so a million rows of one model name cost a million small
    integers.
    """

    __slots__ = ("categories", "codes")

    def __init__(self, codes: np.ndarray, categories: Sequence[str | None]) -> None:
        codes = np.asarray(codes, dtype=np.int32)
        cats = list(categories)
        kept = [str(c) for c in cats if c is not None]
        if len(kept) < len(cats):  # missing is code -1, not a category
            index = {c: i for i, c in enumerate(kept)}
            new = np.array([-1 if c is None else index[str(c)] for c in cats], dtype=np.int32)
            codes = np.where(codes >= 0, new[np.maximum(codes, 0)], -1).astype(np.int32)
        self.codes = codes
        self.categories: list[str] = kept

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def to_numpy(self) -> np.ndarray:
        """The values as an object array (None where missing)."""
        table = np.array([*self.categories, None], dtype=object)
        return table[self.codes]  # -1 indexes the trailing None

    @classmethod
    def of(cls, values: Sequence[Any]) -> Categorical:
        cats = list(dict.fromkeys(values))
        index = {c: i for i, c in enumerate(cats)}
        return cls(np.fromiter((index[v] for v in values), dtype=np.int32, count=len(values)), cats)


def impact_columns(batch: ImpactBatch) -> dict[str, Any]:
    """One column per figure of an ``ImpactBatch``, one row per request, in its order.

    ``energy_wh`` (central) with ``energy_wh_low``/``energy_wh_high``, the same
    for ``carbon_g`` and ``water_ml``; the breakdowns as ``energy_wh_<part>``,
    ``carbon_g_<part>``, ``water_ml_<part>``; ``cost_usd`` (missing where no
    price is published); ``method`` (itl, latency or tokens);
    ``effective_batch`` and ``accelerators`` with their ranges; ``flags``;
    and, from the request's group, the resolved ``model_id``,
    ``provider_id`` and ``region_id``.
    """
    cols: dict[str, Any] = {}
    for fig in ("energy_wh", "carbon_g", "water_ml"):
        cols[fig] = getattr(batch, f"{fig}_value")
        cols[f"{fig}_low"] = getattr(batch, f"{fig}_low")
        cols[f"{fig}_high"] = getattr(batch, f"{fig}_high")
    for prefix, parts in (
        ("energy_wh", batch.breakdown_wh),
        ("carbon_g", batch.carbon_breakdown_g),
        ("water_ml", batch.water_breakdown_ml),
    ):
        for part, arr in parts.items():
            cols[f"{prefix}_{part}"] = arr
    cols["cost_usd"] = batch.cost_usd
    cols["method"] = Categorical(batch.method.astype(np.int32), list(batch.METHODS))
    for name, attr in (("effective_batch", "batch"), ("accelerators", "count")):
        cols[name] = getattr(batch, f"{attr}_value")
        cols[f"{name}_low"] = getattr(batch, f"{attr}_low")
        cols[f"{name}_high"] = getattr(batch, f"{attr}_high")
    cols["flags"] = batch.flags
    groups = [g.get("assumptions", {}) for g in batch.groups]
    codes = np.asarray(batch.group, dtype=np.int32) if len(batch) else np.zeros(0, np.int32)
    for name, path in (
        ("model_id", ("model", "id")),
        ("provider_id", ("deployment", "provider")),
        ("region_id", ("site", "region")),
    ):
        cols[name] = _group_column(codes, [_dig(a, path) for a in groups])
    return cols


def _dig(d: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d if d is None or isinstance(d, str) else str(d)


def _group_column(codes: np.ndarray, per_group: list[Any]) -> Categorical:
    """Per-group values spread to rows, as a categorical (values shared by groups merged)."""
    cats = list(dict.fromkeys(per_group))
    index = {c: i for i, c in enumerate(cats)}
    remap = np.array([index[v] for v in per_group] or [0], dtype=np.int32)
    return Categorical(remap[codes] if codes.size else codes, cats)


# ---------------------------------------------------------------------- frames


def frame(columns: Mapping[str, Any], backend: str) -> Any:
    """A ``pandas``, ``arrow`` or ``polars`` frame of named columns.

    Values are numpy arrays (kept without a copy where the library allows),
    :class:`Categorical` columns, or lists (of str, None, lists).
    """
    if backend == "pandas":
        return _pandas(columns)
    if backend == "arrow":
        return _arrow(columns)
    if backend == "polars":
        return _polars(columns)
    raise ValueError(f"unknown frame backend {backend!r}: pandas, arrow or polars")


def _require(module: str, extra: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed: pip install 'otm[{extra}]' to get data frames from otm"
        ) from exc


def _pandas(columns: Mapping[str, Any]) -> Any:
    pd = _require("pandas", "pandas")
    data: dict[str, Any] = {}
    for name, col in columns.items():
        if isinstance(col, Categorical):
            data[name] = pd.Categorical.from_codes(col.codes, categories=col.categories)
        elif isinstance(col, np.ndarray):
            data[name] = col
        else:
            data[name] = pd.Series(list(col), dtype=object) if _has_lists(col) else list(col)
    return pd.DataFrame(data, copy=False)


def _has_lists(col: Any) -> bool:
    return any(isinstance(v, (list, tuple)) for v in col)


def _arrow(columns: Mapping[str, Any]) -> Any:
    pa = _require("pyarrow", "arrow")
    arrays = []
    for _name, col in columns.items():
        if isinstance(col, Categorical):
            codes = pa.array(col.codes, mask=col.codes < 0)
            arrays.append(
                pa.DictionaryArray.from_arrays(codes, pa.array(col.categories, pa.string()))
            )
        elif isinstance(col, np.ndarray):
            if col.dtype.kind == "f":
                arrays.append(pa.array(col, from_pandas=True))  # NaN (unknown) -> null
            elif col.dtype.kind == "O":
                arrays.append(pa.array(col.tolist()))
            else:
                arrays.append(pa.array(col))
        else:
            arrays.append(pa.array(list(col)))
    return pa.table(arrays, names=list(columns))


def _polars(columns: Mapping[str, Any]) -> Any:
    pl = _require("polars", "polars")
    series = []
    for name, col in columns.items():
        if isinstance(col, Categorical):
            series.append(_polars_enum(pl, name, col))
        elif isinstance(col, np.ndarray):
            if col.dtype.kind == "f":
                series.append(pl.Series(name, col, nan_to_null=True))
            elif col.dtype.kind == "O":
                series.append(pl.Series(name, col.tolist()))
            else:
                series.append(pl.Series(name, col))
        else:
            series.append(pl.Series(name, list(col)))
    return pl.DataFrame(series)


def _polars_enum(pl: Any, name: str, col: Categorical) -> Any:
    """An ``Enum`` column gathered from the categories by code: no string per row."""
    if not col.categories:  # nothing but missing values
        return pl.Series(name, [None] * len(col), dtype=pl.String)
    dictionary = pl.Series(name, col.categories, dtype=pl.Enum(col.categories))
    missing = col.codes < 0
    out = dictionary.gather(np.maximum(col.codes, 0).astype(np.uint32))
    if missing.any():
        out = pl.select(pl.when(pl.Series(~missing)).then(out).otherwise(None)).to_series()
    return out.alias(name)


def to_pandas(batch: ImpactBatch) -> Any:
    """The batch as a pandas ``DataFrame``, one row per request (see :func:`impact_columns`)."""
    return _pandas(impact_columns(batch))


def to_arrow(batch: ImpactBatch) -> Any:
    """The batch as a pyarrow ``Table`` (unknown costs are null)."""
    return _arrow(impact_columns(batch))


def to_polars(batch: ImpactBatch) -> Any:
    """The batch as a polars ``DataFrame`` (unknown costs are null)."""
    return _polars(impact_columns(batch))

"""Data frames out of the estimator: an ``ImpactBatch`` (or any columns) as pandas, Arrow, polars.

:func:`impact_columns` flattens an ``ImpactBatch`` (its public attributes
only) into named numpy columns, and :func:`to_pandas`, :func:`to_arrow`,
:func:`to_polars` make a frame of them, one row per request, in the input's
order. The same builders serve any columnar table (:func:`frame`), e.g. the
records of an experiment. pandas, pyarrow and polars are optional (extras
``pandas``, ``arrow``, ``polars``) and imported only when a frame of theirs
is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .results import ImpactBatch

__all__ = ["Categorical", "frame", "impact_columns", "to_arrow", "to_pandas", "to_polars"]


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

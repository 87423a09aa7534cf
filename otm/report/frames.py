"""Records as data frames: one row per call, for pandas, Arrow and polars.

    df = exp.to_pandas()                      # or to_arrow(), to_polars()
    df = records_frame("otm-runs/ablation-20260101-120000", "polars")

Each row holds the call's telemetry (Telemetry's own fields, so the frame
feeds straight back into :func:`otm.estimate_many`, plus ``ttft_s``,
``duration_s``, ``itl_s`` and ``output_tps``), where and how it ran
(``region``, ``deployment`` as JSON), the tracked runs it was made in
(``run``: the innermost, ``runs``: all, outermost first), its tags (one
``tag.<key>`` column per key) and its impact in the columns that
:meth:`ImpactBatch.to_pandas <otm.estimate.ImpactBatch.to_pandas>` uses
(``energy_wh``, ``energy_wh_low``, ``energy_wh_high``, ..., ``cost_usd``,
``method``, ``model_id``, ...), and the estimator's ``warnings``. Captured
prompts and completions (an opt-in) get their columns only when present.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from otm.estimate.tables import Categorical, frame
from otm.telemetry import Telemetry

if TYPE_CHECKING:
    from otm.impact import Impact
    from otm.record import Record

TELEMETRY_COLUMNS = tuple(f for f in Telemetry.model_fields if f not in ("prompt", "completion"))
DERIVED_COLUMNS = ("ttft_s", "duration_s", "itl_s", "output_tps")
TEXT_COLUMNS = frozenset(
    {
        "experiment",
        "provider",
        "model",
        "operation",
        "status",
        "error_type",
        "region",
        "deployment",
        "run",
        "method",
        "model_id",
        "provider_id",
        "region_id",
    }
)
"""Few distinct values: stored as categoricals."""
IMPACT_COLUMNS = tuple(
    f"{fig}{suffix}"
    for fig in ("energy_wh", "carbon_g", "water_ml")
    for suffix in ("", "_low", "_high")
)
BREAKDOWN = (
    ("energy_wh", "breakdown_wh", ("accelerator", "host", "idle", "facility")),
    ("carbon_g", "carbon_breakdown_g", ("operational", "embodied")),
    ("water_ml", "water_breakdown_ml", ("onsite", "offsite")),
)
RANGE_COLUMNS = (
    ("effective_batch", ("effective_batch",)),
    ("accelerators", ("deployment", "count")),
)
GROUP_COLUMNS = (
    ("model_id", ("model", "id")),
    ("provider_id", ("deployment", "provider")),
    ("region_id", ("site", "region")),
)


class _Item:
    """One call: a record and what its log line (or its live scope) adds."""

    __slots__ = ("record", "seq", "experiment", "runs", "tags")

    def __init__(
        self,
        record: Record,
        seq: int | None,
        experiment: str | None,
        runs: tuple[str, ...],
        tags: dict[str, str],
    ) -> None:
        self.record = record
        self.seq = seq
        self.experiment = experiment
        self.runs = runs
        self.tags = tags


def _live(records: Iterable[Record], experiment: str | None) -> Iterator[_Item]:
    from otm.report.rows import effective_tags, run_names

    for rec in records:
        yield _Item(rec, rec.seq, experiment, run_names(rec.scope), effective_tags(rec))


def _logged(path: str | os.PathLike[str], region: str | None) -> Iterator[_Item]:
    """Log lines keep what a record read back loses: its runs, sequence number and experiment."""
    from otm.record import Record
    from otm.report.reader import LogReader

    for line in LogReader(path, region=region).dicts():
        try:
            if isinstance(line.get("telemetry"), Mapping):
                rec = Record.from_dict(line)
            else:  # a bare (camelCase) telemetry line, as collectors write them
                rec = Record(Telemetry.model_validate(line), region=line.get("region"))
        except Exception:  # an unreadable line: the reports skip it too
            continue
        if rec.region is None and region:
            rec.region = region
            rec._impact = None
        seq = line.get("seq")
        yield _Item(
            rec,
            int(seq) if isinstance(seq, int) else None,
            line.get("experiment") if isinstance(line.get("experiment"), str) else None,
            tuple(str(r) for r in line.get("runs") or ()),
            {str(k): str(v) for k, v in (line.get("tags") or {}).items()},
        )


def _items(source: Any, experiment: str | None, region: str | None) -> Iterator[_Item]:
    if isinstance(source, (str, os.PathLike)):
        return _logged(source, region)
    return _live(source, experiment)


def _dig(d: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


def _range(d: Any) -> tuple[float, float, float]:
    if isinstance(d, Mapping) and "value" in d:
        v = float(d["value"])
        return v, float(d.get("low", v)), float(d.get("high", v))
    if isinstance(d, (int, float)):
        return float(d), float(d), float(d)
    return np.nan, np.nan, np.nan


def _impact_values(impact: Impact | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if impact is None:
        return out
    for fig in ("energy_wh", "carbon_g", "water_ml"):
        r = getattr(impact, fig)
        out[fig], out[f"{fig}_low"], out[f"{fig}_high"] = r.value, r.low, r.high
    for prefix, attr, _parts in BREAKDOWN:
        for part, v in getattr(impact, attr).items():
            out[f"{prefix}_{part}"] = v
    out["cost_usd"] = impact.cost_usd
    a = impact.assumptions or {}
    out["method"] = a.get("method")
    for name, path in RANGE_COLUMNS:
        out[name], out[f"{name}_low"], out[f"{name}_high"] = _range(_dig(a, path))
    for name, path in GROUP_COLUMNS:
        v = _dig(a, path)
        out[name] = None if v is None else str(v)
    out["warnings"] = [str(w) for w in a.get("warnings") or ()]
    return out


def records_columns(
    source: Any, *, experiment: str | None = None, region: str | None = None
) -> dict[str, Any]:
    """Named columns, one row per call, of records or of a log (a path).

    ``source``: live records (a run's, an experiment's, ``on_record``'s), or
    the path of a JSONL log or an experiment directory. ``region`` is the
    default for log lines without one (they are re-estimated with it).
    Computes each record's impact if not done yet.
    """
    items = list(_items(source, experiment, region))
    n = len(items)
    tels = [it.record.telemetry for it in items]
    cols: dict[str, Any] = {}
    cols["seq"] = [it.seq for it in items]
    cols["experiment"] = [it.experiment for it in items]
    for name in TELEMETRY_COLUMNS:
        cols[name] = [getattr(t, name) for t in tels]
    for name in ("prompt", "completion"):
        values = [getattr(t, name) for t in tels]
        if any(v is not None for v in values):
            cols[name] = values
    for name in DERIVED_COLUMNS:
        cols[name] = [getattr(t, name) for t in tels]
    cols["region"] = [it.record.region for it in items]
    cols["deployment"] = [
        None
        if it.record.deployment is None
        else json.dumps(
            it.record.deployment.model_dump(exclude_none=True), sort_keys=True, default=str
        )
        for it in items
    ]
    cols["run"] = [it.runs[-1] if it.runs else None for it in items]
    cols["runs"] = [list(it.runs) for it in items]
    keys = sorted({k for it in items for k in it.tags})
    for k in keys:
        cols[f"tag.{k}"] = [it.tags.get(k) for it in items]

    figures = [_impact_values(it.record.impact) for it in items]
    impact_names = [
        *IMPACT_COLUMNS,
        *(f"{prefix}_{p}" for prefix, _attr, parts in BREAKDOWN for p in parts),
        "cost_usd",
        "method",
        *(f"{name}{s}" for name, _ in RANGE_COLUMNS for s in ("", "_low", "_high")),
        *(name for name, _ in GROUP_COLUMNS),
    ]
    for name in impact_names:
        cols[name] = [f.get(name) for f in figures]
    cols["warnings"] = [f.get("warnings", []) for f in figures]
    return {name: _typed(name, values, n) for name, values in cols.items()}


def _typed(name: str, values: Any, n: int) -> Any:
    """numpy arrays for numbers and flags, categoricals for repeated text, lists otherwise."""
    if isinstance(values, np.ndarray):
        return values
    present = [v for v in values if v is not None]
    if name in TEXT_COLUMNS or name.startswith("tag."):
        return Categorical.of(values)
    if present and all(isinstance(v, bool) for v in present) and len(present) == n:
        return np.array(values, dtype=bool)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if len(present) == n and all(isinstance(v, int) for v in present):
            return np.array(values, dtype=np.int64)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if not present and name not in ("request_id", "runs", "warnings", "prompt", "completion"):
        return np.full(n, np.nan)  # a numeric column no record filled
    return values


def records_frame(
    source: Any,
    backend: str = "pandas",
    *,
    experiment: str | None = None,
    region: str | None = None,
) -> Any:
    """:func:`records_columns` as a ``pandas``, ``arrow`` or ``polars`` frame."""
    return frame(records_columns(source, experiment=experiment, region=region), backend)


__all__ = ["records_columns", "records_frame"]

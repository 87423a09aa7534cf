"""The results of many estimates: :class:`ImpactBatch`, one array element per request.

Per request it keeps the central figures, their range, the breakdowns and
what was inferred (batch, instance size, method); per sample it keeps the
sums over all requests, so :meth:`ImpactBatch.totals` gives a total whose
range keeps the correlation between requests (docs/methodology.md
"Summing ranges").
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from otm.impact import Impact, Range

from . import tables
from .user import METHOD_ITL, METHOD_LATENCY, METHOD_TOKENS, METHODS

__all__ = ["FLAG_AT_LIMIT", "FLAG_IMPLAUSIBLE", "ImpactBatch", "copy_plan", "impact", "summarise", "summarise_one"]

_METHOD_NOTES = {
    METHOD_LATENCY: "not streamed: typical serving load assumed; the total latency (less an estimated time to first token) sets how long the request held it (wider range)",
    METHOD_TOKENS: "no usable timings: effective batch assumed from typical serving (widest range)",
}

FLAG_IMPLAUSIBLE = 1
"""Row flag: faster than every sampled assumption can serve: read as one sequence at its
own speed, a note says the hardware, precision or engine is likely faster than assumed."""
FLAG_AT_LIMIT = 2
"""Row flag: faster than the central assumptions can serve; the central figures come from
the assumptions that can (the median of them)."""


def summarise(
    x: np.ndarray,
    pcts: tuple[float, float],
    ok: np.ndarray | None = None,
    central: np.ndarray | int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(central, low, high) per row of a (rows, samples) array.

    The range is the percentiles of the samples (columns 1..S) that ``ok``
    allows (all when none is allowed); ``central`` picks each row's central
    sample (default column 0), which is kept inside [low, high]. ``ok`` with
    one row (and an int ``central``) applies to every row: the figures of one
    request.
    """
    if central is None:
        v = x[:, 0]
    elif isinstance(central, int):
        v = x[:, central]
    else:
        v = x[np.arange(x.shape[0]), central]
    if x.shape[1] < 2:
        return v, v, v
    s = x[:, 1:]
    k: int | np.ndarray
    if ok is None or ok[:, 1:].all():
        s = np.sort(s, axis=1)
        k = s.shape[1]
    elif ok.shape[0] == 1:
        # one set of samples for every row: sort the allowed ones (the same first k
        # values as sorting with the others set to +inf)
        okr = ok[0, 1:]
        k = int(np.count_nonzero(okr))
        if k == 0:  # none allowed: all
            k = s.shape[1]
            s = np.sort(s, axis=1)
        else:
            s = np.sort(s[:, okr], axis=1)
    else:
        okr = np.asarray(ok)[:, 1:]
        none = ~okr.any(axis=1)
        okr = okr | np.asarray(none)[:, None]
        s = np.sort(np.where(okr, s, np.inf), axis=1)
        k = okr.sum(axis=1)
    lo = np.minimum(_at(s, k, pcts[0]), v)
    hi = np.maximum(_at(s, k, pcts[1]), v)
    return v, lo, hi


def summarise_one(
    x: np.ndarray, pcts: tuple[float, float], ok: np.ndarray, central: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`summarise` of rows that share one set of allowed samples ``ok`` (shape (S+1,))
    and one ``central`` sample: the figures of one request (the same values, fewer calls)."""
    v = x[:, central]
    if x.shape[1] < 2:
        return v, v, v
    okr = ok[1:]
    k = int(np.count_nonzero(okr))
    if k == 0 or k == okr.size:  # none allowed: all
        k = okr.size
        s = x[:, 1:].copy()
    else:
        s = x[:, 1:].take(np.flatnonzero(okr), axis=1)
    s.sort(axis=1)
    return v, np.minimum(_at(s, k, pcts[0]), v), np.maximum(_at(s, k, pcts[1]), v)


def _at(s: np.ndarray, k: int | np.ndarray, p: float) -> np.ndarray:
    """Linear-interpolated percentile (numpy's rule) of the first k sorted values per row."""
    if isinstance(k, int):  # every row keeps all its samples: one position for all
        pos0 = p / 100.0 * (k - 1)
        i0 = math.floor(pos0)
        j0 = min(i0 + 1, k - 1)
        f0 = pos0 - i0
        return s[:, i0] * (1.0 - f0) + s[:, j0] * f0
    pos = p / 100.0 * (k - 1)
    i = np.floor(pos).astype(np.intp)
    j = np.minimum(i + 1, k - 1)
    f = pos - i
    r = np.arange(s.shape[0])
    return s[r, i] * (1.0 - f) + s[r, j] * f


class ImpactBatch:
    """Impacts of many requests as numpy arrays (one element per request).

    ``energy_wh_value/low/high``, ``carbon_g_value/low/high``,
    ``water_ml_value/low/high``, ``breakdown_wh[key]``,
    ``carbon_breakdown_g[key]``, ``water_breakdown_ml[key]``, ``cost_usd``
    (NaN where no price is published), ``batch_value/low/high`` (inferred
    effective batch), ``method`` (index into ``METHODS``) and ``flags``
    (``FLAG_IMPLAUSIBLE``: the record's timing was set aside;
    ``FLAG_AT_LIMIT``: faster than the central case can serve). ``batch[i]``
    is an :class:`~otm.impact.Impact`; :meth:`totals` sums them with ranges
    that keep the correlation between records (docs "Summing ranges").
    """

    METHODS = METHODS

    def __init__(self, n: int, samples: int, pcts: tuple[float, float]) -> None:
        z = lambda: np.zeros(n)
        self.energy_wh_value, self.energy_wh_low, self.energy_wh_high = z(), z(), z()
        self.carbon_g_value, self.carbon_g_low, self.carbon_g_high = z(), z(), z()
        self.water_ml_value, self.water_ml_low, self.water_ml_high = z(), z(), z()
        self.breakdown_wh: dict[str, np.ndarray] = {
            k: z() for k in ("accelerator", "host", "idle", "facility")
        }
        self.carbon_breakdown_g: dict[str, np.ndarray] = {
            k: z() for k in ("operational", "embodied")
        }
        self.water_breakdown_ml: dict[str, np.ndarray] = {k: z() for k in ("onsite", "offsite")}
        self.cost_usd = np.full(n, np.nan)
        self.batch_value, self.batch_low, self.batch_high = z(), z(), z()
        self.count_value, self.count_low, self.count_high = z(), z(), z()
        self.method = np.zeros(n, dtype=np.int8)
        self.flags = np.zeros(n, dtype=np.int8)
        """Per record: FLAG_IMPLAUSIBLE when its own timing was set aside."""
        self.kept = np.ones(n)
        """Per record: the share of sampled assumptions its own timing allows."""
        self.group = np.zeros(n, dtype=np.intp)
        self.itl_s = np.full(n, np.nan)
        self.status = np.empty(n, dtype=object)
        self.groups: list[dict[str, Any]] = []
        """Per group: ``assumptions`` (shared by its records) and ``warnings``."""
        self._sample_totals = {
            k: np.zeros(samples + 1) for k in ("energy_wh", "carbon_g", "water_ml")
        }
        self._pcts = pcts

    def __len__(self) -> int:
        return int(self.energy_wh_value.shape[0])

    @property
    def energy_j_value(self) -> np.ndarray:
        return self.energy_wh_value * 3600.0

    def __iter__(self) -> Iterator[Impact]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> Impact:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ImpactBatch index {i} out of range ({n} records)")
        i = i % n
        cost = float(self.cost_usd[i])
        return impact(
            self.groups[int(self.group[i])],
            method=int(self.method[i]),
            flags=int(self.flags[i]),
            itl=float(self.itl_s[i]),
            kept=float(self.kept[i]),
            status=self.status[i],
            batch=(float(self.batch_value[i]), float(self.batch_low[i]), float(self.batch_high[i])),
            count=(float(self.count_value[i]), float(self.count_low[i]), float(self.count_high[i])),
            energy_wh=(
                float(self.energy_wh_value[i]),
                float(self.energy_wh_low[i]),
                float(self.energy_wh_high[i]),
            ),
            carbon_g=(
                float(self.carbon_g_value[i]),
                float(self.carbon_g_low[i]),
                float(self.carbon_g_high[i]),
            ),
            water_ml=(
                float(self.water_ml_value[i]),
                float(self.water_ml_low[i]),
                float(self.water_ml_high[i]),
            ),
            breakdown_wh={k: float(v[i]) for k, v in self.breakdown_wh.items()},
            carbon_breakdown_g={k: float(v[i]) for k, v in self.carbon_breakdown_g.items()},
            water_breakdown_ml={k: float(v[i]) for k, v in self.water_breakdown_ml.items()},
            cost_usd=None if not np.isfinite(cost) else cost,
        )

    def totals(self) -> Impact:
        """The sum of every record, with a range from the summed samples.

        Each sample applies the same assumptions to every record (one PUE, one
        efficiency, one model-size quantile), so summing per sample before
        taking percentiles keeps systematic uncertainty systematic: the
        relative range of a total does not shrink as records are added.
        """

        def rng(key: str, central: float) -> Range:
            s = self._sample_totals[key]
            v = central
            if s.shape[0] < 2:
                return Range(value=v, low=v, high=v)
            lo = float(np.percentile(s[1:], self._pcts[0]))
            hi = float(np.percentile(s[1:], self._pcts[1]))
            return Range(value=v, low=min(lo, v), high=max(hi, v))

        costs = self.cost_usd[np.isfinite(self.cost_usd)]
        methods = {METHODS[k]: int(np.sum(self.method == k)) for k in range(len(METHODS))}
        warnings = list(dict.fromkeys(w for g in self.groups for w in g["warnings"]))
        return Impact(
            energy_wh=rng("energy_wh", float(self.energy_wh_value.sum())),
            carbon_g=rng("carbon_g", float(self.carbon_g_value.sum())),
            water_ml=rng("water_ml", float(self.water_ml_value.sum())),
            breakdown_wh={k: float(v.sum()) for k, v in self.breakdown_wh.items()},
            carbon_breakdown_g={k: float(v.sum()) for k, v in self.carbon_breakdown_g.items()},
            water_breakdown_ml={k: float(v.sum()) for k, v in self.water_breakdown_ml.items()},
            cost_usd=float(costs.sum()) if costs.size else None,
            assumptions={
                "records": len(self),
                "methods": methods,
                "groups": [
                    {
                        "model": g["assumptions"]["model"]["id"],
                        "provider": g["assumptions"]["deployment"]["provider"],
                        "records": g["records"],
                    }
                    for g in self.groups
                ],
                "warnings": warnings,
            },
        )

    # Data frames, one row per request (otm.estimate.tables; extras pandas, arrow, polars).
    def to_pandas(self) -> Any:
        return tables.to_pandas(self)

    def to_arrow(self) -> Any:
        return tables.to_arrow(self)

    def to_polars(self) -> Any:
        return tables.to_polars(self)

    def __repr__(self) -> str:
        from otm.units import fmt, plural

        return (
            f"<ImpactBatch {plural(len(self), 'record')}, {fmt('energy', self.energy_wh_value.sum())}, "
            f"{fmt('carbon', self.carbon_g_value.sum())}, {fmt('water', self.water_ml_value.sum())}>"
        )


Tri3 = tuple[float, float, float]


def impact(
    grp: dict[str, Any],
    *,
    method: int,
    flags: int,
    itl: float,
    kept: float,
    status: Any,
    batch: Tri3,
    count: Tri3,
    energy_wh: Tri3,
    carbon_g: Tri3,
    water_ml: Tri3,
    breakdown_wh: dict[str, float],
    carbon_breakdown_g: dict[str, float],
    water_breakdown_ml: dict[str, float],
    cost_usd: float | None,
) -> Impact:
    """One request's :class:`~otm.impact.Impact` from its figures and its group's
    ``assumptions``, ``warnings`` and ``plausible`` speeds (an :class:`ImpactBatch` row
    and the one-record path both build it here)."""
    warnings = list(grp["warnings"])
    if method in _METHOD_NOTES:
        warnings.append(_METHOD_NOTES[method])
    beyond = bool(flags & FLAG_IMPLAUSIBLE)
    if beyond:
        warnings.append(_beyond_note(itl, grp["plausible"]))
    elif flags & FLAG_AT_LIMIT:
        warnings.append(_limit_note(itl, grp["plausible"]))
    if status not in (None, "ok"):
        warnings.append(f"request ended with status {status!r}: the estimate covers the tokens seen")
    plan = grp.get("copy_plan")
    assumptions = _copy(grp["assumptions"]) if plan is None else _copy_by(grp["assumptions"], plan)
    assumptions["method"] = METHODS[method]
    assumptions["effective_batch"] = {"value": batch[0], "low": batch[1], "high": batch[2]}
    assumptions["deployment"]["count"] = {"value": count[0], "low": count[1], "high": count[2]}
    if method == METHOD_ITL and math.isfinite(itl) and itl > 0:
        assumptions["observed"] = {
            "itl_s": itl,
            "tokens_per_s": 1.0 / itl,
            "assumptions_kept": kept,
        }
        if flags:
            assumptions["observed"]["central_moved"] = bool(flags & FLAG_AT_LIMIT)
            assumptions["observed"]["beyond_assumptions"] = beyond
    assumptions["warnings"] = warnings
    return Impact.model_validate(  # each Range validated once, from its fields
        {
            "energy_wh": {"value": energy_wh[0], "low": energy_wh[1], "high": energy_wh[2]},
            "carbon_g": {"value": carbon_g[0], "low": carbon_g[1], "high": carbon_g[2]},
            "water_ml": {"value": water_ml[0], "low": water_ml[1], "high": water_ml[2]},
            "breakdown_wh": breakdown_wh,
            "carbon_breakdown_g": carbon_breakdown_g,
            "water_breakdown_ml": water_breakdown_ml,
            "cost_usd": cost_usd,
            "assumptions": assumptions,
        }
    )


def _beyond_note(itl: float, p: dict[str, Any]) -> str:
    shown = f"{1.0 / itl:.0f} tokens/s" if np.isfinite(itl) and itl > 0 else "its speed"
    return (
        f"{shown} is faster than any sampled assumption for {p['model']} on {p['accelerator']} "
        f"can serve (at most about {p['max_tokens_per_s']:.0f} tokens/s): read as one sequence at "
        "its own speed; the hardware, precision or engine is likely faster than assumed "
        "(pass a Deployment), or the stream was buffered"
    )


def _limit_note(itl: float, p: dict[str, Any]) -> str:
    shown = f"{1.0 / itl:.0f} tokens/s" if np.isfinite(itl) and itl > 0 else "this speed"
    return (
        f"{shown} is faster than the central assumptions for {p['model']} on {p['accelerator']} "
        f"can serve (about {p['central_tokens_per_s']:.0f} tokens/s): the central figures come "
        "from the assumptions that can (a faster engine, precision or hardware), and so does the range"
    )


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    """A copy of a nested dict of lists and plain values: each Impact owns its assumptions
    (the group's stay as they are). Leaves are immutable, so only containers are copied."""
    out = dict(d)
    for k, v in out.items():
        t = type(v)
        if t is dict:
            out[k] = _copy(v)
        elif t is list:
            out[k] = _copy_list(v)
    return out


CopyPlan = tuple[tuple[str, Any], ...]


def copy_plan(d: dict[str, Any]) -> CopyPlan:
    """Which entries of a nested dict are containers, and theirs: all a copy must visit
    (worked out once for a group's assumptions, whose shape does not change)."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if type(v) is dict:
            out.append((k, copy_plan(v)))
        elif type(v) is list:
            out.append((k, None))
    return tuple(out)


def _copy_by(d: dict[str, Any], plan: CopyPlan) -> dict[str, Any]:
    """:func:`_copy` of a dict shaped as ``plan`` says."""
    out = dict(d)
    for k, sub in plan:
        v = d[k]
        out[k] = _copy_list(v) if sub is None else _copy_by(v, sub)
    return out


def _copy_list(v: list[Any]) -> list[Any]:
    return [_copy(x) if type(x) is dict else _copy_list(x) if type(x) is list else x for x in v]

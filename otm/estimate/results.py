"""The results of many estimates: :class:`ImpactBatch`, one array element per request.

Per request it keeps the central figures, their range, the breakdowns and
what was inferred (batch, instance size, method); per sample it keeps the
sums over all requests, so :meth:`ImpactBatch.totals` gives a total whose
range keeps the correlation between requests (docs/methodology.md
"Summing ranges").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from otm.impact import Impact, Range

from . import frames
from .user import METHOD_ITL, METHOD_LATENCY, METHOD_TOKENS, METHODS

__all__ = ["FLAG_AT_LIMIT", "FLAG_IMPLAUSIBLE", "ImpactBatch", "summarise"]

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
    x: np.ndarray, pcts: tuple[float, float], ok: np.ndarray | None = None, central: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(central, low, high) per row of a (rows, samples) array.

    The range is the percentiles of the samples (columns 1..S) that ``ok``
    allows (all when none is allowed); ``central`` picks each row's central
    sample (default column 0), which is kept inside [low, high].
    """
    rows = np.arange(x.shape[0])
    v = x[:, 0] if central is None else x[rows, central]
    if x.shape[1] < 2:
        return v, v, v
    s = x[:, 1:]
    if ok is None or bool(np.all(ok[:, 1:])):
        s = np.sort(s, axis=1)
        k = np.full(x.shape[0], s.shape[1])
    else:
        okr = np.asarray(ok)[:, 1:]
        none = ~okr.any(axis=1)
        okr = okr | np.asarray(none)[:, None]
        s = np.sort(np.where(okr, s, np.inf), axis=1)
        k = okr.sum(axis=1)
    lo = np.minimum(_at(s, k, pcts[0]), v)
    hi = np.maximum(_at(s, k, pcts[1]), v)
    return v, lo, hi


def _at(s: np.ndarray, k: np.ndarray, p: float) -> np.ndarray:
    """Linear-interpolated percentile (numpy's rule) of the first k sorted values per row."""
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
        grp = self.groups[int(self.group[i])]
        m = int(self.method[i])
        warnings = list(grp["warnings"])
        if m in _METHOD_NOTES:
            warnings.append(_METHOD_NOTES[m])
        beyond = bool(self.flags[i] & FLAG_IMPLAUSIBLE)
        if beyond:
            warnings.append(_beyond_note(float(self.itl_s[i]), grp["plausible"]))
        elif self.flags[i] & FLAG_AT_LIMIT:
            warnings.append(_limit_note(float(self.itl_s[i]), grp["plausible"]))
        status = self.status[i]
        if status not in (None, "ok"):
            warnings.append(
                f"request ended with status {status!r}: the estimate covers the tokens seen"
            )
        assumptions = _copy(grp["assumptions"])
        assumptions["method"] = METHODS[m]
        assumptions["effective_batch"] = {
            "value": float(self.batch_value[i]),
            "low": float(self.batch_low[i]),
            "high": float(self.batch_high[i]),
        }
        assumptions["deployment"]["count"] = {
            "value": float(self.count_value[i]),
            "low": float(self.count_low[i]),
            "high": float(self.count_high[i]),
        }
        itl = float(self.itl_s[i])
        if m == METHOD_ITL and np.isfinite(itl) and itl > 0:
            assumptions["observed"] = {
                "itl_s": itl,
                "tokens_per_s": 1.0 / itl,
                "assumptions_kept": float(self.kept[i]),
            }
            if self.flags[i]:
                assumptions["observed"]["central_moved"] = bool(self.flags[i] & FLAG_AT_LIMIT)
                assumptions["observed"]["beyond_assumptions"] = beyond
        assumptions["warnings"] = warnings
        cost = float(self.cost_usd[i])
        return Impact(
            energy_wh=Range(
                value=float(self.energy_wh_value[i]),
                low=float(self.energy_wh_low[i]),
                high=float(self.energy_wh_high[i]),
            ),
            carbon_g=Range(
                value=float(self.carbon_g_value[i]),
                low=float(self.carbon_g_low[i]),
                high=float(self.carbon_g_high[i]),
            ),
            water_ml=Range(
                value=float(self.water_ml_value[i]),
                low=float(self.water_ml_low[i]),
                high=float(self.water_ml_high[i]),
            ),
            breakdown_wh={k: float(v[i]) for k, v in self.breakdown_wh.items()},
            carbon_breakdown_g={k: float(v[i]) for k, v in self.carbon_breakdown_g.items()},
            water_breakdown_ml={k: float(v[i]) for k, v in self.water_breakdown_ml.items()},
            cost_usd=None if not np.isfinite(cost) else cost,
            assumptions=assumptions,
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

    # Data frames, one row per request (otm.estimate.frames; extras pandas, arrow, polars).
    def to_pandas(self) -> Any:
        return frames.to_pandas(self)

    def to_arrow(self) -> Any:
        return frames.to_arrow(self)

    def to_polars(self) -> Any:
        return frames.to_polars(self)

    def __repr__(self) -> str:
        from otm.units import fmt, plural

        return (
            f"<ImpactBatch {plural(len(self), 'record')}, {fmt('energy', self.energy_wh_value.sum())}, "
            f"{fmt('carbon', self.carbon_g_value.sum())}, {fmt('water', self.water_ml_value.sum())}>"
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


def _copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_copy(v) for v in d]
    return d

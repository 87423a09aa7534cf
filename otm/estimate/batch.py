"""The driver: group requests, compute each group with numpy, collect an ImpactBatch.

:func:`estimate_many` is the only code path; :func:`otm.estimate` is its
one-record case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from otm.deployment import Deployment
from otm.impact import Impact, Range
from otm.telemetry import Telemetry

from . import frames
from .calibration import DEFAULT, Calibration
from .combine import ChunkResult, Group, apply_floor, build_group, compute, implausible
from .stamp import data_stamp
from .user import FLOORS, METHOD_ITL, METHOD_LATENCY, METHOD_TOKENS, METHODS, Columns, columns

__all__ = ["ImpactBatch", "estimate", "estimate_many"]

def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_MIN_CHUNKS_FOR_THREADS = 4
# Worker threads for the numpy passes. With two CPUs or fewer the threads
# contend for the interpreter between numpy calls and were measured slower
# than one (bench/estimate.py), so they start at three.
_WORKERS = min(_cpus(), 8) if _cpus() >= 3 else 1
_CHUNK = 256  # requests per numpy pass: (256 x 65) float64 arrays (133 kB) keep the temporaries in L2

_METHOD_NOTES = {
    METHOD_LATENCY: "not streamed: typical serving load assumed; the total latency (less an estimated time to first token) sets how long the request held it (wider range)",
    METHOD_TOKENS: "no usable timings: effective batch assumed from typical serving (widest range)",
}

FLAG_IMPLAUSIBLE = 1
"""Row flag: the request's timing was faster than any plausible serving (treated as untimed)."""
FLAG_AT_LIMIT = 2
"""Row flag: faster than the central assumptions can serve; read at their fastest."""


def _percentile_sorted(s: np.ndarray, p: float) -> np.ndarray:
    """Linear-interpolated percentile (numpy's default) along axis 1 of a sorted array."""
    m = s.shape[1]
    pos = p / 100.0 * (m - 1)
    i = int(np.floor(pos))
    j = min(i + 1, m - 1)
    f = pos - i
    return s[:, i] * (1.0 - f) + s[:, j] * f


def _summarise(
    x: np.ndarray, pcts: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(central, low, high) per row; the central is kept inside [low, high]."""
    v = x[:, 0]
    if x.shape[1] < 2:
        return v, v, v
    s = np.sort(x[:, 1:], axis=1)  # numpy's vectorised sort beats a partial sort here
    lo = np.minimum(_percentile_sorted(s, pcts[0]), v)
    hi = np.maximum(_percentile_sorted(s, pcts[1]), v)
    return v, lo, hi


def _sanitised(r: ChunkResult) -> ChunkResult:
    return ChunkResult(**{k: _finite(np.asarray(v, dtype=float)) for k, v in vars(r).items()})


def _finite(a: np.ndarray) -> np.ndarray:
    # a guard, not a path: the physics keeps every figure finite; should a
    # pathological input slip through, report zero rather than NaN or inf
    if np.isfinite(a).all():
        return a
    return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


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
        self.observed_tps = np.full(n, np.nan)
        """Per record: the output speed its timing showed (tokens/s), where it was set aside."""
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
        implausible_row = bool(self.flags[i] & FLAG_IMPLAUSIBLE)
        if implausible_row:
            warnings.append(_implausible_note(float(self.observed_tps[i]), grp["plausible"]))
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
            assumptions["observed"] = {"itl_s": itl, "tokens_per_s": 1.0 / itl}
        if implausible_row:
            assumptions["observed"] = {
                "tokens_per_s": float(self.observed_tps[i]),
                "implausible": True,
                "max_plausible_tokens_per_s": grp["plausible"]["max_tokens_per_s"],
            }
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


def _implausible_note(tps: float, p: dict[str, Any]) -> str:
    shown = f"{tps:.0f} tokens/s" if np.isfinite(tps) else "its speed"
    return (
        f"timing implausible: {shown} is faster than any plausible serving of {p['model']} on "
        f"{p['accelerator']} (at most about {p['max_tokens_per_s']:.0f} tokens/s on up to "
        f"{p['max_count']:.0f} accelerators); treated as untimed (a buffered burst, a cached "
        "reply, speculative decoding or a smaller model than assumed)"
    )


def _limit_note(itl: float, p: dict[str, Any]) -> str:
    shown = f"{1.0 / itl:.0f} tokens/s" if np.isfinite(itl) and itl > 0 else "this speed"
    head = (
        f"{shown} is faster than the central assumptions for {p['model']} on {p['accelerator']} "
        f"can serve (about {p['central_tokens_per_s']:.0f} tokens/s"
    )
    if p["sized"]:
        return (
            head
            + " at a serving batch on the largest plausible instance); the central case is read at that speed, the range carries the rest"
        )
    return (
        head
        + " at one sequence); the central case is read as one sequence at its own speed, the range carries the rest"
    )


def _copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_copy(v) for v in d]
    return d


def _codes(a: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """Distinct values of an object column in first-seen order, and each row's code."""
    uniq = list(dict.fromkeys(a.tolist()))
    if len(uniq) == 1:
        return uniq, np.zeros(a.shape[0], dtype=np.intp)
    lookup = {v: i for i, v in enumerate(uniq)}
    return uniq, np.fromiter(map(lookup.__getitem__, a.tolist()), dtype=np.intp, count=a.shape[0])


def _factorise(c: Columns) -> list[tuple[str | None, str | None, np.ndarray]]:
    """(provider, model, row indices) for each distinct pair, in first-seen order."""
    n = len(c)
    if n == 0:
        return []
    provs, pc = _codes(c.provider)
    models, mc = _codes(c.model)
    if len(provs) == 1 and len(models) == 1:
        return [(provs[0], models[0], np.arange(n))]
    pair = pc * len(models) + mc
    keys, first, inverse = np.unique(pair, return_index=True, return_inverse=True)
    rank = np.empty(keys.size, dtype=np.intp)
    rank[np.argsort(first, kind="stable")] = np.arange(keys.size)
    idx = rank[inverse.reshape(-1)]
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(keys.size + 1))
    out = []
    for k in range(keys.size):
        rows = order[bounds[k] : bounds[k + 1]]
        key = int(pair[rows[0]])
        out.append((provs[key // len(models)], models[key % len(models)], rows))
    return out


def _chunk(g: Group, sub: Columns, sl: slice, pcts: tuple[float, float]) -> dict[str, Any]:
    """Compute one chunk and reduce it to per-request figures (thread-safe, pure)."""
    r = compute(g, sub, sl)
    if not all(np.isfinite(a).all() for a in (r.energy_j, r.carbon_g, r.water_ml)):
        r = _sanitised(r)  # every part feeds one of these sums
    # central breakdowns; the central total is their sum, so they add up exactly
    parts = {
        "accelerator": r.acc_j / 3600.0,
        "host": r.host_j / 3600.0,
        "idle": r.idle_j / 3600.0,
        "facility": r.fac_j / 3600.0,
    }
    c_op, c_emb, w_on, w_off = r.carbon_op_g, r.carbon_emb_g, r.water_on_ml, r.water_off_ml
    figures: dict[str, tuple[np.ndarray, ...]] = {}
    for key, arr, central in (
        (
            "energy_wh",
            r.energy_j / 3600.0,
            parts["accelerator"] + parts["host"] + parts["idle"] + parts["facility"],
        ),
        ("carbon_g", r.carbon_g, c_op + c_emb),
        ("water_ml", r.water_ml, w_on + w_off),
    ):
        _, lo, hi = _summarise(arr, pcts)
        figures[key] = (central, np.minimum(lo, central), np.maximum(hi, central), arr.sum(axis=0))
    return {
        "figures": figures,
        "breakdown_wh": parts,
        "carbon": {"operational": c_op, "embodied": c_emb},
        "water": {"onsite": w_on, "offsite": w_off},
        "batch": _summarise(r.batch, pcts),
        "count": _summarise(np.atleast_2d(r.count), pcts),
    }


def _map_chunks(
    g: Group, sub: Columns, chunks: list[slice], pcts: tuple[float, float]
) -> Iterator[dict[str, Any]]:
    """Chunks in order; on a multi-core machine, several at once (numpy frees the GIL)."""
    if len(chunks) < _MIN_CHUNKS_FOR_THREADS or _WORKERS < 2:
        for sl in chunks:
            yield _chunk(g, sub, sl, pcts)
        return
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="otm-estimate") as pool:
        yield from pool.map(lambda sl: _chunk(g, sub, sl, pcts), chunks)


def estimate_many(
    telemetries: Sequence[Telemetry | Mapping[str, Any]] | Mapping[str, Any],
    *,
    deployment: Deployment | None = None,
    region: str | None = None,
    calibration: Calibration | None = None,
    learn_floor: bool = True,
) -> ImpactBatch:
    """Estimate many requests at once (numpy over every request x sample).

    ``telemetries``: a sequence of :class:`~otm.telemetry.Telemetry` or of
    mappings of its fields (snake_case or the collectors' camelCase), or
    columns: a mapping of arrays, a pandas or polars ``DataFrame`` or a
    pyarrow ``Table`` (Telemetry field names or their camelCase aliases, or
    ``ttft_s``, ``decode_s``, ``duration_s``; scalars broadcast; see
    :func:`otm.estimate.frames.to_columns`). Specs are resolved once
    per distinct (provider, model). With ``learn_floor`` a low quantile of the
    recent clean streams of each deployment (in this batch and seen before in
    this process, once there are several) bounds the serving floor; see
    docs/methodology.md "Learning the floor".
    """
    if isinstance(telemetries, Mapping) or frames.is_frame(telemetries):
        telemetries = frames.to_columns(telemetries)  # pandas, Arrow, polars, dicts of columns
    cal = calibration or DEFAULT
    c = columns(
        telemetries,
        min_plausible_itl_s=cal.min_plausible_itl_s,
        min_tokens_for_floor=cal.min_tokens_for_floor,
    )
    n = len(c)
    out = ImpactBatch(n, cal.samples, cal.percentiles)
    out.itl_s[:] = c.itl_s
    out.status[:] = c.status

    stamp = data_stamp()
    for gi, (prov, model, idx) in enumerate(_factorise(c)):
        g = build_group(model, prov, deployment, region, cal, stamp)
        # timing faster than any plausible serving says nothing about the batch
        sub0 = c if idx.size == n else c.take(idx)
        bad, tps = implausible(g, sub0)
        if bad.any():
            rows = idx[bad]
            c.method[rows] = METHOD_TOKENS
            c.floor_ok[rows] = False
            c.itl_s[rows] = np.nan
            out.flags[rows] |= FLAG_IMPLAUSIBLE
            out.observed_tps[rows] = tps[bad]
        fast = (sub0.method == METHOD_ITL) & ~bad & (sub0.itl_s < g.floor_central_s)
        if fast.any():
            out.flags[idx[fast]] |= FLAG_AT_LIMIT
        notes: list[str] = []
        floor_info: dict[str, Any] | None = None
        if learn_floor:
            key = (g.plan.provider_id, g.work.model_id, deployment)
            ok = c.floor_ok[idx]
            seen = c.itl_s[idx][ok]
            learned = FLOORS.floor(
                key,
                seen,
                window=cal.floor_window,
                min_streams=cal.floor_min_streams,
                quantile=cal.floor_quantile,
            )
            if learned is not None:
                g2, notes = apply_floor(g, learned[0])
                if g2 is not g:
                    floor_info = {
                        "itl_floor_s": learned[0],
                        "tokens_per_s": 1.0 / learned[0],
                        "streams": learned[1],
                        "quantile": cal.floor_quantile,
                        "central_adjusted": bool(notes),
                    }
                g = g2
            if seen.size:
                FLOORS.observe(key, seen)
        out.method[idx] = c.method[idx]
        # rows of one method together: most chunks then skip the other methods' work
        methods = c.method[idx]
        if np.any(methods != methods[0]):
            idx = idx[np.argsort(methods, kind="stable")]
        whole = idx.size == n and np.array_equal(idx, np.arange(n))
        sub = c if whole else c.take(idx)
        price = g.work.price
        chunks = [slice(a, min(a + _CHUNK, idx.size)) for a in range(0, idx.size, _CHUNK)]
        for sl, res in zip(chunks, _map_chunks(g, sub, chunks, cal.percentiles)):
            rows = idx[sl]
            for key2, (central, lo, hi, sample_sum) in res["figures"].items():
                getattr(out, f"{key2}_value")[rows] = central
                getattr(out, f"{key2}_low")[rows] = lo
                getattr(out, f"{key2}_high")[rows] = hi
                out._sample_totals[key2] += sample_sum
            for name, arr in res["breakdown_wh"].items():
                out.breakdown_wh[name][rows] = arr
            for name, arr in res["carbon"].items():
                out.carbon_breakdown_g[name][rows] = arr
            for name, arr in res["water"].items():
                out.water_breakdown_ml[name][rows] = arr
            out.batch_value[rows], out.batch_low[rows], out.batch_high[rows] = res["batch"]
            out.count_value[rows], out.count_low[rows], out.count_high[rows] = res["count"]
        out.group[idx] = gi
        if price is not None:
            cached_price = (
                price.cached_input_per_m
                if price.cached_input_per_m is not None
                else price.input_per_m
            )
            out.cost_usd[idx] = (
                sub.fresh_in * price.input_per_m
                + sub.cached_in * cached_price
                + sub.output * price.output_per_m
            ) / 1e6
        assumptions = g.assumptions
        if floor_info is not None:
            assumptions = {**assumptions, "speed_bound": floor_info}
        out.groups.append(
            {
                "assumptions": assumptions,
                "warnings": list(dict.fromkeys([*g.warnings, *notes])),
                "records": int(idx.size),
                "plausible": {
                    "model": g.work.name,
                    "accelerator": g.plan.accelerators[int(g.accel_idx[0])].name,
                    "max_tokens_per_s": 1.0 / max(g.floor_hard_s, 1e-9),
                    "central_tokens_per_s": 1.0 / max(g.floor_central_s, 1e-9),
                    "max_count": float(np.max(g.n_cap)),
                    "sized": g.size_by_speed,
                },
            }
        )
    return out


def estimate(
    telemetry: Telemetry | Mapping[str, Any],
    *,
    deployment: Deployment | None = None,
    region: str | None = None,
    calibration: Calibration | None = None,
) -> Impact:
    """Energy, carbon and water of one request: :func:`estimate_many` of one record."""
    t = telemetry if isinstance(telemetry, Telemetry) else Telemetry.model_validate(telemetry)
    return estimate_many([t], deployment=deployment, region=region, calibration=calibration)[0]

"""The driver: group requests, compute each group with numpy, collect an ImpactBatch.

:func:`estimate_many` is the only code path; :func:`estimate` is its
one-record case.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from otm._log import log_once
from otm.deployment import Deployment
from otm.impact import Impact
from otm.telemetry import Telemetry

from . import frames
from .assemble import build_group
from .calibration import DEFAULT, Calibration
from .combine import compute
from .floor import FLOORS, key_text
from .group import Group, history_mask
from .results import (
    FLAG_AT_LIMIT,
    FLAG_IMPLAUSIBLE,
    ImpactBatch,
    copy_plan,
    impact,
    summarise,
    summarise_one,
)
from .stamp import data_stamp
from .user import METHOD_ITL, Columns, columns, row

__all__ = ["estimate", "estimate_many"]


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
_CHUNK = 256  # requests per numpy pass: (256 x 65) float64 arrays keep the temporaries in L2


def _finite(a: np.ndarray) -> np.ndarray:
    # a guard, not a path: the physics keeps every figure finite; should a
    # pathological input slip through, report zero rather than NaN or inf -
    # and say so, since a zero reads as a smaller figure
    if np.isfinite(a).all():
        return a
    _not_finite()
    return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


def _not_finite() -> None:
    log_once(
        "estimate",
        message="otm: an estimate came out NaN or infinite and is reported as 0; "
        "this is a bug in otm, please report the model and deployment",
    )


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


def _chunk(
    g: Group, sub: Columns, sl: slice, pcts: tuple[float, float], hist: np.ndarray | None
) -> dict[str, Any]:
    """Compute one chunk and reduce it to per-request figures (thread-safe, pure)."""
    r = compute(g, sub, sl, hist)
    energy_wh = _finite(r.energy_j) / 3600.0
    carbon, water = _finite(r.carbon_g), _finite(r.water_ml)
    acc, host, idle, fac = (_finite(x) / 3600.0 for x in (r.acc_j, r.host_j, r.idle_j, r.fac_j))
    c_op, c_emb = _finite(r.carbon_op_g), _finite(r.carbon_emb_g)
    over = sub.grid_override[sl]
    if np.isfinite(over).any():
        # a per-record grid intensity (a live figure for the hour served): the
        # operational carbon follows it in every sample
        o = np.isfinite(over)
        op_s = energy_wh[o] * (g.grid / 1000.0)
        carbon[o] = carbon[o] - op_s + energy_wh[o] * (over[o, None] / 1000.0)
        c_op = np.where(o, (acc + host + idle + fac) * np.where(o, over, 0.0) / 1000.0, c_op)
    ok = r.feasible
    parts = {"accelerator": acc, "host": host, "idle": idle, "facility": fac}
    figures: dict[str, tuple[np.ndarray, ...]] = {}
    for key, arr, central in (
        ("energy_wh", energy_wh, acc + host + idle + fac),
        ("carbon_g", carbon, c_op + c_emb),
        ("water_ml", water, _finite(r.water_on_ml) + _finite(r.water_off_ml)),
    ):
        _, lo, hi = summarise(arr, pcts, ok, r.central)
        # per-sample sums for totals: a sample a request's timing rules out
        # counts that request at its central value
        sums = np.where(ok, arr, central[:, None]).sum(axis=0)
        figures[key] = (central, np.minimum(lo, central), np.maximum(hi, central), sums)
    return {
        "figures": figures,
        "breakdown_wh": parts,
        "carbon": {"operational": c_op, "embodied": c_emb},
        "water": {"onsite": _finite(r.water_on_ml), "offsite": _finite(r.water_off_ml)},
        "batch": summarise(r.batch, pcts, ok, r.central),
        "count": summarise(r.count, pcts, ok, r.central),
        "central": r.central,
        "moved": r.moved_by_speed,
        "kept": ok[:, 1:].mean(axis=1),
        "none_ok": ~ok.any(axis=1),
    }


def _map_chunks(
    g: Group, sub: Columns, chunks: list[slice], pcts: tuple[float, float], hist: np.ndarray | None
) -> Iterator[dict[str, Any]]:
    """Chunks in order; on a multi-core machine, several at once (numpy frees the GIL)."""
    if len(chunks) < _MIN_CHUNKS_FOR_THREADS or _WORKERS < 2:
        for sl in chunks:
            yield _chunk(g, sub, sl, pcts, hist)
        return
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="otm-estimate") as pool:
        yield from pool.map(lambda sl: _chunk(g, sub, sl, pcts, hist), chunks)


def _default_region(region: str | None, deployment: Deployment | None) -> str | None:
    """The region to use: the argument, else the configured default (``OTM_REGION``,
    ``otm.configure(region=...)``), so every estimate sees what captured calls see."""
    if region or (deployment is not None and deployment.region):
        return region
    global _configured_region
    try:
        if _configured_region is None:
            from otm.config import default_region

            _configured_region = default_region
        return _configured_region()
    except Exception:  # noqa: BLE001 - a broken config must not break an estimate
        return None


_configured_region: Callable[[], str | None] | None = None
"""``otm.config.default_region``, imported on the first estimate that needs it."""


def estimate_many(
    telemetries: Sequence[Telemetry | Mapping[str, Any]] | Mapping[str, Any] | Any,
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
    :func:`otm.estimate.frames.to_columns`; an optional
    ``grid_gco2e_per_kwh`` column overrides the grid per record, NaN keeping
    the region's). Specs are resolved once per distinct (provider, model).
    With ``learn_floor`` the recent clean streams of each deployment (in
    this batch and seen before, also in earlier processes) set aside the
    assumptions too slow for it; see docs/methodology.md "Learning from
    history".
    """
    if isinstance(telemetries, Mapping) or frames.is_frame(telemetries):
        telemetries = frames.to_columns(telemetries)  # pandas, Arrow, polars, dicts of columns
    cal = calibration or DEFAULT
    region = _default_region(region, deployment)
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
        ok = c.floor_ok[idx]
        hist, notes, floor_info = _learn(g, deployment, cal, c.itl_s[idx][ok], learn_floor)
        out.method[idx] = c.method[idx]
        whole = idx.size == n and np.array_equal(idx, np.arange(n))
        sub = c if whole else c.take(idx)
        price = g.work.price
        chunks = [slice(a, min(a + _CHUNK, idx.size)) for a in range(0, idx.size, _CHUNK)]
        for sl, res in zip(chunks, _map_chunks(g, sub, chunks, cal.percentiles, hist), strict=True):
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
            timed = sub.method[sl] == METHOD_ITL
            out.flags[rows] = np.where(
                timed & res["none_ok"],
                FLAG_IMPLAUSIBLE,
                np.where(timed & res["moved"], FLAG_AT_LIMIT, 0),
            )
            out.kept[rows] = res["kept"]
        out.group[idx] = gi
        if price is not None:
            out.cost_usd[idx] = _cost(price, sub.fresh_in, sub.cached_in, sub.output)
        out.groups.append(_group_info(g, notes, floor_info, int(idx.size)))
    return out


def _learn(
    g: Group, deployment: Deployment | None, cal: Calibration, seen: np.ndarray, learn: bool
) -> tuple[np.ndarray | None, list[str], dict[str, Any] | None]:
    """What the deployment's history says about this group, before ``seen`` (its clean
    stream latencies in this call) joins it: the samples it leaves possible, notes, and
    what the assumptions report (docs/methodology.md "Learning from history")."""
    if not learn:
        return None, [], None
    key = g.memo.get("floor_key")
    if key is None:
        key = g.memo["floor_key"] = key_text((g.plan.provider_id, g.work.model_id, deployment))
    learned = FLOORS.floor_then_observe(
        key,
        seen,
        window=cal.floor_window,
        min_streams=cal.floor_min_streams,
        quantile=cal.floor_quantile,
    )
    if learned is None:
        return None, [], None
    # the mask moves only when the floor does: the last one is kept with the group
    last = g.memo.get("history")
    if last is not None and last[0] == learned:
        hist, notes, share = last[1], last[2], last[3]
    else:
        hist, notes = history_mask(g, learned[0], learned[1])
        # the share of samples 1..S kept (np.mean of the mask, as a count)
        share = None
        if hist is not None:
            hist.setflags(write=False)
            share = int(np.count_nonzero(hist[1:])) / (hist.size - 1)
        g.memo["history"] = (learned, hist, notes, share)
    info = {
        "itl_floor_s": learned[0],
        "tokens_per_s": 1.0 / learned[0],
        "streams": learned[1],
        "quantile": cal.floor_quantile,
        "assumptions_kept": share,
    }
    return hist, list(notes), info


def _group_info(
    g: Group, notes: list[str], floor_info: dict[str, Any] | None, records: int
) -> dict[str, Any]:
    """What every record of a group shares: assumptions, warnings, the speeds it can serve."""
    assumptions = g.assumptions
    plan = g.once("copy_plan", lambda: copy_plan(g.assumptions))
    if floor_info is not None:
        assumptions = {**assumptions, "history": floor_info}
        plan = (*plan, ("history", ()))  # a flat dict
    return {
        "assumptions": assumptions,
        "warnings": list(dict.fromkeys([*g.warnings, *notes])) if notes else list(g.warnings),
        "records": records,
        "plausible": g.once("plausible", lambda: _plausible(g)),
        "copy_plan": plan,
    }


def _plausible(g: Group) -> dict[str, Any]:
    lim = g.fastest()
    return {
        "model": g.work.name,
        "accelerator": g.plan.accelerators[int(g.accel_idx[0])].name,
        "max_tokens_per_s": 1.0 / max(float(np.min(lim)), 1e-9),
        "central_tokens_per_s": 1.0 / max(float(lim[0]), 1e-9),
        "max_count": float(np.max(g.n_cap)),
        "sized": g.size_by_speed,
    }


def estimate(
    telemetry: Telemetry | Mapping[str, Any],
    *,
    deployment: Deployment | None = None,
    region: str | None = None,
    calibration: Calibration | None = None,
) -> Impact:
    """Energy, carbon and water of one request: :func:`estimate_many` of one record.

    The same formulas on one row of plain numbers (:func:`otm.estimate.user.row`,
    :func:`otm.estimate.combine.compute`), with everything that depends only on
    the model, deployment, region and calibration kept with the cached group;
    ``tests/test_estimate_fast.py`` checks it gives estimate_many's figures.
    """
    t = telemetry if isinstance(telemetry, Telemetry) else Telemetry.model_validate(telemetry)
    cal = calibration or DEFAULT
    region = _default_region(region, deployment)
    x = row(t, min_plausible_itl_s=cal.min_plausible_itl_s, min_tokens_for_floor=cal.min_tokens_for_floor)
    g = build_group(x.model, x.provider, deployment, region, cal, data_stamp())
    seen = np.array([x.itl_s]) if x.floor_ok else _NONE
    hist, notes, floor_info = _learn(g, deployment, cal, seen, True)
    r = compute(g, x, history_ok=hist)

    # _chunk's reduction, for one request: the five per-sample figures in one array
    ok = r.feasible
    stack = np.empty((5, ok.shape[0]))
    np.divide(r.energy_j, 3600.0, out=stack[0])
    stack[1] = r.carbon_g
    stack[2] = r.water_ml
    stack[3] = r.batch
    stack[4] = r.count
    if not np.isfinite(stack[:3]).all():
        _not_finite()  # _finite's guard (x / 3600 is finite exactly where x is)
        np.nan_to_num(stack[:3], copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    parts: tuple[float, ...] = (
        r.acc_j, r.host_j, r.idle_j, r.fac_j, r.carbon_op_g, r.carbon_emb_g, r.water_on_ml, r.water_off_ml
    )
    if not math.isfinite(sum(parts)):  # one check for the eight (a sum is finite if each is)
        parts = tuple(_finite1(p) for p in parts)
    acc, host, idle, fac = parts[0] / 3600.0, parts[1] / 3600.0, parts[2] / 3600.0, parts[3] / 3600.0
    c_op, c_emb, w_on, w_off = parts[4:]
    v, lo, hi = summarise_one(stack, cal.percentiles, ok, r.central)
    v_l, lo_l, hi_l = v.tolist(), lo.tolist(), hi.tolist()
    e_c, c_c, w_c = acc + host + idle + fac, c_op + c_emb, w_on + w_off
    timed = x.method == METHOD_ITL
    kept = int(np.count_nonzero(ok[1:]))
    none_ok = kept == 0 and not ok[0]
    flags = FLAG_IMPLAUSIBLE if timed and none_ok else (FLAG_AT_LIMIT if timed and r.moved_by_speed else 0)
    price = g.work.price
    cost: float | None = None
    if price is not None:
        cost = _cost(price, x.fresh_in, x.cached_in, x.output)
        if not math.isfinite(cost):
            cost = None
    return impact(
        _group_info(g, notes, floor_info, 1),
        method=x.method,
        flags=flags,
        itl=x.itl_s,
        kept=kept / (ok.size - 1),
        status=x.status,
        batch=(v_l[3], lo_l[3], hi_l[3]),
        count=(v_l[4], lo_l[4], hi_l[4]),
        energy_wh=(e_c, min(lo_l[0], e_c), max(hi_l[0], e_c)),
        carbon_g=(c_c, min(lo_l[1], c_c), max(hi_l[1], c_c)),
        water_ml=(w_c, min(lo_l[2], w_c), max(hi_l[2], w_c)),
        breakdown_wh={"accelerator": acc, "host": host, "idle": idle, "facility": fac},
        carbon_breakdown_g={"operational": c_op, "embodied": c_emb},
        water_breakdown_ml={"onsite": w_on, "offsite": w_off},
        cost_usd=cost,
    )


_NONE = np.empty(0)


def _cost(price: Any, fresh: Any, cached: Any, output: Any) -> Any:
    """US dollars at the published price per million tokens (arrays or numbers)."""
    cached_price = price.cached_input_per_m if price.cached_input_per_m is not None else price.input_per_m
    return (fresh * price.input_per_m + cached * cached_price + output * price.output_per_m) / 1e6


def _finite1(x: float) -> float:
    """:func:`_finite` of one number."""
    if math.isfinite(x):
        return x
    _not_finite()
    return 0.0

"""The three layers together -> energy, carbon, water with ranges (docs/methodology.md).

A group is every request of one (provider, model) under one deployment and
region. For a group, :func:`build_group` draws the uncertain inputs once
(column 0 central, columns 1..S the quasi-random samples); :func:`compute`
then evaluates every request of the group against every sample at once with
numpy, arrays of shape (requests, samples).

Decode. One engine step serving B sequences takes

    t(B) = t_fixed + c_seq B + max(W(B)/BW + B kv ctx/BW, B flops/F)

(BW, F: the instance's effective bandwidth and FLOP/s). The observed
inter-token latency is t(B); inverting it gives the effective batch B, and a
request's decode energy is out x P(B) t / B: its share of the instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from otm.deployment import Deployment

from .calibration import Calibration, Tri
from .hardware import HardwarePlan, accelerator_power, hardware_plan, minimal_count
from .provider import ModelWork, model_work, precision_bytes, weight_bytes_read
from .sampling import design, pick, spread
from .user import METHOD_ITL, METHOD_LATENCY, Columns

__all__ = [
    "Group",
    "apply_floor",
    "build_group",
    "compute",
    "decode_forward",
    "implausible",
    "invert_batch",
    "step_time",
    "utilisation",
]

# No instance holds more sequences than this per accelerator, whatever the
# memory says (a sanity cap; DeepSeek's disclosed decode ran ~90 per GPU).
_MAX_SEQS_PER_ACCEL = 2048.0
_LAMBERT_STEPS = 4
_POLISH_STEPS = 1


@dataclass(frozen=True, eq=False)
class Group:
    """Per-sample inputs of one group: every array has shape (S+1,), column 0 central."""

    work: ModelWork
    plan: HardwarePlan
    cal: Calibration
    accel_idx: np.ndarray
    grid_idx: np.ndarray
    n: np.ndarray  # accelerators per instance (fixed or memory-sized)
    n_mem: np.ndarray  # smallest count whose memory holds the model (continuous)
    n_cap: np.ndarray  # largest plausible instance (hosted sizing stops there)
    size_by_speed: bool  # hosted, count unknown: sized from the observed speed per request
    mem1: np.ndarray  # bytes per accelerator
    bw1_eff: np.ndarray  # bytes/s achieved by decode, per accelerator
    f1_eff: np.ndarray  # FLOP/s achieved by decode, per accelerator
    peak1: np.ndarray  # FLOP/s peak per accelerator (prefill uses its own MFU)
    tdp: np.ndarray
    idle: np.ndarray
    w_total: np.ndarray  # weight bytes stored
    w_active: np.ndarray  # weight bytes read per token at B = 1
    shared: np.ndarray  # share of active weights every token uses
    n_active: np.ndarray  # active parameters (FLOPs = 2 x this per token)
    attn_coef: np.ndarray  # attention FLOPs per token per context token
    kv_bytes: np.ndarray  # KV bytes per context token
    moe: bool
    compute_factor: np.ndarray  # 1 + MoE compute overhead
    engine_scale: np.ndarray
    t_fixed_cap: np.ndarray  # upper bound on the fixed step overhead learned from the floor
    c_seq: np.ndarray
    u_wait: np.ndarray
    u_work: np.ndarray
    mfu_pre: np.ndarray
    cache_cost: np.ndarray
    batch_prior: np.ndarray  # self-hosted, untimed: concurrent sequences assumed
    itl_prior: np.ndarray  # hosted, untimed: step time assumed
    ttft_over: np.ndarray
    weight_share: np.ndarray  # hosted sizing: weights read in at most this share of a step
    host_w: np.ndarray  # per accelerator, 0 outside the boundary
    host_idle_w: np.ndarray
    idle_frac: np.ndarray
    pue: np.ndarray
    wue: np.ndarray
    grid: np.ndarray  # gCO2e/kWh
    water: np.ndarray  # L/kWh off-site
    emb_rate: np.ndarray  # kgCO2e per accelerator-second
    compute_mult: np.ndarray
    unit_compute: bool = True
    """Every sample's compute multiplier is 1 (skips a multiplication)."""
    floor_hard_s: float = 0.0
    """The fastest step any sample can plausibly serve (hosted: at a production batch on the
    largest plausible instance; a given instance: one sequence): faster is implausible."""
    floor_central_s: float = 0.0
    """The same for the central sample: faster streams leave the central case untimed."""
    prefill_min_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Lower bounds of the instance's prefill wall time per fresh token, per cached token and
    per unit of attention work (fresh x context), over the samples."""
    warnings: tuple[str, ...] = ()
    assumptions: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def t_fixed(self, n: np.ndarray) -> np.ndarray:
        """Fixed per-step overhead of an instance of ``n`` accelerators.

        scale x (t_base + t_sync x (sqrt(min(n, 16)) - 1)): n >= 1 always; the
        growth stops at the largest calibrated instance.
        """
        cal = self.cal
        a = self.engine_scale * cal.t_step_sync_s
        c = self.engine_scale * cal.t_step_base_s - a
        if np.ndim(n) > 1 and float(np.min(n)) >= cal.sync_max_count:
            # every instance past the calibrated range: one overhead per sample
            t = a * np.sqrt(cal.sync_max_count) + c
        else:
            t = np.sqrt(np.minimum(n, cal.sync_max_count))
            t *= a
            t += c
        return t if self._no_cap else np.minimum(t, self.t_fixed_cap)

    @property
    def _no_cap(self) -> bool:
        return not np.isfinite(self.t_fixed_cap).any()

    def count_for(self, step_s: np.ndarray) -> np.ndarray:
        """Accelerators per instance; hosted services are sized from the step time.

        A provider that streams at a given speed has enough accelerators that
        reading all the weights (every expert, at production batch) takes at
        most ``weight_share`` of the step left after the engine's fixed
        overhead, and no more than its largest plausible instance
        (``n_cap``). Continuous: an expectation over the power-of-two
        instances actually deployed, so estimates move smoothly.
        """
        if not self.size_by_speed:
            return self.n
        base = self.w_total / (self.bw1_eff * self.weight_share)
        step = np.maximum(step_s, 1e-6)
        # the fixed overhead grows with the instance: first guess without it
        n1 = np.clip(base / step, self.n_mem, self.n_cap)
        room = step - self.t_fixed(n1)
        # no room left: a step no instance serves (the cap applies)
        np.maximum(room, 1e-12, out=room)
        np.divide(base, room, out=room)
        return np.clip(room, self.n_mem, self.n_cap, out=room)

    def sizing_limit(self) -> np.ndarray:
        """Per sample: the step below which the sizing rule needs more than ``n_cap``."""
        base = self.w_total / (self.bw1_eff * self.weight_share)
        return base / self.n_cap + self.t_fixed(self.n_cap)

    def step_floor(self, n: np.ndarray) -> np.ndarray:
        """Per-sample step of an instance of ``n`` at one sequence (KV and compute aside)."""
        return self.t_fixed(n) + self.c_seq + self.w_active / (n * self.bw1_eff)


def _tri_json(x: np.ndarray | Tri) -> dict[str, float]:
    if isinstance(x, tuple):
        return {"value": float(x[0]), "low": float(x[1]), "high": float(x[2])}
    return {"value": float(x[0]), "low": float(np.min(x)), "high": float(np.max(x))}


@lru_cache(maxsize=512)
def build_group(
    model: str | None,
    provider: str | None,
    deployment: Deployment | None,
    region: str | None,
    cal: Calibration,
    stamp: tuple[int, ...] = (),
) -> Group:
    """Resolve model, hardware and site once and draw every uncertain input.

    ``stamp`` (:func:`otm.estimate.stamp.data_stamp`) keys the cache so a
    run-time data registration is seen by the next estimate.
    """
    work = model_work(model, provider, stamp)
    plan = hardware_plan(deployment, region, provider or work.default_provider, stamp)
    d = design(cal.samples, cal.seed)
    warnings: list[str] = [*work.warnings, *plan.warnings]

    # --- model size and precision
    u_size = d["size"]
    active = spread(work.active_b, u_size)
    total = np.maximum(spread(work.total_b, u_size), active)
    shared = spread(work.shared_fraction, u_size) if work.is_moe else np.ones_like(active)
    precision = plan.precision_override or work.precision
    b0 = precision_bytes(precision)
    bytes_pp = np.full_like(active, b0)
    if (
        plan.precision_override is None
        and work.precision_estimated
        and not plan.self_hosted
        and b0 >= 2.0
    ):
        # hosted services increasingly serve 8-bit weights: a third of samples (ESTIMATE)
        bytes_pp = np.where(d["precision"] > 2.0 / 3.0, b0 / 2.0, b0)

    # --- accelerators
    accels = plan.accelerators
    a_idx = (
        np.zeros(active.shape, dtype=np.intp)
        if plan.accelerator_fixed
        else pick(d["accelerator"], len(accels))
    )

    def per_accel(f: Any) -> np.ndarray:
        vals = np.array([f(a) for a in accels], dtype=float)
        return vals[a_idx]

    mem = per_accel(lambda a: a.memory_bytes)
    bw = per_accel(lambda a: a.bw_bytes_s)
    bf16 = per_accel(lambda a: a.bf16_flops)
    fp8 = per_accel(lambda a: a.fp8_flops or a.bf16_flops)
    peak = np.where(bytes_pp <= 1.0, fp8, bf16)
    tdp = per_accel(lambda a: a.tdp_w)
    idle = per_accel(lambda a: a.idle_w)

    w_total = total * 1e9 * bytes_pp
    w_active = active * 1e9 * bytes_pp
    n_mem = np.maximum(
        w_total * cal.memory_overhead / (mem * (1.0 - cal.kv_headroom_fraction)), 1.0
    )
    size_by_speed = plan.count is None and not plan.self_hosted
    max_inst = np.array([a.max_instance for a in accels], dtype=float)[a_idx]
    n_cap = np.maximum(n_mem, np.minimum(cal.count_cap_factor * n_mem, max_inst))
    if plan.count is not None:
        n = np.full_like(active, float(plan.count))
        if w_total[0] > n[0] * mem[0] * cal.usable_memory_fraction:
            warnings.append(
                f"the weights ({w_total[0] / 1e9:.0f} GB) do not fit in {plan.count} x {accels[a_idx[0]].name}: "
                "treating the instance as memory-bound at batch 1"
            )
    else:
        n = minimal_count(w_total, mem, cal.memory_overhead, cal.kv_headroom_fraction)
        n = np.where(d["count"] > 1.0 - cal.count_double_share, 2.0 * n, n)

    # --- efficiencies and engine
    eff = spread(cal.efficiency_spread, d["efficiency"])
    eta_bw = np.minimum(cal.eta_bw * eff, 0.95)
    eta_f = np.minimum(cal.eta_flops * eff, 0.95)
    scale = spread(cal.engine_self_hosted if plan.self_hosted else cal.engine_hosted, d["engine"])
    seq_scale = scale if plan.self_hosted else spread(cal.per_seq_hosted, d["engine"])
    c_seq = seq_scale * cal.t_per_seq_s
    pm = spread(cal.power_spread, d["power"])
    moe_pf = cal.moe_power_factor if work.is_moe else 1.0
    u_wait = cal.u_wait * moe_pf * pm
    u_work = cal.u_work * moe_pf * pm

    # --- KV cache and attention
    kv_el = (
        spread(work.kv_elements_per_token(), d["kv"])
        if work.kv_estimated
        else np.full_like(active, work.kv_elements_per_token()[0])
    )
    kv_bytes = kv_el * np.where(bytes_pp >= 2.0, 2.0, 1.0)
    attn_coef = np.full_like(active, 4.0 * work.layers[0] * work.attn_width)

    # --- host, reserve, facility, grid
    if not plan.include_host:
        host_w = np.zeros_like(active)
    elif plan.host_w_override is not None:
        host_w = np.full_like(active, float(plan.host_w_override))
    else:
        opts = np.stack([spread(a.host_w, d["host"]) for a in accels])
        host_w = opts[a_idx, np.arange(a_idx.size)]
    idle_frac = np.clip(spread(plan.idle_reserve, d["idle_reserve"]), 0.0, 0.95)
    pue = np.maximum(spread(plan.pue, d["pue"]), 1.0)
    wue = np.maximum(spread(plan.wue, d["wue"]), 0.0)
    g_idx = (
        np.zeros(active.shape, dtype=np.intp)
        if plan.grid_fixed
        else pick(d["region"], len(plan.grids))
    )
    grid_v = np.array([g.gco2e_per_kwh for g in plan.grids])[g_idx]
    water_v = np.array([g.water_l_per_kwh for g in plan.grids])[g_idx]
    if plan.grid_fixed and plan.grid_override is None:
        grid_v = grid_v * spread(cal.default_region_spread, d["grid_spread"])
    grid = np.full_like(active, plan.grid_override) if plan.grid_override is not None else grid_v
    water = (
        np.full_like(active, plan.water_override) if plan.water_override is not None else water_v
    )

    emb_opts = np.stack(
        [
            (
                spread(a.embodied_kg, d["embodied"])
                + (spread(a.host_embodied_kg, d["embodied"]) if plan.include_host else 0.0)
            )
            / a.lifetime_s
            for a in accels
        ]
    )
    emb_rate = emb_opts[a_idx, np.arange(a_idx.size)]

    g = Group(
        work=work,
        plan=plan,
        cal=cal,
        accel_idx=a_idx,
        grid_idx=g_idx,
        n=n,
        n_mem=n_mem,
        n_cap=n_cap if size_by_speed else n,
        size_by_speed=size_by_speed,
        mem1=mem,
        bw1_eff=bw * eta_bw,
        f1_eff=peak * eta_f,
        peak1=peak,
        tdp=tdp,
        idle=idle,
        w_total=w_total,
        w_active=w_active,
        shared=shared,
        n_active=active * 1e9,
        attn_coef=attn_coef,
        kv_bytes=kv_bytes,
        moe=work.is_moe,
        compute_factor=np.full_like(
            active, 1.0 + (cal.moe_compute_overhead if work.is_moe else 0.0)
        ),
        engine_scale=scale,
        t_fixed_cap=np.full_like(active, np.inf),
        c_seq=np.broadcast_to(c_seq, active.shape).copy(),
        u_wait=u_wait,
        u_work=u_work,
        mfu_pre=spread(cal.prefill_mfu, d["prefill_mfu"]),
        cache_cost=spread(cal.cached_token_cost, d["cache_cost"]),
        batch_prior=spread(cal.batch_self_hosted, d["batch_prior"]),
        itl_prior=spread(cal.itl_hosted_s, d["batch_prior"]),
        ttft_over=spread(
            cal.ttft_overhead_self_hosted_s if plan.self_hosted else cal.ttft_overhead_hosted_s,
            d["ttft_overhead"],
        ),
        weight_share=spread(cal.weight_read_share, d["count"]),
        host_w=host_w,
        host_idle_w=host_w * cal.host_idle_fraction,
        idle_frac=idle_frac,
        pue=pue,
        wue=wue,
        grid=grid,
        water=water,
        emb_rate=emb_rate,
        compute_mult=spread(work.compute_multiplier, u_size),
        warnings=tuple(dict.fromkeys(warnings)),
    )
    hard, central = _hard_floor(g)
    g = replace(
        g,
        floor_hard_s=hard,
        floor_central_s=central,
        prefill_min_s=_prefill_min(g),
        unit_compute=bool(np.all(g.compute_mult == 1.0)),
    )
    g.assumptions.update(_assumptions(g, precision, bytes_pp))
    return g


def _hard_floor(g: Group) -> tuple[float, float]:
    """The fastest step the deployment can plausibly show, (any sample, central sample).

    A hosted instance sized from the speed: the step at which the sizing
    rule reaches the largest plausible instance (a faster stream could only
    be explained by an instance larger than any deployed, or by one running
    nearly empty). A given instance: the one-sequence step. The first figure
    is the most favourable sample's (size, precision, efficiency, engine
    overhead at their fastest): below it the timing is implausible.
    """
    lim = g.sizing_limit() if g.size_by_speed else g.step_floor(g.n)
    return float(np.min(lim)), float(lim[0])


def _prefill_min(g: Group) -> tuple[float, float, float]:
    """Lower bounds (over samples, on the largest instance) of the prefill's wall time."""
    per_flop = g.compute_mult / (g.peak1 * g.mfu_pre * g.n_cap)
    fresh = float(np.min(2.0 * g.n_active * per_flop))
    cached = float(np.min(2.0 * g.n_active * g.cache_cost * per_flop))
    attn = float(np.min(g.attn_coef * per_flop))
    return fresh, cached, attn


def _assumptions(g: Group, precision: str, bytes_pp: np.ndarray) -> dict[str, Any]:
    w, p = g.work, g.plan
    a0 = p.accelerators[int(g.accel_idx[0])]
    grid0 = p.grids[int(g.grid_idx[0])]
    return {
        "model": {
            "id": w.model_id,
            "name": w.name,
            "in_data": w.found,
            "size": w.size_basis,
            "size_estimated": w.size_estimated,
            "size_method": w.size_method,
            "architecture": w.architecture,
            "total_params_b": _tri_json(w.total_b),
            "active_params_b": _tri_json(w.active_b),
            "precision": precision,
            "precision_estimated": w.precision_estimated and p.precision_override is None,
            "bytes_per_param": _tri_json(bytes_pp),
        },
        "deployment": {
            "provider": p.provider_id,
            "self_hosted": p.self_hosted,
            "accelerator": a0.name,
            "accelerator_alternatives": [a.name for a in p.accelerators[1:]],
            "count": _tri_json(g.n),
            "count_basis": "given"
            if p.count is not None
            else (
                "sized from memory and observed speed"
                if g.size_by_speed
                else "smallest power of two that holds the weights"
            ),
            "engine_overhead_scale": _tri_json(g.engine_scale),
        },
        "site": {
            "region": grid0.id,
            "region_name": grid0.name,
            "region_source": p.region_source,
            "region_alternatives": [x.id for x in p.grids[1:]],
            "grid_gco2e_per_kwh": _tri_json(g.grid),
            "grid_data_year": grid0.data_year,
            "water_l_per_kwh": _tri_json(g.water),
            "pue": _tri_json(g.pue),
            "wue_l_per_kwh": _tri_json(g.wue),
            "idle_reserve": _tri_json(g.idle_frac),
            "include_host": p.include_host,
            "host_w_per_accelerator": _tri_json(g.host_w),
        },
        "calibration": "decode efficiencies, engine overheads and power curve fitted on ML.ENERGY v2 (docs/methodology.md)",
    }


# ----------------------------------------------------------------- the physics


def step_time(
    batch: np.ndarray,
    *,
    t_fixed: np.ndarray,
    c_seq: np.ndarray,
    weights_s: np.ndarray,
    kv_s: np.ndarray,
    comp_s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Step time of an instance at ``batch`` and the part spent in kernels.

    ``weights_s``: seconds to read the weights the step touches; ``kv_s`` and
    ``comp_s``: seconds of KV reads and of compute per sequence.
    """
    kernels = np.maximum(weights_s + kv_s * batch, comp_s * batch)
    return t_fixed + c_seq * batch + kernels, kernels


def utilisation(
    kernels: np.ndarray, t: np.ndarray, u_wait: np.ndarray, u_work: np.ndarray
) -> np.ndarray:
    """Fitted power curve: u_wait while the engine waits, u_work while kernels run."""
    busy = np.where(t > 0, kernels / np.where(t > 0, t, 1.0), 1.0)
    return u_wait + (u_work - u_wait) * np.clip(busy, 0.0, 1.0)


def invert_batch(
    target: np.ndarray,
    *,
    t_fixed: np.ndarray,
    c_seq: np.ndarray,
    bw_eff: np.ndarray,
    w_total: np.ndarray,
    w_active: np.ndarray,
    shared: np.ndarray,
    kv_s: np.ndarray,
    comp_s: np.ndarray,
    moe: bool,
) -> np.ndarray:
    """The batch B whose step time equals ``target`` (unclipped; 0 when below one sequence)."""
    routed = np.maximum(w_total - w_active * shared, 0.0)
    return _invert(
        target,
        t_fixed=t_fixed,
        c_seq=c_seq,
        w_tot_s=w_total / bw_eff,
        w_act_s=w_active / bw_eff,
        routed_s=routed / bw_eff,
        log_q=_log_miss(w_total, w_active, shared),
        kv_s=kv_s,
        comp_s=comp_s,
        moe=moe,
    )


def _log_miss(w_total: np.ndarray, w_active: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """log(1 - p): p = k/E, the chance one token routes to a given expert."""
    routed = np.maximum(w_total - w_active * shared, 0.0)
    p = np.clip((w_active - w_active * shared) / np.maximum(routed, 1e-30), 0.0, 1.0 - 1e-12)
    return np.log1p(-p)


def _all_experts_batch(w_tot_s: Any, routed_s: Any, log_q: Any) -> np.ndarray:
    """The batch past which a MoE step reads every expert (to 1e-13 of the weights)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(w_tot_s / np.maximum(routed_s, 1e-300))
        return np.log(1e-13 * ratio) / np.minimum(log_q, -1e-300)


def _lambert_w_log(log_z: np.ndarray) -> np.ndarray:
    """Principal branch W(z) for z = exp(log_z) >= 0, without forming z.

    Solves t + exp(t) = log_z for t = ln W (Newton; the function is convex
    and increasing), from Winitzki's approximation (within a few per cent
    for every z >= 0).
    """
    # ln(1 + z), stable for any log_z
    lp = np.where(
        log_z > 0,
        log_z + np.log1p(np.exp(-np.abs(log_z))),
        np.log1p(np.exp(np.minimum(log_z, 0.0))),
    )
    w0 = lp * (1.0 - np.log1p(lp) / (2.0 + lp))
    t = np.log(np.maximum(w0, 1e-300))
    for _ in range(_LAMBERT_STEPS):
        e = np.exp(t)
        t = t - (t + e - log_z) / (1.0 + e)
    return np.exp(t)


def _invert(
    target: np.ndarray,
    *,
    t_fixed: np.ndarray,
    c_seq: np.ndarray,
    w_tot_s: np.ndarray,
    w_act_s: np.ndarray,
    routed_s: np.ndarray,
    log_q: np.ndarray,
    kv_s: np.ndarray,
    comp_s: np.ndarray,
    moe: bool,
    x_all: np.ndarray | None = None,
    below_one: bool = True,
) -> np.ndarray:
    # t(B) is the max of the memory branch and the compute branch, both
    # increasing: its root is the smaller of theirs. The compute branch is a
    # line; so is the memory branch of a dense model.
    room = target - t_fixed
    slope_mem = c_seq + kv_s
    with np.errstate(divide="ignore", invalid="ignore"):
        b_comp = room / (c_seq + comp_s)
        lo = room - w_tot_s
        lo /= slope_mem  # every expert read: the memory branch's lowest root
    if moe:
        # The weights a MoE step reads grow with B (more experts touched), so
        # its memory branch  a B - r q^B = m  (a = c_seq + kv, r = routed
        # weights' read time, q = 1 - k/E, m = room - all weights' read time)
        # is concave and increasing. Where the batch at ``lo`` already touches
        # every expert (the usual case at serving batch) ``lo`` is the root.
        # Elsewhere the root has a closed form through Lambert's W: with
        # kq = -ln q, (kq u) e^(kq u) = z for u = B - m/a, so
        # B = m/a + W(z)/kq,  ln z = ln(kq r / a) - kq m / a.
        # W is computed in log space (no overflow), then a Newton step on
        # the original equation polish B to machine precision, so the batch is
        # a smooth function of the speed and estimates stay monotone.
        x = np.maximum(lo, 1.0)
        # the experts missed by every sequence, routed x q^B, are negligible
        # (< 1e-13 of all weights) past B = ln(1e-13 w_total/routed) / ln q
        if x_all is None:
            x_all = _all_experts_batch(w_tot_s, routed_s, log_q)
        rows = np.flatnonzero(np.any(x < x_all, axis=-1)) if x.ndim == 2 else None
        if rows is None or rows.size:
            shape = x.shape
            sub = (
                (lambda a: np.broadcast_to(a, shape))
                if rows is None
                else (lambda a: np.broadcast_to(a, shape)[rows])
            )
            xr = sub(x)
            need = xr < sub(x_all)
            rm, sl = sub(room - w_tot_s)[need], sub(slope_mem)[need]
            rt, lq = sub(routed_s)[need], sub(log_q)[need]
            kq = -lq
            base = rm / sl
            xs = base + _lambert_w_log(np.log(kq * rt / sl) - kq * base) / kq
            for _ in range(_POLISH_STEPS):
                miss = rt * np.exp(xs * lq)
                xs = xs - (sl * xs - miss - rm) / (sl - lq * miss)
            xr = xr.copy()
            xr[need] = np.maximum(xs, 1.0)
            if rows is None:
                x = xr
            else:
                x[rows] = xr
        if below_one:
            # below one sequence the step is slower than any batch explains (a
            # caller that clips the batch to >= 1 gets 1 either way: x >= 1)
            below = room - w_act_s < slope_mem
            if below.any():
                x[np.broadcast_to(below, x.shape)] = 0.0
        b_mem = x
    else:
        b_mem = lo
    # fmin: a 0/0 memory root (no KV, no per-sequence cost) defers to compute
    return np.fmin(b_mem, b_comp, out=b_comp)


# ------------------------------------------------------------ plausibility and the floor


def implausible(g: Group, c: Columns) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose timing is faster than any plausible serving of the model, and their speeds.

    A stream is implausible when its inter-token latency is below the group's
    hard floor (one sequence, every uncertain input at its fastest, on the
    largest plausible instance); a non-streamed call when its whole duration
    is shorter than the fastest plausible prefill plus its decode steps at
    that floor (no network or queue time at all). Such timing says nothing
    about the serving batch (a burst, a cached reply, speculative decoding or
    a mis-timed record): the estimate falls back to the untimed path.
    Returns the mask and, per row, the observed output speed (tokens/s).
    """
    steps = np.maximum(c.output - 1.0, 0.0)
    floor = g.floor_hard_s
    speed = np.full(len(c), np.nan)
    itl = c.method == METHOD_ITL
    lat = c.method == METHOD_LATENCY
    bad = np.zeros(len(c), dtype=bool)
    if itl.any():
        bad |= itl & (c.itl_s < floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            speed = np.where(itl, 1.0 / c.itl_s, speed)
    if lat.any():
        pf, pc, pa = g.prefill_min_s
        pre = (
            c.fresh_in * pf + c.cached_in * pc + c.fresh_in * (c.cached_in + 0.5 * c.fresh_in) * pa
        )
        bad |= lat & (steps >= 1.0) & (c.duration_s < pre + steps * floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            speed = np.where(lat, c.output / c.duration_s, speed)
    return bad, speed


def apply_floor(g: Group, itl_floor: float | None) -> tuple[Group, list[str]]:
    """Make the group consistent with the learned floor of its deployment.

    ``itl_floor`` is a low quantile of the recent clean, plausible streams of
    the deployment (:class:`otm.estimate.user.FloorTracker`). A step can take
    no longer than the steps the deployment keeps showing. Where a sample's
    floor (fixed overhead + one sequence + reading the active weights once)
    exceeds it, the sample is scaled down to it: the model and its precision
    when those are estimates (the speed bounds the weight bytes read per
    step), otherwise the engine's fixed overhead. The notes describe the
    deployment's learned floor, never one request.
    """
    if itl_floor is None or not np.isfinite(itl_floor) or itl_floor <= 0:
        return g, []
    n = g.count_for(np.full_like(g.n, itl_floor))
    w_s = g.w_active / (n * g.bw1_eff)
    t_fix = g.t_fixed(n)
    floor = t_fix + g.c_seq + w_s
    excess = floor > itl_floor
    if not excess.any():
        return g, []
    notes: list[str] = []
    w, p = g.work, g.plan
    accel = p.accelerators[int(g.accel_idx[0])].name
    scalable = w.size_estimated or (w.precision_estimated and p.precision_override is None)
    learned = f"the learned floor of this deployment ({1.0 / itl_floor:.0f} tokens/s on {n[0]:.3g} x {accel})"
    if scalable:
        r_min = 0.02 if w.size_estimated else 0.25
        r = np.where(excess, np.clip(itl_floor / floor, r_min, 1.0), 1.0)
        size_r = r if w.size_estimated else np.ones_like(r)
        g2 = replace(
            g,
            t_fixed_cap=np.where(excess, t_fix * r, g.t_fixed_cap),
            c_seq=g.c_seq * r,
            w_active=g.w_active * r,
            w_total=g.w_total * r,
            n_active=g.n_active * size_r,
            attn_coef=g.attn_coef * size_r,
        )
        if excess[0]:
            bytes_pp = g.w_active[0] / max(g.n_active[0], 1.0)
            if w.size_estimated:
                bound = g2.w_active[0] / max(bytes_pp, 1e-3) / 1e9
                notes.append(
                    f"{learned} bounds the model: at most ~{bound:.3g}B active parameters at {bytes_pp:g} "
                    "bytes each can be read per step; size scaled down to fit"
                )
            else:
                notes.append(
                    f"{learned} implies at most ~{g2.w_active[0] / max(g.n_active[0], 1.0):.2g} bytes per weight "
                    f"(quantised weights?) rather than the assumed {bytes_pp:g}; weight bytes scaled down to fit"
                )
    else:
        t_new = np.maximum(itl_floor - g.c_seq - w_s, 0.0)
        g2 = replace(g, t_fixed_cap=np.where(excess, np.minimum(t_fix, t_new), g.t_fixed_cap))
        if excess[0] and g.c_seq[0] + w_s[0] > itl_floor:
            notes.append(
                f"{learned} is faster than {n[0]:.0f} x {accel} can read this model's weights: "
                "the hardware, count or precision assumed is likely off (pass a Deployment)"
            )
    return g2, notes


def decode_forward(g: Group, batch: np.ndarray, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step time and per-accelerator power of the central sample at a known batch.

    The same expressions :func:`compute` uses, exposed for the calibration fit
    (bench/validate.py), where the batch is measured rather than inferred.
    """
    n = g.n[0]
    bw_eff = n * g.bw1_eff[0]
    f_eff = n * g.f1_eff[0]
    kv_s = g.kv_bytes[0] * ctx / bw_eff
    comp_s = (2.0 * g.n_active[0] + g.attn_coef[0] * ctx) * g.compute_factor[0] / f_eff
    w_s = (
        weight_bytes_read(batch, g.w_total[0], g.w_active[0], g.shared[0])
        if g.moe
        else g.w_total[0]
    ) / bw_eff
    t, kernels = step_time(
        batch, t_fixed=g.t_fixed(g.n)[0], c_seq=g.c_seq[0], weights_s=w_s, kv_s=kv_s, comp_s=comp_s
    )
    power = accelerator_power(
        g.idle[0], g.tdp[0], utilisation(kernels, t, g.u_wait[0], g.u_work[0])
    )
    return t, power


# ------------------------------------------------------------------- one chunk


@dataclass
class ChunkResult:
    """Results of a chunk of N requests.

    ``energy_j``, ``carbon_g``, ``water_ml``, ``batch``: every sample, shape
    (N, S+1) (column 0 central); ``count``: (N, S+1) or (S+1,). The
    breakdowns are of the central case only, shape (N,): energy ``acc_j``,
    ``host_j``, ``idle_j``, ``fac_j``; carbon ``carbon_op_g``,
    ``carbon_emb_g``; water ``water_on_ml``, ``water_off_ml``.
    """

    energy_j: np.ndarray
    carbon_g: np.ndarray
    water_ml: np.ndarray
    acc_j: np.ndarray
    host_j: np.ndarray
    idle_j: np.ndarray
    fac_j: np.ndarray
    carbon_op_g: np.ndarray
    carbon_emb_g: np.ndarray
    water_on_ml: np.ndarray
    water_off_ml: np.ndarray
    batch: np.ndarray
    count: np.ndarray


def compute(g: Group, c: Columns, sl: slice) -> ChunkResult:
    """Evaluate requests ``c[sl]`` of group ``g`` against every sample.

    Per-request columns have shape (N, 1), per-sample rows (S+1,); every
    figure comes out (N, S+1). Energy is built from accelerator-seconds (the
    request's share of the instance x its accelerators), so host, idle
    reserve and embodied carbon scale with the same occupancy.

    Streams read their batch from their own step. Untimed rows (and
    non-streamed calls, whose duration mixes queue, network, prefill and
    decode) take the deployment's typical load: a hosted service's typical
    speed, a named deployment's typical batch. A non-streamed call then
    holds that share for as long as its duration says, never less than the
    typical step and at most ``latency_stretch_max`` times it.
    """

    def col(a: np.ndarray) -> np.ndarray:
        return a[sl][:, None]

    cal = g.cal
    fresh, cached, out = col(c.fresh_in), col(c.cached_in), col(c.output)
    method = col(c.method)
    cm = g.compute_mult
    b_over = g.plan.batch_override
    known_batch = b_over is not None
    hosted_speed = not g.plan.self_hosted and not known_batch
    is_itl = method == METHOD_ITL
    all_itl = bool(is_itl.all())
    is_lat = method == METHOD_LATENCY
    any_lat = bool(is_lat.any())

    # --- the step each request's batch is read from
    steps = np.maximum(out - 1.0, 0.0)  # the first token comes out of prefill
    timed: np.ndarray | bool
    if all_itl:
        observed = col(c.itl_s)
        timed = True
    elif hosted_speed:
        # a hosted service with no stream: its typical speed, read like any other
        observed = np.where(is_itl, col(c.itl_s), g.itl_prior)
        timed = True
    else:
        observed = np.where(is_itl, col(c.itl_s), 1.0)
        timed = is_itl

    # --- the instance: count (sized from the speed for hosted services). A
    # sample that could serve a speed (a stream's, or the typical one) only on
    # an instance larger than any plausible one, or on one running nearly
    # empty, reads it at the fastest speed it can serve: its largest instance
    # at a serving batch.
    if g.size_by_speed:
        lim = g.sizing_limit()
        if bool(np.any(observed < float(lim.max()))):
            observed = np.maximum(observed, lim)
    n = g.count_for(observed) if g.size_by_speed else g.n
    inv_n = 1.0 / n
    t_fixed = g.t_fixed(n)

    # --- prefill: compute-bound at a prefill MFU; cached tokens cost a fraction
    per_flop = cm / (g.peak1 * g.mfu_pre)
    attn_pre = fresh * (cached + 0.5 * fresh)
    acc_s_pre = fresh * (2.0 * g.n_active * per_flop)  # accelerator-seconds
    acc_s_pre += attn_pre * (g.attn_coef * per_flop)
    if np.any(cached):
        acc_s_pre += cached * (2.0 * g.n_active * g.cache_cost * per_flop)

    # --- decode: read the effective batch from the speed
    ctx = cached + fresh + 0.5 * out  # mean context while decoding
    kv_s = ctx * (g.kv_bytes / g.bw1_eff)
    kv_s *= inv_n
    comp_s = ctx * (g.attn_coef * g.compute_factor / g.f1_eff)
    comp_s += 2.0 * g.n_active * g.compute_factor / g.f1_eff
    comp_s *= inv_n
    w_tot_s = (g.w_total / g.bw1_eff) * inv_n
    if g.moe:
        routed = np.maximum(g.w_total - g.w_active * g.shared, 0.0)
        routed_s = (routed / g.bw1_eff) * inv_n
        log_q = _log_miss(g.w_total, g.w_active, g.shared)
        w_act_s = w_tot_s  # only read when the batch may fall below one
        x_all = _all_experts_batch(g.w_total, routed, log_q)  # per sample: n cancels
    else:
        routed_s = log_q = w_act_s = w_tot_s  # unused by a dense model
        x_all = w_tot_s

    if b_over is not None:
        batch = np.full(np.broadcast(observed, n).shape, float(b_over))
    else:
        batch = _invert(
            observed,
            t_fixed=t_fixed,
            c_seq=g.c_seq,
            w_tot_s=w_tot_s,
            w_act_s=w_act_s,
            routed_s=routed_s,
            log_q=log_q,
            kv_s=kv_s,
            comp_s=comp_s,
            moe=g.moe,
            x_all=x_all,
            below_one=False,  # clipped to >= 1 below
        )
        if timed is not True:
            batch = np.where(timed, batch, g.batch_prior)
    if g.size_by_speed:
        # A hosted instance sized from its speed is assumed to have the memory
        # its batch needs (it binds only for streams slower than one HBM read
        # per step, ~40-80 ms on current parts); only the sanity cap applies.
        b_max = _MAX_SEQS_PER_ACCEL * n
    else:
        usable = n * g.mem1 * cal.usable_memory_fraction - g.w_total
        b_max = np.where(usable > 0, usable / np.maximum(g.kv_bytes * ctx, 1.0), 1.0)
        b_max = np.minimum(np.maximum(b_max, 1.0), _MAX_SEQS_PER_ACCEL * n)
    batch = np.clip(batch, 1.0, b_max)

    if g.moe and bool(np.any(batch < x_all)):
        w_s = batch * log_q
        np.exp(w_s, out=w_s)
        w_s *= routed_s
        np.subtract(w_tot_s, w_s, out=w_s)
        w_s += kv_s * batch
    else:
        w_s = kv_s * batch
        w_s += w_tot_s
    kernels = np.maximum(w_s, comp_s * batch, out=w_s)
    t_b = g.c_seq * batch
    t_b += t_fixed
    t_b += kernels
    if known_batch:
        t_eff = np.where(timed, observed, t_b)  # batch and step both known
    elif timed is True:
        # The instance spent the observed step on B sequences, unless the model
        # says a step is shorter (the extra is network or client time).
        t_eff = np.minimum(observed, t_b)
    else:
        t_eff = np.where(timed, np.minimum(observed, t_b), t_b)
    if any_lat:
        # A non-streamed call held its (typical) share of the instance for its
        # decode: the duration less network/queue and its own prefill, spread
        # over its output tokens (hidden reasoning included), within bounds.
        window = col(c.duration_s) - g.ttft_over - acc_s_pre * inv_n
        stretch = np.clip(window / (np.maximum(steps, 1.0) * t_eff), 1.0, cal.latency_stretch_max)
        t_eff = np.where(is_lat, t_eff * stretch, t_eff)
    busy = kernels / t_b  # t_b >= kernels > 0
    u = busy * (g.u_work - g.u_wait)
    u += g.u_wait
    if float(np.max(g.u_work)) > 1.0:
        np.minimum(u, 1.0, out=u)
    acc_s_dec = t_eff / batch
    acc_s_dec *= n
    acc_s_dec *= steps if g.unit_compute else steps * cm  # accelerator-seconds

    # --- power per accelerator-second, per sample. Accelerator: idle + (rated -
    # idle) x u. Host: a floor plus a share that follows the accelerators' load,
    # H x (h0 + (1 - h0) u). Idle reserve: f/(1-f) idle accelerator-seconds at
    # idle power and the host's floor. Decode's IT power is therefore linear in
    # u: a + b u; prefill runs at u_work.
    h0 = cal.host_idle_fraction
    k_idle = g.idle_frac / (1.0 - g.idle_frac) * (g.idle + g.host_idle_w)
    u_pre = np.minimum(g.u_work, 1.0)
    p_pre = accelerator_power(g.idle, g.tdp, g.u_work)
    h_pre = g.host_w * (h0 + (1.0 - h0) * u_pre)
    a_dec = g.idle + g.host_w * h0 + k_idle
    b_dec = (g.tdp - g.idle) + g.host_w * (1.0 - h0)

    it = u * b_dec
    it += a_dec
    it *= acc_s_dec
    it += acc_s_pre * (p_pre + h_pre + k_idle)
    energy = it * g.pue
    carbon = acc_s_pre + acc_s_dec
    carbon *= g.emb_rate / (1.0 - g.idle_frac) * 1000.0
    carbon += energy * (g.grid / 3.6e6)
    water = it * ((g.wue + g.pue * g.water) / 3.6e3)

    # --- the central case's breakdowns (column 0 only)
    pre0, dec0, u0 = acc_s_pre[:, 0], acc_s_dec[:, 0], u[:, 0]
    acc0 = pre0 * p_pre[0] + dec0 * (g.idle[0] + (g.tdp[0] - g.idle[0]) * u0)
    host0 = pre0 * h_pre[0] + dec0 * (g.host_w[0] * (h0 + (1.0 - h0) * u0))
    idle0 = (pre0 + dec0) * k_idle[0]
    it0 = acc0 + host0 + idle0
    fac0 = it0 * (g.pue[0] - 1.0)
    total0 = it0 + fac0
    return ChunkResult(
        energy_j=energy,
        carbon_g=carbon,
        water_ml=water,
        acc_j=acc0,
        host_j=host0,
        idle_j=idle0,
        fac_j=fac0,
        carbon_op_g=total0 * (g.grid[0] / 3.6e6),
        carbon_emb_g=(pre0 + dec0) * (g.emb_rate[0] / (1.0 - g.idle_frac[0]) * 1000.0),
        water_on_ml=it0 * (g.wue[0] / 3.6e3),
        water_off_ml=total0 * (g.water[0] / 3.6e3),
        batch=batch,
        count=n,
    )

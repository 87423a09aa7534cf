"""Build a :class:`~.group.Group`: resolve the three layers once and draw the samples.

:func:`build_group` resolves the model's work (provider layer), the serving
engine and precision, and the hardware and site (hardware layer) for one
(provider, model, deployment, region), then draws each uncertain input for
the group's samples (docs/methodology.md "Ranges"). Cached, so a process
estimating the same model over and over builds it once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from otm.deployment import Deployment

from .calibration import Calibration, Tri
from .decode import Instance
from .engine import Engine, engine_for
from .group import Group
from .hardware import hardware_plan, minimal_count
from .precision import resolve
from .provider import model_work
from .sampling import design, pick, spread

__all__ = ["build_group"]


def _tri_json(x: np.ndarray | Tri) -> dict[str, float]:
    if isinstance(x, tuple):
        return {"value": float(x[0]), "low": float(x[1]), "high": float(x[2])}
    return {"value": float(x[0]), "low": float(np.min(x)), "high": float(np.max(x))}


def _engine_arrays(
    engines: tuple[Engine, Engine | None],
    choice: np.ndarray,
    d: dict[str, np.ndarray],
    paths: np.ndarray,
    ep_given: bool | None,
) -> dict[str, np.ndarray]:
    """Each engine parameter per sample: its profile's range (the alternative's where chosen),
    its kernels' efficiency on the sample's compute path, and whether it shards experts."""
    out: dict[str, np.ndarray] = {}
    for e_i, e in enumerate(engines):
        if e is None:
            continue
        k_bw = np.ones_like(d["kernel"])
        k_fl = np.ones_like(d["kernel"])
        for path in set(paths.tolist()):
            k = e.kernel(path)
            k_bw = np.where(paths == path, spread(k.bandwidth, d["kernel"]), k_bw)
            k_fl = np.where(paths == path, spread(k.compute, d["kernel"]), k_fl)
        ep = e.expert_parallel if ep_given is None else ep_given
        vals = {
            "t0": spread(e.t0_s, d["engine_t0"]),
            "c_seq": spread(e.c_seq_s, d["engine_seq"]),
            "a_coll": spread(e.a_coll_s, d["engine_comm"]),
            "a_ep": spread(e.a_ep_s, d["engine_comm"]),
            "b_ep": spread(e.b_ep_s, d["engine_comm"]),
            "k_bw": k_bw,
            "k_fl": k_fl,
            "ep": np.full_like(k_bw, float(ep)),
        }
        for name, v in vals.items():
            out[name] = v if e_i == 0 else np.where(choice == 1, v, out[name])
    return out


@lru_cache(maxsize=512)
def build_group(
    model: str | None,
    provider: str | None,
    deployment: Deployment | None,
    region: str | None,
    cal: Calibration,
    stamp: tuple[int, ...] = (),
) -> Group:
    """Resolve model, engine, precision, hardware and site once; draw every uncertain input.

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
    prec = resolve(model, work.precision, plan.precision_override)
    bytes_pp = np.full_like(active, prec.bytes_per_param)
    if prec.source == "data" and work.precision_estimated and not plan.self_hosted and prec.bytes_per_param >= 2.0:
        # hosted services increasingly serve 8-bit weights: a third of samples (ESTIMATE)
        bytes_pp = np.where(d["precision"] > 2.0 / 3.0, prec.bytes_per_param / 2.0, bytes_pp)

    # --- accelerators
    accels = plan.accelerators
    a_idx = (
        np.zeros(active.shape, dtype=np.intp)
        if plan.accelerator_fixed
        else pick(d["accelerator"], len(accels))
    )

    def per_accel(f: Any) -> np.ndarray:
        return np.array([f(a) for a in accels], dtype=float)[a_idx]

    kernels = accels[int(a_idx[0])].path(prec.path)
    # per sample, the kernels its accelerator runs the precision on; a sample on
    # the hosted 8-bit share runs FP8 kernels
    path_of = np.array([a.path(prec.path) for a in accels], dtype=object)[a_idx]
    path_of = np.where((bytes_pp <= 1.0) & (path_of == "bf16"), "fp8", path_of)
    mem = per_accel(lambda a: a.memory_bytes)
    bw = per_accel(lambda a: a.bw_bytes_s)
    peak_dec = np.array(
        [accels[i].peak_flops(p) for i, p in zip(a_idx, path_of, strict=True)], dtype=float
    )
    peak_pre = np.array(
        [accels[i].prefill_peak(p) for i, p in zip(a_idx, path_of, strict=True)], dtype=float
    )
    tdp = per_accel(lambda a: a.tdp_w)
    idle = per_accel(lambda a: a.idle_w)

    w_total = total * 1e9 * bytes_pp
    n_mem = np.maximum(w_total * cal.memory_overhead / (mem * (1.0 - cal.kv_headroom_fraction)), 1.0)
    size_by_speed = plan.count is None and not plan.self_hosted
    max_inst = np.array([a.max_instance for a in accels], dtype=float)[a_idx]
    n_cap = np.maximum(n_mem, np.minimum(cal.count_cap_factor * n_mem, max_inst))
    if plan.count is not None:
        n = np.full_like(active, float(plan.count))
        if w_total[0] > n[0] * mem[0] * cal.usable_memory_fraction:
            warnings.append(
                f"the weights ({w_total[0] / 1e9:.0f} GB at {prec.label}) do not fit in "
                f"{plan.count} x {accels[a_idx[0]].name}: the precision or the count is likely "
                "different from what otm assumes (pass Deployment(precision=...))"
            )
    else:
        n = minimal_count(w_total, mem, cal.memory_overhead, cal.kv_headroom_fraction)
        n = np.where(d["count"] > 1.0 - cal.count_double_share, 2.0 * n, n)

    # --- engine: its profile per sample (the legacy alternative in a share of them)
    eng, alt = engine_for(plan.engine, self_hosted=plan.self_hosted, overrides=cal.engines)
    if plan.engine and eng.name not in (plan.engine.lower(), "modern", "legacy", "hosted", "eager"):
        warnings.append(f"engine {plan.engine!r} is not known to otm: assuming {eng.name}")
    e_idx = (
        pick(d["engine_choice"], 2, central_share=1.0 - cal.legacy_share)
        if alt is not None
        else np.zeros(active.shape, dtype=np.intp)
    )
    ea = _engine_arrays((eng, alt), e_idx, d, path_of, plan.expert_parallel)
    ep_flag = ea["ep"] * float(work.is_moe)

    # --- efficiencies
    eff = spread(cal.efficiency_spread, d["efficiency"])
    eta_bw = np.minimum(cal.eta_bw * eff, 0.98)
    eta_f = np.minimum(cal.eta_flops * eff, 0.98)
    layers = work.layers[0]
    moe_layers = layers if work.is_moe else 0.0
    shared_b = active * shared  # every token's weights (attention, dense, shared experts)
    routed_total = np.maximum(total - shared_b, 0.0)
    routed_active = np.maximum(active - shared_b, 0.0)
    p_route = (
        np.clip(routed_active / np.maximum(routed_total, 1e-30), 1e-9, 1.0)
        if work.is_moe
        else np.ones_like(active)
    )
    inst = Instance(
        bw1=bw * eta_bw,
        bwk1=bw * eta_bw * ea["k_bw"],
        f1=peak_dec * eta_f * ea["k_fl"],
        m_half=np.full_like(active, cal.gemm_half_rows),
        t0=ea["t0"],
        c_seq=ea["c_seq"],
        coll=ea["a_coll"] * layers,
        ep_fixed=ea["a_ep"] * moe_layers * ep_flag,
        ep_tok=ea["b_ep"] * moe_layers * ep_flag,
        w_dense=shared_b * 1e9 * bytes_pp,
        w_routed=routed_total * 1e9 * bytes_pp,
        flop_dense=2.0 * shared_b * 1e9,
        flop_routed=2.0 * routed_active * 1e9,
        p_route=p_route,
        moe=work.is_moe,
        pp=_pipeline(plan.count, n, accels, a_idx, ep_flag),
    )

    # --- KV cache, recurrent state and attention
    kv_el_bytes = 2.0 if plan.self_hosted else np.where(bytes_pp <= 1.0, 1.0, 2.0)
    kv_full = (
        spread(work.kv_elements_per_token(), d["kv"])
        if work.kv_estimated
        else np.full_like(active, work.kv_elements_per_token()[0])
    )
    # the state of an SSM layer is kept in 32 bits (vLLM's recommended
    # mamba_ssm_cache_dtype for Nemotron-H; ESTIMATE, docs "Hybrid models")
    state = np.full_like(active, work.state_elements * 4.0)

    # --- power
    pm = spread(cal.power_spread, d["power"])

    # --- host, reserve, facility, grid, embodied
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
    g_idx = np.zeros(active.shape, dtype=np.intp) if plan.grid_fixed else pick(d["region"], len(plan.grids))
    grid_v = np.array([g.gco2e_per_kwh for g in plan.grids])[g_idx]
    water_v = np.array([g.water_l_per_kwh for g in plan.grids])[g_idx]
    if plan.grid_fixed and plan.grid_override is None:
        grid_v = grid_v * spread(cal.default_region_spread, d["grid_spread"])
    grid = np.full_like(active, plan.grid_override) if plan.grid_override is not None else grid_v
    water = np.full_like(active, plan.water_override) if plan.water_override is not None else water_v
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
    # the decode's accelerator-seconds carry the step model's own error on a
    # deployment it was not fitted on (a discrepancy term, docs "Ranges")
    cm = spread(work.compute_multiplier, u_size) * spread(cal.model_discrepancy, d["discrepancy"])

    g = Group(
        work=work,
        plan=plan,
        engine=eng,
        engine_alt=alt,
        precision=prec,
        kernels=kernels,
        cal=cal,
        accel_idx=a_idx,
        grid_idx=g_idx,
        engine_idx=e_idx,
        n=n,
        n_mem=n_mem,
        n_cap=n_cap if size_by_speed else n,
        size_by_speed=size_by_speed,
        inst=inst,
        mem1=mem,
        w_total=w_total,
        n_active=active * 1e9,
        kv_bytes=kv_full * kv_el_bytes,
        kv_slide_bytes=np.full_like(active, work.kv_sliding) * kv_el_bytes,
        window=float(work.window),
        state_bytes=state,
        attn_coef=np.full_like(active, 4.0 * work.attn_layers * work.attn_width),
        context_mix=spread(cal.context_mix, d["context_mix"]),
        peak_pre=peak_pre,
        tdp=tdp,
        idle=idle,
        u_wait=cal.u_wait * pm,
        u_mem=cal.u_mem * pm,
        u_comp=cal.u_comp * pm,
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
        compute_mult=cm,
        unit_compute=bool(np.all(cm == 1.0)),
        warnings=tuple(dict.fromkeys(warnings)),
    )
    g.assumptions.update(_assumptions(g, bytes_pp, ep_flag))
    return g


def _pipeline(
    count: int | None, n: np.ndarray, accels: Any, a_idx: np.ndarray, ep_flag: np.ndarray
) -> np.ndarray | None:
    """Pipeline stages per sample: a deployment of a given count larger than its scale-up
    domain spans domains with pipeline stages, unless it shards experts (expert
    parallelism spans domains itself). A hosted service sized from its speed keeps the
    sizing's premise that its speed scales with its count (tensor and expert
    parallelism). None: one stage."""
    if count is None:
        return None
    dom = np.array([a.scale_up for a in accels], dtype=float)[a_idx]
    pp = np.where(ep_flag > 0, 1.0, np.maximum(np.ceil(n / dom - 1e-9), 1.0))
    return pp if np.any(pp > 1.0) else None


def _assumptions(g: Group, bytes_pp: np.ndarray, ep_flag: np.ndarray) -> dict[str, Any]:
    w, p = g.work, g.plan
    a0 = p.accelerators[int(g.accel_idx[0])]
    grid0 = p.grids[int(g.grid_idx[0])]
    eng = g.engine
    return {
        "model": {
            "id": w.model_id,
            "name": w.name,
            "in_data": w.found,
            "size": w.size_basis,
            "size_estimated": w.size_estimated,
            "size_method": w.size_method,
            "architecture": "hybrid (SSM + attention)" if w.state_elements else w.architecture,
            "total_params_b": _tri_json(w.total_b),
            "active_params_b": _tri_json(w.active_b),
            "precision": g.precision.label,
            "precision_source": g.precision.source,
            "precision_estimated": g.precision.source == "data" and w.precision_estimated,
            "bytes_per_param": _tri_json(bytes_pp),
            "kernels": g.kernels,
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
            "engine": eng.name,
            "engine_source": "deployment" if p.engine else "default",
            "engine_alternative": None if g.engine_alt is None else g.engine_alt.name,
            "expert_parallel": bool(ep_flag[0]),
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
        "calibration": (
            "decode efficiencies and power curve fitted on ML.ENERGY v2 and v3; engine profile "
            f"{eng.name}" + (f" fitted on {eng.fitted_on}" if eng.fitted_on else " (ESTIMATE)")
            + " (docs/methodology.md)"
        ),
    }

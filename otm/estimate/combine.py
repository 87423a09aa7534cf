"""The three layers together: one chunk of requests against every sample of its group.

For each request and each sample (arrays of shape (requests, samples)): the
batch its observed step means (:mod:`.decode`), its share of the instance in
accelerator-seconds for prefill and decode, the power drawn meanwhile by the
accelerators, the host and the idle reserve, the facility on top, and the
carbon and water that follow (docs/methodology.md "Putting it together").

A sample under which the observed stream is faster than one sequence could
step is *infeasible*: that set of assumptions cannot be right for this
request, so it is set aside when the range is summarised rather than read as
batch 1 (docs "Ranges": conditioning on the observation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decode import invert, step
from .group import Group
from .hardware import accelerator_power
from .user import METHOD_ITL, METHOD_LATENCY, Columns

__all__ = ["ChunkResult", "compute"]


@dataclass
class ChunkResult:
    """Results of a chunk of N requests.

    ``energy_j``, ``carbon_g``, ``water_ml``, ``batch``, ``count``: every
    sample, shape (N, S+1); ``feasible``: which samples the request's own
    timing allows. ``central``: per request, the sample its central figures
    come from (0 unless the central assumptions cannot serve its speed). The
    breakdowns are of that sample, shape (N,).
    """

    moved_by_speed: np.ndarray
    """Per request: its central sample moved because sample 0 cannot serve its own speed
    (not because the deployment's history set sample 0 aside)."""
    energy_j: np.ndarray
    carbon_g: np.ndarray
    water_ml: np.ndarray
    feasible: np.ndarray
    central: np.ndarray
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

    Streams read their batch from their own step. Untimed rows (and
    non-streamed calls, whose duration mixes queue, network, prefill and
    decode) take the deployment's typical load: a hosted service's typical
    speed, a named deployment's typical batch; a non-streamed call holds that
    share for as long as its duration says, at most ``latency_stretch_max``
    typical steps per token.
    """

    def col(a: np.ndarray) -> np.ndarray:
        return a[sl][:, None]

    cal = g.cal
    fresh, cached, out = col(c.fresh_in), col(c.cached_in), col(c.output)
    method = col(c.method)
    is_itl = method == METHOD_ITL
    is_lat = method == METHOD_LATENCY
    cm = g.compute_mult
    b_over = g.plan.batch_override
    hosted_speed = not g.plan.self_hosted and b_over is None
    steps = np.maximum(out - 1.0, 0.0)  # the first token comes out of prefill

    # --- the step each request's batch is read from
    shape = (out.shape[0], g.n.size)
    timed: np.ndarray
    if hosted_speed:
        # a hosted service with no stream: its typical speed, read like any other
        observed = np.broadcast_to(np.where(is_itl, col(c.itl_s), g.itl_prior), shape)
        timed = np.ones(shape, dtype=bool)
    else:
        observed = np.broadcast_to(np.where(is_itl, col(c.itl_s), np.nan), shape)
        timed = np.broadcast_to(is_itl, shape)

    # --- the instance: count (sized from the speed for hosted services; a
    # sample that could serve a speed only on an instance larger than any
    # plausible one reads it at the fastest speed it can serve)
    if g.size_by_speed:
        observed = np.maximum(observed, g.sizing_limit())
        n = g.count_for(observed)
    else:
        n = np.broadcast_to(g.n, observed.shape)

    # --- the batch-mates' context and what each sequence streams per step
    ctx = cached + fresh + 0.5 * out
    mates = ctx * g.context_mix
    seq_b = g.seq_bytes(mates)
    if g.size_by_speed:
        # a hosted instance sized from its speed has the memory its batch needs;
        # only the sanity cap applies
        b_max = cal.max_seqs_per_accel * n
    else:
        usable = n * g.mem1 * cal.usable_memory_fraction - g.w_total
        b_max = np.where(usable > 0, usable / np.maximum(g.seq_memory(mates), 1.0), 1.0)
        b_max = np.clip(b_max, 1.0, cal.max_seqs_per_accel * n)

    feasible = np.ones(observed.shape, dtype=bool)
    at_floor = np.zeros(observed.shape[0], dtype=bool)
    if b_over is not None:
        batch = np.broadcast_to(np.float64(b_over), observed.shape)
    else:
        raw = invert(g.inst, np.where(timed, observed, 1.0), n, seq_b)
        # only a request's own stream conditions the samples (an assumed typical
        # speed is no evidence)
        below = np.broadcast_to(is_itl, raw.shape) & (raw < 1.0)
        if below.any():
            # Faster than one sequence steps under a sample's assumptions. Within
            # the step model's own accuracy that is one sequence (a request alone
            # on its instance); beyond it, the sample cannot be right.
            one, _, _ = step(g.inst, np.ones_like(raw), n, seq_b)
            feasible = ~(below & (observed * (1.0 + cal.floor_tolerance) < one))
            # the central assumptions read the stream at their floor: the batch is
            # barely identified there, so the central figure is the feasible median
            at_floor = below[:, 0]
        if not g.size_by_speed:
            # Within the step model's accuracy above one sequence's step the batch is
            # barely identified (the step hardly rises above the weight-read floor):
            # such a stream is as consistent with one sequence as with a few, and is
            # read towards one - continuously, reaching the inverted batch at the
            # band's edge (docs "The small-batch trap").
            up = np.broadcast_to(is_itl, raw.shape) & (raw > 1.0)
            if up.any():
                one, _, _ = step(g.inst, np.ones_like(raw), n, seq_b)
                ramp = np.clip((observed / one - 1.0) / cal.floor_tolerance, 0.0, 1.0)
                raw = np.where(up, 1.0 + (raw - 1.0) * ramp, raw)
        batch = np.where(timed, raw, g.batch_prior)
    own = feasible[:, 0] & ~at_floor  # sample 0 serves the request's own speed
    if g.history_ok is not None:
        feasible = feasible & g.history_ok
    batch = np.clip(batch, 1.0, b_max)
    t_model, mem_s, cmp_s = step(g.inst, batch, n, seq_b)
    if b_over is not None:
        t_eff = np.where(timed, observed, t_model)  # batch and step both known
    else:
        # the instance spent the observed step on B sequences, unless the model
        # says a step is shorter (the extra is network or client time)
        t_eff = np.where(timed, np.fmin(observed, t_model), t_model)

    # --- prefill: compute-bound at a prefill MFU; cached tokens cost a fraction
    per_flop = cm / (g.peak_pre * g.mfu_pre)
    acc_s_pre = fresh * (2.0 * g.n_active * per_flop)  # accelerator-seconds
    acc_s_pre = acc_s_pre + fresh * (cached + 0.5 * fresh) * (g.attn_coef * per_flop)
    if np.any(cached):
        acc_s_pre = acc_s_pre + cached * (2.0 * g.n_active * g.cache_cost * per_flop)

    if np.any(is_lat):
        # a non-streamed call held its (typical) share for its decode: the
        # duration less network/queue and its own prefill, within bounds
        window = col(c.duration_s) - g.ttft_over - acc_s_pre / n
        stretch = np.clip(
            window / (np.maximum(steps, 1.0) * t_eff), 1.0, cal.latency_stretch_max
        )
        t_eff = np.where(is_lat, t_eff * stretch, t_eff)

    # --- utilisation: waiting on the host, streaming memory, or computing
    u = g.u_wait + ((g.u_mem - g.u_wait) * mem_s + (g.u_comp - g.u_wait) * cmp_s) / t_model
    u = np.clip(u, 0.0, 1.0)
    acc_s_dec = steps * n * t_eff / batch
    if not g.unit_compute:
        acc_s_dec = acc_s_dec * cm

    # --- power per accelerator-second. Accelerator: idle + (rated - idle) u.
    # Host: H (h0 + (1 - h0) u). Idle reserve: f/(1-f) idle accelerator-seconds
    # at idle power and the host's floor. Prefill runs at the memory-or-compute
    # saturated utilisation u_comp.
    h0 = cal.host_idle_fraction
    k_idle = g.idle_frac / (1.0 - g.idle_frac) * (g.idle + g.host_idle_w)
    u_pre = np.minimum(g.u_comp, 1.0)
    p_pre = accelerator_power(g.idle, g.tdp, u_pre)
    h_pre = g.host_w * (h0 + (1.0 - h0) * u_pre)
    acc_dec_w = g.idle + (g.tdp - g.idle) * u
    host_dec_w = g.host_w * (h0 + (1.0 - h0) * u)

    acc_j = acc_s_pre * p_pre + acc_s_dec * acc_dec_w
    host_j = acc_s_pre * h_pre + acc_s_dec * host_dec_w
    idle_j = (acc_s_pre + acc_s_dec) * k_idle
    it = acc_j + host_j + idle_j
    energy = it * g.pue
    occ = acc_s_pre + acc_s_dec
    emb_g = occ * (g.emb_rate / (1.0 - g.idle_frac) * 1000.0)
    carbon = energy * (g.grid / 3.6e6) + emb_g
    water = it * ((g.wue + g.pue * g.water) / 3.6e3)

    # --- the central sample of each request and its breakdowns
    central = _central(energy, feasible, at_floor)
    r = np.arange(energy.shape[0])

    def at(a: np.ndarray) -> np.ndarray:
        a2 = np.broadcast_to(a, energy.shape)
        return a2[r, central]

    it0 = at(it)
    total0 = at(energy)
    return ChunkResult(
        moved_by_speed=(central != 0) & ~own,
        energy_j=energy,
        carbon_g=carbon,
        water_ml=water,
        feasible=feasible,
        central=central,
        acc_j=at(acc_j),
        host_j=at(host_j),
        idle_j=at(idle_j),
        fac_j=total0 - it0,
        carbon_op_g=total0 * at(g.grid) / 3.6e6,
        carbon_emb_g=at(emb_g),
        water_on_ml=it0 * at(g.wue) / 3.6e3,
        water_off_ml=total0 * at(g.water) / 3.6e3,
        batch=np.broadcast_to(batch, energy.shape),
        count=np.broadcast_to(n, energy.shape),
    )


def _central(energy: np.ndarray, feasible: np.ndarray, at_floor: np.ndarray) -> np.ndarray:
    """Per request: sample 0, or, where its assumptions cannot serve the request's speed or
    serve it only at their floor, the feasible sample with the median energy (none
    feasible: sample 0, read at one sequence at the observed speed)."""
    central = np.zeros(energy.shape[0], dtype=np.intp)
    moved = (~feasible[:, 0] | at_floor) & feasible[:, 1:].any(axis=1)
    if moved.any():
        e = np.where(feasible[moved], energy[moved], np.inf)
        e[:, 0] = np.inf
        order = np.argsort(e, axis=1)
        k = feasible[moved][:, 1:].sum(axis=1)
        central[moved] = order[np.arange(order.shape[0]), (k - 1) // 2]
    return central

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
from typing import Any, NamedTuple

import numpy as np

from .decode import Rates, invert, rates, step, step_time
from .group import Group
from .hardware import accelerator_power
from .user import METHOD_ITL, METHOD_LATENCY, Columns, Row

__all__ = ["ChunkResult", "compute"]


@dataclass
class ChunkResult:
    """Results of a chunk of N requests.

    ``energy_j``, ``carbon_g``, ``water_ml``, ``batch``, ``count``: every
    sample, shape (N, S+1); ``feasible``: which samples the request's own
    timing allows. ``central``: per request, the sample its central figures
    come from (0 unless the central assumptions cannot serve its speed). The
    breakdowns are of that sample, shape (N,). For one :class:`~.user.Row`
    the same with the request axis dropped: (S+1,) arrays, plain numbers.
    """

    moved_by_speed: Any
    """Per request: its central sample moved because sample 0 cannot serve its own speed
    (not because the deployment's history set sample 0 aside)."""
    energy_j: np.ndarray
    carbon_g: np.ndarray
    water_ml: np.ndarray
    feasible: np.ndarray
    central: Any
    acc_j: Any
    host_j: Any
    idle_j: Any
    fac_j: Any
    carbon_op_g: Any
    carbon_emb_g: Any
    water_on_ml: Any
    water_off_ml: Any
    batch: np.ndarray
    count: np.ndarray


class Factors(NamedTuple):
    """The group-only factors of :func:`compute`'s formulas, worked out once per group
    (each is the very sub-expression the formula evaluates, so figures do not move)."""

    pre_fresh: np.ndarray
    """Prefill accelerator-seconds per fresh input token (2 N / (peak x MFU))."""
    pre_attn: np.ndarray
    """... per fresh token per context token (attention)."""
    pre_cached: np.ndarray
    """... per cached input token."""
    du_mem: np.ndarray
    du_comp: np.ndarray
    d_tdp: np.ndarray
    p_pre: np.ndarray
    h_pre: np.ndarray
    k_idle: np.ndarray
    emb_k: np.ndarray
    grid_k: np.ndarray
    water_k: np.ndarray
    rates: Rates | None
    """The decode rates of a fixed-size instance (None: sized per request)."""
    usable: np.ndarray | None
    """Memory left for sequences on a fixed-size instance (None: sized per request)."""
    usable_all: bool
    b_cap: np.ndarray | None
    n_above_one: bool
    """A hosted instance sized from speed has more than one accelerator in every sample."""


def factors(g: Group) -> Factors:
    """The group's :class:`Factors` (kept with the group)."""
    return g.once("factors", lambda: _factors(g))  # type: ignore[no-any-return]


def _factors(g: Group) -> Factors:
    cal = g.cal
    per_flop = g.compute_mult / (g.peak_pre * g.mfu_pre)
    h0 = cal.host_idle_fraction
    u_pre = np.minimum(g.u_comp, 1.0)
    usable = None if g.size_by_speed else g.n * g.mem1 * cal.usable_memory_fraction - g.w_total
    f = Factors(
        pre_fresh=2.0 * g.n_active * per_flop,
        pre_attn=g.attn_coef * per_flop,
        pre_cached=2.0 * g.n_active * g.cache_cost * per_flop,
        du_mem=g.u_mem - g.u_wait,
        du_comp=g.u_comp - g.u_wait,
        d_tdp=g.tdp - g.idle,
        p_pre=accelerator_power(g.idle, g.tdp, u_pre),
        h_pre=g.host_w * (h0 + (1.0 - h0) * u_pre),
        k_idle=g.idle_frac / (1.0 - g.idle_frac) * (g.idle + g.host_idle_w),
        emb_k=g.emb_rate / (1.0 - g.idle_frac) * 1000.0,
        grid_k=g.grid / 3.6e6,
        water_k=(g.wue + g.pue * g.water) / 3.6e3,
        rates=None if g.size_by_speed else rates(g.inst, g.n),
        usable=usable,
        usable_all=usable is not None and bool(np.all(usable > 0)),
        b_cap=None if g.size_by_speed else cal.max_seqs_per_accel * g.n,
        n_above_one=g.size_by_speed and bool(np.all(g.n_mem > 1.0)),
    )
    for a in f:
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return f


def _where(cond: Any, a: Any, b: Any) -> Any:
    """``np.where`` that a plain bool (one request) answers without numpy."""
    if cond is True:
        return a
    if cond is False:
        return b
    return np.where(cond, a, b)


def compute(
    g: Group, c: Columns | Row, sl: slice = slice(None), history_ok: Any = None
) -> ChunkResult:
    """Evaluate requests ``c[sl]`` of group ``g`` against every sample.

    Streams read their batch from their own step. Untimed rows (and
    non-streamed calls, whose duration mixes queue, network, prefill and
    decode) take the deployment's typical load: a hosted service's typical
    speed, a named deployment's typical batch; a non-streamed call holds that
    share for as long as its duration says, at most ``latency_stretch_max``
    typical steps per token.

    ``c`` is a chunk of :class:`~.user.Columns` (arrays of requests x samples)
    or one :class:`~.user.Row` (arrays of samples, the same formulas: one
    estimate does not pay for numpy's handling of a request axis).
    ``history_ok``: the samples the deployment's history leaves possible
    (default: the group's own ``history_ok``).
    """
    cal = g.cal
    k = factors(g)
    fresh: Any
    cached: Any
    out: Any
    itl: Any
    duration: Any
    if isinstance(c, Row):
        one_row = True
        fresh, cached, out = c.fresh_in, c.cached_in, c.output
        itl, duration = c.itl_s, c.duration_s
        is_itl: Any = c.method == METHOD_ITL
        is_lat: Any = c.method == METHOD_LATENCY
        any_itl, any_lat, any_cached = is_itl, is_lat, cached != 0.0
        steps: Any = max(out - 1.0, 0.0)  # the first token comes out of prefill
        shape: tuple[int, ...] = g.n.shape
    else:
        one_row = False

        def col(a: np.ndarray) -> np.ndarray:
            return a[sl][:, None]

        fresh, cached, out = col(c.fresh_in), col(c.cached_in), col(c.output)
        itl, duration = col(c.itl_s), col(c.duration_s)
        method = col(c.method)
        is_itl = method == METHOD_ITL
        is_lat = method == METHOD_LATENCY
        any_itl, any_lat, any_cached = bool(is_itl.any()), bool(is_lat.any()), bool(np.any(cached))
        steps = np.maximum(out - 1.0, 0.0)
        shape = (out.shape[0], g.n.size)
    cm = g.compute_mult
    b_over = g.plan.batch_override
    hosted_speed = not g.plan.self_hosted and b_over is None

    # --- the step each request's batch is read from
    timed: Any
    if hosted_speed:
        # a hosted service with no stream: its typical speed, read like any other
        observed = _where(is_itl, itl, g.itl_prior)
        timed = True
    else:
        observed = _where(is_itl, itl, np.nan)
        timed = is_itl

    # --- the instance: count (sized from the speed for hosted services; a
    # sample that could serve a speed only on an instance larger than any
    # plausible one reads it at the fastest speed it can serve)
    if g.size_by_speed:
        observed = np.maximum(observed, g.sizing_limit())
        # with the batch given, an untimed request still needs a speed to size the
        # instance from: the service's typical one (else its count, and energy, is NaN)
        n = g.count_for(observed if hosted_speed else np.maximum(_where(is_itl, itl, g.itl_prior), g.sizing_limit()))
        # n >= n_mem: the multi-accelerator terms apply everywhere when n_mem > 1 (and the
        # speed is known: an untimed request on a batch-given deployment has none)
        at: Rates | None = rates(g.inst, n, above_one=k.n_above_one and hosted_speed)
    else:
        n = g.n
        at = k.rates

    # --- the batch-mates' context and what each sequence streams per step
    ctx = cached + fresh + 0.5 * out
    mates = ctx * g.context_mix
    seq_b = g.seq_bytes(mates)
    if g.size_by_speed:
        # a hosted instance sized from its speed has the memory its batch needs;
        # only the sanity cap applies
        b_max = cal.max_seqs_per_accel * n
    else:
        usable: np.ndarray = k.usable  # type: ignore[assignment]  # set for a fixed size
        room = usable / np.maximum(g.seq_memory(mates), 1.0)
        b_max = room if k.usable_all else np.where(usable > 0, room, 1.0)
        b_max = np.minimum(np.maximum(b_max, 1.0), k.b_cap)  # type: ignore[arg-type]  # np.clip, as two ufuncs

    feasible: Any = None  # every sample
    at_floor: Any = False if one_row else np.zeros(shape[0], dtype=bool)
    one: Any = None
    if b_over is not None:
        batch = np.broadcast_to(np.float64(b_over), shape)
    elif timed is False or (not one_row and not any_itl and not hosted_speed):
        batch = g.batch_prior  # nothing timed: no batch to read
    else:
        raw = invert(g.inst, _where(timed, observed, 1.0), n, seq_b, at)
        # only a request's own stream conditions the samples (an assumed typical
        # speed is no evidence)
        below = _where(is_itl, raw < 1.0, False)
        if below is not False and below.any():
            # Faster than one sequence steps under a sample's assumptions. Within
            # the step model's own accuracy that is one sequence (a request alone
            # on its instance); beyond it, the sample cannot be right.
            one = step_time(g.inst, 1.0, n, seq_b, at)
            feasible = ~(below & (observed * (1.0 + cal.floor_tolerance) < one))
            # the central assumptions read the stream at their floor: the batch is
            # barely identified there, so the central figure is the feasible median
            at_floor = bool(below[0]) if one_row else below[:, 0]
        if not g.size_by_speed:
            # Within the step model's accuracy above one sequence's step the batch is
            # barely identified (the step hardly rises above the weight-read floor):
            # such a stream is as consistent with one sequence as with a few, and is
            # read towards one - continuously, reaching the inverted batch at the
            # band's edge (docs "The small-batch trap").
            up = _where(is_itl, raw > 1.0, False)
            if up is not False and up.any():
                if one is None:
                    one = step_time(g.inst, 1.0, n, seq_b, at)
                ramp = np.minimum(np.maximum((observed / one - 1.0) / cal.floor_tolerance, 0.0), 1.0)
                raw = np.where(up, 1.0 + (raw - 1.0) * ramp, raw)
        batch = _where(timed, raw, g.batch_prior)
    if feasible is None:
        own = True if one_row else np.ones(shape[0], dtype=bool)
        feasible = np.ones(shape, dtype=bool) if history_ok is None else history_ok
    else:
        own = (bool(feasible[0]) and not at_floor) if one_row else feasible[:, 0] & ~at_floor
        if history_ok is not None:
            feasible = feasible & history_ok
    if history_ok is None and g.history_ok is not None:
        feasible = feasible & g.history_ok
    batch = np.minimum(np.maximum(batch, 1.0), b_max)  # np.clip, as two ufuncs (b_max >= 1)
    t_model, mem_s, cmp_s = step(g.inst, batch, n, seq_b, at)
    if b_over is not None:
        t_eff = _where(timed, observed, t_model)  # batch and step both known
    else:
        # the instance spent the observed step on B sequences, unless the model
        # says a step is shorter (the extra is network or client time)
        t_eff = _where(timed, np.fmin(observed, t_model), t_model)

    # --- prefill: compute-bound at a prefill MFU; cached tokens cost a fraction
    acc_s_pre = fresh * k.pre_fresh  # accelerator-seconds
    acc_s_pre = acc_s_pre + fresh * (cached + 0.5 * fresh) * k.pre_attn
    if any_cached:
        acc_s_pre = acc_s_pre + cached * k.pre_cached

    if any_lat:
        # a non-streamed call held its (typical) share for its decode: the
        # duration less network/queue and its own prefill, within bounds
        window = duration - g.ttft_over - acc_s_pre / n
        stretch = np.minimum(
            np.maximum(window / (np.maximum(steps, 1.0) * t_eff), 1.0), cal.latency_stretch_max
        )
        t_eff = _where(is_lat, t_eff * stretch, t_eff)

    # --- utilisation: waiting on the host, streaming memory, or computing
    u = g.u_wait + (k.du_mem * mem_s + k.du_comp * cmp_s) / t_model
    u = np.minimum(np.maximum(u, 0.0), 1.0)
    acc_s_dec = steps * n * t_eff / batch
    if not g.unit_compute:
        acc_s_dec = acc_s_dec * cm

    # --- power per accelerator-second. Accelerator: idle + (rated - idle) u.
    # Host: H (h0 + (1 - h0) u). Idle reserve: f/(1-f) idle accelerator-seconds
    # at idle power and the host's floor. Prefill runs at the memory-or-compute
    # saturated utilisation u_comp (k.p_pre, k.h_pre).
    h0 = cal.host_idle_fraction
    acc_dec_w = g.idle + k.d_tdp * u
    host_dec_w = g.host_w * (h0 + (1.0 - h0) * u)

    acc_j = acc_s_pre * k.p_pre + acc_s_dec * acc_dec_w
    host_j = acc_s_pre * k.h_pre + acc_s_dec * host_dec_w
    occ = acc_s_pre + acc_s_dec
    idle_j = occ * k.k_idle
    it = acc_j + host_j + idle_j
    energy = it * g.pue
    emb_g = occ * k.emb_k
    carbon = energy * k.grid_k + emb_g
    water = it * k.water_k

    # --- the central sample of each request and its breakdowns
    if one_row:
        # _central's rule for one request, skipping numpy when sample 0 stands
        cen = 0
        if (not feasible[0] or at_floor) and feasible[1:].any():
            # the same rule on one row (np.argsort of a row sorts as it does along axis 1)
            e = np.where(feasible, energy, np.inf)
            e[0] = np.inf
            cen = int(np.argsort(e)[(int(np.count_nonzero(feasible[1:])) - 1) // 2])
        it1, total1 = float(it[cen]), float(energy[cen])

        def at1(a: np.ndarray) -> float:
            return float(a[cen]) if a.ndim else float(a)

        return ChunkResult(
            moved_by_speed=cen != 0 and not own,
            energy_j=energy,
            carbon_g=carbon,
            water_ml=water,
            feasible=feasible,
            central=cen,
            acc_j=at1(acc_j),
            host_j=at1(host_j),
            idle_j=at1(idle_j),
            fac_j=total1 - it1,
            carbon_op_g=total1 * float(g.grid[cen]) / 3.6e6,
            carbon_emb_g=at1(emb_g),
            water_on_ml=it1 * float(g.wue[cen]) / 3.6e3,
            water_off_ml=total1 * float(g.water[cen]) / 3.6e3,
            batch=batch,
            count=n,
        )
    feasible = np.broadcast_to(feasible, energy.shape)
    central = _central(energy, feasible, at_floor)
    r = np.arange(energy.shape[0])

    def at_c(a: np.ndarray) -> np.ndarray:
        a2 = np.broadcast_to(a, energy.shape)
        return a2[r, central]

    it0 = at_c(it)
    total0 = at_c(energy)
    return ChunkResult(
        moved_by_speed=(central != 0) & ~own,
        energy_j=energy,
        carbon_g=carbon,
        water_ml=water,
        feasible=feasible,
        central=central,
        acc_j=at_c(acc_j),
        host_j=at_c(host_j),
        idle_j=at_c(idle_j),
        fac_j=total0 - it0,
        carbon_op_g=total0 * at_c(g.grid) / 3.6e6,
        carbon_emb_g=at_c(emb_g),
        water_on_ml=it0 * at_c(g.wue) / 3.6e3,
        water_off_ml=total0 * at_c(g.water) / 3.6e3,
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

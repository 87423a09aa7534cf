"""Decode: how long one engine step takes at a batch, and which batch a step time means.

One decode step of an instance of n accelerators serving B sequences
(docs/methodology.md "Decode step time"):

    t(B) = T + s B + max(Wd/bw', d (B + m)) + max(Wr (1 - q^B)/bw', e (B + m (1 - q^B)/p))

* T: the engine's fixed host time per step, plus per-layer collectives on a
  multi-accelerator instance and expert-parallel dispatch/combine latency;
* s: per sequence, the engine's host time, expert-parallel traffic per token,
  and reading that sequence's KV cache (and a hybrid model's recurrent state)
  at the achieved bandwidth bw;
* the dense part (attention projections, dense MLPs, shared experts): read its
  Wd weight bytes once at the precision path's bandwidth bw', or compute
  d = FLOPs per token / achieved FLOP/s for each of B tokens, whichever is
  longer; GEMM efficiency rises with the rows in the product, B / (B + m)
  (m: rows at half efficiency), hence d (B + m);
* the routed experts of a MoE model: the B tokens touch an expected share
  1 - q^B of the Wr expert bytes (q = 1 - k/E: an expert missed by one
  token), and each touched expert multiplies only its few rows, so the
  routed GEMMs take e (B + m (1 - q^B)/p) (p = k/E: B k rows in all, plus m
  rows' worth of inefficiency per touched expert).

t(B) is increasing; it is the largest of four increasing branches (each max
picks one side), so the batch that explains an observed step is the smallest
of the four branches' roots, each of the form c1 B - R q^B = m with a closed
form through Lambert's W (a line for a dense model). Everything is numpy over
arrays of requests x samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

__all__ = ["Instance", "Rates", "invert", "rates", "step"]

_LAMBERT_STEPS = 4
_POLISH_STEPS = 2


@dataclass(frozen=True, eq=False)
class Instance:
    """Per-sample decode constants of one group; every array has shape (S+1,).

    Bandwidths and FLOP rates are per accelerator (the instance multiplies by
    its count, which may vary per request for a hosted service sized from its
    speed).
    """

    bw1: np.ndarray
    """Achieved KV/state streaming bandwidth per accelerator (bytes/s): peak x eta_bw."""
    bwk1: np.ndarray
    """Achieved weight streaming bandwidth per accelerator on the precision's kernels."""
    f1: np.ndarray
    """Achieved FLOP/s per accelerator on the precision's compute path."""
    m_half: np.ndarray
    t0: np.ndarray
    c_seq: np.ndarray
    coll: np.ndarray
    """Collective latency per step of a multi-accelerator instance (all layers)."""
    ep_fixed: np.ndarray
    """Expert-parallel dispatch/combine latency per step (all MoE layers; 0 without EP)."""
    ep_tok: np.ndarray
    """Expert-parallel cost per token per step, all MoE layers, x accelerators (divided by n)."""
    w_dense: np.ndarray
    """Weight bytes every token reads (dense layers, attention, shared experts)."""
    w_routed: np.ndarray
    """Routed expert weight bytes (0 for a dense model)."""
    flop_dense: np.ndarray
    """FLOPs per token of the dense part (2 x its parameters)."""
    flop_routed: np.ndarray
    """FLOPs per token of the routed experts (2 x routed active parameters)."""
    p_route: np.ndarray
    """k/E: the chance one token uses a given expert (1 for dense)."""
    moe: bool
    pp: np.ndarray | None = None
    """Pipeline stages of an instance larger than one scale-up domain (None: one stage).
    Tensor parallelism stays inside a domain (an 8-GPU NVLink node), pipeline parallelism
    spans domains: a token passes every stage in turn, so a step is that of one stage's
    tensor-parallel group holding the whole model, at the batch of one micro-batch, while
    the host prepares every micro-batch in turn (docs "Pipeline parallelism")."""

    @cached_property
    def log_q(self) -> np.ndarray:
        """ln q = ln(1 - k/E): the log-chance one token misses a given expert."""
        return np.log1p(-np.minimum(self.p_route, 1.0 - 1e-12))

    @cached_property
    def fixed_many(self) -> np.ndarray:
        """:meth:`fixed` wherever n > 1 (worked out once)."""
        return self.t0 + (self.coll + self.ep_fixed)

    @cached_property
    def per_seq_no_ep(self) -> np.ndarray | None:
        """:meth:`per_seq` for every n when no expert-parallel traffic is charged per
        sequence (None when some is)."""
        return None if np.any(self.ep_tok) else self.c_seq + 0.0

    def fixed(self, n: np.ndarray) -> np.ndarray:
        """T: host time, collectives and EP latency per step on ``n`` accelerators."""
        return self.t0 + np.where(n > 1.0, self.coll + self.ep_fixed, 0.0)

    def per_seq(self, n: np.ndarray) -> np.ndarray:
        """s without the memory traffic: host time and EP traffic per sequence per step."""
        return self.c_seq + np.where(n > 1.0, self.ep_tok / n, 0.0)


class Rates(NamedTuple):
    """An instance's decode rates on ``n`` accelerators: what :func:`step` and :func:`invert`
    share. A fixed-size instance computes them once per group; a hosted one sized from each
    request's speed, once per request for both."""

    n: np.ndarray
    """Accelerators of one tensor-parallel group (all of them without pipeline stages)."""
    bw: np.ndarray
    bwk: np.ndarray
    fl: np.ndarray
    fixed: np.ndarray
    """T: host time, collectives and EP latency per step."""
    per_seq: np.ndarray
    """s without the memory traffic."""
    d_mem: np.ndarray
    """Seconds to read the dense weights once."""
    d: np.ndarray
    """Seconds of dense compute per token at full GEMM efficiency."""
    pp: np.ndarray | None = None
    """Pipeline stages (None: one)."""


def rates(inst: Instance, n: np.ndarray, above_one: bool = False) -> Rates:
    """The rates of ``inst`` on ``n`` accelerators (arrays broadcasting to requests x samples).

    ``above_one``: the caller knows n > 1 everywhere (a hosted instance sized from speed
    whose smallest count is above one), so the multi-accelerator terms always apply.
    """
    pp = inst.pp
    if pp is not None:
        n = n / pp  # one stage's tensor-parallel group
    bwk = n * inst.bwk1
    fl = n * inst.f1
    per_seq = inst.per_seq_no_ep
    if per_seq is None:
        per_seq = inst.c_seq + inst.ep_tok / n if above_one else inst.per_seq(n)
    fixed = inst.fixed_many if above_one else inst.fixed(n)
    if pp is not None:
        # the host prepares each micro-batch in turn between its stage steps: per
        # inter-token interval, pp fixed host times and every sequence's own host
        # work (written per sequence of one micro-batch: pp x c_seq)
        fixed = fixed + (pp - 1.0) * inst.t0
        per_seq = per_seq * pp
    return Rates(
        n=n,
        bw=n * inst.bw1,
        bwk=bwk,
        fl=fl,
        fixed=fixed,
        per_seq=per_seq,
        d_mem=inst.w_dense / bwk,
        d=inst.flop_dense / fl,
        pp=pp,
    )


def step(
    inst: Instance,
    batch: np.ndarray | float,
    n: np.ndarray,
    seq_bytes: np.ndarray,
    at: Rates | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step time, seconds of memory-bound kernels, seconds of compute-bound kernels).

    ``seq_bytes``: bytes each sequence reads per step (KV cache, recurrent
    state). Decode attention reads each cached token's K and V for a few
    FLOPs per byte, so it is counted in that memory traffic, not as compute.
    All arguments broadcast to (requests, samples); ``at``: the rates on ``n``
    when already computed (:func:`rates`).
    """
    r = rates(inst, n) if at is None else at
    if r.pp is not None:
        batch = micro_batch(batch, r.pp)
    d_mem = r.d_mem
    d_cmp = inst.flop_dense * (batch + inst.m_half) / r.fl
    kv = batch * seq_bytes / r.bw
    dense_mem = d_mem >= d_cmp
    t = r.fixed + r.per_seq * batch + np.maximum(d_mem, d_cmp) + kv
    mem = np.where(dense_mem, d_mem, 0.0) + kv
    cmp = np.where(dense_mem, 0.0, d_cmp)
    if inst.moe:
        touched = -np.expm1(batch * inst.log_q)
        r_mem = inst.w_routed * touched / r.bwk
        # each touched expert multiplies its own few rows: B k tokens in all,
        # plus m rows' worth of inefficiency per touched expert
        r_cmp = inst.flop_routed * (batch + inst.m_half * touched / inst.p_route) / r.fl
        t = t + np.maximum(r_mem, r_cmp)
        mem = mem + np.where(r_mem >= r_cmp, r_mem, 0.0)
        cmp = cmp + np.where(r_mem >= r_cmp, 0.0, r_cmp)
    return t, mem, cmp


def invert(
    inst: Instance,
    target: np.ndarray,
    n: np.ndarray,
    seq_bytes: np.ndarray,
    at: Rates | None = None,
) -> np.ndarray:
    """The batch whose step time is ``target`` (unclipped: below 1 when even one
    sequence steps slower than ``target``)."""
    r0 = rates(inst, n) if at is None else at
    if r0.pp is not None:
        b = _invert(inst, target, seq_bytes, r0)
        return np.where(b > 1.0, b * r0.pp, b)
    return _invert(inst, target, seq_bytes, r0)


def micro_batch(batch: np.ndarray | float, pp: np.ndarray) -> np.ndarray:
    """Sequences in one micro-batch when ``batch`` fill ``pp`` pipeline stages: up to one
    sequence alone; then one per stage until every stage holds one (the step does not
    grow); then ``batch / pp``."""
    b = np.asarray(batch, dtype=float)
    return np.where(b >= pp, b / pp, np.minimum(b, 1.0))


def _invert(inst: Instance, target: np.ndarray, seq_bytes: np.ndarray, r0: Rates) -> np.ndarray:
    """:func:`invert` for one tensor-parallel group (the micro-batch)."""
    s = r0.per_seq + seq_bytes / r0.bw
    room = target - r0.fixed
    d_mem = r0.d_mem
    d = r0.d
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # dense branches: memory (constant) or compute (d (B + m))
        if not inst.moe:
            b_mem = (room - d_mem) / s
            b_cmp = (room - d * inst.m_half) / (s + d)
            return np.fmin(b_mem, b_cmp)
        e = inst.flop_routed / r0.fl
        r = inst.w_routed / r0.bwk  # reading every expert
        r2 = e * inst.m_half / inst.p_route  # every expert's small-GEMM inefficiency
        log_q = inst.log_q
        # each branch: c0 + c1 B + R (1 - q^B) = target, i.e. c1 B - R q^B = room - c0 - R
        room_mem = room - d_mem
        room_cmp = room - d * inst.m_half
        s_d = s + d
        slopes = (s, s + e, s_d, s_d + e)
        rests = (room_mem - r, room_mem - r2, room_cmp - r, room_cmp - r2)
        # At serving batch every expert is touched (R q^B negligible) and each root is
        # its line's: solve the lines, and Lambert's W only where the batch is small.
        b = rests[0] / slopes[0]
        for c1, m in zip(slopes[1:], rests[1:], strict=True):
            b = np.fmin(b, m / c1)
        rr = np.maximum(r, r2)
        need = ~(rr * np.exp(np.minimum(b * log_q, 0.0)) <= 1e-12 * (np.abs(room) + rr))
        if not need.any():
            return b
        shape = need.shape
        every = bool(need.all())

        def sub(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x)
            if x.shape != shape:
                x = np.broadcast_to(x, shape)
            return x.reshape(-1) if every else x[need]

        # the four branches' roots in one pass: each branch one quarter of the arrays
        r_n, r2_n, lq = sub(r), sub(r2), sub(log_q)
        roots = _lambert_root(
            np.concatenate([sub(c1) for c1 in slopes]),
            np.concatenate([sub(m) for m in rests]),
            np.concatenate((r_n, r2_n, r_n, r2_n)),
            np.concatenate((lq, lq, lq, lq)),
        )
        x = np.fmin.reduce(roots.reshape(4, -1), axis=0)
        if every:
            return x.reshape(shape)
        b[need] = x  # b is this call's own array
    return b


def _lambert_root(a: np.ndarray, m: np.ndarray, r: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """B with a B - r q^B = m (a, r > 0, 0 < q < 1): concave-increasing in B, one root.

    With k = -ln q and u = B - m/a: (k u) e^(k u) = z, ln z = ln(k r / a) -
    k m / a, so B = m/a + W(z)/k. W is evaluated in log space (no overflow);
    Newton steps on the original equation polish B to machine precision.
    Call it under ``np.errstate(divide="ignore", invalid="ignore", over="ignore")``.
    """
    k = -log_q
    base = m / a
    b = base + _lambert_w_log(np.log(k * r / a) - k * base) / k
    for _ in range(_POLISH_STEPS):
        miss = r * np.exp(np.minimum(b * log_q, 0.0))
        b = b - (a * b - miss - m) / (a - log_q * miss)
    return np.where(np.isfinite(b), b, base)


def _lambert_w_log(log_z: np.ndarray) -> np.ndarray:
    """Principal branch W(z) for z = exp(log_z) >= 0, without forming z.

    Solves t + exp(t) = log_z for t = ln W (Newton; convex and increasing),
    from Winitzki's approximation.
    """
    # ln(1 + e^x) without overflow: max(x, 0) + ln(1 + e^-|x|)
    lp = np.log1p(np.exp(-np.abs(log_z))) + np.maximum(log_z, 0.0)
    w0 = lp * (1.0 - np.log1p(lp) / (2.0 + lp))
    t = np.log(np.maximum(w0, 1e-300))
    for _ in range(_LAMBERT_STEPS):
        et = np.exp(t)
        t = t - (t + et - log_z) / (1.0 + et)
    return np.exp(t)

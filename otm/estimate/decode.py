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

import numpy as np

__all__ = ["Instance", "invert", "step"]

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

    def fixed(self, n: np.ndarray) -> np.ndarray:
        """T: host time, collectives and EP latency per step on ``n`` accelerators."""
        return self.t0 + np.where(n > 1.0, self.coll + self.ep_fixed, 0.0)

    def per_seq(self, n: np.ndarray) -> np.ndarray:
        """s without the memory traffic: host time and EP traffic per sequence per step."""
        return self.c_seq + np.where(n > 1.0, self.ep_tok / n, 0.0)


def step(
    inst: Instance,
    batch: np.ndarray,
    n: np.ndarray,
    seq_bytes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step time, seconds of memory-bound kernels, seconds of compute-bound kernels).

    ``seq_bytes``: bytes each sequence reads per step (KV cache, recurrent
    state). Decode attention reads each cached token's K and V for a few
    FLOPs per byte, so it is counted in that memory traffic, not as compute.
    All arguments broadcast to (requests, samples).
    """
    bw = n * inst.bw1
    bwk = n * inst.bwk1
    fl = n * inst.f1
    d_mem = inst.w_dense / bwk
    d_cmp = inst.flop_dense * (batch + inst.m_half) / fl
    kv = batch * seq_bytes / bw
    t = inst.fixed(n) + inst.per_seq(n) * batch + np.maximum(d_mem, d_cmp) + kv
    mem = np.where(d_mem >= d_cmp, d_mem, 0.0) + kv
    cmp = np.where(d_mem >= d_cmp, 0.0, d_cmp)
    if inst.moe:
        touched = -np.expm1(batch * np.log1p(-np.minimum(inst.p_route, 1.0 - 1e-12)))
        r_mem = inst.w_routed * touched / bwk
        # each touched expert multiplies its own few rows: B k tokens in all,
        # plus m rows' worth of inefficiency per touched expert
        r_cmp = inst.flop_routed * (batch + inst.m_half * touched / inst.p_route) / fl
        t = t + np.maximum(r_mem, r_cmp)
        mem = mem + np.where(r_mem >= r_cmp, r_mem, 0.0)
        cmp = cmp + np.where(r_mem >= r_cmp, 0.0, r_cmp)
    return t, mem, cmp


def invert(
    inst: Instance,
    target: np.ndarray,
    n: np.ndarray,
    seq_bytes: np.ndarray,
) -> np.ndarray:
    """The batch whose step time is ``target`` (unclipped: below 1 when even one
    sequence steps slower than ``target``)."""
    bw = n * inst.bw1
    bwk = n * inst.bwk1
    fl = n * inst.f1
    s = inst.per_seq(n) + seq_bytes / bw
    room = target - inst.fixed(n)
    d_mem = inst.w_dense / bwk
    d = inst.flop_dense / fl
    with np.errstate(divide="ignore", invalid="ignore"):
        # dense branches: memory (constant) or compute (d (B + m))
        if not inst.moe:
            b_mem = (room - d_mem) / s
            b_cmp = (room - d * inst.m_half) / (s + d)
            return np.fmin(b_mem, b_cmp)
        e = inst.flop_routed / fl
        r = inst.w_routed / bwk  # reading every expert
        r2 = e * inst.m_half / inst.p_route  # every expert's small-GEMM inefficiency
        log_q = np.log1p(-np.minimum(inst.p_route, 1.0 - 1e-12))
        # each branch: c0 + c1 B + R (1 - q^B) = target, i.e. c1 B - R q^B = room - c0 - R
        branches = (
            (s, room - d_mem - r, r),
            (s + e, room - d_mem - r2, r2),
            (s + d, room - d * inst.m_half - r, r),
            (s + d + e, room - d * inst.m_half - r2, r2),
        )
        # At serving batch every expert is touched (R q^B negligible) and each root is
        # its line's: solve the lines, and Lambert's W only where the batch is small.
        b = branches[0][1] / branches[0][0]
        for c1, m, _ in branches[1:]:
            b = np.fmin(b, m / c1)
        rr = np.maximum(r, r2)
        need = ~(rr * np.exp(np.minimum(b * log_q, 0.0)) <= 1e-12 * (np.abs(room) + rr))
        if not need.any():
            return b
        b = np.array(np.broadcast_to(b, need.shape))
        lq = np.broadcast_to(log_q, need.shape)[need]

        def sub(x: np.ndarray) -> np.ndarray:
            return np.broadcast_to(x, need.shape)[need]

        x = None
        for c1, m, rx in branches:
            root = _lambert_root(sub(c1), sub(m), sub(rx), lq)
            x = root if x is None else np.fmin(x, root)
        b[need] = x
    return b


def _lambert_root(a: np.ndarray, m: np.ndarray, r: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """B with a B - r q^B = m (a, r > 0, 0 < q < 1): concave-increasing in B, one root.

    With k = -ln q and u = B - m/a: (k u) e^(k u) = z, ln z = ln(k r / a) -
    k m / a, so B = m/a + W(z)/k. W is evaluated in log space (no overflow);
    Newton steps on the original equation polish B to machine precision.
    """
    k = -log_q
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
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
    lp = np.where(
        log_z > 0,
        log_z + np.log1p(np.exp(-np.abs(log_z))),
        np.log1p(np.exp(np.minimum(log_z, 0.0))),
    )
    w0 = lp * (1.0 - np.log1p(lp) / (2.0 + lp))
    t = np.log(np.maximum(w0, 1e-300))
    for _ in range(_LAMBERT_STEPS):
        et = np.exp(t)
        t = t - (t + et - log_z) / (1.0 + et)
    return np.exp(t)

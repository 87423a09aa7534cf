"""One group of requests: a model on a deployment in a region, every uncertain input drawn.

A group is every request of one (provider, model) under one deployment and
region: column 0 of each array is the central case, columns 1..S the
quasi-random samples (docs/methodology.md "Ranges"). :mod:`.assemble` builds
it; here are what it answers (the instance's size and one sequence's bytes)
and its conditioning on the deployment's history.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .calibration import Calibration
from .decode import Instance
from .engine import Engine
from .hardware import HardwarePlan
from .precision import Precision
from .provider import ModelWork

__all__ = ["Group", "history_mask", "with_history"]


@dataclass(frozen=True, eq=False)
class Group:
    """Per-sample inputs of one group: every array has shape (S+1,), column 0 central."""

    work: ModelWork
    plan: HardwarePlan
    engine: Engine
    engine_alt: Engine | None
    precision: Precision
    kernels: str
    """The compute path the precision runs on the central accelerator."""
    cal: Calibration
    accel_idx: np.ndarray
    grid_idx: np.ndarray
    engine_idx: np.ndarray
    """0: the engine, 1: the alternative (legacy) profile."""
    n: np.ndarray
    """Accelerators per instance (given, or memory-sized for a self-hosted deployment)."""
    n_mem: np.ndarray
    n_cap: np.ndarray
    size_by_speed: bool
    """Hosted, count unknown: the instance is sized from each request's speed."""
    inst: Instance
    mem1: np.ndarray
    w_total: np.ndarray
    """Weight bytes stored (every expert)."""
    n_active: np.ndarray
    kv_bytes: np.ndarray
    """KV bytes per context token in full-attention layers."""
    kv_slide_bytes: np.ndarray
    window: float
    state_bytes: np.ndarray
    """Recurrent state bytes per sequence (read and written every step)."""
    attn_coef: np.ndarray
    """Attention FLOPs per token per context token (4 x attention layers x query width)."""
    context_mix: np.ndarray
    peak_pre: np.ndarray
    tdp: np.ndarray
    idle: np.ndarray
    u_wait: np.ndarray
    u_mem: np.ndarray
    u_comp: np.ndarray
    mfu_pre: np.ndarray
    cache_cost: np.ndarray
    batch_prior: np.ndarray
    itl_prior: np.ndarray
    ttft_over: np.ndarray
    weight_share: np.ndarray
    host_w: np.ndarray
    host_idle_w: np.ndarray
    idle_frac: np.ndarray
    pue: np.ndarray
    wue: np.ndarray
    grid: np.ndarray
    water: np.ndarray
    emb_rate: np.ndarray
    compute_mult: np.ndarray
    unit_compute: bool = True
    history_ok: np.ndarray | None = None
    """Samples the deployment's own history leaves possible (None: no history)."""
    warnings: tuple[str, ...] = ()
    assumptions: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    memo: dict[str, Any] = field(default_factory=dict, init=False, compare=False, hash=False, repr=False)
    """What follows from the group alone, worked out once (:meth:`once`): the group is
    cached per (model, provider, deployment, region, calibration, data), so every
    estimate after the first finds it here. Not carried over by ``dataclasses.replace``."""

    def once(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` the first time ``name`` is asked for, the kept value after that."""
        try:
            return self.memo[name]
        except KeyError:
            v = self.memo[name] = make()
            return v

    # --- the instance -------------------------------------------------------

    def count_for(self, step_s: np.ndarray) -> np.ndarray:
        """Accelerators per instance; a hosted service is sized from the step time.

        It has enough accelerators that reading all its weights (every expert,
        at production batch) takes at most ``weight_share`` of the step left
        after the engine's fixed time, and no more than its largest plausible
        instance (``n_cap``). Continuous: an expectation over the instances
        actually deployed, so estimates move smoothly with the speed.
        """
        if not self.size_by_speed:
            return self.n
        base, fixed_cap, _ = self._sizing()
        room = np.maximum(step_s - fixed_cap, 1e-12)
        # np.clip's bounds, as two ufuncs (n_mem <= n_cap)
        return np.minimum(np.maximum(base / room, self.n_mem), self.n_cap)

    def sizing_limit(self) -> np.ndarray:
        """Per sample: the step below which the sizing rule needs more than ``n_cap``."""
        return self._sizing()[2]

    def _sizing(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            base = self.w_total / (self.inst.bwk1 * self.weight_share)
            fixed_cap = self.inst.fixed(self.n_cap)
            return _frozen(base), _frozen(fixed_cap), _frozen(base / self.n_cap + fixed_cap)

        return self.once("sizing", make)  # type: ignore[no-any-return]

    def fastest(self) -> np.ndarray:
        """Per sample, the fastest step the group's assumptions allow: one sequence on
        the instance (on the largest plausible one for a hosted service sized from speed)."""
        return self.once(  # type: ignore[no-any-return]
            "fastest", lambda: self.sizing_limit() if self.size_by_speed else _frozen(_one_sequence(self))
        )

    def seq_bytes(self, ctx: np.ndarray) -> np.ndarray:
        """Bytes one sequence streams per step at mean context ``ctx``: KV and state."""
        kv = self.kv_bytes * ctx
        if self.window:
            kv = kv + self.kv_slide_bytes * np.minimum(ctx, self.window)
        if self.state_bytes[0]:
            kv = kv + 2.0 * self.state_bytes  # the state is read and written back
        return kv

    def seq_memory(self, ctx: np.ndarray) -> np.ndarray:
        """Bytes one sequence holds in memory (for the largest batch that fits)."""
        kv = self.kv_bytes * ctx
        if self.window:
            kv = kv + self.kv_slide_bytes * np.minimum(ctx, self.window)
        return kv + self.state_bytes


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # shared by every estimate of the group
    return a


def with_history(g: Group, itl_floor: float | None, streams: int) -> tuple[Group, list[str]]:
    """The group conditioned on its deployment's history (:func:`history_mask`), as a new
    group whose ``history_ok`` holds the mask (the cached group is left as it is)."""
    ok, notes = history_mask(g, itl_floor, streams)
    return (g if ok is None else replace(g, history_ok=ok)), notes


def history_mask(g: Group, itl_floor: float | None, streams: int) -> tuple[np.ndarray | None, list[str]]:
    """Condition the group on its deployment's history: the fastest steps it keeps showing.

    ``itl_floor`` is a low quantile of the deployment's recent clean streams
    (:mod:`.floor`). A sample whose fastest possible step (one sequence on a
    given instance; the largest plausible instance for a hosted service) is
    slower than steps the deployment has shown cannot be right: it is set
    aside for every request of the group. If every sample would be, the
    assumptions are too slow for this deployment; the history is then only
    noted. Returns the samples left possible (None: no history to apply) and
    the notes to show.
    """
    if itl_floor is None or not math.isfinite(itl_floor) or itl_floor <= 0:
        return None, []
    fastest = g.fastest()
    # within the step model's accuracy a stream is one sequence (as for a single request)
    ok = fastest <= itl_floor * (1.0 + g.cal.floor_tolerance)
    if ok.all():
        return ok, []
    accel = g.plan.accelerators[int(g.accel_idx[0])].name
    note = (
        f"this deployment has shown steps of {itl_floor * 1e3:.3g} ms ({1.0 / itl_floor:.0f} tokens/s, "
        f"low quantile of {streams} streams)"
    )
    if ok.mean() < g.cal.history_min_share:
        # none, or too few to describe a range: the assumptions, not the samples, are off
        return None, [
            note + f": faster than {'' if not ok.any() else 'all but a few of '}otm's assumptions "
            f"for {g.work.name} on {accel} allow at one sequence; the hardware, precision or engine "
            "is likely different (pass a Deployment)"
        ]
    return ok, [
        note + f": {int((~ok).sum())} of {ok.size} sampled assumptions are too slow for it and are set aside"
    ]


def _one_sequence(g: Group) -> np.ndarray:
    """Per sample, the step of the group's instance at one sequence and a short context."""
    from .decode import step

    t, _, _ = step(g.inst, np.ones_like(g.n), g.n, g.seq_bytes(np.full_like(g.n, 1.0)))
    return t

"""Fit otm's decode constants on measured configurations (used by bench/validate.py).

What is fitted (docs/methodology.md "Calibration"): the hardware physics every
engine shares - achieved bandwidth and compute shares, the GEMM rows at half
efficiency, the power curve - and the central values of the engine profiles
the training data ran (``modern`` for ML.ENERGY v3, ``legacy`` for v2). An
engine whose data is not in the training set keeps its prior (that is how
the transfer between engine generations is tested).

The objective, per configuration: the step time and the power at the
measured batch (log residuals), and the energy per request with the batch
inferred from the step as the estimator infers it (log residual), plus a
weak pull towards each prior. Robust (arctan) loss: a configuration the
physics cannot explain weighs little. Every term is evaluated with the
estimator's own functions (:func:`otm.estimate.decode.step` and
:func:`~otm.estimate.decode.invert`) on per-configuration inputs taken from
the estimator's own group resolution, so the fit and the estimator cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from mlenergy import Point

from otm.deployment import Deployment
from otm.estimate.assemble import build_group
from otm.estimate.calibration import DEFAULT, Calibration
from otm.estimate.decode import Instance, invert, step
from otm.estimate.engine import ENGINES, LEGACY_PRIOR, MODERN_PRIOR, Engine, KernelPath, _centred
from otm.estimate.stamp import data_stamp
from otm.telemetry import Telemetry

HW = ("eta_bw", "eta_flops", "gemm_half_rows", "u_wait", "u_mem", "u_comp")
HW_PRIOR = {  # centre, log-sigma (ESTIMATES, docs "Calibration")
    "eta_bw": (0.8, 0.2),
    "eta_flops": (0.5, 0.4),
    "gemm_half_rows": (64.0, 1.0),
    "u_wait": (0.25, 0.5),
    "u_mem": (0.8, 0.3),
    "u_comp": (0.95, 0.3),
}
HW_BOUNDS = {
    "eta_bw": (0.3, 1.0),
    "eta_flops": (0.05, 1.0),
    "gemm_half_rows": (1.0, 2000.0),
    "u_wait": (0.02, 1.0),
    "u_mem": (0.1, 1.5),
    "u_comp": (0.1, 1.5),
}
ENGINE_FIELDS = ("t0_s", "c_seq_s", "a_coll_s", "a_ep_s", "b_ep_s")
KERNEL_FIELDS = ("fp8_bandwidth", "fp8_compute", "w4a16_bandwidth", "w4a16_compute", "fp4_bandwidth", "fp4_compute")
PRIORS = {"modern": MODERN_PRIOR, "legacy": LEGACY_PRIOR}
ENGINE_OF = {"v2": "legacy", "v3": "modern"}


def telemetry_of(p: Point) -> Telemetry:
    """One streamed request of the configuration's mean output at its step time."""
    out = max(int(round(p.output_tokens)), 2)
    ttft = 0.2
    return Telemetry(
        model=p.model,
        provider="local",
        start_time=0.0,
        first_token_time=ttft,
        last_token_time=ttft + p.itl_s * (out - 1),
        end_time=ttft + p.itl_s * (out - 1),
        input_tokens=int(p.input_tokens),
        output_tokens=out,
        streamed=True,
    )


def deployment_of(p: Point) -> Deployment:
    return Deployment.accelerator_only(
        p.gpu, p.count, provider="local", engine=p.engine, expert_parallel=p.expert_parallel
    )


# --- per-configuration inputs from the estimator's own resolution ---------

_UNIT = Engine(
    name="unit",
    description="unit constants: resolves each configuration's raw factors",
    t0_s=(0.0, 0.0, 0.0),
    c_seq_s=(0.0, 0.0, 0.0),
    a_coll_s=(1.0, 1.0, 1.0),
    a_ep_s=(1.0, 1.0, 1.0),
    b_ep_s=(1.0, 1.0, 1.0),
)


@dataclass
class Features:
    """Stacked per-configuration inputs (arrays over configurations)."""

    points: list[Point]
    engine: np.ndarray  # object: engine profile name per configuration
    path: np.ndarray  # object: kernel path
    n: np.ndarray
    bw: np.ndarray
    peak: np.ndarray
    layers_coll: np.ndarray
    layers_ep: np.ndarray
    w_dense: np.ndarray
    w_routed: np.ndarray
    flop_dense: np.ndarray
    flop_routed: np.ndarray
    p_route: np.ndarray
    pp: np.ndarray
    """Pipeline stages (1: none)."""
    seq_bytes: np.ndarray
    seq_mem: np.ndarray
    attn: np.ndarray
    w_total: np.ndarray
    mem: np.ndarray
    tdp: np.ndarray
    idle: np.ndarray
    pre_s: np.ndarray
    """Prefill accelerator-seconds at the central prefill MFU."""
    batch: np.ndarray
    itl: np.ndarray
    out: np.ndarray
    energy: np.ndarray
    power: np.ndarray


def features(points: Sequence[Point]) -> Features:
    cal = DEFAULT.with_(
        samples=0,
        eta_bw=1.0,
        eta_flops=1.0,
        engines=tuple((name, replace(_UNIT, expert_parallel=ENGINES[name].expert_parallel)) for name in ENGINES),
    )
    stamp = data_stamp()
    rows: dict[str, list[float]] = {}
    engines, paths = [], []
    for p in points:
        t = telemetry_of(p)
        g = build_group(t.model, "local", deployment_of(p), None, cal, stamp)
        i = g.inst
        fresh = float(t.input_tokens)
        out = float(t.output_tokens)
        ctx = np.array([fresh + 0.5 * out])
        vals = {
            "n": g.n[0],
            "bw": i.bw1[0],
            "peak": i.f1[0],
            "layers_coll": i.coll[0],
            "layers_ep": i.ep_fixed[0],
            "w_dense": i.w_dense[0],
            "w_routed": i.w_routed[0],
            "flop_dense": i.flop_dense[0],
            "flop_routed": i.flop_routed[0],
            "p_route": i.p_route[0],
            "pp": 1.0 if i.pp is None else i.pp[0],
            "seq_bytes": float(g.seq_bytes(ctx)[0]),
            "seq_mem": float(g.seq_memory(ctx)[0]),
            "attn": float(g.attn_coef[0] * ctx[0]),
            "w_total": g.w_total[0],
            "mem": g.mem1[0],
            "tdp": g.tdp[0],
            "idle": g.idle[0],
            "pre_s": float(
                fresh * (2.0 * g.n_active[0] + g.attn_coef[0] * 0.5 * fresh) / (g.peak_pre[0] * g.mfu_pre[0])
            ),
            "batch": p.batch,
            "itl": p.itl_s,
            "out": out,
            "energy": p.energy_j,
            "power": p.power_w,
        }
        for k, v in vals.items():
            rows.setdefault(k, []).append(float(v))
        engines.append(g.engine.name if g.engine.name != "unit" else "modern")
        paths.append(g.kernels)
    arr = {k: np.array(v) for k, v in rows.items()}
    eng = np.array([ENGINE_OF[p.dataset] for p in points], dtype=object)
    return Features(points=list(points), engine=eng, path=np.array(paths, dtype=object), **arr)


# --- constants <-> a parameter vector --------------------------------------


@dataclass(frozen=True)
class Constants:
    hw: dict[str, float]
    engines: dict[str, Engine]
    host_effects: dict[str, float] | None = None
    """Per training deployment, its fitted host-time multiplier (reported, not used to predict)."""
    t0_spread: dict[str, float] | None = None
    """Per engine, the factor an unseen deployment's host time is sampled within (x/k .. x k)."""

    def calibration(self, base: Calibration = DEFAULT) -> Calibration:
        hw = {k: v for k, v in self.hw.items() if k in HW}
        spreads = {
            k: (1.0, 1.0 / self.hw[k], self.hw[k])
            for k in ("efficiency_spread", "power_spread")
            if k in self.hw
        }
        return base.with_(**hw, **spreads, engines=tuple(self.engines.items()))

    def to_json(self) -> dict[str, object]:
        return {
            "hw": self.hw,
            "engines": {name: engine_json(e) for name, e in self.engines.items()},
            "host_effects": self.host_effects or {},
            "t0_spread": self.t0_spread or {},
        }

    @staticmethod
    def from_json(d: dict[str, object]) -> Constants:
        hw = {k: float(v) for k, v in d["hw"].items()}  # type: ignore[union-attr]
        t0_spread = {k: float(v) for k, v in d.get("t0_spread", {}).items()}  # type: ignore[union-attr]
        engines = {
            name: _centred(
                PRIORS[name],
                PRIORS_FITTED_ON[name],
                spread={"t0_s": t0_spread[name]} if name in t0_spread else None,
                **{k: float(v) for k, v in fields.items()},
            )
            for name, fields in d["engines"].items()  # type: ignore[union-attr]
        }
        effects = {k: float(v) for k, v in d.get("host_effects", {}).items()}  # type: ignore[union-attr]
        return Constants(hw, engines, effects, t0_spread)


PRIORS_FITTED_ON = {"modern": "ML.ENERGY v3 (vLLM 0.11.1)", "legacy": "ML.ENERGY v2 (vLLM 0.4.2)"}


def engine_json(e: Engine) -> dict[str, float]:
    out = {f: float(getattr(e, f)[0]) for f in ENGINE_FIELDS}
    for f in KERNEL_FIELDS:
        path, part = f.rsplit("_", 1)
        out[f] = float(getattr(e.kernel(path), part)[0])
    return out


def _engine_value(e: Engine, f: str) -> float:
    return engine_json(e)[f]


def _engine_bounds(e: Engine, f: str) -> tuple[float, float]:
    if f in ENGINE_FIELDS:
        lo, hi = getattr(e, f)[1:]
    else:
        path, part = f.rsplit("_", 1)
        lo, hi = getattr(e.kernel(path), part)[1:]
    return max(lo, 1e-9), hi


def prior_constants() -> Constants:
    """Every constant at its prior centre (before any fit)."""
    hw = {k: v[0] for k, v in HW_PRIOR.items()}
    return Constants(hw, {name: PRIORS[name] for name in PRIORS})


# --- the forward model over stacked configurations -------------------------


def _instance(f: Features, c: Constants, host_scale: np.ndarray | None = None) -> Instance:
    def eng(field: str) -> np.ndarray:
        return np.array([_engine_value(c.engines[e], field) for e in f.engine])

    kbw = np.ones(len(f.n))
    kfl = np.ones(len(f.n))
    for path in ("fp8", "w4a16", "fp4", "int8"):
        m = f.path == path
        if m.any():
            for i in np.flatnonzero(m):
                k = c.engines[f.engine[i]].kernel(path)
                kbw[i], kfl[i] = k.bandwidth[0], k.compute[0]
    bw1 = f.bw * c.hw["eta_bw"]
    return Instance(
        bw1=bw1,
        bwk1=bw1 * kbw,
        f1=f.peak * c.hw["eta_flops"] * kfl,
        m_half=np.full(len(f.n), c.hw["gemm_half_rows"]),
        t0=eng("t0_s") * (1.0 if host_scale is None else host_scale),
        c_seq=eng("c_seq_s"),
        coll=f.layers_coll * eng("a_coll_s"),
        ep_fixed=f.layers_ep * eng("a_ep_s"),
        ep_tok=f.layers_ep * eng("b_ep_s"),
        w_dense=f.w_dense,
        w_routed=f.w_routed,
        flop_dense=f.flop_dense,
        flop_routed=f.flop_routed,
        p_route=f.p_route,
        moe=True,
        pp=f.pp if np.any(f.pp > 1.0) else None,
    )


def _power(f: Features, c: Constants, t: np.ndarray, mem: np.ndarray, cmp: np.ndarray) -> np.ndarray:
    h = c.hw
    u = h["u_wait"] + ((h["u_mem"] - h["u_wait"]) * mem + (h["u_comp"] - h["u_wait"]) * cmp) / t
    return f.idle + (f.tdp - f.idle) * np.clip(u, 0.0, 1.0)


def deployment_groups(points: Sequence[Point]) -> np.ndarray:
    """Per configuration, its deployment (one model on one GPU type and count, one engine)."""
    keys = [(p.dataset, p.model, p.gpu, p.count, p.expert_parallel) for p in points]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.array([index[k] for k in keys])


def predict(f: Features, c: Constants, host_scale: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Step time and power at the measured batch; batch and energy inferred from the step.

    ``host_scale``: per configuration, a multiplier on the engine's fixed host time
    (the fit's per-deployment effect; 1 when predicting an unseen deployment).
    """
    inst = _instance(f, c, host_scale)
    with np.errstate(all="ignore"):
        t_b, mem_b, cmp_b = step(inst, f.batch, f.n, f.seq_bytes)
        p_b = _power(f, c, t_b, mem_b, cmp_b)
        usable = f.n * f.mem * 0.9 - f.w_total
        b_max = np.clip(np.where(usable > 0, usable / np.maximum(f.seq_mem, 1.0), 1.0), 1.0, 8192.0 * f.n)
        b_inf = np.clip(invert(inst, f.itl, f.n, f.seq_bytes), 1.0, b_max)
        t_i, mem_i, cmp_i = step(inst, b_inf, f.n, f.seq_bytes)
        p_i = _power(f, c, t_i, mem_i, cmp_i)
        p_pre = f.idle + (f.tdp - f.idle) * min(c.hw["u_comp"], 1.0)
        e = (f.out - 1.0) * f.n * p_i * np.fmin(f.itl, t_i) / b_inf + f.pre_s * p_pre
    return {"t": t_b, "power": p_b, "batch": b_inf, "energy": e}


def fit(
    points: Sequence[Point],
    *,
    start: Constants | None = None,
    fit_hw: bool = True,
    engines: Sequence[str] | None = None,
    prior_weight: float = 0.3,
    max_nfev: int = 400,
) -> Constants:
    """Fit on ``points``: the hardware physics (``fit_hw``) and the named engines' centres
    (default: the engines the points ran)."""
    from scipy.optimize import least_squares

    f = features(points)
    c0 = start or prior_constants()
    names = sorted(set(f.engine)) if engines is None else list(engines)
    keys: list[tuple[str, str]] = ([("hw", k) for k in HW] if fit_hw else []) + [
        (e, k) for e in names for k in (*ENGINE_FIELDS, *KERNEL_FIELDS)
    ]
    # a kernel path or a parallelism the points never use stays at its prior
    used_paths = {str(p) for p in f.path}
    has_coll = bool(np.any(f.layers_coll > 0))
    has_ep = bool(np.any(f.layers_ep > 0))

    def relevant(e: str, k: str) -> bool:
        if e == "hw":
            return True
        if k in KERNEL_FIELDS:
            return k.rsplit("_", 1)[0] in used_paths and bool(np.any((f.engine == e) & (f.path == k.rsplit("_", 1)[0])))
        if k == "a_coll_s":
            return has_coll and bool(np.any((f.engine == e) & (f.layers_coll > 0) & (f.n > 1)))
        if k in ("a_ep_s", "b_ep_s"):
            return has_ep and bool(np.any((f.engine == e) & (f.layers_ep > 0)))
        return bool(np.any(f.engine == e))

    keys = [k for k in keys if relevant(*k)]

    def value(c: Constants, e: str, k: str) -> float:
        return c.hw[k] if e == "hw" else _engine_value(c.engines[e], k)

    def bounds(e: str, k: str) -> tuple[float, float]:
        return HW_BOUNDS[k] if e == "hw" else _engine_bounds(PRIORS[e], k)

    def prior(e: str, k: str) -> tuple[float, float]:
        if e == "hw":
            return HW_PRIOR[k]
        lo, hi = _engine_bounds(PRIORS[e], k)
        centre = _engine_value(PRIORS[e], k)
        return max(centre, 1e-9), max(np.log(hi / lo) / 4.0, 0.1)

    def build(x: np.ndarray) -> Constants:
        hw = dict(c0.hw)
        per: dict[str, dict[str, float]] = {e: engine_json(c0.engines[e]) for e in c0.engines}
        for (e, k), v in zip(keys, np.exp(x), strict=True):
            if e == "hw":
                hw[k] = float(v)
            else:
                per[e][k] = float(v)
        engines_out = {e: _centred(PRIORS[e], PRIORS_FITTED_ON[e], **per[e]) for e in per}
        return Constants(hw, engines_out)

    lo = np.log([bounds(*k)[0] for k in keys])
    hi = np.log([bounds(*k)[1] for k in keys])
    x0 = np.clip(np.log([max(value(c0, *k), 1e-9) for k in keys]), lo + 1e-6, hi - 1e-6)
    pri = [prior(*k) for k in keys]
    # One host-time effect per deployment (a random effect): a deployment whose
    # host is slower or faster than its engine's typical one (CPU contention,
    # eager fall-backs) is explained by its own effect instead of bending the
    # physics every deployment shares. Predictions for an unseen deployment use
    # the typical host time (effect 1); the effects' spread is reported.
    grp = deployment_groups(points)
    ng = int(grp.max()) + 1
    nk = len(keys)

    def residuals(x: np.ndarray) -> np.ndarray:
        c = build(x[:nk])
        eff = np.exp(x[nk:])
        y = predict(f, c, eff[grp])
        r = [
            np.log(y["t"] / f.itl),
            np.log(y["power"] / f.power),
            np.log(y["energy"] / f.energy),
            prior_weight * np.array([(xi - np.log(m)) / s for xi, (m, s) in zip(x[:nk], pri, strict=True)]),
            x[nk:] / HOST_EFFECT_SIGMA,
        ]
        out = np.concatenate(r)
        return np.where(np.isfinite(out), out, 10.0)

    # start each deployment's effect where its own step times put it (a grid
    # search with the starting constants): from a flat start the robust loss
    # gives a far-off deployment no gradient to follow
    c_start = build(x0)
    grid = np.linspace(np.log(1.0 / 20.0), np.log(20.0), 41)
    cost = np.empty((grid.size, ng))
    for gi, v in enumerate(grid):
        y = predict(f, c_start, np.full(len(f.n), np.exp(v)))
        r = np.log(y["t"] / f.itl) ** 2 + np.log(y["energy"] / f.energy) ** 2
        cost[gi] = np.bincount(grp, weights=np.where(np.isfinite(r), r, 1e3), minlength=ng)
    cost += (grid[:, None] / HOST_EFFECT_SIGMA) ** 2
    x_all = np.concatenate([x0, grid[np.argmin(cost, axis=0)]])
    lo_all = np.concatenate([lo, np.full(ng, np.log(1.0 / 50.0))])
    hi_all = np.concatenate([hi, np.full(ng, np.log(50.0))])
    res = least_squares(residuals, x_all, bounds=(lo_all, hi_all), loss="arctan", f_scale=0.2, max_nfev=max_nfev)
    fitted = build(res.x[:nk])
    effects = res.x[nk:]
    # The population the deployments were drawn from: each engine's central host
    # time is the most common deployment's (the half-sample mode of the effects in
    # log: a cluster of slow hosts - seven single-B200 deployments of one run - must
    # not drag the typical deployment towards them, as a median does once they are
    # near half of the training set), and its spread (robust, 90 % interval) is what
    # an unseen deployment's host time is sampled within.
    engines_out = dict(fitted.engines)
    spread: dict[str, float] = {}
    for e in sorted(set(f.engine)):
        g_of_e = np.unique(grp[f.engine == e])
        le = effects[g_of_e]
        med = half_sample_mode(le)
        sigma = float(1.4826 * np.median(np.abs(le - med))) if le.size > 2 else 0.5
        k = float(min(np.exp(1.645 * max(sigma, 0.2)), 4.0))
        fields = engine_json(fitted.engines[e])
        fields["t0_s"] *= float(np.exp(med))
        engines_out[e] = _centred(PRIORS[e], PRIORS_FITTED_ON[e], spread={"t0_s": k}, **fields)
        spread[e] = k
    # the shared constants' ranges: the robust spread of the fit's residuals (90 %)
    y = predict(f, fitted, np.exp(effects)[grp])
    hw = dict(fitted.hw)
    for key, r in (("efficiency_spread", np.log(y["t"] / f.itl)), ("power_spread", np.log(y["power"] / f.power))):
        r = r[np.isfinite(r)]
        sd = float(1.4826 * np.median(np.abs(r - np.median(r))))
        hw[key] = float(np.exp(1.645 * sd))
    return Constants(
        hw,
        engines_out,
        {_group_name(points, grp, g): float(np.exp(v)) for g, v in enumerate(effects)},
        spread,
    )


def half_sample_mode(x: np.ndarray) -> float:
    """The half-sample mode (Bickel and Fruehwirth, 2006): repeatedly keep the densest half
    of the sorted values (the shortest window holding half of them) until at most three
    remain; a robust estimate of where the values cluster most."""
    v = np.sort(np.asarray(x, dtype=float))
    while v.size > 3:
        h = (v.size + 1) // 2
        widths = v[h - 1 :] - v[: v.size - h + 1]
        i = int(np.argmin(widths))
        v = v[i : i + h]
    if v.size == 3:
        lo, hi = v[1] - v[0], v[2] - v[1]
        return float((v[0] + v[1]) / 2.0 if lo < hi else (v[1] + v[2]) / 2.0 if hi < lo else v[1])
    return float(np.mean(v))


HOST_EFFECT_SIGMA = 1.0
"""Prior spread (log) of a deployment's host-time effect around its engine's typical value."""


def _group_name(points: Sequence[Point], grp: np.ndarray, g: int) -> str:
    p = points[int(np.flatnonzero(grp == g)[0])]
    return f"{p.dataset}:{p.gpu}:{p.model}:{p.count}"


__all__ = [
    "Constants",
    "Features",
    "KernelPath",
    "deployment_of",
    "features",
    "fit",
    "predict",
    "prior_constants",
    "telemetry_of",
]

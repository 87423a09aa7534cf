"""Serving engines: the software between the model and the accelerators.

The same model on the same GPU steps 2-5x faster under a 2025 engine (CUDA
graphs, fused collectives, asynchronous scheduling, FP8/FP4 kernels) than
under a 2024 one that scheduled in Python between GPU steps. A given
inter-token latency therefore means a very different batch, and energy, on
each. An :class:`Engine` is the engine's side of the step time:

* ``t0_s``: fixed host time per step (scheduling, input preparation, launch);
* ``c_seq_s``: host time per sequence per step (sampling, bookkeeping);
* ``a_coll_s``: per layer, the collective latency of a multi-accelerator
  instance (tensor-parallel all-reduce);
* ``a_ep_s`` / ``b_ep_s``: per MoE layer, expert-parallel dispatch and
  combine latency, and its cost per token;
* ``kernels``: per compute path (:data:`otm.estimate.precision.PATHS`), the
  achieved share of the 16-bit kernels' bandwidth and of their compute rate.

Each is a (central, low, high) range: the central value is fitted on the
measurements of that engine generation where there are some (ML.ENERGY v2:
vLLM 0.4.2; v3: vLLM 0.11.1; ``bench/validate.py``), the range is the prior
the fit started from (docs/methodology.md "Engine profiles", with sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from .calibration import Tri

__all__ = ["ENGINES", "Engine", "KernelPath", "engine_for", "engine_names"]


@dataclass(frozen=True)
class KernelPath:
    """Achieved share of the 16-bit path's weight bandwidth and of the path's peak compute."""

    bandwidth: Tri = (1.0, 1.0, 1.0)
    compute: Tri = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    t0_s: Tri
    c_seq_s: Tri
    a_coll_s: Tri
    a_ep_s: Tri
    b_ep_s: Tri
    kernels: tuple[tuple[str, KernelPath], ...] = ()
    expert_parallel: bool = True
    """Multi-accelerator MoE instances shard experts (EP) unless told otherwise."""
    fitted_on: str | None = None

    def kernel(self, path: str) -> KernelPath:
        for name, k in self.kernels:
            if name == path:
                return k
        return _NATIVE

    def with_(self, **changes: object) -> Engine:
        return replace(self, **changes)  # type: ignore[arg-type]


_NATIVE = KernelPath()

# Priors shared by the engines with FP8 and 4-bit kernels (ESTIMATES, docs
# "Engine profiles"): 8-bit and 4-bit weight kernels reach less of the
# bandwidth than 16-bit GEMV (scales, dequantisation), and 4-bit weights with
# 16-bit math (Marlin-style) far less of the tensor cores.
_FP8_PRIOR = KernelPath(bandwidth=(0.7, 0.3, 1.0), compute=(0.7, 0.3, 1.0))
_W4_PRIOR = KernelPath(bandwidth=(0.6, 0.3, 1.0), compute=(0.5, 0.1, 1.0))

# The priors: what was known of each engine before fitting (docs "Engine
# profiles", with sources). Central values and (low, high) bounds; the fit
# moves the central values inside the bounds.
MODERN_PRIOR = Engine(
    name="modern",
    description="vLLM >= 0.6, SGLang, TensorRT-LLM, LMDeploy: CUDA graphs, fused collectives, FP8/FP4 kernels",
    t0_s=(2e-3, 0.5e-3, 8e-3),
    c_seq_s=(3e-5, 5e-6, 1e-4),
    a_coll_s=(3e-5, 5e-6, 1e-4),
    a_ep_s=(8e-5, 2e-5, 3e-4),
    b_ep_s=(3e-7, 0.0, 3e-6),
    kernels=(("fp8", _FP8_PRIOR), ("int8", _FP8_PRIOR), ("w4a16", _W4_PRIOR), ("fp4", _W4_PRIOR)),
)
LEGACY_PRIOR = Engine(
    name="legacy",
    description="vLLM <= 0.5 and engines of 2024 that schedule in Python between GPU steps",
    t0_s=(5e-3, 1e-3, 2e-2),
    c_seq_s=(2e-4, 5e-5, 6e-4),
    a_coll_s=(2e-4, 5e-5, 8e-4),
    a_ep_s=(8e-5, 2e-5, 3e-4),
    b_ep_s=(3e-7, 0.0, 3e-6),
    kernels=(("fp8", _FP8_PRIOR), ("int8", _FP8_PRIOR), ("w4a16", _W4_PRIOR), ("fp4", _W4_PRIOR)),
    expert_parallel=False,
)


# How far a fitted engine constant is sampled around its central value (x / k
# .. x k, inside the prior's bounds) for the range: the spread of the values
# fitted with one model left out at a time (docs "Engine profiles"; ESTIMATES).
POSTERIOR_SPREAD = {
    "t0_s": 2.0,
    "c_seq_s": 1.6,
    "a_coll_s": 1.6,
    "a_ep_s": 1.6,
    "b_ep_s": 2.0,
    "bandwidth": 1.25,
    "compute": 1.4,
}


def _around(v: float, k: float, lo: float, hi: float) -> Tri:
    c = min(max(v, lo), hi)
    return (c, max(c / k, lo), min(c * k, hi))


def _centred(
    prior: Engine, fitted_on: str, spread: dict[str, float] | None = None, **central: float
) -> Engine:
    """``prior`` with fitted central values (``t0_s=...``, ``fp8_bandwidth=...``), each
    sampled within :data:`POSTERIOR_SPREAD` (or ``spread``) of its value and inside the
    prior's bounds."""
    spreads = {**POSTERIOR_SPREAD, **(spread or {})}
    changes: dict[str, object] = {"fitted_on": fitted_on}
    kernels = dict(prior.kernels)
    for key, v in central.items():
        if key.endswith(("_bandwidth", "_compute")):
            path, part = key.rsplit("_", 1)
            k = kernels.get(path, _NATIVE)
            lo, hi = getattr(k, part)[1:]
            kernels[path] = replace(k, **{part: _around(v, spreads[part], lo, hi)})
        else:
            lo, hi = getattr(prior, key)[1:]
            changes[key] = _around(v, spreads[key], lo, hi)
    changes["kernels"] = tuple(kernels.items())
    return replace(prior, **changes)  # type: ignore[arg-type]


# Central values fitted by `python bench/validate.py --fit` (ML.ENERGY v3, vLLM
# 0.11.1 on H100 and B200; v2, vLLM 0.4.2 on A100 and H100).
MODERN = _centred(
    MODERN_PRIOR,
    "ML.ENERGY v3 (vLLM 0.11.1)",
    spread={"t0_s": 1.39},  # 90 % of the fitted deployments' host times (robust)
    t0_s=2.402e-3,
    c_seq_s=3.099e-05,
    a_coll_s=2.414e-05,
    a_ep_s=6.23e-05,
    b_ep_s=3.685e-07,
    fp8_bandwidth=0.3933,
    fp8_compute=0.6918,
    w4a16_bandwidth=0.7969,
    w4a16_compute=0.3769,
    fp4_bandwidth=0.8145,
    fp4_compute=0.2077,
)
LEGACY = _centred(
    LEGACY_PRIOR,
    "ML.ENERGY v2 (vLLM 0.4.2)",
    spread={"t0_s": 4.0},  # the v2 deployments' host times spread widely (capped at 4x)
    t0_s=2.0e-2,  # at the prior's upper bound
    c_seq_s=0.0004015,
    a_coll_s=0.0003987,
)

# Production serving at the large providers: the modern engine with the host
# work overlapped with the GPU (asynchronous scheduling, disaggregated
# prefill). DeepSeek's disclosure (~12,600 sequences per decode instance at
# ~47 ms per step, `deepseek-infra-2025`) bounds the per-sequence host time
# at ~3.8 us. ESTIMATES.
HOSTED = MODERN.with_(
    name="hosted",
    description="a provider's production serving: the modern engine with host work overlapped",
    t0_s=(0.5e-3, 0.1e-3, 2.5e-3),
    c_seq_s=(1e-6, 0.0, 3.8e-6),
    fitted_on=None,
)

# PyTorch eager decode (Hugging Face transformers `generate`, no CUDA graphs):
# every one of the ~1,000 kernels of a 7-8B model's step launched from Python
# at ~20-40 us each: ~20-40 ms of host time per step (docs "Engine
# profiles"). ESTIMATES; slower per step than the legacy engine's fitted host time.
EAGER = LEGACY.with_(
    name="eager",
    description="PyTorch eager decode without CUDA graphs (transformers generate)",
    t0_s=(3e-2, 1e-2, 6e-2),
    c_seq_s=(4e-4, 5e-5, 1e-3),
    fitted_on=None,
)

ENGINES: Mapping[str, Engine] = MappingProxyType(
    {e.name: e for e in (MODERN, LEGACY, HOSTED, EAGER)}
)

# What users call their engine -> profile.
_ALIASES = {
    "vllm": "modern",
    "sglang": "modern",
    "tensorrt-llm": "modern",
    "trt-llm": "modern",
    "trtllm": "modern",
    "lmdeploy": "modern",
    "tgi": "modern",
    "text-generation-inference": "modern",
    "llama.cpp": "modern",
    "llamacpp": "modern",
    "ollama": "modern",
    "mlc": "modern",
    "vllm-0.4": "legacy",
    "vllm-0.5": "legacy",
    "vllm<0.6": "legacy",
    "old": "legacy",
    "transformers": "eager",
    "hf": "eager",
    "huggingface": "eager",
    "pytorch": "eager",
    "provider": "hosted",
    "production": "hosted",
}


def engine_names() -> list[str]:
    """Every name :func:`engine_for` accepts."""
    return sorted({*ENGINES, *_ALIASES})


def engine_for(
    name: str | None, *, self_hosted: bool, overrides: tuple[tuple[str, Engine], ...] = ()
) -> tuple[Engine, Engine | None]:
    """The engine profile for a name, and the alternative sampled beside it (or None).

    No name: hosted services run the ``hosted`` profile; a self-hosted
    deployment the ``modern`` one, with the ``legacy`` profile as the
    alternative a share of the samples take (its step is several times slower,
    so it widens the range). An unknown name falls back the same way.
    ``overrides`` replace packaged profiles by name (refits).
    """
    table = {**ENGINES, **dict(overrides)} if overrides else ENGINES
    if name:
        key = name.strip().lower()
        key = _ALIASES.get(key, key)
        if key.startswith("vllm-0."):
            minor = key[7:].split(".")[0]
            if minor.isdigit():
                key = "legacy" if int(minor) < 6 else "modern"
        eng = table.get(key)
        if eng is not None:
            return eng, None
    if not self_hosted:
        return table["hosted"], None
    return table["modern"], table["legacy"]

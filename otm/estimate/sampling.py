"""Deterministic sampling of the uncertain inputs (docs/methodology.md "Ranges").

Every uncertain input is one named dimension of a Latin hypercube drawn once
from a fixed seed: column 0 is the central case (every dimension at its
central value), columns 1..S are the samples. The same design serves every
group of records, so a sample index means the same assumptions everywhere and
sums over many records keep their correlations (a high-PUE sample is high-PUE
for every record).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["DIMENSIONS", "design", "pick", "spread"]

DIMENSIONS: tuple[str, ...] = (
    "size",  # model parameters within their published/estimated span
    "accelerator",  # which of the provider's accelerators
    "count",  # minimal or doubled accelerator count
    "precision",  # weight bytes when the precision is assumed
    "efficiency",  # eta_bw and eta_flops together (fit residual)
    "engine_choice",  # the engine profile or its alternative
    "engine_t0",  # the engine's fixed host time per step
    "engine_seq",  # its host time per sequence
    "engine_comm",  # collective and expert-parallel latencies
    "kernel",  # the precision path's kernel efficiency
    "context_mix",  # the batch-mates' context relative to the request's
    "power",  # utilisation multiplier (fit residual)
    "kv",  # KV bytes per token when the shape is estimated
    "prefill_mfu",
    "cache_cost",
    "batch_prior",  # batch when nothing is timed
    "ttft_overhead",  # network+queue when only latency is known
    "host",
    "idle_reserve",
    "pue",
    "wue",
    "region",  # which of the provider's regions
    "grid_spread",
    "embodied",
    "discrepancy",  # the step model's own error on deployments it was not fitted on
)


@lru_cache(maxsize=8)
def design(samples: int, seed: int) -> dict[str, np.ndarray]:
    """Per dimension, ``samples + 1`` points in (0, 1); index 0 is the centre (0.5)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    strata = (np.arange(samples) + 0.5) / samples
    for name in DIMENSIONS:
        col = np.empty(samples + 1)
        col[0] = 0.5
        col[1:] = rng.permutation(strata)
        col.setflags(write=False)
        out[name] = col
    return out


def spread(tri: tuple[float, float, float], u: np.ndarray) -> np.ndarray:
    """Map u in (0,1) onto (central, low, high): low..central for u<0.5, central..high above.

    Log-uniform on each side when the bounds are positive (sizes, factors span
    decades), linear otherwise; u = 0.5 gives exactly the central value.
    """
    value, low, high = (float(x) for x in tri)
    lo_side = np.clip(2.0 * u, 0.0, 1.0)
    hi_side = np.clip(2.0 * u - 1.0, 0.0, 1.0)
    if low > 0 and value > 0:
        down = low * (value / low) ** lo_side
        up = value * (high / value) ** hi_side
    else:
        down = low + (value - low) * lo_side
        up = value + (high - value) * hi_side
    return np.where(u < 0.5, down, up)


def pick(u: np.ndarray, n_options: int, central_share: float = 0.5) -> np.ndarray:
    """Index of a discrete option: 0 (the central one) for ``central_share`` of samples.

    The centre (u = 0.5) always maps to option 0; the rest share the remainder
    equally.
    """
    if n_options <= 1:
        return np.zeros(u.shape, dtype=np.intp)
    # distance from the centre: 0 .. 0.5; the central option owns the middle band
    d = np.abs(u - 0.5) * 2.0
    rest = np.clip((d - central_share) / max(1.0 - central_share, 1e-9), 0.0, 0.999999)
    idx = 1 + (rest * (n_options - 1)).astype(np.intp)
    return np.where(d <= central_share, 0, idx)

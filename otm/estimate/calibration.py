"""Every constant of the estimator, in one place, with where it comes from.

Two kinds live here; docs/methodology.md gives each its value, its source and
its reasoning (sections "Decode step time", "Power", "Prefill", "Ranges" and
"Constants not listed above"):

* **Fitted** on the ML.ENERGY leaderboard measurements (v2: vLLM 0.4.2 on
  A100 and H100; v3: vLLM 0.11.1 on H100 and B200) by ``bench/validate.py``:
  the decode efficiencies and the power-versus-load curve (shared by every
  engine), and the central values of each engine profile
  (:mod:`otm.estimate.engine`). Refit with ``python bench/validate.py --fit``.
* **Estimates** (marked so): figures no measurement in reach pins down, each
  with the reasoning behind its value and range.

A :class:`Calibration` is a frozen value object so ``bench/validate.py`` can
swap it in (leave-one-model-out refits) without touching module state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = ["DEFAULT", "Calibration", "Tri"]

Tri = tuple[float, float, float]
"""(central, low, high): the shape of every uncertain constant."""


@dataclass(frozen=True)
class Calibration:
    """The estimator's constants. Defaults are the fitted and estimated values."""

    # --- decode hardware physics, fitted (docs/methodology.md "Decode step time") ---
    # The engine's own overheads live in the engine profiles (otm/estimate/engine.py).
    eta_bw: float = 0.9350
    """Achieved fraction of peak memory bandwidth when decode streams weights and KV (fitted)."""
    eta_flops: float = 0.6292
    """Achieved fraction of dense peak FLOP/s in decode matmuls at many rows (fitted)."""
    gemm_half_rows: float = 22.07
    """Rows (tokens) per matrix product at which a decode GEMM reaches half its efficiency
    (fitted): small per-expert products run far below peak."""
    efficiency_spread: Tri = (1.0, 0.8789, 1.1378)
    """Multiplier on both efficiencies for the range: 90 % of the fit's step-time residuals
    (robust: 1.645 x 1.4826 x their median absolute deviation in log)."""

    # --- power versus load, fitted (docs/methodology.md "Power") ---
    u_wait: float = 0.1425
    """Utilisation (0 idle .. 1 rated) while the accelerator waits on the host (fitted)."""
    u_mem: float = 1.0042
    """Utilisation while memory-bound kernels stream weights and KV (fitted)."""
    u_comp: float = 1.3309
    """Utilisation while compute-bound kernels run (fitted; capped at 1 in use)."""
    power_spread: Tri = (1.0, 0.8241, 1.2135)
    """Multiplier on utilisation for the range: 90 % of the fit's power residuals (robust)."""

    # --- serving engines (docs "Engine profiles") ---
    floor_tolerance: float = 0.1378
    """A stream faster than a sample's one-sequence step by less than this share is that one
    sequence (the step model's accuracy: the high side of ``efficiency_spread``); faster
    still, the sample cannot be right for it (docs "Faster than the assumptions")."""
    legacy_share: float = 0.2
    """Share of samples on the legacy engine profile when a self-hosted deployment does not
    say what it runs (ESTIMATE: most self-hosted serving moved to modern engines by 2025)."""
    context_mix: Tri = (1.0, 0.7, 1.4)
    """The batch-mates' mean context relative to this request's own (their KV reads are
    what the step holds; ESTIMATE)."""
    engines: tuple[tuple[str, Any], ...] = ()
    """Engine profiles replacing the packaged ones by name (refits and what-ifs; see
    :mod:`otm.estimate.engine`)."""
    max_seqs_per_accel: float = 8192.0
    """Sanity cap on concurrent sequences per accelerator (ML.ENERGY v3 runs up to 4,096
    on one B200; ESTIMATE)."""

    # --- prefill (ESTIMATE, docs "Prefill") ---
    prefill_mfu: Tri = (0.4, 0.3, 0.5)
    """Model FLOP utilisation of prefill (0.30-0.45 assumed elsewhere, [MFU]; ESTIMATE)."""
    cached_token_cost: Tri = (0.1, 0.02, 0.25)
    """Work of a cache-hit input token relative to a fresh one (ESTIMATE from price ratios)."""

    # --- when timings are missing (docs "User layer") ---
    itl_hosted_s: Tri = (0.0134, 0.009, 0.033)
    """Step time of a hosted service when nothing is timed: median (74.5 tokens/s) and
    10th-90th percentiles (111-30.5 tokens/s) of the speeds EcoLogits lists for closed
    models (`ecologits-models`)."""
    batch_self_hosted: Tri = (4.0, 1.0, 64.0)
    """Concurrent sequences on a user-named deployment when nothing is timed (ESTIMATE)."""
    ttft_overhead_hosted_s: Tri = (0.3, 0.05, 1.5)
    """Network + queue part of time to first token, hosted APIs (ESTIMATE)."""
    ttft_overhead_self_hosted_s: Tri = (0.02, 0.0, 0.2)
    """Same for a local or private deployment (ESTIMATE)."""
    latency_stretch_max: float = 2.5
    """A non-streamed call slower than the deployment's typical step holds its share for
    at most this many typical steps per token; the rest is queue or network (ESTIMATE:
    the slowest decile of measured hosted speeds is 2.4x slower than the median,
    `ecologits-models`)."""

    # --- hardware sizing and facility (ESTIMATE, docs "Hardware layer") ---
    memory_overhead: float = 1.2
    """Weights x 1.2 must fit (activations, CUDA graphs; EcoLogits uses the same factor)."""
    kv_headroom_fraction: float = 0.1
    """Share of the instance's memory reserved for the KV cache when sizing the count."""
    usable_memory_fraction: float = 0.9
    """vLLM's default gpu_memory_utilization: memory the engine may fill."""
    count_double_share: float = 0.35
    """Share of samples that serve on twice the minimal count (ESTIMATE)."""
    weight_read_share: Tri = (0.5, 0.3, 0.7)
    """Hosted instances are sized so reading the weights takes at most this share of the
    observed step (ESTIMATE; docs "Instance size of hosted services")."""
    count_cap_factor: float = 16.0
    """A hosted instance is at most this many times its memory-minimal size, and never
    larger than its accelerator type's largest plausible instance (ESTIMATE; DeepSeek's
    disclosed decode instance is 9x its memory minimum; docs "Instance size of hosted
    services")."""
    host_idle_fraction: float = 0.5
    """Host power with the accelerators idle, as a share of the host's power at full
    accelerator load (``host_w_per_accel``); in between it rises linearly with the
    accelerators' utilisation (ESTIMATE: CPUs, DRAM, NICs and switches draw most of their
    power regardless; fans and power conversion follow the accelerators' heat;
    docs "Host power")."""
    default_region_spread: Tri = (1.0, 0.9, 1.1)
    """Grid factor spread for a named region: annual average vs the hour served (ESTIMATE)."""

    # --- observation hygiene (docs "User layer") ---
    min_plausible_itl_s: float = 2e-4
    """Faster than 5,000 tokens/s per stream is a buffered burst, not decode speed."""
    min_tokens_for_floor: int = 16
    """Streams shorter than this are too noisy to teach the per-deployment floor."""
    floor_min_streams: int = 5
    """A deployment's floor is learned only once this many clean, plausible streams are in."""
    history_min_share: float = 0.1
    """A deployment's history sets samples aside only if at least this share of them can
    step as fast as it has shown; fewer (a handful of 64) cannot describe a range, and the
    assumptions as a whole are then off for it: the history is noted, not applied (ESTIMATE)."""
    floor_window: int = 64
    """The floor reads the most recent streams of a deployment, at most this many (plus
    those of the batch being estimated): older ones age out."""
    floor_quantile: float = 10.0
    """The floor is this percentile of those streams' inter-token latencies, not the minimum."""

    # --- the model's own error (docs "Ranges") ---
    model_discrepancy: Tri = (1.0, 0.7692, 2.0)
    """Multiplier on the decode's accelerator-seconds for the range: the step model's error
    on models and GPUs it was not fitted on, beyond what its inputs' spreads carry (fitted
    on leave-one-model-out residuals by ``bench/validate.py``)."""

    # --- sampling (docs "Ranges") ---
    samples: int = 64
    """Quasi-random samples of the uncertain inputs per group (plus one central)."""
    seed: int = 20250601
    percentiles: tuple[float, float] = (5.0, 95.0)

    def with_(self, **changes: object) -> Calibration:
        """A copy with some constants replaced (for refits and what-ifs)."""
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT = Calibration()
"""The constants the estimator uses unless told otherwise."""

"""Every constant of the estimator, in one place, with where it comes from.

Two kinds live here; docs/methodology.md gives each its value, its source and
its reasoning (sections "Decode step time", "Power", "Prefill", "Ranges" and
"Constants not listed above"):

* **Fitted** on the ML.ENERGY leaderboard v2 measurements (vLLM on A100 and
  H100) by ``bench/validate.py``: the step-time efficiencies, the serving
  engine overheads and the power-versus-load curve. Refit with
  ``python bench/validate.py --fit`` and paste the printed literals.
* **Estimates** (marked so): figures no measurement in reach pins down, each
  with the reasoning behind its value and range.

A :class:`Calibration` is a frozen value object so ``bench/validate.py`` can
swap it in (leave-one-model-out refits) without touching module state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["DEFAULT", "Calibration", "Tri"]

Tri = tuple[float, float, float]
"""(central, low, high): the shape of every uncertain constant."""


@dataclass(frozen=True)
class Calibration:
    """The estimator's constants. Defaults are the fitted and estimated values."""

    # --- decode step time, fitted (docs/methodology.md "Decode step time") ---
    eta_bw: float = 0.5744
    """Achieved fraction of peak memory bandwidth in decode (fitted)."""
    eta_flops: float = 0.2678
    """Achieved fraction of dense peak FLOP/s in decode matmuls (fitted)."""
    moe_compute_overhead: float = 0.8425
    """Extra compute time of MoE layers (routing, small per-expert GEMMs), x active FLOPs (fitted)."""
    t_step_base_s: float = 0.0
    """Per-step engine overhead on one accelerator, seconds (fitted, vLLM 0.4.2)."""
    t_step_sync_s: float = 0.03714
    """Per-step overhead growth with parallelism: x (sqrt(min(count, 16)) - 1), seconds (fitted)."""
    t_per_seq_s: float = 3.817e-4
    """Per-step, per-sequence engine overhead (scheduling, sampling), seconds (fitted)."""
    efficiency_spread: Tri = (1.0, 0.8, 1.25)
    """Multiplier on both efficiencies for the range (~3x the step-time fit's rms; ESTIMATE)."""

    # --- power versus load, fitted (docs/methodology.md "Power") ---
    u_wait: float = 0.2063
    """Utilisation (0 idle .. 1 rated) while the accelerator waits on the engine (fitted)."""
    u_work: float = 0.6538
    """Utilisation while decode kernels run (fitted; u_wait + slope)."""
    moe_power_factor: float = 0.7751
    """MoE layers draw less: smaller per-expert matmuls (fitted)."""
    power_spread: Tri = (1.0, 0.85, 1.15)
    """Multiplier on utilisation for the range (~1.5x the power fit's rms; ESTIMATE)."""

    # --- serving engine overhead scale (ESTIMATE, docs "Engine overhead") ---
    engine_self_hosted: Tri = (1.0, 0.1, 1.0)
    """Scale of the fitted overheads for a deployment the user names (calibrated engine)."""
    engine_hosted: Tri = (0.03, 0.01, 0.06)
    """Scale of the fixed step overhead for hosted APIs: CUDA graphs, fused collectives
    (ESTIMATE: ~1-7 ms per step at 8-16 accelerators)."""
    per_seq_hosted: Tri = (0.005, 0.0, 0.01)
    """Scale of the per-sequence overhead for hosted APIs, whose schedulers overlap CPU
    work with the GPU. Upper bound from DeepSeek's disclosure: ~12,600 sequences per
    decode instance at 47 ms per step leave at most ~3.8 us per sequence (ESTIMATE)."""
    sync_max_count: float = 16.0
    """The sync overhead stops growing past the largest calibrated instance (16 GPUs)."""

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
    floor_window: int = 64
    """The floor reads the most recent streams of a deployment, at most this many (plus
    those of the batch being estimated): older ones age out."""
    floor_quantile: float = 10.0
    """The floor is this percentile of those streams' inter-token latencies, not the minimum."""

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

"""Deployment: what is known of the hardware layer for a call.

Unset fields are filled by the estimator from the provider's profile, with
ranges. Set fields are facts (a local vLLM on known GPUs, a private
deployment, a what-if). ``pue=1.0, include_host=False, idle_reserve=0.0`` is the
accelerator-only boundary.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Deployment(BaseModel):
    """The serving hardware and site of a model, as far as it is known."""

    # An infinite or NaN figure passes ge/le bounds and would silently lower
    # (or poison) the estimate: refuse it with a clear error.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    accelerator: str | None = None
    """Accelerator by common name (``H100``, ``NVIDIA H100 80GB HBM3``, ``tpu-v6e``)."""
    count: int | None = Field(default=None, ge=1)
    """Accelerators serving one model instance (tensor x pipeline parallel)."""
    region: str | None = None
    """Where it runs: ``FRA``, ``US-VA``, ``aws:us-east-1``..."""
    provider: str | None = None
    """Whose serving profile fills the gaps (``openai``, ``local``...)."""
    pue: float | None = Field(default=None, ge=1.0, le=3.0)
    wue_l_per_kwh: float | None = Field(default=None, ge=0.0, le=20.0)
    """On-site water use effectiveness, litres per kWh of IT energy."""
    include_host: bool = True
    """Count the host share (CPUs, DRAM, network) of the server."""
    host_w_per_accel: float | None = Field(default=None, ge=0.0)
    idle_reserve: float | None = Field(default=None, ge=0.0, lt=1.0)
    """Share of provisioned capacity kept idle for peaks and failover."""
    precision: str | None = None
    """Weight precision served (``bf16``, ``fp8``, ``mxfp4``, ``nvfp4``, ``int4``, ``awq``,
    ``q4_k_m``...); by default read from the model id (``...-FP8``, ``...-AWQ``) or the
    model's data row."""
    engine: str | None = None
    """Serving engine: ``vllm``, ``sglang``, ``tensorrt-llm``, ``vllm-0.4`` (legacy),
    ``transformers`` (eager PyTorch)... Unset: a provider's production engine for hosted
    services; for self-hosted ones a modern engine, with the legacy one widening the range."""
    expert_parallel: bool | None = None
    """Whether a multi-accelerator MoE instance shards experts (EP) rather than tensors (TP);
    unset: the engine's default."""
    batch: float | None = Field(default=None, gt=0)
    """Effective concurrent requests per instance, when known (skips inference)."""
    grid_gco2e_per_kwh: float | None = Field(default=None, ge=0.0)
    """Override the region's grid carbon intensity (a PPA, a measured mix)."""
    water_l_per_kwh: float | None = Field(default=None, ge=0.0)
    """Override the region's off-site water intensity."""

    @classmethod
    def accelerator_only(cls, accelerator: str, count: int = 1, **kw: object) -> Deployment:
        """The boundary of a GPU power meter: accelerators only, no host, no idle, PUE 1."""
        return cls(accelerator=accelerator, count=count, pue=1.0, include_host=False, idle_reserve=0.0, **kw)  # type: ignore[arg-type]

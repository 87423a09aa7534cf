"""Row models of the packaged reference data (pydantic v2, frozen).

Every table row carries ``sources`` (ids into the sources table) and a
``year``. A row whose figures are partly estimates says so with
``estimated=True``, lists the estimated fields in ``estimated_fields`` and
states how in ``method``.

Numbers that are uncertain are :class:`Span` objects (``value`` central,
``low``/``high`` bounds). Where a Span is expected, a plain number (a point),
a ``(low, high)`` pair (central = midpoint) or a ``(value, low, high)``
triple is accepted as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "AcceleratorSpec",
    "ModelSpec",
    "Price",
    "ProviderSpec",
    "RegionSpec",
    "Source",
    "Span",
    "SpanLike",
    "coerce_span",
]


class Span(BaseModel):
    """A central value with a low and a high bound (``low <= value <= high``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float
    low: float
    high: float

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, Span):
            return data
        if isinstance(data, Mapping):
            return data
        return _span_dict(data)

    @model_validator(mode="after")
    def _check(self) -> Span:
        for name in ("value", "low", "high"):
            x = getattr(self, name)
            if not math.isfinite(x):
                raise ValueError(f"Span.{name} must be finite, got {x!r}")
        if not (self.low <= self.value <= self.high):
            raise ValueError(
                f"Span must satisfy low <= value <= high, got "
                f"low={self.low!r}, value={self.value!r}, high={self.high!r}"
            )
        return self

    @classmethod
    def point(cls, x: float) -> Span:
        """A Span with no spread: ``value == low == high == x``."""
        x = float(x)
        return cls(value=x, low=x, high=x)

    @classmethod
    def of(cls, x: SpanInput) -> Span:
        """Coerce a number, ``(low, high)``, ``(value, low, high)``, a dict or a Span."""
        if isinstance(x, Span):
            return x
        return cls.model_validate(x)

    @property
    def is_point(self) -> bool:
        return self.low == self.high

    @property
    def width(self) -> float:
        return self.high - self.low

    def scale(self, k: float) -> Span:
        """Multiply every bound by a non-negative factor."""
        if k < 0:
            raise ValueError("Span.scale needs a non-negative factor")
        return Span(value=self.value * k, low=self.low * k, high=self.high * k)

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.value, self.low, self.high)


SpanInput = Span | float | int | Sequence[float] | Mapping[str, float]


def _span_dict(data: Any) -> Any:
    """Turn a number or tuple into the ``{value, low, high}`` mapping of a Span."""
    if isinstance(data, bool):
        raise ValueError("a Span cannot be a boolean")  # noqa: TRY004 (pydantic wants ValueError)
    if isinstance(data, (int, float)):
        x = float(data)
        return {"value": x, "low": x, "high": x}
    if isinstance(data, (list, tuple)):
        vals = [float(v) for v in data]
        if len(vals) == 1:
            return {"value": vals[0], "low": vals[0], "high": vals[0]}
        if len(vals) == 2:
            lo, hi = vals
            return {"value": (lo + hi) / 2.0, "low": lo, "high": hi}
        if len(vals) == 3:
            v, lo, hi = vals
            return {"value": v, "low": lo, "high": hi}
        raise ValueError(
            f"a Span is a number, (low, high) or (value, low, high); got {len(vals)} numbers"
        )
    return data


def coerce_span(x: Any) -> Any:
    """Before-validator used on every Span field (accepts numbers and tuples)."""
    if x is None or isinstance(x, (Span, Mapping)):
        return x
    return _span_dict(x)


SpanLike = Annotated[Span, BeforeValidator(coerce_span)]
"""A Span field that also accepts a number, a pair or a triple."""

# Rows hold physical figures: an infinite or NaN one (JSON ``Infinity``, TOML
# ``inf``) passes ge/le bounds, so refuse non-finite floats outright.
_Row = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _no_blank(values: Sequence[str], what: str) -> tuple[str, ...]:
    out = tuple(str(v).strip() for v in values)
    if any(not v for v in out):
        raise ValueError(f"{what} may not contain empty strings")
    return out


class Source(BaseModel):
    """A public reference: who said it, when, where."""

    model_config = _Row

    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    year: int | None = Field(default=None, ge=1900, le=2100)
    """Publication year; None when the page is undated (then ``accessed`` says when read)."""
    url: str | None = None
    """Public address; None only for this project's own estimates (see ``note``)."""
    accessed: str | None = None
    note: str | None = None


class _Sourced(BaseModel):
    """Fields shared by every data row."""

    model_config = _Row

    sources: tuple[str, ...] = Field(min_length=1)
    """Ids into the sources table."""
    year: int = Field(ge=1990, le=2100)
    """Year the figures refer to (data year, release year)."""
    estimated: bool = False
    estimated_fields: tuple[str, ...] = ()
    method: str | None = None
    """How the estimated figures were obtained (required when ``estimated``)."""
    notes: str | None = None

    @field_validator("sources", "estimated_fields", mode="before")
    @classmethod
    def _tuple_of_str(cls, v: Any) -> Any:
        if isinstance(v, str):
            return (v,)
        return v

    @field_validator("sources")
    @classmethod
    def _sources_nonblank(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _no_blank(v, "sources")

    @model_validator(mode="after")
    def _estimate_has_method(self) -> Any:
        if self.estimated_fields and not self.estimated:
            raise ValueError("estimated_fields is set but estimated is False")
        if self.estimated and not (self.method and self.method.strip()):
            raise ValueError("an estimated row must say its method (field 'method')")
        return self


class AcceleratorSpec(_Sourced):
    """One accelerator (GPU, TPU or ASIC chip) as deployed for inference."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    vendor: str
    kind: Literal["gpu", "tpu", "asic"] = "gpu"
    form_factor: str | None = None
    memory_gb: float = Field(gt=0)
    """On-package memory (HBM/GDDR; on-chip SRAM for SRAM-only designs), GB."""
    mem_bandwidth_tbs: float = Field(gt=0)
    """Peak memory bandwidth, TB/s."""
    bf16_tflops: float = Field(gt=0)
    """Dense (no sparsity) BF16/FP16 tensor throughput, TFLOPS."""
    fp8_tflops: float | None = Field(default=None, gt=0)
    """Dense FP8 throughput, TFLOPS; None where the chip has no FP8 path."""
    fp4_tflops: float | None = Field(default=None, gt=0)
    tdp_w: float = Field(gt=0)
    """Rated board/chip power, W (estimated where the vendor publishes none)."""
    idle_w: float = Field(ge=0)
    """Power drawn when powered, loaded and idle, W."""
    embodied_kgco2e: SpanLike
    """Manufacturing emissions of the accelerator (package, memory, board), kgCO2e."""
    host_w_per_accel: SpanLike
    """Host/node power (CPUs, DRAM, NICs, switches, fans) per accelerator, W, when serving."""
    host_embodied_kgco2e: SpanLike | None = None
    """Manufacturing emissions of the host server's share per accelerator, kgCO2e."""
    lifetime_years: float = Field(gt=0, le=15)
    """Service life over which embodied emissions are amortised."""

    @field_validator("aliases", mode="before")
    @classmethod
    def _aliases(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_power(self) -> AcceleratorSpec:
        if self.idle_w > self.tdp_w:
            raise ValueError(f"idle_w ({self.idle_w}) exceeds tdp_w ({self.tdp_w})")
        return self


class ProviderSpec(_Sourced):
    """An API provider: how to recognise it and where and on what it serves."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    """Host names (suffix match; ``*`` matches one label) that identify the provider."""
    hardware: tuple[str, ...] = Field(min_length=1)
    """Accelerator ids it serves on; the first is the central choice."""
    region: str
    """Region id of the central assumption."""
    regions_alt: tuple[str, ...] = ()
    """Other plausible regions (region ids)."""
    pue: SpanLike
    wue_onsite_l_per_kwh: SpanLike
    """On-site water use effectiveness, litres per kWh of IT energy."""
    idle_reserve_fraction: SpanLike
    """Share of provisioned capacity that is idle (reserve, failover, diurnal trough)."""

    @field_validator("aliases", "hosts", "hardware", "regions_alt", mode="before")
    @classmethod
    def _tuples(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> ProviderSpec:
        if self.pue.low < 1.0:
            raise ValueError(f"pue.low must be >= 1.0, got {self.pue.low}")
        if self.wue_onsite_l_per_kwh.low < 0:
            raise ValueError("wue_onsite_l_per_kwh must be >= 0")
        f = self.idle_reserve_fraction
        if f.low < 0 or f.high >= 1:
            raise ValueError("idle_reserve_fraction must lie in [0, 1)")
        return self


RegionKind = Literal["world", "country", "us-state", "cloud-region", "grid-zone"]


class RegionSpec(_Sourced):
    """A place electricity comes from: world, country, US state, grid zone or cloud region."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: RegionKind
    aliases: tuple[str, ...] = ()
    alpha2: str | None = None
    parent: str | None = None
    """Region whose factors this one inherits where it has none of its own."""
    country: str | None = None
    """ISO alpha-3 of the country the region lies in (None for WORLD)."""
    gco2e_per_kwh: float = Field(ge=0)
    """Grid carbon intensity, location-based, lifecycle, gCO2e per kWh consumed."""
    data_year: int = Field(ge=1990, le=2100)
    water_l_per_kwh: float = Field(ge=0)
    """Off-site water consumed to generate one kWh of the grid's electricity, L/kWh."""
    basis: str | None = None
    """What the carbon figure covers when it differs from lifecycle location-based."""
    inherited: tuple[str, ...] = ()
    """Fields copied from ``parent`` at load time."""
    provider: str | None = None
    """Cloud operator for cloud regions (``aws``, ``gcp``, ``azure``)."""
    pue: SpanLike | None = None
    """Published PUE of the operator's site(s) in this region, where known."""
    wue_onsite_l_per_kwh: SpanLike | None = None
    """Published on-site WUE of the operator in this region, where known."""

    @field_validator("aliases", "inherited", mode="before")
    @classmethod
    def _tuples(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @property
    def code(self) -> str:
        return self.id


class Price(BaseModel):
    """Published list price, per million tokens."""

    model_config = _Row

    input_per_m: float = Field(ge=0)
    cached_input_per_m: float | None = Field(default=None, ge=0)
    """Cached (prompt-cache hit) input price; when not published it equals ``input_per_m``."""
    output_per_m: float = Field(ge=0)
    currency: Literal["USD"] = "USD"
    as_of: str
    """Date the price was read or took effect (``YYYY-MM`` or ``YYYY-MM-DD``)."""
    source: str
    """Source id."""

    @model_validator(mode="before")
    @classmethod
    def _cached_defaults_to_input(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("cached_input_per_m") is None:
            data = dict(data)
            data["cached_input_per_m"] = data.get("input_per_m")
        return data


Precision = Literal["fp32", "bf16", "fp16", "fp8", "int8", "fp6", "mxfp4", "fp4", "int4"]
PRECISION_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp6": 0.75,
    "mxfp4": 0.53,
    "fp4": 0.5,
    "int4": 0.5,
}
"""Bytes per weight for each serving precision (MXFP4 includes its block scales)."""


class ModelSpec(_Sourced):
    """A language or embedding model: size, shape, serving precision, price."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    developer: str = "unknown"
    provider: str = "local"
    """Default provider id (the developer's own API where there is one)."""
    kind: Literal["chat", "reasoning", "embedding"] = "chat"
    modality: str | None = None
    """Non-text output or input specialisation (``image``, ``audio``, ``video``...)."""
    family: str | None = None
    tier: str | None = None
    open_weights: bool = False
    architecture: Literal["dense", "moe"] = "dense"
    total_params_b: SpanLike
    active_params_b: SpanLike
    """Parameters used per token, billions (== total for dense models)."""
    experts_total: int | None = Field(default=None, ge=1)
    experts_per_token: int | None = Field(default=None, ge=1)
    """Routed experts per token (shared experts counted in ``shared_experts``)."""
    shared_experts: int | None = Field(default=None, ge=0)
    layers: int | None = Field(default=None, ge=1)
    hidden_size: int | None = Field(default=None, ge=1)
    attention_heads: int | None = Field(default=None, ge=1)
    kv_heads: int | None = Field(default=None, ge=1)
    head_dim: int | None = Field(default=None, ge=1)
    attention: str | None = None
    """``mha``, ``gqa``, ``mqa``, ``mla``, ``gqa+sliding``, ``hybrid-linear``..."""
    kv_lora_rank: int | None = Field(default=None, ge=1)
    """MLA only: compressed KV latent width per layer."""
    qk_rope_head_dim: int | None = Field(default=None, ge=1)
    """MLA only: decoupled RoPE key width per layer."""
    sliding_window: int | None = Field(default=None, ge=1)
    sliding_layers: int | None = Field(default=None, ge=0)
    """Layers that attend over ``sliding_window`` tokens only."""
    kv_layers: int | None = Field(default=None, ge=0)
    """Layers that keep a KV cache when fewer than ``layers`` (hybrid linear/SSM models)."""
    ssm_layers: int | None = Field(default=None, ge=0)
    """Hybrid models: state-space (Mamba-2) layers, which keep a fixed-size state per
    sequence instead of a KV cache that grows with the context."""
    ssm_inner: int | None = Field(default=None, ge=1)
    """Mamba-2 inner width per SSM layer (heads x head dim)."""
    ssm_state: int | None = Field(default=None, ge=1)
    """Mamba-2 state size per channel (``ssm_state_size`` / ``d_state``)."""
    precision: Precision = "bf16"
    precision_estimated: bool = True
    """True when the serving precision is assumed rather than published."""
    context_length: int | None = Field(default=None, ge=1)
    compute_multiplier: SpanLike | None = None
    """Hidden compute per billed token relative to the base model (parallel sampling in
    'pro' modes); None means 1."""
    price: Price | None = None
    released: str | None = None

    @field_validator("aliases", mode="before")
    @classmethod
    def _aliases(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_params(self) -> ModelSpec:
        if self.total_params_b.low <= 0:
            raise ValueError("total_params_b must be positive")
        if self.active_params_b.low <= 0:
            raise ValueError("active_params_b must be positive")
        if self.active_params_b.value > self.total_params_b.value * 1.0001:
            raise ValueError(
                f"active_params_b ({self.active_params_b.value}) exceeds "
                f"total_params_b ({self.total_params_b.value})"
            )
        if self.architecture == "dense" and self.experts_total:
            raise ValueError("a dense model has no experts_total")
        if (
            self.experts_total is not None
            and self.experts_per_token is not None
            and self.experts_per_token > self.experts_total
        ):
            raise ValueError("experts_per_token exceeds experts_total")
        return self

    @property
    def params_estimated(self) -> bool:
        """True when the parameter counts are estimates (same as ``estimated``)."""
        return self.estimated

    def ssm_state_elements(self) -> float:
        """Recurrent state one sequence holds across all SSM layers (elements; 0 if none)."""
        if not (self.ssm_layers and self.ssm_inner and self.ssm_state):
            return 0.0
        return float(self.ssm_layers * self.ssm_inner * self.ssm_state)

    @property
    def bytes_per_param(self) -> float:
        return PRECISION_BYTES[self.precision]

    def kv_bytes_per_token(
        self, kv_dtype_bytes: float = 2.0, context_tokens: int | None = None
    ) -> float | None:
        """KV-cache bytes one token adds (averaged over a context of ``context_tokens``).

        GQA/MHA: ``2 x kv_layers x kv_heads x head_dim x bytes``; MLA:
        ``layers x (kv_lora_rank + qk_rope_head_dim) x bytes``. Sliding-window
        layers hold at most ``sliding_window`` tokens, so for a long context
        their share is scaled by ``window / context``. None when the shape is
        not published.
        """
        layers = self.kv_layers if self.kv_layers is not None else self.layers
        if layers is None:
            return None
        if self.kv_lora_rank is not None:
            width = float(self.kv_lora_rank + (self.qk_rope_head_dim or 0))
            return layers * width * kv_dtype_bytes
        if self.kv_heads is None or self.head_dim is None:
            return None
        per_layer = 2.0 * self.kv_heads * self.head_dim * kv_dtype_bytes
        sliding = min(self.sliding_layers or 0, layers)
        full = layers - sliding
        frac = 1.0
        if sliding and self.sliding_window and context_tokens:
            frac = min(1.0, self.sliding_window / float(context_tokens))
        return per_layer * (full + sliding * frac)

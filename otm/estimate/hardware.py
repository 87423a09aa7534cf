"""Hardware layer: deployment -> power and site factors (docs/methodology.md "Hardware layer").

Resolves, once per (deployment, region, provider): which accelerators may
serve (central first), how many per instance (or that the count must be sized
from the model), host power, idle reserve, PUE and on-site WUE, the grid's
carbon and water intensity, and embodied carbon. Every unknown becomes a
range and a warning, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from otm.data import (
    AcceleratorSpec,
    ProviderSpec,
    RegionSpec,
    Span,
    find_accelerator,
    find_provider,
    find_region,
    world_region,
)
from otm.deployment import Deployment

from .calibration import Tri

__all__ = [
    "SELF_HOSTED_PROVIDERS",
    "Accel",
    "Grid",
    "HardwarePlan",
    "accelerator_power",
    "hardware_plan",
    "max_instance",
]

SECONDS_PER_YEAR = 365.25 * 86400.0

# Provider ids that mean "the user's own machines": the calibrated engine applies.
SELF_HOSTED_PROVIDERS = frozenset(
    {"local", "self-hosted", "selfhosted", "vllm", "ollama", "lmstudio", "llamacpp"}
)

# Used when nothing names the hardware (docs "Hardware layer"): the H100 is the
# commonest inference accelerator of 2024-2025; the alternatives bracket it.
_DEFAULT_ACCELERATORS = ("H100", "A100 80GB", "H200")

# Site factors when no provider profile applies. ESTIMATES, docs "Hardware layer":
# PUE: Uptime Institute 2025 survey, global weighted average 1.54 (hyperscalers 1.08-1.18).
_DEFAULT_PUE: Tri = (1.54, 1.1, 1.8)
# WUE: Li et al. 2023 use 0.55 L/kWh (Microsoft US fleet); air-cooled or dry sites ~0.
_DEFAULT_WUE: Tri = (0.55, 0.0, 1.8)
# Idle reserve of an unknown hosted service (Google's measured split implies ~10 % of energy).
_DEFAULT_IDLE_RESERVE_HOSTED: Tri = (0.2, 0.05, 0.4)
_DEFAULT_IDLE_RESERVE_SELF: Tri = (0.0, 0.0, 0.3)


@dataclass(frozen=True)
class Accel:
    id: str
    name: str
    memory_bytes: float
    bw_bytes_s: float
    bf16_flops: float
    fp8_flops: float | None
    fp4_flops: float | None
    tdp_w: float
    idle_w: float
    embodied_kg: Tri
    host_w: Tri
    host_embodied_kg: Tri
    lifetime_s: float
    max_instance: float = 144.0
    """The largest serving instance (accelerators) plausible for this type: see
    :func:`max_instance`."""
    scale_up: float = 8.0
    """Accelerators in one scale-up domain (one NVLink node, an NVL72 rack, a TPU slice):
    tensor parallelism stays inside it; see :func:`scale_up_domain`."""

    def path(self, path: str) -> str:
        """The kernels a precision path runs on this accelerator: 4-bit floating point is
        native only where the tensor cores have it (Blackwell), else dequantised to 16-bit."""
        if path in ("mxfp4", "nvfp4"):
            return "fp4" if self.fp4_flops else "w4a16"
        if path in ("fp8", "int8") and not self.fp8_flops:
            return "w4a16" if path == "fp8" else path
        return path

    def peak_flops(self, kernels: str) -> float:
        """Dense peak of a kernel path. Native FP4 decode is counted at the FP8 rate:
        the engines of 2025 run MXFP4 MoE layers with 8-bit activations (ESTIMATE)."""
        if kernels in ("fp8", "int8", "fp4") and self.fp8_flops:
            return self.fp8_flops
        return self.bf16_flops

    def prefill_peak(self, kernels: str) -> float:
        """Dense peak prefill reaches on a kernel path (FP4 where native)."""
        if kernels == "fp4" and self.fp4_flops:
            return self.fp4_flops
        return self.peak_flops(kernels)


@dataclass(frozen=True)
class Grid:
    id: str
    name: str
    gco2e_per_kwh: float
    water_l_per_kwh: float
    data_year: int


@dataclass(frozen=True)
class HardwarePlan:
    accelerators: tuple[Accel, ...]
    """Central choice first."""
    accelerator_fixed: bool
    count: int | None
    """Accelerators per instance when known; None: sized from the model per sample."""
    self_hosted: bool
    provider_id: str | None
    grids: tuple[Grid, ...]
    grid_fixed: bool
    """True when the user named the region (only the annual-vs-hourly spread applies)."""
    grid_override: float | None
    water_override: float | None
    region_source: str
    pue: Tri
    wue: Tri
    idle_reserve: Tri
    include_host: bool
    host_w_override: float | None
    precision_override: str | None
    engine: str | None
    expert_parallel: bool | None
    batch_override: float | None
    warnings: tuple[str, ...]


def _tri(span: Span) -> Tri:
    return (float(span.value), float(span.low), float(span.high))


def _point(x: float) -> Tri:
    return (float(x), float(x), float(x))


def _accel(spec: AcceleratorSpec) -> Accel:
    host_emb = (
        _tri(spec.host_embodied_kgco2e) if spec.host_embodied_kgco2e is not None else _point(0.0)
    )
    return Accel(
        id=spec.id,
        name=spec.name,
        memory_bytes=spec.memory_gb * 1e9,
        bw_bytes_s=spec.mem_bandwidth_tbs * 1e12,
        bf16_flops=spec.bf16_tflops * 1e12,
        fp8_flops=None if spec.fp8_tflops is None else spec.fp8_tflops * 1e12,
        fp4_flops=None if spec.fp4_tflops is None else spec.fp4_tflops * 1e12,
        tdp_w=spec.tdp_w,
        idle_w=spec.idle_w,
        embodied_kg=_tri(spec.embodied_kgco2e),
        host_w=_tri(spec.host_w_per_accel),
        host_embodied_kg=host_emb,
        lifetime_s=spec.lifetime_years * SECONDS_PER_YEAR,
        max_instance=max_instance(spec),
        scale_up=scale_up_domain(spec),
    )


# The largest serving instance per accelerator type (docs "Instance size of
# hosted services"). ESTIMATES from the largest disclosed or sold
# configurations: DeepSeek's V3/R1 decode instance spans 144 H800 (18 HGX
# nodes, expert parallelism; `deepseek-infra-2025`), the largest serving
# instance disclosed on NVLink-node GPUs; a GB200/GB300 NVL72 rack is one
# 72-GPU NVLink domain; a TPU v5e/v6e pod is 256 chips on one ICI torus
# (`gcp-tpu-v6e`); a Trn2 UltraServer links 64 Trainium2 chips
# (`aws-neuron-trainium2`); PCIe cards without NVLink switches serve from one
# 8-card server; an inf2.48xlarge holds 12 Inferentia2 chips.
_MAX_INSTANCE_NVLINK_NODES = 144.0
_MAX_INSTANCE_NVL72 = 72.0
_MAX_INSTANCE_TPU_POD = 256.0
_MAX_INSTANCE_TRN2 = 64.0
_MAX_INSTANCE_PCIE = 8.0
_MAX_INSTANCE_INF2 = 12.0


def max_instance(spec: AcceleratorSpec) -> float:
    """The largest plausible serving instance of this accelerator type (accelerators)."""
    ident = f"{spec.id} {spec.form_factor or ''}".lower()
    if "nvl72" in ident or spec.id.startswith(("gb200", "gb300")):
        return _MAX_INSTANCE_NVL72
    if spec.kind == "tpu":
        return _MAX_INSTANCE_TPU_POD
    if "trainium" in ident or "trn" in spec.id:
        return _MAX_INSTANCE_TRN2
    if "inferentia" in ident:
        return _MAX_INSTANCE_INF2
    if spec.kind == "gpu" and ("pcie" in ident or "rtx" in ident or spec.memory_gb < 40):
        return _MAX_INSTANCE_PCIE
    return _MAX_INSTANCE_NVLINK_NODES


# Accelerators joined by the scale-up fabric that tensor parallelism needs
# (docs "Pipeline parallelism"): an HGX/DGX board links 8 SXM GPUs by NVLink
# (`nvidia-hgx`); a GB200/GB300 NVL72 rack links 72; a TPU slice, a Trn2
# UltraServer and an inf2.48xlarge link their whole instance (the
# max_instance figures above); PCIe cards serve from one 8-card server.
# Serving engines keep tensor parallelism inside such a domain and span
# domains with pipeline stages (vLLM's distributed-serving guide, `vllm-dist`).
_SCALE_UP_NVLINK_NODE = 8.0


def scale_up_domain(spec: AcceleratorSpec) -> float:
    """Accelerators in one scale-up domain of this type."""
    m = max_instance(spec)
    return m if m != _MAX_INSTANCE_NVLINK_NODES else _SCALE_UP_NVLINK_NODE


# Last resort when even the default accelerator is missing from the data (a
# stripped install): the packaged H100 SXM row's figures (docs/data-sources.md).
# Keeps the estimator total.
_H100_FALLBACK = Accel(
    id="h100-sxm",
    name="NVIDIA H100 80GB (built-in fallback)",
    memory_bytes=80e9,
    bw_bytes_s=3.35e12,
    bf16_flops=989.4e12,
    fp8_flops=1978.9e12,
    fp4_flops=None,
    tdp_w=700.0,
    idle_w=84.0,
    embodied_kg=(164.0, 130.0, 273.0),
    host_w=(250.0, 150.0, 575.0),
    host_embodied_kg=(712.0, 360.0, 890.0),
    lifetime_s=4.0 * SECONDS_PER_YEAR,
    max_instance=_MAX_INSTANCE_NVLINK_NODES,
)


def _default_accels() -> tuple[Accel, ...]:
    out = [_accel(s) for s in (find_accelerator(n) for n in _DEFAULT_ACCELERATORS) if s is not None]
    return tuple(out) if out else (_H100_FALLBACK,)


def _grid(r: RegionSpec) -> Grid:
    return Grid(r.id, r.name, float(r.gco2e_per_kwh), float(r.water_l_per_kwh), int(r.data_year))


def _world() -> Grid:
    try:
        return _grid(world_region())
    except Exception:  # noqa: BLE001 - never raise from a lookup
        # Ember world average for 2025 (lifecycle) and the EcoLogits/WRI world off-site water
        # intensity, should the data table be missing: docs "Hardware layer".
        return Grid("WORLD", "World (built-in fallback)", 458.0, 3.908, 2025)


@lru_cache(maxsize=1024)
def hardware_plan(
    deployment: Deployment | None,
    region: str | None,
    provider: str | None,
    stamp: tuple[int, ...] = (),
) -> HardwarePlan:
    """Resolve the hardware and site of one group of requests (cached; ``stamp`` keys the cache)."""
    dep = deployment or Deployment()
    warnings: list[str] = []

    # --- who serves: the provider's profile fills every field the deployment
    # leaves unset; only a self-hosted provider id ("local", "vllm"...) means
    # the user's own machines. Naming an accelerator does not change whose
    # data centre it is in (docs "Hardware layer").
    prov_name = dep.provider or provider
    prov: ProviderSpec | None = find_provider(prov_name) if prov_name else None
    if prov_name and prov is None and prov_name.lower() not in SELF_HOSTED_PROVIDERS:
        warnings.append(
            f"provider {prov_name!r} is not in otm's data: generic hosted-service assumptions"
        )
    named_self = prov is not None and prov.id in SELF_HOSTED_PROVIDERS
    unnamed_self = prov_name is not None and prov_name.lower() in SELF_HOSTED_PROVIDERS
    self_hosted = named_self or unnamed_self
    site_prov = prov
    if site_prov is None and self_hosted:
        # the user's own machines: the 'local' profile's site factors (PUE 1 for a
        # desk-side box, up to a colocation facility's)
        site_prov = find_provider("local")

    # --- accelerators
    accels: tuple[Accel, ...]
    fixed = False
    if dep.accelerator:
        spec = find_accelerator(dep.accelerator)
        if spec is None:
            warnings.append(
                f"accelerator {dep.accelerator!r} is not in otm's data: assuming {_default_accels()[0].name}"
            )
            accels = _default_accels()
        else:
            accels = (_accel(spec),)
            fixed = True
    elif site_prov is not None:
        found = [s for s in (find_accelerator(h) for h in site_prov.hardware) if s is not None]
        accels = tuple(_accel(s) for s in found) or _default_accels()
    else:
        accels = _default_accels()
        if not self_hosted:
            warnings.append(
                "serving hardware unknown: assuming " + " / ".join(a.name for a in accels)
            )

    # --- region: Deployment.region > region argument > provider default > world
    grids: tuple[Grid, ...]
    grid_fixed = True
    src = "default"
    named = dep.region or region
    if named:
        r = find_region(named)
        if r is None:
            warnings.append(f"region {named!r} is not in otm's data: using the world average grid")
            grids, src = (_world(),), "world (unknown region)"
        else:
            grids, src = (_grid(r),), ("deployment" if dep.region else "argument")
    elif site_prov is not None and not self_hosted and site_prov.region:
        rows = [find_region(site_prov.region), *(find_region(x) for x in site_prov.regions_alt)]
        found_r = [_grid(x) for x in rows if x is not None]
        grids = tuple(found_r) or (_world(),)
        grid_fixed = len(grids) == 1
        src = f"provider default ({site_prov.id})"
    else:
        grids, src = (_world(),), "world (no region given)"
        warnings.append(
            "region unknown: using the world average grid; pass region= for a local figure"
        )

    # --- facility factors: Deployment > the named cloud region > provider > default
    region_row = find_region(named) if named else None
    if dep.pue is not None:
        pue = _point(dep.pue)
    elif region_row is not None and region_row.pue is not None:
        pue = _tri(region_row.pue)
    elif site_prov is not None:
        pue = _tri(site_prov.pue)
    else:
        pue = _DEFAULT_PUE
    if dep.wue_l_per_kwh is not None:
        wue = _point(dep.wue_l_per_kwh)
    elif region_row is not None and region_row.wue_onsite_l_per_kwh is not None:
        wue = _tri(region_row.wue_onsite_l_per_kwh)
    elif site_prov is not None:
        wue = _tri(site_prov.wue_onsite_l_per_kwh)
    else:
        wue = _DEFAULT_WUE
    if dep.idle_reserve is not None:
        idle = _point(dep.idle_reserve)
    elif site_prov is not None:
        idle = _tri(site_prov.idle_reserve_fraction)
    else:
        idle = _DEFAULT_IDLE_RESERVE_SELF if self_hosted else _DEFAULT_IDLE_RESERVE_HOSTED

    return HardwarePlan(
        accelerators=accels,
        accelerator_fixed=fixed,
        count=dep.count,
        self_hosted=self_hosted,
        provider_id=site_prov.id
        if site_prov is not None
        else ("local" if self_hosted else prov_name),
        grids=grids,
        grid_fixed=grid_fixed,
        grid_override=dep.grid_gco2e_per_kwh,
        water_override=dep.water_l_per_kwh,
        region_source=src,
        pue=pue,
        wue=wue,
        idle_reserve=idle,
        include_host=dep.include_host,
        host_w_override=dep.host_w_per_accel,
        precision_override=dep.precision,
        engine=dep.engine,
        expert_parallel=dep.expert_parallel,
        batch_override=dep.batch,
        warnings=tuple(warnings),
    )


def accelerator_power(idle_w: np.ndarray, tdp_w: np.ndarray, utilisation: np.ndarray) -> np.ndarray:
    """Power of one accelerator between idle (u = 0) and rated (u = 1), watts.

    Linear in utilisation, the shape measured for GPUs under inference load;
    ``utilisation`` comes from the fitted curve in :mod:`otm.estimate.combine`.
    """
    return idle_w + (tdp_w - idle_w) * np.clip(utilisation, 0.0, 1.0)


def minimal_count(
    weight_bytes: np.ndarray, memory_bytes: np.ndarray, overhead: float, kv_headroom: float
) -> np.ndarray:
    """Smallest power of two of accelerators whose memory holds weights x overhead plus KV headroom."""
    need = weight_bytes * overhead / (memory_bytes * (1.0 - kv_headroom))
    need = np.maximum(need, 1.0)
    return np.exp2(np.ceil(np.log2(need) - 1e-9))

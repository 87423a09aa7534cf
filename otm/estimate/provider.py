"""Provider layer: model -> work (docs/methodology.md "Model layer").

What one token costs the serving instance, independent of the hardware:
weights read per decode step (dense: all of them; mixture of experts: the
shared part plus the experts a batch touches), KV-cache bytes each context
token adds, FLOPs per token. Sizes of closed models are ranges; a model otm
has never heard of gets a size class inferred from its name, never an error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from otm.data import PRECISION_BYTES, ModelSpec, Price, Span, find_model

from .calibration import Tri

__all__ = ["ModelWork", "infer_from_name", "model_work", "weight_bytes_read"]

# Share of a MoE model's active parameters that every token uses (attention,
# embeddings, shared experts) when the expert layout is not published.
# ESTIMATE: 0.13 (Mixtral 8x7B) .. 0.45 (DeepSeek-V3) from published layouts.
_MOE_SHARED_FRACTION: Tri = (0.3, 0.13, 0.45)
# KV heads x head dim of a GQA model whose shape is not published (8 x 128 is
# the Llama 3 / Mixtral / Qwen layout); range covers MLA (smaller) to wider GQA.
_KV_WIDTH_GUESS: Tri = (8 * 128, 4 * 128, 16 * 128)


@dataclass(frozen=True)
class ModelWork:
    """Everything the estimator needs to know about a model, with ranges."""

    model_id: str
    name: str
    found: bool
    """In otm's data (published or third-party estimate) rather than guessed from the name."""
    size_estimated: bool
    size_basis: str
    """``published``, ``estimated`` or ``inferred from name (...)``."""
    size_method: str | None
    architecture: str
    total_b: Tri
    active_b: Tri
    shared_fraction: Tri
    """Share of active parameters used by every token (1.0 for dense models)."""
    precision: str
    precision_estimated: bool
    layers: Tri
    kv_width: Tri
    """2 x KV heads x head dim summed over KV layers / layers: KV elements per token per layer."""
    kv_estimated: bool
    kv_sliding: float
    """KV elements per token held by sliding-window layers (at most ``window`` tokens each)."""
    window: float
    """Sliding window, tokens (0: none)."""
    state_elements: float
    """Recurrent (SSM) state one sequence holds, elements (hybrid models; 0 otherwise)."""
    attn_layers: float
    """Layers that attend over the context (FLOPs grow with it)."""
    attn_width: float
    """Query width (heads x head dim) for attention FLOPs."""
    compute_multiplier: Tri
    price: Price | None
    developer: str
    default_provider: str | None
    warnings: tuple[str, ...]

    @property
    def is_moe(self) -> bool:
        return self.architecture == "moe" and self.total_b[0] > self.active_b[0] * 1.01

    def kv_elements_per_token(self) -> Tri:
        """KV-cache elements one context token holds (all layers), central/low/high."""
        v = self.layers[0] * self.kv_width[0]
        lo = self.layers[1] * self.kv_width[1]
        hi = self.layers[2] * self.kv_width[2]
        return (v, min(lo, v), max(hi, v))


def _tri(span: Span) -> Tri:
    v = float(span.value)
    return (v, float(span.low), float(span.high))


def _layers_guess(active_b: float) -> float:
    # Layer count grows roughly with the cube root of size: 32 layers at 8B
    # (Llama 3.1 8B), 80 at 70B, 126 at 405B.
    return float(np.clip(32.0 * (max(active_b, 0.1) / 8.0) ** (1.0 / 3.0), 12.0, 160.0))


def _hidden_guess(active_b: float, layers: float) -> float:
    # Dense transformer: params ~ 12 x layers x hidden^2.
    return math.sqrt(max(active_b, 0.05) * 1e9 / (12.0 * layers))


@lru_cache(maxsize=4096)
def model_work(
    name: str | None, provider: str | None = None, stamp: tuple[int, ...] = ()
) -> ModelWork:
    """Resolve a model by name (forgivingly); unknown names get a size class, not an error.

    ``stamp`` (:func:`otm.estimate.stamp.data_stamp`) only keys the cache.
    """
    spec = None
    if name:
        try:
            spec = find_model(name, provider)
        except Exception:  # a malformed name must not break the estimate  # noqa: BLE001 - never raise from a lookup
            spec = None
    if spec is not None:
        return _from_spec(spec)
    return infer_from_name(name or "")


def _from_spec(spec: ModelSpec) -> ModelWork:
    warnings: list[str] = []
    total = _tri(spec.total_params_b)
    active = _tri(spec.active_params_b)
    moe = spec.architecture == "moe" and total[0] > active[0] * 1.01
    if (
        moe
        and spec.experts_total
        and spec.experts_per_token
        and spec.experts_total > spec.experts_per_token
    ):
        # expert size e and shared part s from total = s + E e, active = s + k e
        e = (total[0] - active[0]) / (spec.experts_total - spec.experts_per_token)
        shared = max(active[0] - spec.experts_per_token * e, 0.0) / active[0]
        shared_tri: Tri = (shared, shared, shared)
    elif moe:
        shared_tri = _MOE_SHARED_FRACTION
    else:
        shared_tri = (1.0, 1.0, 1.0)

    layers_v = float(spec.layers) if spec.layers else _layers_guess(active[0])
    kv_el = spec.kv_bytes_per_token(kv_dtype_bytes=1.0)
    kv_slide = 0.0
    window = 0.0
    if kv_el is not None and spec.layers:
        if spec.sliding_layers and spec.sliding_window and spec.kv_heads and spec.head_dim:
            # sliding layers hold at most `window` tokens: kept apart from the full ones
            kv_slide = 2.0 * spec.kv_heads * spec.head_dim * spec.sliding_layers
            window = float(spec.sliding_window)
            kv_el -= kv_slide
        w = kv_el / layers_v
        kv_width: Tri = (w, w, w)
        layers: Tri = (layers_v, layers_v, layers_v)
        kv_est = False
    else:
        g = _KV_WIDTH_GUESS
        kv_width = (2 * g[0], 2 * g[1], 2 * g[2])
        layers = (layers_v, layers_v * 0.75, layers_v * 1.3) if not spec.layers else (layers_v,) * 3
        kv_est = True
    if spec.attention_heads and spec.head_dim:
        attn_width = float(spec.attention_heads * spec.head_dim)
    elif spec.hidden_size:
        attn_width = float(spec.hidden_size)
    else:
        attn_width = _hidden_guess(active[0], layers_v)

    basis = "estimated" if spec.estimated else "published"
    cm = _tri(spec.compute_multiplier) if spec.compute_multiplier is not None else (1.0, 1.0, 1.0)
    return ModelWork(
        model_id=spec.id,
        name=spec.name,
        found=True,
        size_estimated=bool(spec.estimated),
        size_basis=basis,
        size_method=spec.method if spec.estimated else None,
        architecture="moe" if moe else "dense",
        total_b=total,
        active_b=active,
        shared_fraction=shared_tri,
        precision=spec.precision,
        precision_estimated=bool(spec.precision_estimated),
        layers=layers,
        kv_width=kv_width,
        kv_estimated=kv_est,
        kv_sliding=kv_slide,
        window=window,
        state_elements=spec.ssm_state_elements(),
        attn_layers=float(spec.kv_layers if spec.kv_layers is not None else layers_v),
        attn_width=attn_width,
        compute_multiplier=cm,
        price=spec.price,
        developer=spec.developer,
        default_provider=spec.provider,
        warnings=tuple(warnings),
    )


# --- unknown models: a size class from the name ------------------------------------

# (pattern, active B, total B, label). Ordered: the first match wins, so the
# smallest tier word present decides ("flash-lite" is a lite model). Ranges
# follow the third-party estimates collected in models.csv (EcoLogits: mini /
# haiku / flash-lite 8-35B dense; flash / sonnet 44-132B active of ~440B;
# pro / opus 67-600B active of 670-2000B). ESTIMATES.
_TIERS: tuple[tuple[str, Tri, Tri, str], ...] = (
    (r"nano|tiny|micro", (4.0, 1.0, 12.0), (4.0, 1.0, 12.0), "nano-class"),
    (r"mini|small|lite|haiku|light", (15.0, 5.0, 40.0), (15.0, 5.0, 40.0), "mini-class"),
    (
        r"flash|medium|sonnet|turbo|plus|chat",
        (60.0, 20.0, 150.0),
        (400.0, 60.0, 1000.0),
        "flash-class",
    ),
    (r"pro|opus|large|ultra|max|o1|o3", (150.0, 40.0, 600.0), (1000.0, 150.0, 3000.0), "pro-class"),
)
_UNKNOWN_ACTIVE: Tri = (50.0, 3.0, 400.0)
_UNKNOWN_TOTAL: Tri = (200.0, 3.0, 2000.0)

_SEP = re.compile(r"[\s_:/.@]+")
_MOE_EXPLICIT = re.compile(r"(?<![a-z0-9])(\d+(?:\.\d+)?)b-a(\d+(?:\.\d+)?)b(?![a-z0-9])")
_MOE_GRID = re.compile(r"(?<![a-z0-9])(\d+)x(\d+(?:\.\d+)?)b(?![a-z0-9])")
_DENSE = re.compile(r"(?<![a-z0-9])e?(\d+(?:\.\d+)?)([bm])(?![a-z0-9])")


def _norm(name: str) -> str:
    # keep decimal points inside numbers ("1.5b") but split other separators
    s = name.lower().strip()
    s = re.sub(r"(?<=\d)\.(?=\d)", "\x00", s)
    s = _SEP.sub("-", s).replace("\x00", ".")
    return s


def infer_from_name(name: str) -> ModelWork:
    """A size class for a model otm does not know, from patterns in its name."""
    s = _norm(name)
    active: Tri
    total: Tri
    m = _MOE_EXPLICIT.search(s)
    g = _MOE_GRID.search(s)
    d = None if (m or g) else _DENSE.search(s)
    if m:
        t, a = float(m.group(1)), float(m.group(2))
        total, active = (t, t * 0.9, t * 1.1), (a, a * 0.9, a * 1.1)
        label = f"'{m.group(0)}' in the name"
    elif g:
        n_exp, per = float(g.group(1)), float(g.group(2))
        # Mixtral-style: experts share attention; total ~0.83 E x size, active ~1.85 x size
        t = 0.83 * n_exp * per
        a = min(1.85 * per, t)
        total, active = (t, t * 0.85, t * 1.15), (a, a * 0.85, a * 1.15)
        label = f"'{g.group(0)}' in the name"
    elif d:
        x = float(d.group(1)) / (1000.0 if d.group(2) == "m" else 1.0)
        x = max(x, 0.01)
        total = active = (x, x * 0.9, x * 1.1)
        label = f"'{d.group(0)}' in the name"
    else:
        for pat, a_t, t_t, lab in _TIERS:
            if re.search(rf"(?<![a-z])(?:{pat})(?![a-z])", s):
                active, total, label = a_t, t_t, f"{lab} name"
                break
        else:
            active, total, label = _UNKNOWN_ACTIVE, _UNKNOWN_TOTAL, "no size hint in the name"
    moe = total[0] > active[0] * 1.01
    layers_v = _layers_guess(active[0])
    g2 = _KV_WIDTH_GUESS
    shown = name or "(none)"
    warn = (
        f"model {shown!r} is not in otm's data: size inferred from {label} "
        f"({active[0]:.3g}B active, range {active[1]:.3g}-{active[2]:.3g}B); register it for a sharper estimate"
    )
    return ModelWork(
        model_id=name or "unknown",
        name=name or "unknown",
        found=False,
        size_estimated=True,
        size_basis=f"inferred from name ({label})",
        size_method="size class from patterns in the name (docs/methodology.md, 'Model layer')",
        architecture="moe" if moe else "dense",
        total_b=total,
        active_b=active,
        shared_fraction=_MOE_SHARED_FRACTION if moe else (1.0, 1.0, 1.0),
        precision="bf16",
        precision_estimated=True,
        layers=(layers_v, layers_v * 0.75, layers_v * 1.3),
        kv_width=(2 * g2[0], 2 * g2[1], 2 * g2[2]),
        kv_estimated=True,
        kv_sliding=0.0,
        window=0.0,
        state_elements=0.0,
        attn_layers=layers_v,
        attn_width=_hidden_guess(active[0], layers_v),
        compute_multiplier=(1.0, 1.0, 1.0),
        price=None,
        developer="unknown",
        default_provider=None,
        warnings=(warn,),
    )


def precision_bytes(precision: str) -> float:
    return float(PRECISION_BYTES.get(precision, 2.0))


def weight_bytes_read(
    batch: np.ndarray,
    total_bytes: np.ndarray,
    active_bytes: np.ndarray,
    shared_fraction: np.ndarray,
) -> np.ndarray:
    """Weight bytes one decode step reads when ``batch`` sequences each take one token.

    Dense: all weights. MoE: the shared part plus, per layer, the experts any
    of the B tokens routed to. With each token picking k of E experts, an
    expert is missed by all B tokens with probability (1 - k/E)^B, so the
    expected share of expert weights read is 1 - (1 - p)^B with p = k/E =
    routed-active / routed-total. At B = 1 this is exactly the active weights.
    """
    shared = active_bytes * shared_fraction
    routed_total = np.maximum(total_bytes - shared, 0.0)
    routed_active = np.maximum(active_bytes - shared, 0.0)
    p = np.clip(routed_active / np.maximum(routed_total, 1e-30), 0.0, 1.0)
    touched = -np.expm1(np.maximum(batch, 0.0) * np.log1p(-np.minimum(p, 1.0 - 1e-12)))
    return shared + routed_total * touched

"""Helpers to write model rows compactly (used by models_*.py)."""

from __future__ import annotations

import math
from typing import Any

M = dict[str, Any]

CLOSED_METHOD = (
    "closed model, size not published: {basis}. Tier anchors (docs/data-sources.md): nano dense 3-20B; "
    "mini/haiku/flash-lite dense 8-40B; flash/mid MoE ~250B total, 12-80B active; large MoE 200-1800B total, 30-200B active; "
    "frontier MoE 0.6-5T total, 80-600B active"
)
UNKNOWN_METHOD = (
    "name known only from the {sdk} model list, no size, price or architecture public to us; tier guessed from the name "
    "({guess}) relative to the family's last estimated release, with a range spanning adjacent tiers"
)


def span(x: Any) -> list[float]:
    """(value, low, high) as a list; a (low, high) pair gets the geometric mean as value."""
    if isinstance(x, (int, float)):
        return [float(x), float(x), float(x)]
    if len(x) == 2:
        lo, hi = float(x[0]), float(x[1])
        v = math.sqrt(lo * hi) if lo > 0 else (lo + hi) / 2
        return [round(v, 2), lo, hi]
    return [float(x[0]), float(x[1]), float(x[2])]


def price(
    inp: float, out: float, cached: float | None = None, *, as_of: str, source: str
) -> dict[str, Any]:
    d: dict[str, Any] = {"input_per_m": inp, "output_per_m": out, "as_of": as_of, "source": source}
    if cached is not None:
        d["cached_input_per_m"] = cached
    return d


def closed(
    id: str,
    name: str,
    developer: str,
    provider: str,
    *,
    total: Any,
    active: Any = None,
    arch: str = "moe",
    basis: str,
    sources: list[str],
    year: int,
    aliases: tuple[str, ...] | list[str] = (),
    kind: str = "chat",
    family: str | None = None,
    tier: str | None = None,
    price_: dict[str, Any] | None = None,
    precision: str = "fp8",
    context: int | None = None,
    notes: str | None = None,
    compute_multiplier: Any = None,
    modality: str | None = None,
    released: str | None = None,
    method: str | None = None,
) -> M:
    t = span(total)
    a = span(active if active is not None else total)
    if arch == "dense":
        a = t
    row: M = {
        "id": id,
        "name": name,
        "developer": developer,
        "provider": provider,
        "kind": kind,
        "open_weights": False,
        "architecture": arch,
        "total_params_b": t,
        "active_params_b": a,
        "precision": precision,
        "precision_estimated": True,
        "estimated": True,
        "estimated_fields": ["total_params_b", "active_params_b", "architecture", "precision"],
        "method": method or CLOSED_METHOD.format(basis=basis),
        "sources": sources,
        "year": year,
        "aliases": list(aliases),
    }
    for k, v in (
        ("family", family),
        ("tier", tier),
        ("price", price_),
        ("context_length", context),
        ("notes", notes),
        ("modality", modality),
        ("released", released),
    ):
        if v is not None:
            row[k] = v
    if compute_multiplier is not None:
        row["compute_multiplier"] = span(compute_multiplier)
        row["estimated_fields"].append("compute_multiplier")
    return row


def unknown(
    id: str,
    name: str,
    developer: str,
    provider: str,
    *,
    total: Any,
    active: Any,
    sdk: str,
    guess: str,
    sources: list[str],
    year: int,
    arch: str = "moe",
    **kw: Any,
) -> M:
    return closed(
        id,
        name,
        developer,
        provider,
        total=total,
        active=active,
        arch=arch,
        basis="",
        method=UNKNOWN_METHOD.format(sdk=sdk, guess=guess),
        sources=sources,
        year=year,
        **kw,
    )


def open_model(
    id: str,
    name: str,
    developer: str,
    provider: str,
    *,
    total: float,
    active: float | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    heads: int | None = None,
    kv: int | None = None,
    hd: int | None = None,
    ctx: int | None = None,
    experts: int | None = None,
    ept: int | None = None,
    shared: int | None = None,
    attention: str | None = None,
    sliding_window: int | None = None,
    sliding_layers: int | None = None,
    kv_lora: int | None = None,
    rope: int | None = None,
    kv_layers: int | None = None,
    ssm: tuple[int, int, int] | None = None,
    precision: str = "bf16",
    precision_published: bool = False,
    sources: list[str],
    year: int,
    aliases: tuple[str, ...] | list[str] = (),
    kind: str = "chat",
    family: str | None = None,
    price_: dict[str, Any] | None = None,
    notes: str | None = None,
    total_span: Any = None,
    active_span: Any = None,
    estimated: bool = False,
    estimated_fields: list[str] | None = None,
    method: str | None = None,
    modality: str | None = None,
    released: str | None = None,
) -> M:
    arch = "moe" if experts else "dense"
    t = span(total_span) if total_span is not None else span(total)
    a = (
        span(active_span)
        if active_span is not None
        else span(active if active is not None else total)
    )
    if attention is None:
        if kv_lora:
            attention = "mla"
        elif kv is not None and heads is not None:
            attention = "mha" if kv == heads else ("mqa" if kv == 1 else "gqa")
        if sliding_layers and attention:
            attention += "+sliding"
    row: M = {
        "id": id,
        "name": name,
        "developer": developer,
        "provider": provider,
        "kind": kind,
        "open_weights": True,
        "architecture": arch,
        "total_params_b": t,
        "active_params_b": a,
        "precision": precision,
        "precision_estimated": not precision_published,
        "sources": sources,
        "year": year,
        "aliases": list(aliases),
    }
    for k, v in (
        ("layers", layers),
        ("hidden_size", hidden),
        ("attention_heads", heads),
        ("kv_heads", kv),
        ("head_dim", hd),
        ("context_length", ctx),
        ("experts_total", experts),
        ("experts_per_token", ept),
        ("shared_experts", shared),
        ("attention", attention),
        ("sliding_window", sliding_window),
        ("sliding_layers", sliding_layers),
        ("kv_lora_rank", kv_lora),
        ("qk_rope_head_dim", rope),
        ("kv_layers", kv_layers),
        ("ssm_layers", ssm[0] if ssm else None),
        ("ssm_inner", ssm[1] if ssm else None),
        ("ssm_state", ssm[2] if ssm else None),
        ("family", family),
        ("price", price_),
        ("notes", notes),
        ("modality", modality),
        ("released", released),
    ):
        if v is not None:
            row[k] = v
    if estimated:
        row["estimated"] = True
        row["estimated_fields"] = estimated_fields or ["total_params_b", "active_params_b"]
        row["method"] = method
    return row


def hf_aliases(*names: str) -> list[str]:
    """HF-style ids plus their last path segment."""
    out: list[str] = []
    for n in names:
        out.append(n)
        if "/" in n:
            out.append(n.rsplit("/", 1)[1])
    return out

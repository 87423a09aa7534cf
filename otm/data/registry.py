"""Lazy loading, indexing, lookup and user registration of the reference tables.

Nothing is read at import time. The first lookup loads the five JSON files
shipped in this package (under a lock), validates them with the row models of
:mod:`otm.data.schema`, and builds one index per table from normalised ids and
aliases. User registrations live in a second layer that is consulted first,
so a registered entry (and its aliases) wins over a packaged one.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import fnmatch
import ipaddress
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from .resolve import (
    accelerator_candidates,
    compact,
    domain_variant,
    model_candidates,
    normalise_id,
    provider_candidates,
    region_candidates,
)
from .schema import (
    AcceleratorSpec,
    ModelSpec,
    Price,
    ProviderSpec,
    RegionSpec,
    Source,
    Span,
)

__all__ = [
    "DataError",
    "Kind",
    "UnknownIdError",
    "generation",
]

Kind = Literal["model", "accelerator", "region", "provider"]

T = TypeVar("T", bound=BaseModel)

_FILES = {
    "source": "sources.json",
    "accelerator": "accelerators.json",
    "provider": "providers.json",
    "region": "regions.json",
    "model": "models.json",
}


class UnknownIdError(KeyError):
    """An identifier that resolves to no row; ``suggestions`` lists close matches."""

    def __init__(self, kind: str, name: str, suggestions: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = list(suggestions)
        hint = (
            f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if suggestions else ""
        )
        self.message = f"unknown {kind} {name!r}{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class DataError(ValueError):
    """A packaged or user-supplied row is inconsistent (names the row and field)."""


# ------------------------------------------------------------------------ the tables


@dataclass
class _Table(Generic[T]):
    """One table: packaged rows, user rows, and their indexes."""

    kind: str
    candidates: Callable[[str], Iterable[str]]
    rows: dict[str, T] = field(default_factory=dict)
    index: dict[str, str] = field(default_factory=dict)
    compact_index: dict[str, str | None] = field(default_factory=dict)
    user_rows: dict[str, T] = field(default_factory=dict)
    user_index: dict[str, str] = field(default_factory=dict)
    user_compact: dict[str, str | None] = field(default_factory=dict)
    cache: dict[tuple[str, str | None], str | None] = field(default_factory=dict)

    # -- building

    @staticmethod
    def _keys(row: Any) -> list[str]:
        keys = [row.id, *getattr(row, "aliases", ())]
        return [normalise_id(k) for k in keys]

    def add_packaged(self, row: T) -> None:
        self.rows[row.id] = row  # type: ignore[attr-defined]
        for k in self._keys(row):
            prev = self.index.get(k)
            if prev is not None and prev != row.id:  # type: ignore[attr-defined]
                raise DataError(
                    f"{self.kind} alias {k!r} maps to both {prev!r} and {row.id!r}"  # type: ignore[attr-defined]
                )
            self.index[k] = row.id  # type: ignore[attr-defined]
            _add_compact(self.compact_index, k, row.id)  # type: ignore[attr-defined]

    def add_user(self, row: T) -> None:
        rid = row.id  # type: ignore[attr-defined]
        old = self.user_rows.get(rid)
        if old is not None:
            for k in self._keys(old):
                if self.user_index.get(k) == rid:
                    del self.user_index[k]
            self.user_compact.clear()
            for k, v in self.user_index.items():
                _add_compact(self.user_compact, k, v)
        self.user_rows[rid] = row
        for k in self._keys(row):
            self.user_index[k] = rid
            _add_compact(self.user_compact, k, rid)
        self.cache.clear()

    def clear_user(self) -> None:
        self.user_rows.clear()
        self.user_index.clear()
        self.user_compact.clear()
        self.cache.clear()

    # -- reading

    def get_row(self, rid: str) -> T:
        row = self.user_rows.get(rid)
        if row is None:
            row = self.rows[rid]
        return row

    def all(self) -> list[T]:
        out = [r for rid, r in self.rows.items() if rid not in self.user_rows]
        out.extend(self.user_rows.values())
        return out

    def resolve(self, name: str, extra_first: Iterable[str] = ()) -> str | None:
        key = (name, None) if not extra_first else (name, "|".join(extra_first))
        if key in self.cache:
            return self.cache[key]
        rid = self._resolve(name, extra_first)
        if len(self.cache) > 20000:
            self.cache.clear()
        self.cache[key] = rid
        return rid

    def _lookup(self, k: str) -> str | None:
        rid = self.user_index.get(k)
        if rid is not None:
            return rid
        return self.index.get(k)

    def _resolve(self, name: str, extra_first: Iterable[str]) -> str | None:
        for k in extra_first:
            rid = self._lookup(k)
            if rid is not None:
                return rid
        tried: list[str] = []
        for k in self.candidates(name):
            rid = self._lookup(k)
            if rid is not None:
                return rid
            tried.append(k)
        for k in tried:
            c = compact(k)
            if c in self.user_compact:
                rid = self.user_compact[c]
                if rid is not None:
                    return rid
            rid = self.compact_index.get(c)
            if rid is not None:
                return rid
        return None

    def names(self) -> Iterator[tuple[str, str]]:
        """(normalised key, canonical id) for every id and alias."""
        yield from self.user_index.items()
        for k, v in self.index.items():
            if k not in self.user_index:
                yield k, v


def _add_compact(idx: dict[str, str | None], key: str, rid: str) -> None:
    c = compact(key)
    prev = idx.get(c, rid)
    idx[c] = rid if prev == rid else None  # None marks an ambiguous compact key


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.loaded = False
        self.sources: dict[str, Source] = {}
        self.user_sources: dict[str, Source] = {}
        self.models: _Table[ModelSpec] = _Table("model", model_candidates)
        self.accelerators: _Table[AcceleratorSpec] = _Table("accelerator", accelerator_candidates)
        self.regions: _Table[RegionSpec] = _Table("region", region_candidates)
        self.providers: _Table[ProviderSpec] = _Table("provider", provider_candidates)

    def table(self, kind: str) -> _Table[Any]:
        tables: dict[str, _Table[Any]] = {
            "model": self.models,
            "accelerator": self.accelerators,
            "region": self.regions,
            "provider": self.providers,
        }
        try:
            return tables[kind]
        except KeyError:
            raise ValueError(
                f"kind must be one of 'model', 'accelerator', 'region', 'provider'; got {kind!r}"
            ) from None

    # -- loading

    def ensure(self) -> _Registry:
        if not self.loaded:
            with self.lock:
                if not self.loaded:
                    self._load()
                    self.loaded = True
        return self

    def _load(self) -> None:
        for s in TypeAdapter(list[Source]).validate_json(_read_bytes(_FILES["source"])):
            self.sources[s.id] = s
        for a in TypeAdapter(list[AcceleratorSpec]).validate_json(
            _read_bytes(_FILES["accelerator"])
        ):
            self.accelerators.add_packaged(a)
        for r in _expand_regions(json.loads(_read_bytes(_FILES["region"]))):
            self.regions.add_packaged(r)
        for p in TypeAdapter(list[ProviderSpec]).validate_json(_read_bytes(_FILES["provider"])):
            self.providers.add_packaged(p)
        for m in TypeAdapter(list[ModelSpec]).validate_json(_read_bytes(_FILES["model"])):
            self.models.add_packaged(m)

    def source(self, sid: str) -> Source | None:
        return self.user_sources.get(sid) or self.sources.get(sid)


_HERE = Path(__file__).resolve().parent


def _read_bytes(name: str) -> bytes:
    path = _HERE / name
    if path.is_file():
        return path.read_bytes()
    from importlib import resources  # zipped installs

    return resources.files(__package__).joinpath(name).read_bytes()


_REGION_INHERIT = ("gco2e_per_kwh", "water_l_per_kwh", "data_year")


def _expand_regions(rows: list[dict[str, Any]]) -> list[RegionSpec]:
    """Validate region rows, copying missing factors down from ``parent``.

    Parents are resolved first (rows may come in any order; cycles are an error).
    """
    by_id = {r["id"]: r for r in rows}
    done: dict[str, RegionSpec] = {}
    roots = [r for r in rows if not r.get("parent")]
    try:
        for spec in TypeAdapter(list[RegionSpec]).validate_python(roots):
            done[spec.id] = spec
    except ValidationError as e:
        raise DataError(f"regions: {e}") from e

    def build(rid: str, stack: tuple[str, ...]) -> RegionSpec:
        if rid in done:
            return done[rid]
        if rid in stack:
            raise DataError(f"region parent cycle: {' -> '.join((*stack, rid))}")
        row = by_id[rid]
        parent_id = row["parent"]
        if parent_id not in by_id:
            raise DataError(f"region {rid!r}: parent {parent_id!r} is not a region id")
        parent = build(parent_id, (*stack, rid))
        try:
            spec = RegionSpec.model_validate(_inherit(row, parent))
        except ValidationError as e:
            raise DataError(f"region {rid!r}: {e}") from e
        done[rid] = spec
        return spec

    return [build(r["id"], ()) for r in rows]


def _inherit(row: Mapping[str, Any], parent: RegionSpec) -> dict[str, Any]:
    out = dict(row)
    inherited = list(out.get("inherited", ()))
    for f in _REGION_INHERIT:
        if out.get(f) is None:
            out[f] = getattr(parent, f)
            if f not in inherited:
                inherited.append(f)
    if inherited:
        out["inherited"] = inherited
        srcs = list(out.get("sources") or ())
        for s in parent.sources:
            if s not in srcs:
                srcs.append(s)
        out["sources"] = srcs
        if out.get("year") is None:
            out["year"] = parent.year
        if parent.estimated and any(f in inherited for f in ("gco2e_per_kwh", "water_l_per_kwh")):
            out["estimated"] = True
            fields_ = list(out.get("estimated_fields", ()))
            for f in parent.estimated_fields:
                if f in inherited and f not in fields_:
                    fields_.append(f)
            out["estimated_fields"] = fields_
            if not out.get("method"):
                out["method"] = f"inherited from {parent.id}: {parent.method}"
    if out.get("country") is None:
        out["country"] = parent.country
    return out


_REG = _Registry()

# Bumped by every run-time change to the tables (register_*, unregister_all,
# load_user_data); caches keyed on it notice registrations without reading
# the registry's internals.
_GEN_LOCK = threading.Lock()
_GENERATION = 0


def _bump() -> None:
    global _GENERATION
    with _GEN_LOCK:
        _GENERATION += 1


def generation() -> int:
    """A counter that changes with every run-time registration or removal.

    Starts at 0 and only grows: each ``register_*`` call, ``unregister_all``
    and ``load_user_data`` (successful or rolled back) bumps it. Code that
    caches resolved rows keys its caches on it.
    """
    return _GENERATION


def registry() -> _Registry:
    """The process-wide registry, loaded on first use."""
    return _REG.ensure()


def is_loaded() -> bool:
    """Whether the packaged data files have been read yet."""
    return _REG.loaded


# ------------------------------------------------------------------------ lookups


def _suggest(kind: str, name: str, n: int = 5) -> list[str]:
    t = registry().table(kind)
    keys: dict[str, str] = {}
    for k, rid in t.names():
        keys.setdefault(k, rid)
    probe = (
        normalise_id(name, kind=kind)
        if kind in ("model", "accelerator", "region")
        else normalise_id(name)
    )
    out: list[str] = []
    for k in difflib.get_close_matches(probe, list(keys), n=n * 4, cutoff=0.5):
        rid = keys[k]
        if rid not in out:
            out.append(rid)
    if len(out) < n and probe:
        for k, rid in keys.items():
            if (probe in k or k in probe) and len(k) > 1 and rid not in out:
                out.append(rid)
            if len(out) >= n:
                break
    return out[:n]


def suggest(kind: Kind, name: str, n: int = 5) -> list[str]:
    """Up to ``n`` canonical ids of ``kind`` whose names are close to ``name``."""
    return _suggest(kind, name, n)


def _find(kind: str, name: str, extra_first: Iterable[str] = ()) -> Any | None:
    if not isinstance(name, str) or not name.strip():
        return None
    t = registry().table(kind)
    rid = t.resolve(name, tuple(extra_first))
    return None if rid is None else t.get_row(rid)


def find_model(name: str, provider: str | None = None) -> ModelSpec | None:
    """The model a name refers to (aliases, snapshots, prefixes, suffixes), or None."""
    try:
        extra: tuple[str, ...] = ()
        if provider:
            p = normalise_id(provider)
            k = normalise_id(name)
            extra = (f"{p}-{k}", f"{p}:{k}")
        spec = _find("model", name, extra)
        if spec is None:
            spec = _find_domain_variant(name, provider)
        return spec
    except (TypeError, ValueError):  # find_* never raises on odd input
        return None


def _find_domain_variant(name: str, provider: str | None) -> ModelSpec | None:
    """A domain-specialised variant with no row of its own: its base model, flagged as an estimate."""
    if not isinstance(name, str):
        return None
    hit = domain_variant(name)
    if hit is None:
        return None
    base_name, domain = hit
    extra: tuple[str, ...] = ()
    if provider:
        p = normalise_id(provider)
        extra = (f"{p}-{base_name}", f"{p}:{base_name}")
    base: ModelSpec | None = _find("model", base_name, extra)
    if base is None:
        return None
    fields = tuple(dict.fromkeys((*base.estimated_fields, "total_params_b", "active_params_b")))
    sources = base.sources if "otm-estimate" in base.sources else (*base.sources, "otm-estimate")
    method = (
        f"{name.strip()!r} is a {domain}-specialised variant of {base.id!r} with no row of its "
        "own; otm assumes the base model's size and serving (an estimate)."
    )
    if base.method:
        method += f" Base model: {base.method}"
    return base.model_copy(
        update={
            "estimated": True,
            "estimated_fields": fields,
            "sources": sources,
            "method": method,
            "aliases": (),
        }
    )


def get_model(name: str, provider: str | None = None) -> ModelSpec:
    """Like :func:`find_model` but raises :class:`UnknownIdError` with suggestions."""
    m = find_model(name, provider)
    if m is None:
        raise UnknownIdError("model", str(name), _suggest("model", str(name)))
    return m


def find_accelerator(name: str) -> AcceleratorSpec | None:
    try:
        return _find("accelerator", name)
    except (TypeError, ValueError):
        return None


def get_accelerator(name: str) -> AcceleratorSpec:
    a = find_accelerator(name)
    if a is None:
        raise UnknownIdError("accelerator", str(name), _suggest("accelerator", str(name)))
    return a


def find_region(code: str) -> RegionSpec | None:
    try:
        return _find("region", code)
    except (TypeError, ValueError):
        return None


def get_region(code: str) -> RegionSpec:
    r = find_region(code)
    if r is None:
        raise UnknownIdError("region", str(code), _suggest("region", str(code)))
    return r


def world_region() -> RegionSpec:
    return registry().regions.get_row("WORLD")


def find_provider(name: str) -> ProviderSpec | None:
    try:
        return _find("provider", name)
    except (TypeError, ValueError):
        return None


def get_provider(name: str) -> ProviderSpec:
    p = find_provider(name)
    if p is None:
        raise UnknownIdError("provider", str(name), _suggest("provider", str(name)))
    return p


def get_source(sid: str) -> Source:
    s = registry().source(sid)
    if s is None:
        raise UnknownIdError("source", sid, difflib.get_close_matches(sid, list(_REG.sources), n=5))
    return s


def all_models() -> list[ModelSpec]:
    return registry().models.all()


def all_accelerators() -> list[AcceleratorSpec]:
    return registry().accelerators.all()


def all_regions() -> list[RegionSpec]:
    return registry().regions.all()


def all_providers() -> list[ProviderSpec]:
    return registry().providers.all()


def all_sources() -> list[Source]:
    r = registry()
    out = [s for sid, s in r.sources.items() if sid not in r.user_sources]
    out.extend(r.user_sources.values())
    return out


# ------------------------------------------------------------- hosts -> providers

_LOCAL_NAMES = {"localhost", "host.docker.internal", "gateway.docker.internal", "ip6-localhost"}


def _is_local_host(host: str) -> bool:
    if host in _LOCAL_NAMES or host.endswith((".localhost", ".local")):
        return True
    if host.endswith(".internal") and host.startswith("host."):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_loopback or ip.is_private or ip.is_unspecified or ip.is_link_local)


def _host_of(s: str) -> str:
    h = s.strip().lower()
    if "://" in h:
        h = h.split("://", 1)[1]
    h = h.split("/", 1)[0].split("?", 1)[0]
    if "@" in h:
        h = h.rsplit("@", 1)[1]
    if h.startswith("["):  # [::1]:8000
        return h[1:].split("]", 1)[0]
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _host_matches(host: str, pattern: str) -> bool:
    p = pattern.lower().lstrip(".")
    if "*" not in p:
        return host == p or host.endswith("." + p)
    hl, pl = host.split("."), p.split(".")
    # pattern labels must match the host's last len(pl) labels; '*' globs within one label
    if len(hl) < len(pl):
        return False
    tail = hl[len(hl) - len(pl) :]
    return all(fnmatch.fnmatchcase(b, a) for a, b in zip(pl, tail))


_HOST_CACHE: dict[str, str | None] = {}


def provider_for_host(host: str) -> str | None:
    """The provider id that serves ``host`` (a host name, ``host:port`` or a URL), or None.

    Loopback, unspecified, link-local and private addresses, ``localhost``,
    ``*.local`` and ``host.docker.internal`` are ``"local"``.
    """
    if not isinstance(host, str) or not host.strip():
        return None
    h = _host_of(host)
    if not h:
        return None
    if _is_local_host(h):
        return "local"
    if h in _HOST_CACHE:
        return _HOST_CACHE[h]
    best: tuple[int, str] | None = None
    for p in all_providers():
        for pat in p.hosts:
            if _host_matches(h, pat):
                score = len(pat)
                if best is None or score > best[0]:
                    best = (score, p.id)
    pid = None if best is None else best[1]
    if len(_HOST_CACHE) > 4096:
        _HOST_CACHE.clear()
    _HOST_CACHE[h] = pid
    return pid


# --------------------------------------------------------------------- registration


def _today() -> str:
    return _dt.date.today().isoformat()


def _ensure_source(source: str | Source | Mapping[str, Any]) -> str:
    r = registry()
    if isinstance(source, Source):
        s = source
    elif isinstance(source, Mapping):
        s = Source.model_validate(source)
    else:
        sid = str(source).strip()
        if not sid:
            raise ValueError("source: must be a non-empty source id or title")
        if r.source(sid) is not None:
            return sid
        s = Source(id=sid, title=sid, year=_dt.date.today().year, note="registered at run time")
    with r.lock:
        r.user_sources[s.id] = s
    return s.id


def _coerce_price(price: Any, source: str) -> Any:
    if price is None or isinstance(price, Price):
        return price
    if isinstance(price, (tuple, list)):
        vals = [float(x) for x in price]
        if len(vals) == 2:
            d: dict[str, Any] = {"input_per_m": vals[0], "output_per_m": vals[1]}
        elif len(vals) == 3:
            d = {"input_per_m": vals[0], "cached_input_per_m": vals[1], "output_per_m": vals[2]}
        else:
            raise ValueError(
                "price: give (input, output) or (input, cached_input, output) per million tokens"
            )
    elif isinstance(price, Mapping):
        d = dict(price)
    else:
        raise TypeError(
            f"price: expected a Price, a mapping or a tuple, got {type(price).__name__}"
        )
    d.setdefault("as_of", _today())
    d.setdefault("source", source)
    return d


def _check_sources(row: Any) -> None:
    r = registry()
    missing = [s for s in row.sources if r.source(s) is None]
    if missing:
        raise DataError(f"{row.id!r}: sources {missing} are not in the sources table")
    price = getattr(row, "price", None)
    if price is not None and r.source(price.source) is None:
        raise DataError(f"{row.id!r}: price.source {price.source!r} is not in the sources table")


def register_model(
    id: str,
    *,
    aliases: Iterable[str] = (),
    total_params_b: Any = None,
    active_params_b: Any = None,
    architecture: str = "dense",
    precision: str = "bf16",
    layers: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    price: Any = None,
    source: str | Source | Mapping[str, Any] = "user",
    **extra: Any,
) -> ModelSpec:
    """Register (or override) a model; validated like a packaged row; returns it.

    Parameter counts are in billions: a number, ``(low, high)`` or
    ``(value, low, high)``. ``active_params_b`` defaults to the total for a
    dense model and is required for a MoE model.
    """
    if total_params_b is None:
        raise ValueError("total_params_b: required (billions; a number or a (low, high) range)")
    if active_params_b is None:
        if architecture == "moe":
            raise ValueError("active_params_b: required for a MoE model")
        active_params_b = total_params_b
    sid = _ensure_source(source)
    data: dict[str, Any] = {
        "id": id,
        "name": extra.pop("name", id),
        "aliases": tuple(aliases),
        "developer": extra.pop("developer", "user"),
        "provider": extra.pop("provider", "local"),
        "architecture": architecture,
        "total_params_b": total_params_b,
        "active_params_b": active_params_b,
        "precision": precision,
        "precision_estimated": extra.pop("precision_estimated", False),
        "layers": layers,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "price": _coerce_price(price, sid),
        "sources": extra.pop("sources", (sid,)),
        "year": extra.pop("year", _dt.date.today().year),
        **extra,
    }
    spec = ModelSpec.model_validate(data)
    _check_sources(spec)
    if find_provider(spec.provider) is None:
        raise DataError(f"model {spec.id!r}: provider {spec.provider!r} is not a provider id")
    r = registry()
    with r.lock:
        r.models.add_user(spec)
    _bump()
    return spec


def register_accelerator(
    id: str,
    *,
    aliases: Iterable[str] = (),
    memory_gb: float | None = None,
    mem_bandwidth_tbs: float | None = None,
    bf16_tflops: float | None = None,
    tdp_w: float | None = None,
    idle_w: float | None = None,
    embodied_kgco2e: Any = None,
    host_w_per_accel: Any = None,
    lifetime_years: float = 4.0,
    source: str | Source | Mapping[str, Any] = "user",
    **extra: Any,
) -> AcceleratorSpec:
    """Register (or override) an accelerator. Missing power figures get flagged defaults.

    ``idle_w`` defaults to 15 % of ``tdp_w``; ``host_w_per_accel`` to 10-60 %
    of ``tdp_w``; ``embodied_kgco2e`` to 50-300 kg; each default marks the row
    estimated with the method stated.
    """
    sid = _ensure_source(source)
    est_fields: list[str] = list(extra.pop("estimated_fields", ()))
    methods: list[str] = [extra.pop("method")] if extra.get("method") else []
    if tdp_w is not None and idle_w is None:
        idle_w = round(0.15 * float(tdp_w), 1)
        est_fields.append("idle_w")
        methods.append("idle_w = 15% of tdp_w (otm default)")
    if tdp_w is not None and host_w_per_accel is None:
        t = float(tdp_w)
        host_w_per_accel = (0.3 * t, 0.1 * t, 0.6 * t)
        est_fields.append("host_w_per_accel")
        methods.append("host_w_per_accel = 30% (10-60%) of tdp_w (otm default)")
    if embodied_kgco2e is None:
        embodied_kgco2e = (150.0, 50.0, 300.0)
        est_fields.append("embodied_kgco2e")
        methods.append("embodied_kgco2e = generic accelerator card 150 (50-300) kg (otm default)")
    data: dict[str, Any] = {
        "id": id,
        "name": extra.pop("name", id),
        "aliases": tuple(aliases),
        "vendor": extra.pop("vendor", "user"),
        "memory_gb": memory_gb,
        "mem_bandwidth_tbs": mem_bandwidth_tbs,
        "bf16_tflops": bf16_tflops,
        "tdp_w": tdp_w,
        "idle_w": idle_w,
        "embodied_kgco2e": embodied_kgco2e,
        "host_w_per_accel": host_w_per_accel,
        "lifetime_years": lifetime_years,
        "sources": extra.pop("sources", (sid,)),
        "year": extra.pop("year", _dt.date.today().year),
        "estimated": bool(extra.pop("estimated", False) or est_fields),
        "estimated_fields": tuple(dict.fromkeys(est_fields)),
        "method": "; ".join(methods) or None,
        **extra,
    }
    spec = AcceleratorSpec.model_validate(data)
    _check_sources(spec)
    r = registry()
    with r.lock:
        r.accelerators.add_user(spec)
    _bump()
    return spec


def register_provider(
    id: str,
    *,
    aliases: Iterable[str] = (),
    hosts: Iterable[str] = (),
    hardware: Iterable[str] | str = ("h100-sxm",),
    region: str = "WORLD",
    regions_alt: Iterable[str] = (),
    pue: Any = None,
    wue_onsite_l_per_kwh: Any = None,
    idle_reserve_fraction: Any = None,
    source: str | Source | Mapping[str, Any] = "user",
    **extra: Any,
) -> ProviderSpec:
    """Register (or override) a provider. Hardware and regions must resolve.

    Unset ``pue``, ``wue_onsite_l_per_kwh`` and ``idle_reserve_fraction``
    take wide defaults (1.2 [1.08-1.6], 0.5 [0-1.8] L/kWh, 0.2 [0.05-0.4])
    and mark the row estimated.
    """
    sid = _ensure_source(source)
    est_fields: list[str] = list(extra.pop("estimated_fields", ()))
    methods: list[str] = [extra.pop("method")] if extra.get("method") else []
    if pue is None:
        pue = (1.2, 1.08, 1.6)
        est_fields.append("pue")
    if wue_onsite_l_per_kwh is None:
        wue_onsite_l_per_kwh = (0.5, 0.0, 1.8)
        est_fields.append("wue_onsite_l_per_kwh")
    if idle_reserve_fraction is None:
        idle_reserve_fraction = (0.2, 0.05, 0.4)
        est_fields.append("idle_reserve_fraction")
    if est_fields and not methods:
        methods.append("otm defaults for an operator with no published figures")
    hw = [hardware] if isinstance(hardware, str) else list(hardware)
    hw_ids: list[str] = []
    for i, h in enumerate(hw):
        a = find_accelerator(h)
        if a is None:
            raise DataError(f"provider {id!r}: hardware[{i}] {h!r} is not an accelerator id")
        hw_ids.append(a.id)
    reg = find_region(region)
    if reg is None:
        raise DataError(f"provider {id!r}: region {region!r} is not a region id")
    alt_ids: list[str] = []
    for i, rc in enumerate(regions_alt):
        ra = find_region(rc)
        if ra is None:
            raise DataError(f"provider {id!r}: regions_alt[{i}] {rc!r} is not a region id")
        alt_ids.append(ra.id)
    data: dict[str, Any] = {
        "id": id,
        "name": extra.pop("name", id),
        "aliases": tuple(aliases),
        "hosts": tuple(hosts),
        "hardware": tuple(hw_ids),
        "region": reg.id,
        "regions_alt": tuple(alt_ids),
        "pue": pue,
        "wue_onsite_l_per_kwh": wue_onsite_l_per_kwh,
        "idle_reserve_fraction": idle_reserve_fraction,
        "sources": extra.pop("sources", (sid,)),
        "year": extra.pop("year", _dt.date.today().year),
        "estimated": bool(extra.pop("estimated", False) or est_fields),
        "estimated_fields": tuple(dict.fromkeys(est_fields)),
        "method": "; ".join(methods) or None,
        **extra,
    }
    spec = ProviderSpec.model_validate(data)
    _check_sources(spec)
    r = registry()
    with r.lock:
        r.providers.add_user(spec)
        _HOST_CACHE.clear()
    _bump()
    return spec


def register_region(
    id: str,
    *,
    name: str | None = None,
    kind: str = "grid-zone",
    aliases: Iterable[str] = (),
    gco2e_per_kwh: float | None = None,
    water_l_per_kwh: float | None = None,
    data_year: int | None = None,
    parent: str | None = None,
    source: str | Source | Mapping[str, Any] = "user",
    **extra: Any,
) -> RegionSpec:
    """Register (or override) a region; factors not given are inherited from ``parent``."""
    sid = _ensure_source(source)
    data: dict[str, Any] = {
        "id": id,
        "name": name or id,
        "kind": kind,
        "aliases": tuple(aliases),
        "gco2e_per_kwh": gco2e_per_kwh,
        "water_l_per_kwh": water_l_per_kwh,
        "data_year": data_year,
        "sources": list(extra.pop("sources", (sid,))),
        "year": extra.pop("year", data_year if data_year is not None else None),
        **extra,
    }
    if parent is not None:
        p = find_region(parent)
        if p is None:
            raise DataError(f"region {id!r}: parent {parent!r} is not a region id")
        data["parent"] = p.id
        data = _inherit(data, p)
    else:
        missing = [f for f in ("gco2e_per_kwh", "water_l_per_kwh") if data.get(f) is None]
        if missing:
            raise DataError(f"region {id!r}: {', '.join(missing)} required when no parent is given")
        if data.get("data_year") is None:
            data["data_year"] = _dt.date.today().year
    if data.get("year") is None:
        data["year"] = data.get("data_year") or _dt.date.today().year
    spec = RegionSpec.model_validate(data)
    _check_sources(spec)
    r = registry()
    with r.lock:
        r.regions.add_user(spec)
    _bump()
    return spec


def unregister_all() -> None:
    """Drop every run-time registration (tests use this)."""
    r = _REG
    with r.lock:
        r.user_sources.clear()
        for t in (r.models, r.accelerators, r.regions, r.providers):
            t.clear_user()
        _HOST_CACHE.clear()
    _bump()


# ------------------------------------------------------------------------ user files


def _load_file(path: Path) -> Mapping[str, Any]:
    text = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(text)
    elif suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        data = tomllib.loads(text.decode("utf-8"))
    else:
        raise ValueError(f"{path}: user data must be a .toml or .json file")
    if not isinstance(data, Mapping):
        raise TypeError(f"{path}: top level must be a table/object")
    return data


_SECTIONS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("sources", lambda **kw: _ensure_source(kw)),
    ("accelerators", register_accelerator),
    ("regions", register_region),
    ("providers", register_provider),
    ("models", register_model),
)


def load_user_data(path: str | Path) -> dict[str, list[str]]:
    """Register every row of a TOML or JSON file; returns the ids registered per table.

    The file holds arrays ``models``, ``accelerators``, ``providers``,
    ``regions`` (and optionally ``sources``) of tables whose keys are the
    keyword arguments of the matching ``register_*`` function plus ``id``.
    Rows are registered in dependency order (sources, accelerators, regions,
    providers, models). On the first bad row nothing from the file stays
    registered, and the error names the file, the row and the field.
    """
    p = Path(path)
    data = _load_file(p)
    unknown = set(data) - {s for s, _ in _SECTIONS}
    if unknown:
        raise ValueError(
            f"{p}: unknown section(s) {sorted(unknown)}; expected models, accelerators, providers, regions, sources"
        )
    r = registry()
    done: dict[str, list[str]] = {}
    with r.lock:
        snapshot = _snapshot(r)
        try:
            for section, fn in _SECTIONS:
                rows = data.get(section, [])
                if not isinstance(rows, list):
                    raise TypeError(f"{p}: {section} must be an array of tables")
                for i, row in enumerate(rows):
                    if not isinstance(row, Mapping):
                        raise TypeError(f"{p}: {section}[{i}] must be a table")
                    kw = dict(row)
                    rid = kw.pop("id", None)
                    label = f"{p}: {section}[{i}]" + (f" ({rid!r})" if rid else "")
                    try:
                        if section == "sources":
                            if rid is None:
                                raise ValueError("id: required")
                            fn(id=rid, **kw)
                        else:
                            if rid is None:
                                raise ValueError("id: required")
                            fn(rid, **kw)
                    except ValidationError as e:
                        raise DataError(f"{label}: {_fmt_validation(e)}") from e
                    except (ValueError, TypeError) as e:
                        raise DataError(f"{label}: {e}") from e
                    done.setdefault(section, []).append(str(rid))
        except Exception:
            _restore(r, snapshot)
            _bump()
            raise
    _bump()
    return done


def _fmt_validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(row)"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


def _snapshot(r: _Registry) -> dict[str, Any]:
    snap: dict[str, Any] = {"sources": dict(r.user_sources)}
    for name in ("models", "accelerators", "regions", "providers"):
        t = getattr(r, name)
        snap[name] = (dict(t.user_rows), dict(t.user_index), dict(t.user_compact))
    return snap


def _restore(r: _Registry, snap: dict[str, Any]) -> None:
    _HOST_CACHE.clear()
    r.user_sources.clear()
    r.user_sources.update(snap["sources"])
    for name in ("models", "accelerators", "regions", "providers"):
        t = getattr(r, name)
        rows, idx, comp = snap[name]
        t.user_rows.clear()
        t.user_rows.update(rows)
        t.user_index.clear()
        t.user_index.update(idx)
        t.user_compact.clear()
        t.user_compact.update(comp)
        t.cache.clear()


def span(x: Any) -> Span:
    """Coerce a number or tuple to a :class:`Span` (convenience)."""
    return Span.of(x)

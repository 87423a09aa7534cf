"""Build otm/data/*.json from the curated tables in tools/data_src/.

Usage:
    python tools/build_data.py            # write otm/data/*.json
    python tools/build_data.py --check    # exit 1 if the JSON on disk is stale
    python tools/build_data.py --docs     # also rewrite the sources list in docs/data-sources.md

The JSON files are what the package ships and loads; this script is how they
are produced and reviewed. Every row is validated with the package's own row
models before anything is written, and cross-references (source ids, region
parents, provider hardware and regions, model providers) are checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

# tools/ goes on sys.path above, so these imports cannot sit at the top.
from data_src.accelerators import ACCELERATORS  # noqa: E402
from data_src.models_closed import ALL_CLOSED  # noqa: E402
from data_src.models_open import ALL_OPEN  # noqa: E402
from data_src.providers import PROVIDERS  # noqa: E402
from data_src.regions import build_regions  # noqa: E402
from data_src.sources import SOURCES  # noqa: E402

OUT = ROOT / "otm" / "data"
DOC = ROOT / "docs" / "data-sources.md"
BEGIN, END = "<!-- sources:begin -->", "<!-- sources:end -->"


def _span(x: Any) -> Any:
    if (
        isinstance(x, (list, tuple))
        and len(x) in (2, 3)
        and all(isinstance(v, (int, float)) for v in x)
    ):
        if len(x) == 2:
            lo, hi = float(x[0]), float(x[1])
            return {"value": round((lo + hi) / 2, 4), "low": lo, "high": hi}
        return {"value": float(x[0]), "low": float(x[1]), "high": float(x[2])}
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return {"value": float(x), "low": float(x), "high": float(x)}
    return x


SPAN_FIELDS = {
    "embodied_kgco2e",
    "host_w_per_accel",
    "host_embodied_kgco2e",
    "pue",
    "wue_onsite_l_per_kwh",
    "idle_reserve_fraction",
    "total_params_b",
    "active_params_b",
    "compute_multiplier",
}


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None or (
            isinstance(v, (list, tuple))
            and len(v) == 0
            and k in ("aliases", "estimated_fields", "inherited", "regions_alt", "hosts")
        ):
            continue
        if k in SPAN_FIELDS:
            v = _span(v)
        if isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def build() -> dict[str, list[dict[str, Any]]]:
    models = [_clean(m) for m in ALL_CLOSED + ALL_OPEN]
    tables = {
        "sources": [_clean(s) for s in SOURCES],
        "accelerators": [_clean(a) for a in ACCELERATORS],
        "providers": [_clean(p) for p in PROVIDERS],
        "regions": [_clean(r) for r in build_regions()],
        "models": sorted(models, key=lambda m: (m.get("developer", ""), m["id"])),
    }
    _validate(tables)
    return tables


def _validate(t: dict[str, list[dict[str, Any]]]) -> None:
    from pydantic import TypeAdapter

    from otm.data import registry as reg
    from otm.data.schema import AcceleratorSpec, ModelSpec, ProviderSpec, Source

    errors: list[str] = []
    src_ids = [s["id"] for s in t["sources"]]
    dup = {s for s in src_ids if src_ids.count(s) > 1}
    if dup:
        errors.append(f"duplicate source ids: {sorted(dup)}")
    TypeAdapter(list[Source]).validate_python(t["sources"])
    accs = TypeAdapter(list[AcceleratorSpec]).validate_python(t["accelerators"])
    regions = reg._expand_regions(t["regions"])
    provs = TypeAdapter(list[ProviderSpec]).validate_python(t["providers"])
    models = TypeAdapter(list[ModelSpec]).validate_python(t["models"])
    sset = set(src_ids)
    acc_ids = {a.id for a in accs}
    reg_ids = {r.id for r in regions}
    prov_ids = {p.id for p in provs}
    for table in (accs, regions, provs, models):
        ids = [r.id for r in table]
        d = {i for i in ids if ids.count(i) > 1}
        if d:
            errors.append(f"duplicate ids: {sorted(d)}")
        for r in table:
            for s in r.sources:
                if s not in sset:
                    errors.append(f"{r.id}: unknown source {s!r}")
            price = getattr(r, "price", None)
            if price is not None and price.source not in sset:
                errors.append(f"{r.id}: unknown price source {price.source!r}")
    for p in provs:
        for h in p.hardware:
            if h not in acc_ids:
                errors.append(f"provider {p.id}: unknown accelerator {h!r}")
        for rid in (p.region, *p.regions_alt):
            if rid not in reg_ids:
                errors.append(f"provider {p.id}: unknown region {rid!r}")
    for m in models:
        if m.provider not in prov_ids:
            errors.append(f"model {m.id}: unknown provider {m.provider!r}")
    from otm.data.resolve import (
        accelerator_candidates,
        model_candidates,
        provider_candidates,
        region_candidates,
    )

    checks: tuple[tuple[str, list[Any], Any], ...] = (
        ("model", models, model_candidates),
        ("accelerator", accs, accelerator_candidates),
        ("region", regions, region_candidates),
        ("provider", provs, provider_candidates),
    )
    for kind, rows, cand in checks:
        index: reg._Table[Any] = reg._Table(kind, cand)
        for r in rows:
            try:
                index.add_packaged(r)
            except reg.DataError as e:
                errors.append(str(e))
    if errors:
        raise SystemExit("data errors:\n  " + "\n  ".join(errors))


def _dump(rows: list[dict[str, Any]]) -> str:
    """One row per line: compact to load, still reviewable row by row in a diff."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows)
    return "[\n" + body + "\n]\n"


def write(tables: dict[str, list[dict[str, Any]]], check: bool) -> bool:
    stale = False
    for name, rows in tables.items():
        path = OUT / f"{name}.json"
        text = _dump(rows)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"stale: {path.relative_to(ROOT)}")
                stale = True
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)} ({len(rows)} rows)")
    return not stale


def sources_markdown(sources: list[dict[str, Any]]) -> str:
    lines = ["| id | title | year | url |", "| --- | --- | --- | --- |"]
    for s in sorted(sources, key=lambda s: s["id"]):
        title = s["title"].replace("|", "\\|")
        year = s.get("year") or ("n.d." + (f" (read {s['accessed']})" if s.get("accessed") else ""))
        url = s.get("url") or "—"
        lines.append(f"| `{s['id']}` | {title} | {year} | {url} |")
    return "\n".join(lines)


def write_docs(tables: dict[str, list[dict[str, Any]]]) -> None:
    text = DOC.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: markers {BEGIN} / {END} not found")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(
        head + BEGIN + "\n" + sources_markdown(tables["sources"]) + "\n" + END + tail,
        encoding="utf-8",
    )
    print(f"updated {DOC.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--check", action="store_true", help="fail if otm/data/*.json differ from a fresh build"
    )
    ap.add_argument(
        "--docs", action="store_true", help="rewrite the sources table in docs/data-sources.md"
    )
    args = ap.parse_args()
    tables = build()
    ok = write(tables, args.check)
    if args.docs:
        write_docs(tables)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()

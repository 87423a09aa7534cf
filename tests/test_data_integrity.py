"""Integrity of the packaged reference data (otm/data/*.json)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import sdk_drift, sdk_is_locked

from otm import data
from otm.data import Span
from otm.data.resolve import normalise_id

DATA_DIR = Path(data.__file__).parent
TABLES = ("sources", "accelerators", "providers", "regions", "models")


def _raw(name: str) -> list[dict[str, Any]]:
    return json.loads((DATA_DIR / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def source_ids() -> set[str]:
    return {s.id for s in data.all_sources()}


def _rows() -> list[Any]:
    return [
        *data.all_accelerators(),
        *data.all_providers(),
        *data.all_regions(),
        *data.all_models(),
    ]


# ------------------------------------------------------------------------- counts


def test_counts() -> None:
    models = data.all_models()
    regions = data.all_regions()
    kinds = Counter(r.kind for r in regions)
    assert len({m.id for m in models}) >= 300
    assert len(data.all_accelerators()) >= 22
    assert len(data.all_providers()) >= 12
    assert kinds["country"] >= 200
    assert kinds["us-state"] == 51
    assert kinds["cloud-region"] >= 60
    assert kinds["world"] == 1
    for cloud in ("aws", "gcp", "azure"):
        assert sum(1 for r in regions if r.kind == "cloud-region" and r.provider == cloud) >= 25, (
            cloud
        )


def test_all_us_states_and_dc() -> None:
    states = {r.id for r in data.all_regions() if r.kind == "us-state"}
    assert "US-DC" in states and "US-VA" in states and "US-WY" in states
    assert len(states) == 51
    assert all(re.fullmatch(r"US-[A-Z]{2}", s) for s in states)


def test_required_accelerators_present() -> None:
    for name in (
        "A100 40GB",
        "A100-SXM4-80GB",
        "H100 SXM",
        "H100 PCIe",
        "H800",
        "H200",
        "H20",
        "B200",
        "B300",
        "GB200",
        "L4",
        "L40S",
        "A10G",
        "TPU v4",
        "TPU v5e",
        "TPU v5p",
        "TPU v6e",
        "Ironwood",
        "Trainium",
        "Trainium2",
        "Inferentia2",
        "MI300X",
        "MI325X",
        "MI355X",
        "RTX 4090",
    ):
        assert data.find_accelerator(name) is not None, name


def test_required_providers_present() -> None:
    for pid in (
        "openai",
        "azure-openai",
        "anthropic",
        "google",
        "mistral",
        "deepseek",
        "groq",
        "together",
        "fireworks",
        "openrouter",
        "xai",
        "local",
    ):
        assert data.get_provider(pid).id == pid


# ---------------------------------------------------------------- sources & years


def test_source_ids_unique_and_complete() -> None:
    ids = [s["id"] for s in _raw("sources")]
    assert len(ids) == len(set(ids))
    for s in data.all_sources():
        assert s.title.strip()
        assert s.url or s.id in ("otm-estimate", "user"), f"source {s.id} has no url"


def test_every_row_cites_existing_sources_and_has_a_year(source_ids: set[str]) -> None:
    for row in _rows():
        assert row.sources, row.id
        for sid in row.sources:
            assert sid in source_ids, f"{row.id}: unknown source {sid}"
        assert 1990 <= row.year <= 2100, row.id
        price = getattr(row, "price", None)
        if price is not None:
            assert price.source in source_ids, f"{row.id}: price source {price.source}"
            assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", price.as_of), row.id


def test_every_estimated_row_states_its_method() -> None:
    for row in _rows():
        if row.estimated:
            assert row.method and len(row.method) > 15, f"{row.id}: estimated without a method"
        for f in row.estimated_fields:
            assert row.estimated, row.id


def test_closed_models_are_flagged_estimated() -> None:
    for m in data.all_models():
        # closed, no published shape: the size can only be an estimate
        if not m.open_weights and m.kind != "embedding" and m.layers is None:
            assert m.estimated, m.id
            assert "total_params_b" in m.estimated_fields, m.id


# --------------------------------------------------------------------------- spans


def _spans(row: Any) -> list[tuple[str, Span]]:
    out = []
    for name in type(row).model_fields:
        v = getattr(row, name)
        if isinstance(v, Span):
            out.append((name, v))
    return out


def test_spans_ordered_and_finite() -> None:
    n = 0
    for row in _rows():
        for name, s in _spans(row):
            n += 1
            assert all(math.isfinite(x) for x in s.as_tuple()), (row.id, name)
            assert s.low <= s.value <= s.high, (row.id, name, s)
    assert n > 500


def test_span_validator_rejects_disorder() -> None:
    with pytest.raises(ValueError):
        Span(value=1.0, low=2.0, high=3.0)
    with pytest.raises(ValueError):
        Span(value=float("nan"), low=0.0, high=1.0)
    assert Span.point(3.0).as_tuple() == (3.0, 3.0, 3.0)
    assert Span.of((1, 3)).as_tuple() == (2.0, 1.0, 3.0)
    assert Span.of((2, 1, 5)).as_tuple() == (2.0, 1.0, 5.0)
    assert Span.of(4).is_point


# ------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("table", ["accelerators", "providers", "regions", "models"])
def test_aliases_resolve_uniquely(table: str) -> None:
    owner: dict[str, str] = {}
    for row in _raw(table):
        keys = {normalise_id(row["id"])} | {normalise_id(a) for a in row.get("aliases", [])}
        for k in keys:
            prev = owner.setdefault(k, row["id"])
            assert prev == row["id"], f"{table}: {k!r} maps to {prev!r} and {row['id']!r}"


def test_every_alias_resolves_to_its_row() -> None:
    finders = {
        "accelerators": data.find_accelerator,
        "providers": data.find_provider,
        "regions": data.find_region,
        "models": data.find_model,
    }
    for table, find in finders.items():
        for row in _raw(table):
            for name in (row["id"], *row.get("aliases", [])):
                hit = find(name)
                assert hit is not None and hit.id == row["id"], (
                    f"{table}: {name!r} -> {hit and hit.id}"
                )


# -------------------------------------------------------------- cross references


def test_provider_references_resolve() -> None:
    acc = {a.id for a in data.all_accelerators()}
    reg = {r.id for r in data.all_regions()}
    for p in data.all_providers():
        assert p.hardware and all(h in acc for h in p.hardware), p.id
        assert p.region in reg and all(r in reg for r in p.regions_alt), p.id
        assert 1.0 <= p.pue.low and p.pue.high < 2.0, p.id


def test_model_providers_exist() -> None:
    prov = {p.id for p in data.all_providers()}
    for m in data.all_models():
        assert m.provider in prov, m.id


def test_cloud_regions_inherit_parent_factors() -> None:
    for r in data.all_regions():
        if r.kind != "cloud-region":
            continue
        parent = data.get_region(r.parent or "")
        assert r.gco2e_per_kwh == parent.gco2e_per_kwh, r.id
        assert r.water_l_per_kwh == parent.water_l_per_kwh, r.id
        assert "gco2e_per_kwh" in r.inherited, r.id
    raw = {r["id"]: r for r in _raw("regions")}
    assert "gco2e_per_kwh" not in raw["aws:us-east-1"], (
        "cloud regions must not duplicate parent figures"
    )


def test_world_and_known_factors() -> None:
    w = data.world_region()
    assert w.id == "WORLD" and 400 < w.gco2e_per_kwh < 500
    fr, pl = data.get_region("FR"), data.get_region("POL")
    assert fr.gco2e_per_kwh < 100 < pl.gco2e_per_kwh
    assert 0 < fr.water_l_per_kwh < 20


# ---------------------------------------------------------- calibration models


@pytest.mark.parametrize(
    "name,total,active,layers,kv,hd",
    [
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", 8.03, 8.03, 32, 8, 128),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", 70.55, 70.55, 80, 8, 128),
        ("meta-llama/Meta-Llama-3.1-405B-Instruct", 405.85, 405.85, 126, 8, 128),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 46.7, 12.9, 32, 8, 128),
        ("mistralai/Mixtral-8x22B-Instruct-v0.1", 141, 39, 56, 8, 128),
    ],
)
def test_calibration_model_shapes(
    name: str, total: float, active: float, layers: int, kv: int, hd: int
) -> None:
    m = data.get_model(name)
    assert not m.estimated
    assert m.total_params_b.value == pytest.approx(total, rel=0.01)
    assert m.active_params_b.value == pytest.approx(active, rel=0.01)
    assert (m.layers, m.kv_heads, m.head_dim) == (layers, kv, hd)
    assert m.kv_bytes_per_token() == 2 * layers * kv * hd * 2


def test_kv_bytes_variants() -> None:
    v3 = data.get_model("deepseek-v3")
    assert v3.attention == "mla" and v3.kv_bytes_per_token() == 61 * (512 + 64) * 2
    g = data.get_model("gemma-3-27b")
    assert g.kv_bytes_per_token(context_tokens=32768) < g.kv_bytes_per_token()
    assert data.get_model("gpt-4o").kv_bytes_per_token() is None


def test_calibration_accelerators_from_file_names() -> None:
    # the ML.ENERGY calibration files name their GPUs like this
    assert data.get_accelerator("A100-SXM4-40GB").id == "a100-40gb"
    assert data.get_accelerator("H100_80GB_HBM3").id == "h100-sxm"
    h100 = data.get_accelerator("H100")
    assert (
        h100.tdp_w == 700
        and h100.mem_bandwidth_tbs == 3.35
        and h100.bf16_tflops == pytest.approx(989.4)
    )


# ----------------------------------------------------------------- SDK coverage


def _literal_strings(t: Any) -> list[str]:
    out: list[str] = []
    for a in typing.get_args(t):
        if isinstance(a, str):
            out.append(a)
        else:
            out.extend(_literal_strings(a))
    return out


def _check_sdk_names(dist: str, names: set[str] | list[str]) -> None:
    """Every model name an SDK lists resolves (strict with the locked SDK).

    With the version constraints.txt pins, a name that does not resolve fails
    the test. With any other version (a newer SDK than the lock) the test
    passes and the end-of-run "SDK drift" report lists the names lacking an
    exact data row: unresolved ones, and domain variants resolved to their base
    model as an estimate. New SDK releases thus produce a report, not a red CI.
    """
    unresolved = sorted({n for n in names if data.find_model(n) is None})
    if sdk_is_locked(dist):
        assert not unresolved, unresolved
        return
    variants = sorted({n for n in names if n not in unresolved and domain_variant_only(n)})
    sdk_drift(dist, "model names that resolve to no data row", unresolved)
    sdk_drift(dist, "model names resolved only as a domain variant (estimate)", variants)


def domain_variant_only(name: str) -> bool:
    m = data.find_model(name)
    return m is not None and bool(m.method) and "-specialised variant of" in (m.method or "")


def test_openai_chat_models_resolve() -> None:
    types = pytest.importorskip("openai.types")
    names = _literal_strings(types.ChatModel)
    shared = pytest.importorskip("openai.types.shared")
    names += _literal_strings(getattr(shared, "ResponsesModel", typing.Any))
    names += _literal_strings(getattr(types, "EmbeddingModel", typing.Any))
    assert len(names) > 50
    _check_sdk_names("openai", names)


def test_anthropic_models_resolve() -> None:
    types = pytest.importorskip("anthropic.types")
    names = _literal_strings(types.Model)
    assert len(names) > 5
    _check_sdk_names("anthropic", names)


_GEMINI = re.compile(r"""['"]((?:[\w\-/]*/)?gemini-[^'"\s]*)['"]""")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-")


def test_google_genai_gemini_names_resolve() -> None:
    genai = pytest.importorskip("google.genai")
    root = Path(genai.__file__).parent
    names: set[str] = set()
    for p in root.rglob("*.py"):
        for m in _GEMINI.finditer(p.read_text(encoding="utf-8", errors="ignore")):
            names.add(m.group(1))
    try:
        from google.genai._gaos.types.interactions import model as gaos_model

        names |= {
            n for n in _literal_strings(gaos_model.Model) if n.startswith(("gemini-", "gemma-"))
        }
    except ImportError:
        pass
    # drop URL fragments and test fixtures that are not model names
    names = {
        n
        for n in names
        if re.fullmatch(r"[\w.\-/:@]+", n) and ".." not in n and not _UUID.search(n)
    }
    assert len(names) > 30
    _check_sdk_names("google-genai", names)


def test_sdk_name_checks_are_strict_only_with_the_locked_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import conftest

    names = ["gpt-4o", "no-such-model-anywhere-xyz", "gpt-6-astra-healthcare"]
    # the locked version: an unknown name fails
    monkeypatch.setattr(conftest, "locked_version", lambda dist: "1.0.0")
    monkeypatch.setattr(conftest, "installed_version", lambda dist: "1.0.0")
    with pytest.raises(AssertionError, match="no-such-model-anywhere-xyz"):
        _check_sdk_names("openai", names)
    # a newer one: reported, not failed
    monkeypatch.setattr(conftest, "installed_version", lambda dist: "9.9.9")
    monkeypatch.setattr(conftest, "_DRIFT", [])
    _check_sdk_names("openai", names)
    assert conftest._DRIFT == [
        "openai 9.9.9 (locked 1.0.0): model names that resolve to no data row (1): "
        "no-such-model-anywhere-xyz",
        "openai 9.9.9 (locked 1.0.0): model names resolved only as a domain variant "
        "(estimate) (1): gpt-6-astra-healthcare",
    ]


# ------------------------------------------------------------------- lazy loading


def test_import_reads_no_data_file() -> None:
    code = (
        "import builtins, io, pathlib, sys\n"
        "opened = []\n"
        "orig = pathlib.Path.read_bytes\n"
        "def spy(self):\n"
        "    opened.append(str(self)); return orig(self)\n"
        "pathlib.Path.read_bytes = spy\n"
        "import otm.data\n"
        "assert not otm.data.is_loaded(), 'loaded at import'\n"
        "assert not [p for p in opened if p.endswith('.json')], opened\n"
        "otm.data.find_model('gpt-4o')\n"
        "assert otm.data.is_loaded()\n"
        "assert [p for p in opened if p.endswith('models.json')], opened\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_full_load_is_fast() -> None:
    code = (
        "import time, otm.data as d\n"
        "t = time.perf_counter(); d.all_models(); dt = time.perf_counter() - t\n"
        "t = time.perf_counter()\n"
        "for _ in range(1000): d.find_model('gpt-4o-2024-08-06')\n"
        "print(dt, (time.perf_counter() - t) / 1000)\n"
    )
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )
    assert res.returncode == 0, res.stderr
    load_s, lookup_s = map(float, res.stdout.split())
    assert load_s < 0.5  # target < 0.1 s; generous for slow CI machines
    assert lookup_s < 1e-3


def test_concurrent_first_load() -> None:
    code = (
        "import threading, otm.data as d\n"
        "out = []\n"
        "def go(): out.append(len(d.all_models()))\n"
        "ts = [threading.Thread(target=go) for _ in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert len(set(out)) == 1 and out[0] >= 300, out\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )
    assert res.returncode == 0, res.stderr


def test_packaged_json_matches_curated_sources() -> None:
    root = Path(__file__).resolve().parent.parent
    script = root / "tools" / "build_data.py"
    if not script.exists():
        pytest.skip("tools/ not available (installed package)")
    res = subprocess.run(
        [sys.executable, str(script), "--check"],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr

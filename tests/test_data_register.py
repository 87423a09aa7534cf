"""Run-time registration and user data files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from otm import data
from otm.data import DataError, Span


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    data.unregister_all()
    yield
    data.unregister_all()


def test_register_model_round_trip() -> None:
    m = data.register_model(
        "acme-chat-7b",
        aliases=("acme/chat-7b-instruct", "acme-7b"),
        total_params_b=7.2,
        layers=32,
        kv_heads=8,
        head_dim=128,
        price=(0.1, 0.3),
        context_length=32768,
    )
    assert m.total_params_b == Span.point(7.2) and m.active_params_b == Span.point(7.2)
    assert m.price is not None and m.price.cached_input_per_m == 0.1 and m.price.source == "user"
    assert data.get_model("acme/chat-7b-instruct") is m
    assert data.get_model("ACME-7B").id == "acme-chat-7b"
    assert data.get_model("acme-chat-7b-2025-01-01").id == "acme-chat-7b"
    assert m in data.all_models()
    assert m.kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2
    assert data.get_source("user").title


def test_register_moe_with_ranges() -> None:
    m = data.register_model(
        "acme-moe",
        total_params_b=(100, 140),
        active_params_b=(10, 8, 14),
        architecture="moe",
        experts_total=16,
        experts_per_token=2,
        precision="fp8",
    )
    assert m.total_params_b.as_tuple() == (120.0, 100.0, 140.0)
    assert m.active_params_b.as_tuple() == (10.0, 8.0, 14.0)
    assert m.architecture == "moe" and m.precision == "fp8"


def test_registered_model_overrides_packaged_and_aliases() -> None:
    packaged = data.get_model("gpt-4o")
    assert packaged.estimated
    n = len(data.all_models())
    mine = data.register_model(
        "gpt-4o",
        total_params_b=200,
        active_params_b=40,
        architecture="moe",
        aliases=("my-4o",),
        source={
            "id": "leak-2026",
            "title": "A leak",
            "year": 2026,
            "url": "https://example.org/leak",
        },
    )
    assert data.get_model("gpt-4o") is mine
    assert data.get_model("gpt-4o-2024-08-06") is mine  # snapshot stripping reaches the override
    assert data.get_model("my-4o") is mine
    assert len(data.all_models()) == n  # replaced, not added
    assert data.get_source("leak-2026").url == "https://example.org/leak"
    # a user alias wins over a packaged id
    other = data.register_model("my-mini", total_params_b=8, aliases=("gpt-4o-mini",))
    assert data.get_model("gpt-4o-mini") is other
    data.unregister_all()
    assert data.get_model("gpt-4o") == packaged
    assert data.get_model("gpt-4o-mini").id == "gpt-4o-mini"
    assert data.find_model("my-4o") is None


def test_reregistering_replaces_aliases() -> None:
    data.register_model("acme-x", total_params_b=1, aliases=("old-alias",))
    data.register_model("acme-x", total_params_b=2, aliases=("new-alias",))
    assert data.find_model("old-alias") is None
    assert data.get_model("new-alias").total_params_b.value == 2


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"total_params_b": -1}, "total_params_b"),
        ({"total_params_b": (5, 1, 3)}, "total_params_b"),
        ({"total_params_b": 7, "precision": "fp3"}, "precision"),
        ({"total_params_b": 7, "layers": 0}, "layers"),
        ({"total_params_b": 7, "architecture": "sparse"}, "architecture"),
        ({"total_params_b": 7, "price": {"input_per_m": -1, "output_per_m": 1}}, "input_per_m"),
        ({"total_params_b": 7, "colour": "red"}, "colour"),
    ],
)
def test_bad_model_registration_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError) as ei:
        data.register_model("bad-model", **kwargs)
    assert field in str(ei.value)
    assert data.find_model("bad-model") is None


def test_model_registration_requirements() -> None:
    with pytest.raises(ValueError, match="total_params_b"):
        data.register_model("x")
    with pytest.raises(ValueError, match="active_params_b"):
        data.register_model("x", total_params_b=100, architecture="moe")
    with pytest.raises(ValueError, match="active_params_b"):
        data.register_model("x", total_params_b=10, active_params_b=20)
    with pytest.raises(DataError, match="provider"):
        data.register_model("x", total_params_b=10, provider="nowhere")


def test_register_accelerator() -> None:
    a = data.register_accelerator(
        "acme-npu",
        aliases=("ACME NPU 1",),
        memory_gb=64,
        mem_bandwidth_tbs=2.0,
        bf16_tflops=500,
        tdp_w=400,
        vendor="Acme",
    )
    assert data.get_accelerator("acme npu 1") is a
    assert a.estimated and "idle_w" in a.estimated_fields and a.method
    assert a.idle_w == 60 and a.host_w_per_accel.value == pytest.approx(120)
    assert a in data.all_accelerators()
    over = data.register_accelerator(
        "h100-sxm",
        memory_gb=80,
        mem_bandwidth_tbs=3.35,
        bf16_tflops=989,
        tdp_w=500,
        idle_w=60,
        embodied_kgco2e=(150, 120, 200),
        host_w_per_accel=200,
    )
    assert data.get_accelerator("NVIDIA H100 80GB HBM3") is over
    with pytest.raises(ValidationError, match="mem_bandwidth_tbs"):
        data.register_accelerator("bad", memory_gb=1, mem_bandwidth_tbs=0, bf16_tflops=1, tdp_w=10)
    with pytest.raises(ValueError, match="idle_w"):
        data.register_accelerator(
            "bad", memory_gb=1, mem_bandwidth_tbs=1, bf16_tflops=1, tdp_w=10, idle_w=20
        )


def test_register_region_and_provider() -> None:
    r = data.register_region(
        "my-dc",
        name="My DC",
        gco2e_per_kwh=20,
        water_l_per_kwh=0.5,
        data_year=2025,
        aliases=("dc-1",),
    )
    assert data.get_region("DC-1") is r and r.kind == "grid-zone"
    child = data.register_region("my-rack", parent="FR", kind="cloud-region")
    assert (
        child.gco2e_per_kwh == data.get_region("FRA").gco2e_per_kwh
        and "gco2e_per_kwh" in child.inherited
    )
    with pytest.raises(DataError, match="gco2e_per_kwh"):
        data.register_region("nothing")
    with pytest.raises(DataError, match="parent"):
        data.register_region("orphan", parent="Atlantis")
    p = data.register_provider(
        "acme-cloud",
        hosts=("api.acme.test",),
        hardware=["H100", "b200"],
        region="dc-1",
        regions_alt=["FR"],
        pue=1.1,
    )
    assert p.hardware == ("h100-sxm", "b200") and p.region == "my-dc" and p.regions_alt == ("FRA",)
    assert p.estimated and "pue" not in p.estimated_fields
    assert data.provider_for_host("eu.api.acme.test") == "acme-cloud"
    assert data.get_provider("acme-cloud") in data.all_providers()
    with pytest.raises(DataError, match="hardware"):
        data.register_provider("bad", hardware=["warp-core"])
    with pytest.raises(ValueError, match="pue"):
        data.register_provider("bad", pue=0.9)


TOML = """
[[sources]]
id = "lab-notes"
title = "Our lab's power measurements"
year = 2026
url = "https://example.org/notes"

[[accelerators]]
id = "lab-gpu"
memory_gb = 48
mem_bandwidth_tbs = 0.96
bf16_tflops = 180
tdp_w = 300
idle_w = 30
embodied_kgco2e = [90, 60, 150]
host_w_per_accel = 120
source = "lab-notes"

[[regions]]
id = "lab-site"
name = "Lab site"
parent = "DEU"
gco2e_per_kwh = 110.0

[[providers]]
id = "lab"
hosts = ["llm.lab.example"]
hardware = ["lab-gpu"]
region = "lab-site"

[[models]]
id = "lab-llm"
aliases = ["lab/llm-13b"]
total_params_b = 13
layers = 40
kv_heads = 8
head_dim = 128
provider = "lab"
price = { input_per_m = 0.0, output_per_m = 0.0, as_of = "2026-01" }
"""


def test_load_user_data_toml(tmp_path: Path) -> None:
    f = tmp_path / "otm-data.toml"
    f.write_text(TOML, encoding="utf-8")
    done = data.load_user_data(f)
    assert done == {
        "sources": ["lab-notes"],
        "accelerators": ["lab-gpu"],
        "regions": ["lab-site"],
        "providers": ["lab"],
        "models": ["lab-llm"],
    }
    assert data.get_model("lab/llm-13b").provider == "lab"
    assert data.get_accelerator("lab-gpu").sources == ("lab-notes",)
    site = data.get_region("lab-site")
    assert (
        site.gco2e_per_kwh == 110.0
        and site.water_l_per_kwh == data.get_region("DE").water_l_per_kwh
    )
    assert data.provider_for_host("llm.lab.example") == "lab"


def test_load_user_data_json(tmp_path: Path) -> None:
    f = tmp_path / "extra.json"
    f.write_text(
        json.dumps({"models": [{"id": "tiny", "total_params_b": [0.5, 1.5]}]}), encoding="utf-8"
    )
    assert data.load_user_data(f) == {"models": ["tiny"]}
    assert data.get_model("tiny").total_params_b.value == 1.0


def test_load_user_data_errors_name_row_and_field(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(
        '[[models]]\nid = "good"\ntotal_params_b = 1\n\n[[models]]\nid = "broken"\ntotal_params_b = 7\n'
        "layers = -3\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError) as ei:
        data.load_user_data(f)
    msg = str(ei.value)
    assert "models[1]" in msg and "broken" in msg and "layers" in msg
    assert data.find_model("good") is None  # all-or-nothing

    g = tmp_path / "bad.json"
    g.write_text(json.dumps({"planets": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="planets"):
        data.load_user_data(g)
    h = tmp_path / "bad.yaml"
    h.write_text("models: []", encoding="utf-8")
    with pytest.raises(ValueError, match="toml or .json"):
        data.load_user_data(h)

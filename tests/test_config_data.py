"""Custom data from the user's side: register_* round trips, id variants, user data files."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import otm
from otm import config

data = pytest.importorskip("otm.data")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    try:
        data.all_models()
    except (FileNotFoundError, OSError):
        pytest.skip("packaged data not built yet")
    for key in list(os.environ):
        if key.startswith("OTM_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    data.unregister_all()
    config.reset()
    yield tmp_path
    data.unregister_all()
    config.reset()


def _acme() -> object:
    return otm.register_model(
        "acme-chat-7b",
        aliases=["acme/Acme-Chat-7B-Instruct", "acmechat"],
        total_params_b=7.2,
        layers=32,
        kv_heads=8,
        head_dim=128,
        precision="bf16",
        price=(0.2, 0.6),
        source="acme model card",
    )


# --------------------------------------------------------------------------- register_* round trips


def test_register_model_round_trip() -> None:
    spec = _acme()
    found = data.find_model("acme-chat-7b")
    assert found is not None and found.id == "acme-chat-7b"
    assert found == spec
    assert found.total_params_b.value == pytest.approx(7.2)
    assert found.active_params_b.value == pytest.approx(7.2)  # dense: active = total
    assert (found.layers, found.kv_heads, found.head_dim) == (32, 8, 128)
    assert found.kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2
    assert found.price is not None and found.price.output_per_m == pytest.approx(0.6)
    assert found.sources and data.get_source(found.sources[0]) is not None
    assert any(m.id == "acme-chat-7b" for m in data.all_models())


@pytest.mark.parametrize(
    "name",
    [
        "ACME-CHAT-7B",  # case
        "acme_chat_7b",  # separators
        "acme.chat.7b",
        "Acme Chat 7B",
        "acmechat",  # alias
        "acme/Acme-Chat-7B-Instruct",  # Hugging Face style alias
        "acme/acme-chat-7b",  # an org prefix
        "openrouter/acme/acme-chat-7b",  # provider-prefixed
        "models/acme-chat-7b",  # Gemini-style resource name
        "acme-chat-7b-2025-01-15",  # dated snapshot
        "acme-chat-7b-20250115",
        "acme-chat-7b-latest",
    ],
)
def test_registered_model_resolves_from_user_variants(name: str) -> None:
    _acme()
    found = data.find_model(name)
    assert found is not None and found.id == "acme-chat-7b", name


def test_registered_model_wins_over_packaged() -> None:
    packaged = data.find_model("gpt-4o")
    if packaged is None:
        pytest.skip("gpt-4o not in the packaged data")
    otm.register_model("gpt-4o", total_params_b=(123.0, 100.0, 150.0), source="my own estimate")
    mine = data.find_model("gpt-4o")
    assert mine is not None and mine.total_params_b.value == pytest.approx(123.0)
    # snapshot names of the packaged model now reach the user's row too
    snap = data.find_model("gpt-4o-2024-08-06")
    assert snap is not None and snap.total_params_b.value == pytest.approx(123.0)
    data.unregister_all()
    back = data.find_model("gpt-4o")
    assert back is not None and back.total_params_b == packaged.total_params_b


def test_registered_alias_wins_over_packaged_id() -> None:
    if data.find_model("gpt-4o-mini") is None:
        pytest.skip("gpt-4o-mini not in the packaged data")
    otm.register_model("my-proxy-model", aliases=["gpt-4o-mini"], total_params_b=9, source="proxy")
    assert data.find_model("gpt-4o-mini").id == "my-proxy-model"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"total_params_b": 7, "active_params_b": 9}, "exceeds"),
        ({"total_params_b": 7, "precision": "fp12"}, "precision"),
        ({"total_params_b": -1}, "positive"),
        ({"total_params_b": 30, "architecture": "moe"}, "active_params_b"),
        ({}, "total_params_b"),
        ({"total_params_b": 7, "layers": 0}, "layers"),
    ],
)
def test_register_model_validates_like_packaged_rows(
    kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        otm.register_model("bad-model", source="test", **kwargs)  # type: ignore[arg-type]
    assert data.find_model("bad-model") is None


def test_register_accelerator_region_provider_round_trip() -> None:
    acc = otm.register_accelerator(
        "acme-npu-1",
        aliases=["Acme NPU1"],
        memory_gb=96,
        mem_bandwidth_tbs=3.2,
        bf16_tflops=800,
        tdp_w=600,
        source="acme datasheet",
    )
    assert data.find_accelerator("ACME npu 1").id == acc.id  # type: ignore[union-attr]
    assert data.find_accelerator("acme_npu1").id == acc.id  # type: ignore[union-attr]
    assert acc.idle_w == pytest.approx(90.0) and "idle_w" in acc.estimated_fields

    reg = otm.register_region(
        "ACME-DC-NORTH",
        name="Acme north site",
        gco2e_per_kwh=25.0,
        water_l_per_kwh=0.4,
        source="utility bill",
    )
    assert data.find_region("acme-dc-north").id == reg.id  # type: ignore[union-attr]

    prov = otm.register_provider(
        "acme-cloud",
        hosts=["api.acme.test"],
        hardware=["Acme NPU1"],
        region="acme-dc-north",
        pue=1.1,
        wue_onsite_l_per_kwh=0.2,
        idle_reserve_fraction=0.1,
        source="acme sustainability report",
    )
    assert prov.hardware == ("acme-npu-1",) and prov.region == "ACME-DC-NORTH"
    got = data.find_provider("Acme Cloud")
    assert got is not None and got.pue.value == pytest.approx(1.1)
    assert data.provider_for_host("https://api.acme.test/v1") == "acme-cloud"


def test_register_provider_rejects_unknown_hardware_and_region() -> None:
    with pytest.raises(ValueError, match="hardware"):
        otm.register_provider("p1", hardware=["warp-drive-9000"], source="x")
    with pytest.raises(ValueError, match="region"):
        otm.register_provider("p2", region="atlantis-1", source="x")
    with pytest.raises(ValueError, match="pue"):
        otm.register_provider("p3", pue=0.8, source="x")


def test_register_region_inherits_from_parent() -> None:
    parent = data.find_region("FRA")
    if parent is None:
        pytest.skip("FRA not in the packaged data")
    child = otm.register_region("FR-ACME", parent="FR", water_l_per_kwh=9.9, source="site")
    assert child.gco2e_per_kwh == pytest.approx(parent.gco2e_per_kwh)
    assert child.water_l_per_kwh == pytest.approx(9.9)


# --------------------------------------------------------------------------- resolution of packaged ids


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"),
        ("openrouter/meta-llama/llama-3.1-8b-instruct", "llama-3.1-8b-instruct"),
        ("meta-llama/llama-3.1-8b-instruct:free", "llama-3.1-8b-instruct"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        (
            "projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash",
            "gemini-2.5-flash",
        ),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet-20240620"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet-20250219"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-20241022"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt_4o_mini", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("azure/gpt-4o", "gpt-4o"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ],
)
def test_packaged_models_resolve_from_ids_users_write(name: str, canonical: str) -> None:
    base = data.find_model(canonical)
    if base is None:
        pytest.skip(f"{canonical} not in the packaged data")
    found = data.find_model(name)
    assert found is not None, f"{name!r} did not resolve (expected {base.id!r})"
    assert found.id == base.id, f"{name!r} -> {found.id!r}, expected {base.id!r}"


def test_unresolved_id_names_close_matches() -> None:
    _acme()
    with pytest.raises(KeyError) as info:
        data.get_model("acme-chat-8b")
    err = info.value
    assert isinstance(err, data.UnknownIdError)
    assert "acme-chat-7b" in err.suggestions
    assert "acme-chat-8b" in str(err) and "acme-chat-7b" in str(err)
    assert "acme-chat-7b" in data.suggest("model", "acme-chat")


def test_registered_model_is_listed_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("otm.cli.models_cmd")
    from otm.cli import main

    _acme()
    assert main(["models"]) == 0
    assert "acme-chat-7b" in capsys.readouterr().out


# --------------------------------------------------------------------------- user data files


TOML_DATA = """
[[accelerators]]
id = "acme-npu-2"
memory_gb = 128
mem_bandwidth_tbs = 4.0
bf16_tflops = 1000
tdp_w = 700

[[regions]]
id = "ACME-DC-SOUTH"
gco2e_per_kwh = 120.0
water_l_per_kwh = 1.5

[[providers]]
id = "acme-cloud-2"
hardware = ["acme-npu-2"]
region = "ACME-DC-SOUTH"
pue = [1.15, 1.1, 1.2]

[[models]]
id = "acme-moe-40b"
aliases = ["acme/Acme-MoE-40B-A6B"]
architecture = "moe"
total_params_b = 40
active_params_b = 6
provider = "acme-cloud-2"
"""


def test_data_file_from_settings_is_loaded_at_configure(clean: Path) -> None:
    path = clean / "mine.toml"
    path.write_text(textwrap.dedent(TOML_DATA), encoding="utf-8")
    s = otm.configure(data_file=path)
    assert s.data_file == path
    m = data.find_model("acme/Acme-MoE-40B-A6B")
    assert m is not None and m.id == "acme-moe-40b" and m.active_params_b.value == pytest.approx(6)
    assert data.find_provider("acme-cloud-2").hardware == ("acme-npu-2",)  # type: ignore[union-attr]
    assert data.find_region("acme-dc-south") is not None


def test_json_data_file_from_env_loads_on_first_settings_call(
    monkeypatch: pytest.MonkeyPatch, clean: Path
) -> None:
    path = clean / "mine.json"
    rows = {"models": [{"id": "acme-json-3b", "total_params_b": 3.1, "source": "card"}]}
    path.write_text(json.dumps(rows), encoding="utf-8")
    monkeypatch.setenv("OTM_DATA_FILE", str(path))
    assert data.find_model("acme-json-3b") is None
    assert otm.settings().source("data_file") == "env:OTM_DATA_FILE"
    assert data.find_model("acme-json-3b") is not None


def test_data_file_in_pyproject_is_relative_to_it(
    monkeypatch: pytest.MonkeyPatch, clean: Path
) -> None:
    (clean / "conf").mkdir()
    (clean / "conf" / "models.toml").write_text(
        '[[models]]\nid = "acme-rel-1b"\ntotal_params_b = 1.0\n', encoding="utf-8"
    )
    (clean / "pyproject.toml").write_text(
        '[tool.otm]\ndata-file = "conf/models.toml"\n', encoding="utf-8"
    )
    sub = clean / "src"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert otm.settings().data_file == clean / "conf" / "models.toml"
    assert data.find_model("acme-rel-1b") is not None


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            '[[models]]\nid = "acme-bad"\ntotal_params_b = 7\nactive_params_b = 70\n',
            ["acme-bad", "exceeds"],
        ),
        ('[[models]]\nid = "acme-bad"\n', ["acme-bad", "total_params_b"]),
        ('[[gpus]]\nid = "x"\n', ["gpus"]),
        ('[[providers]]\nid = "acme-bad"\nhardware = ["nope-9"]\n', ["acme-bad", "hardware"]),
        ("models = [ \n", ["mine.toml"]),
    ],
)
def test_invalid_data_file_fails_at_configure_and_registers_nothing(
    clean: Path, text: str, needles: list[str]
) -> None:
    path = clean / "mine.toml"
    path.write_text(
        '[[models]]\nid = "acme-good-2b"\ntotal_params_b = 2\n' + text, encoding="utf-8"
    )
    with pytest.raises(config.ConfigError) as info:
        otm.configure(data_file=path)
    msg = str(info.value)
    assert "'data_file'" in msg
    for needle in needles:
        assert needle in msg, msg
    assert data.find_model("acme-good-2b") is None  # all or nothing


def test_data_file_reloads_when_it_changes(clean: Path) -> None:
    path = clean / "mine.toml"
    path.write_text('[[models]]\nid = "acme-v-1b"\ntotal_params_b = 1\n', encoding="utf-8")
    otm.configure(data_file=path)
    assert data.find_model("acme-v-1b").total_params_b.value == 1  # type: ignore[union-attr]
    path.write_text('[[models]]\nid = "acme-v-1b"\ntotal_params_b = 2\n', encoding="utf-8")
    os.utime(path, (os.stat(path).st_atime, os.stat(path).st_mtime + 5))
    otm.configure(data_file=path)
    assert data.find_model("acme-v-1b").total_params_b.value == 2  # type: ignore[union-attr]

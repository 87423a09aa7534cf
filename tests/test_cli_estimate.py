"""`otm estimate` and `otm models` from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from otm.cli import main
from otm.estimate import reset_floors


@pytest.fixture(autouse=True)
def _fresh_floors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the learned history would otherwise be written to the user's cache directory
    monkeypatch.setenv("OTM_CACHE_DIR", str(tmp_path / "cache"))
    reset_floors()
    yield
    reset_floors()


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_estimate_json_streamed(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(
        capsys,
        [
            "estimate",
            "--model",
            "gpt-4o",
            "--provider",
            "openai",
            "--input-tokens",
            "800",
            "--output-tokens",
            "400",
            "--ttft",
            "0.6",
            "--tps",
            "70",
            "--json",
        ],
    )
    assert isinstance(out, dict)
    e = out["energy_wh"]
    assert 0 < e["low"] <= e["value"] <= e["high"]
    assert set(out["breakdown_wh"]) == {"accelerator", "host", "idle", "facility"}
    assert out["assumptions"]["method"] == "itl"
    observed = out["assumptions"]["observed"]
    assert observed["tokens_per_s"] == pytest.approx(70, rel=1e-6)
    assert observed["itl_s"] == pytest.approx(1 / 70, rel=1e-6)
    assert 0.0 < observed["assumptions_kept"] <= 1.0
    assert out["cost_usd"] > 0


@pytest.mark.parametrize(("tps", "beyond"), [("40", False), ("400", True)])
def test_estimate_json_says_how_the_speed_was_read(
    capsys: pytest.CaptureFixture[str], tps: str, beyond: bool
) -> None:
    """400 tokens/s from an 8B model on one H100 is beyond every sampled assumption: kept,
    read as one sequence at that speed, and said so; 40 tokens/s is an ordinary stream."""
    argv = ["estimate", "--model", "llama-3.1-8b", "--provider", "local"]
    argv += ["--accelerator", "H100", "--count", "1", "--input-tokens", "500"]
    argv += ["--output-tokens", "300", "--ttft", "0.1", "--tps", tps, "--json"]
    out = _json(capsys, argv)
    a = out["assumptions"]  # type: ignore[index]
    assert a["method"] == "itl"
    notes = " ".join(a["warnings"])
    if beyond:
        assert a["observed"]["beyond_assumptions"] is True
        assert a["observed"]["assumptions_kept"] == 0.0
        assert a["effective_batch"]["value"] == 1.0
        assert "400 tokens/s is faster than any sampled assumption" in notes
    else:
        assert "beyond_assumptions" not in a["observed"] and "central_moved" not in a["observed"]
        assert a["effective_batch"]["value"] > 1.0
        assert "faster than" not in notes


def test_estimate_json_methods(capsys: pytest.CaptureFixture[str]) -> None:
    base = [
        "estimate",
        "--model",
        "gemini-2.5-flash",
        "--input-tokens",
        "400",
        "--output-tokens",
        "300",
        "--json",
    ]
    assert _json(capsys, base)["assumptions"]["method"] == "tokens"  # type: ignore[index]
    assert _json(capsys, [*base, "--duration", "5"])["assumptions"]["method"] == "latency"  # type: ignore[index]
    assert (
        _json(capsys, [*base, "--duration", "5", "--ttft", "0.5"])["assumptions"]["method"] == "itl"
    )  # type: ignore[index]


def test_estimate_accelerator_only(capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(
        capsys,
        [
            "estimate",
            "--model",
            "llama-3.1-8b",
            "--input-tokens",
            "500",
            "--output-tokens",
            "300",
            "--tps",
            "40",
            "--accelerator",
            "H100",
            "--count",
            "1",
            "--accelerator-only",
            "--json",
        ],
    )
    b = out["breakdown_wh"]  # type: ignore[index]
    assert b["host"] == b["idle"] == b["facility"] == 0.0
    assert out["assumptions"]["deployment"]["accelerator"].startswith("NVIDIA H100")  # type: ignore[index]


def test_estimate_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "estimate",
                "--model",
                "unheard-of-model-7b",
                "--input-tokens",
                "100",
                "--output-tokens",
                "50",
                "--region",
                "FRA",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    for word in (
        "energy (Wh)",
        "energy (J)",
        "carbon",
        "water",
        "accelerator",
        "facility",
        "effective batch",
        "unheard-of-model-7b",
    ):
        assert word in text


def test_estimate_rejects_inconsistent_counts(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "estimate",
            "--model",
            "gpt-4o",
            "--input-tokens",
            "10",
            "--output-tokens",
            "5",
            "--cached-tokens",
            "11",
        ]
    )
    assert rc == 2 and "--cached-tokens cannot exceed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["estimate", "--model", "gpt-4o", "--input-tokens", "-1", "--output-tokens", "5"])


def test_models_json_and_search(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, ["models", "--search", "mixtral", "--json"])
    assert isinstance(rows, list) and rows
    assert all("mixtral" in (r["id"] + r["name"]).lower() for r in rows)
    r = rows[0]
    assert {
        "id",
        "developer",
        "total_params_b",
        "active_params_b",
        "size_estimated",
        "architecture",
        "price",
    } <= set(r)


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--search", "gpt-4o"]) == 0
    text = capsys.readouterr().out
    assert "gpt-4o" in text and "est." in text


def test_engine_and_precision_reach_the_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    """A slower engine at the same speed reads a smaller batch; an FP8 precision is used."""
    import json

    from otm.cli import main

    base = ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--provider", "local",
            "--input-tokens", "500", "--output-tokens", "300", "--tps", "30",
            "--accelerator", "H100", "--json"]
    out = {}
    for engine in ("vllm", "vllm-0.4"):
        assert main([*base, "--engine", engine]) == 0
        out[engine] = json.loads(capsys.readouterr().out)
    assert out["vllm"]["assumptions"]["deployment"]["engine"] == "modern"
    assert out["vllm-0.4"]["assumptions"]["deployment"]["engine"] == "legacy"
    b = {k: v["assumptions"]["effective_batch"]["value"] for k, v in out.items()}
    assert b["vllm-0.4"] < b["vllm"]
    assert main([*base, "--precision", "fp8"]) == 0
    assert json.loads(capsys.readouterr().out)["assumptions"]["model"]["precision"] == "fp8"

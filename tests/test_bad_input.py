"""Bad input never becomes a silently smaller figure or a crash: a clear error, or a skip that is said.

Infinite or NaN facility figures used to pass ``ge=0`` checks and *lower*
the estimate; out-of-order timestamps were accepted; a deeply nested JSON
line or a broken ``.gz`` crashed ``otm report``.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

import otm
from otm import data
from otm.report.reader import LogReader

T0 = 1_700_000_000.0


def _line(i: int) -> str:
    return json.dumps(
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "startTime": T0 + i,
            "firstTokenTime": T0 + i + 0.3,
            "lastTokenTime": T0 + i + 1.3,
            "inputTokens": 100,
            "outputTokens": 80,
        }
    )


# --------------------------------------------------------------------------- Deployment


@pytest.mark.parametrize(
    "field", ["grid_gco2e_per_kwh", "water_l_per_kwh", "host_w_per_accel", "pue", "batch"]
)
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, "Infinity", "nan"])
def test_deployment_rejects_non_finite_figures(field: str, bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        otm.Deployment(**{field: bad})
    assert field in str(info.value)


def test_infinite_grid_carbon_used_to_lower_the_estimate() -> None:
    # what the bug looked like: inf passed validation and the carbon figure came out *smaller*
    tel = otm.Telemetry(model="gpt-4o-mini", provider="openai", input_tokens=500, output_tokens=300)
    finite = otm.estimate(tel, deployment=otm.Deployment(grid_gco2e_per_kwh=1e6))
    assert finite.carbon_g.value > otm.estimate(tel).carbon_g.value
    with pytest.raises(ValidationError, match="finite"):
        otm.Deployment(grid_gco2e_per_kwh=math.inf)


# --------------------------------------------------------------------------- data rows


def test_registered_rows_reject_infinity() -> None:
    with pytest.raises(ValueError, match="finite"):
        data.register_region(
            "XX-INF", name="Nowhere", gco2e_per_kwh=math.inf, water_l_per_kwh=1.0, source="user"
        )
    assert data.find_region("XX-INF") is None


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_user_data_file_with_infinity_is_an_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"mine{suffix}"
    if suffix == ".json":
        row = '{"regions": [{"id": "XX-INF2", "name": "Nowhere", "gco2e_per_kwh": Infinity, "water_l_per_kwh": 1.0}]}'
        path.write_text(row)
    else:
        path.write_text(
            '[[regions]]\nid = "XX-INF2"\nname = "Nowhere"\ngco2e_per_kwh = inf\nwater_l_per_kwh = 1.0\n'
        )
    with pytest.raises(ValueError, match="finite"):
        data.load_user_data(path)
    assert data.find_region("XX-INF2") is None


# --------------------------------------------------------------------------- Telemetry


def test_telemetry_rejects_an_end_before_the_start() -> None:
    with pytest.raises(ValidationError, match="end_time .* is before start_time"):
        otm.Telemetry(start_time=T0, end_time=T0 - 1)
    with pytest.raises(ValidationError, match="end_time"):
        otm.Telemetry.model_validate({"startTime": T0 * 1000, "endTime": T0 * 1000 - 5})
    otm.Telemetry(start_time=T0, end_time=T0)  # a zero-length call is fine


def test_telemetry_rejects_a_first_chunk_after_the_first_token() -> None:
    with pytest.raises(ValidationError, match="first_chunk_time .* is after first_token_time"):
        otm.Telemetry(start_time=T0, first_chunk_time=T0 + 0.5, first_token_time=T0 + 0.2)
    t = otm.Telemetry(start_time=T0, first_chunk_time=T0 + 0.1, first_token_time=T0 + 0.2)
    assert t.first_chunk_time == T0 + 0.1


# --------------------------------------------------------------------------- logs


def test_deeply_nested_json_line_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "nested.jsonl"
    deep = "[" * 200_000 + "]" * 200_000
    log.write_text("\n".join([_line(0), deep, '{"a":' * 100_000 + "1" + "}" * 100_000, _line(1)]) + "\n")
    reader = LogReader(log)
    rows = list(reader.rows())
    assert len(rows) == 2 and reader.skipped == 2
    assert any("skipping unreadable lines" in r.getMessage() for r in caplog.records)


def test_truncated_gzip_reads_what_is_there(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="otm")
    whole = gzip.compress(("\n".join(_line(i) for i in range(2000)) + "\n").encode())
    log = tmp_path / "cut.jsonl.gz"
    log.write_bytes(whole[: len(whole) // 2])
    reader = LogReader(log)
    rows = list(reader.rows())
    assert 0 < len(rows) < 2000 and reader.truncated
    assert [r.getMessage() for r in caplog.records if "ends early" in r.getMessage()]


def test_a_gz_name_on_a_plain_file_is_read_as_plain(tmp_path: Path) -> None:
    log = tmp_path / "plain.jsonl.gz"
    log.write_text(_line(0) + "\n" + _line(1) + "\n")
    assert len(list(LogReader(log).rows())) == 2


def test_corrupt_gzip_is_a_clear_error_in_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from otm.cli import main

    whole = bytearray(gzip.compress(("\n".join(_line(i) for i in range(500)) + "\n").encode()))
    whole[40:60] = b"\x00" * 20  # damage inside the deflate stream
    log = tmp_path / "bad.jsonl.gz"
    log.write_bytes(bytes(whole))
    rc = main(["report", str(log)])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err
    assert "bad.jsonl.gz ends early" in err and "lines before the damage" in err


def test_report_cli_on_nested_and_truncated_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from otm.cli import main

    log = tmp_path / "mixed.jsonl"
    log.write_text(_line(0) + "\n" + "[" * 100_000 + "\n" + _line(1) + "\n")
    assert main(["report", str(log), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["totals"]["requests"] == 2
    assert "skipped 1 unreadable line" in err

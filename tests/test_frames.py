"""Data frames in and out: estimate_many on pandas/Arrow/polars, ImpactBatch and records as frames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import otm
from otm.estimate import frames
from otm.telemetry import Telemetry
from otm.testing.server import scenario_headers as H

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")

FIGURES = [f"{fig}{s}" for fig in ("energy_wh", "carbon_g", "water_ml") for s in ("", "_low", "_high")]


def _log(n: int = 400, seed: int = 0) -> list[dict[str, Any]]:
    """Collector-style rows (camelCase, unix milliseconds), some without timings or usage."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        start = 1.76e12 + float(rng.uniform(0, 1e9))
        out = int(rng.integers(2, 600))
        first = start + float(rng.uniform(150, 1500))
        row: dict[str, Any] = {
            "platform": ("openai", "anthropic", "google")[i % 3],
            "modelName": ("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash")[i % 3],
            "startTime": start,
            "firstTokenTime": first,
            "lastTokenTime": first + out / float(rng.uniform(30, 150)) * 1000.0,
            "inputTokens": int(rng.integers(10, 4000)),
            "outputTokens": out,
            "streamed": bool(i % 4),
        }
        if i % 7 == 0:  # no timing at all
            row["firstTokenTime"] = row["lastTokenTime"] = None
        if i % 11 == 0:
            row["status"] = "error"
        rows.append(row)
    return rows


def _reference(rows: list[dict[str, Any]]) -> Any:
    """The record-by-record path: each row validated as a Telemetry."""
    tels = [Telemetry.model_validate({k: v for k, v in r.items() if v is not None}) for r in rows]
    return otm.estimate_many(tels, learn_floor=False)


def _same(a: Any, b: Any, rtol: float = 1e-9) -> None:
    for name in ("energy_wh_value", "energy_wh_low", "energy_wh_high", "carbon_g_value", "water_ml_high"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, err_msg=name)
    np.testing.assert_array_equal(a.method, b.method)
    np.testing.assert_array_equal(np.isnan(a.cost_usd), np.isnan(b.cost_usd))


# ---------------------------------------------------------------------- frames in


def test_estimate_many_takes_pandas_arrow_and_polars_frames() -> None:
    rows = _log()
    ref = _reference(rows)
    df = pd.DataFrame(rows)
    assert df["firstTokenTime"].isna().any()  # nulls are unknown timings
    for given in (
        df,
        pa.Table.from_pandas(df),
        pa.RecordBatch.from_pandas(df),
        pl.from_pandas(df),
        pl.from_pandas(df).lazy(),
        {k: df[k] for k in df.columns},  # a dict of Series
    ):
        _same(otm.estimate_many(given, learn_floor=False), ref)


def test_datetimes_durations_categoricals_and_nullable_ints() -> None:
    rows = _log(120, seed=1)
    ref = _reference(rows)
    df = pd.DataFrame(rows)
    df["startTime"] = pd.to_datetime(df["startTime"], unit="ms", utc=True)
    df["firstTokenTime"] = pd.to_datetime(df["firstTokenTime"], unit="ms", utc=True)
    df["lastTokenTime"] = pd.to_datetime(df["lastTokenTime"], unit="ms", utc=True)
    df["modelName"] = df["modelName"].astype("category")
    df["inputTokens"] = df["inputTokens"].astype("Int64")
    # datetimes hold whole nanoseconds: the float milliseconds round by up to 1e-7 relative
    _same(otm.estimate_many(df, learn_floor=False), ref, rtol=1e-6)
    _same(otm.estimate_many(pl.from_pandas(df), learn_floor=False), ref, rtol=1e-6)
    table = pa.Table.from_pandas(df)
    assert pa.types.is_timestamp(table.schema.field("startTime").type)
    assert pa.types.is_dictionary(table.schema.field("modelName").type)
    _same(otm.estimate_many(table, learn_floor=False), ref, rtol=1e-6)

    # derived timings as durations
    starts = df["startTime"]
    derived = pd.DataFrame(
        {
            "provider": df["platform"],
            "model": df["modelName"],
            "input_tokens": df["inputTokens"],
            "output_tokens": df["outputTokens"],
            "streamed": df["streamed"],
            "status": df.get("status"),
            "ttft_s": df["firstTokenTime"] - starts,
            "decode_s": df["lastTokenTime"] - df["firstTokenTime"],
            "duration_s": (df["lastTokenTime"] - starts),
        }
    )
    assert str(derived["ttft_s"].dtype).startswith("timedelta64")
    _same(otm.estimate_many(derived, learn_floor=False), ref, rtol=1e-6)


def test_numeric_columns_come_through_without_a_copy() -> None:
    n = 1000
    x = np.linspace(1.0, 2.0, n)
    df = pd.DataFrame({"ttft_s": x, "input_tokens": np.arange(n, dtype=np.int64)})
    cols = frames.to_columns(df)
    assert np.shares_memory(cols["ttft_s"], df["ttft_s"].to_numpy())
    table = pa.table({"ttft_s": x})
    assert np.shares_memory(frames.to_columns(table)["ttft_s"], table.column("ttft_s").chunk(0).to_numpy())
    s = pl.Series("ttft_s", x)
    assert np.shares_memory(frames.to_columns(pl.DataFrame([s]))["ttft_s"], s.to_numpy())
    # columns the estimator does not read are not converted at all
    df["prompt"] = ["x"] * n
    assert "prompt" not in frames.to_columns(df)


def test_a_missing_extra_says_which_to_install(monkeypatch) -> None:
    import sys

    batch = otm.estimate_many({"model": "gpt-4o-mini", "output_tokens": np.array([10, 20])})
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ImportError, match=r"otm\[polars\]"):
        batch.to_polars()


# ---------------------------------------------------------------------- ImpactBatch out


def test_impact_batch_as_frames() -> None:
    rows = _log(300, seed=2)
    batch = otm.estimate_many(pd.DataFrame(rows), learn_floor=False)
    df = batch.to_pandas()
    assert len(df) == len(batch)
    for col in FIGURES:
        attr = col if col.endswith(("_low", "_high")) else f"{col}_value"
        np.testing.assert_array_equal(df[col].to_numpy(), getattr(batch, attr))
    np.testing.assert_array_equal(df["energy_wh_host"].to_numpy(), batch.breakdown_wh["host"])
    for i in (0, 1, 2, 7, 299):
        imp = batch[i]
        assert df["model_id"][i] == imp.assumptions["model"]["id"]
        assert df["provider_id"][i] == imp.assumptions["deployment"]["provider"]
        assert df["region_id"][i] == imp.assumptions["site"]["region"]
        assert df["method"][i] == imp.assumptions["method"]
        assert df["effective_batch"][i] == imp.assumptions["effective_batch"]["value"]
    assert str(df["model_id"].dtype) == "category"

    table = batch.to_arrow()
    assert table.num_rows == len(batch)
    assert pa.types.is_dictionary(table.schema.field("model_id").type)
    unknown = np.isnan(batch.cost_usd)
    assert table.column("cost_usd").null_count == int(unknown.sum())  # unknown price: null
    back = table.to_pandas()
    for col in FIGURES:
        np.testing.assert_array_equal(back[col].to_numpy(), df[col].to_numpy())

    polars_df = batch.to_polars()
    assert polars_df.height == len(batch)
    assert polars_df["cost_usd"].null_count() == int(unknown.sum())
    assert polars_df["model_id"].to_list() == df["model_id"].astype(str).to_list()
    np.testing.assert_array_equal(polars_df["energy_wh"].to_numpy(), batch.energy_wh_value)


# ---------------------------------------------------------------------- records out


@pytest.fixture(scope="module")
def experiments(fake_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    """The same calls in an experiment kept in memory and one read back from its log."""
    openai = pytest.importorskip("openai")
    out = []
    otm.instrument()
    try:
        client = otm.wrap(
            openai.OpenAI(base_url=fake_server.openai_base_url, api_key="k", max_retries=0),
            provider="openai",
            tags={"team": "nlp"},
        )
        for keep in (True, False):
            with otm.experiment(
                "frames", output_dir=tmp_path_factory.mktemp("runs"), reports=(), keep_records=keep
            ) as exp:
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers=H(ttfb_s=0.02, input_tokens=24, output_tokens=60),
                )

                @otm.track(name="summarise", tags={"step": "sum"})
                def summarise() -> None:
                    s = client.chat.completions.create(
                        model="gpt-4o",
                        messages=[{"role": "user", "content": "hi"}],
                        stream=True,
                        stream_options={"include_usage": True},
                        extra_headers=H(ttfb_s=0.02, gap_s=0.01, input_tokens=30, output_tokens=12),
                    )
                    for _ in s:
                        pass

                summarise()
            out.append(exp)
        yield out
    finally:
        otm.uninstrument()


def test_an_experiments_records_as_a_pandas_frame(experiments: list[Any]) -> None:
    exp = experiments[0]
    records = exp.records
    df = exp.to_pandas()
    assert len(df) == len(records) == 2
    for i, rec in enumerate(records):
        row = df.iloc[i]
        t, imp = rec.telemetry, rec.impact
        assert row["seq"] == rec.seq and row["experiment"] == "frames"
        assert row["model"] == t.model and row["provider"] == "openai" and row["status"] == "ok"
        assert row["input_tokens"] == t.input_tokens and row["output_tokens"] == t.output_tokens
        assert row["start_time"] == t.start_time and bool(row["streamed"]) == t.streamed
        assert row["ttft_s"] == pytest.approx(t.ttft_s)
        for fig in ("energy_wh", "carbon_g", "water_ml"):
            r = getattr(imp, fig)
            assert (row[fig], row[f"{fig}_low"], row[f"{fig}_high"]) == (r.value, r.low, r.high)
        assert row["energy_wh_accelerator"] == imp.breakdown_wh["accelerator"]
        assert row["carbon_g_embodied"] == imp.carbon_breakdown_g["embodied"]
        assert row["water_ml_offsite"] == imp.water_breakdown_ml["offsite"]
        assert row["cost_usd"] == pytest.approx(imp.cost_usd)
        assert row["method"] == imp.assumptions["method"]
        assert list(row["warnings"]) == imp.warnings
        assert row["tag.team"] == "nlp"
    assert df["run"].isna().tolist() == [True, False]  # the first call was made outside the run
    assert df["run"][1] == "summarise" and list(df["runs"][1]) == ["summarise"]
    assert df["tag.step"][1] == "sum" and df["tag.step"].isna()[0]  # the run's tags reach its calls
    assert "prompt" not in df.columns  # not captured, so no column


def test_arrow_and_polars_hold_the_same_table(experiments: list[Any]) -> None:
    exp = experiments[0]
    df = exp.to_pandas()
    table = exp.to_arrow()
    polars_df = exp.to_polars()
    assert table.column_names == list(df.columns) == polars_df.columns
    for col in (*FIGURES, "input_tokens", "start_time", "cost_usd"):
        np.testing.assert_array_equal(table.column(col).to_numpy(), df[col].to_numpy())
        np.testing.assert_array_equal(polars_df[col].to_numpy(), df[col].to_numpy())
    assert table.column("runs").to_pylist() == [[], ["summarise"]]
    assert polars_df["model"].to_list() == ["gpt-4o-mini", "gpt-4o"]


def test_a_log_read_back_gives_the_same_table(experiments: list[Any]) -> None:
    kept, logged = experiments
    a, b = kept.to_pandas(), logged.to_pandas()
    assert list(a.columns) == list(b.columns)
    for col in ("model", "input_tokens", "output_tokens", "streamed", "run", "tag.team", "tag.step"):
        assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col
    assert b["experiment"].tolist() == ["frames", "frames"]
    assert json.dumps(b["runs"].map(list).tolist()) == '[[], ["summarise"]]'
    # the log holds telemetry only (written before each call returned); read back,
    # each line is estimated again, to the figures the kept records have, up to the
    # per-deployment floor the estimator keeps learning from the streams it has seen
    # (a later estimate of the same call may differ by about 1 %)
    lines = [json.loads(x) for x in Path(logged.log_path).read_text().splitlines()]
    assert all("impact" not in x for x in lines)
    np.testing.assert_allclose(b["energy_wh"].to_numpy(), a["energy_wh"].to_numpy(), rtol=5e-2)


def test_a_records_frame_feeds_back_into_estimate_many(experiments: list[Any]) -> None:
    exp = experiments[0]
    again = otm.estimate_many(exp.to_pandas(), learn_floor=False)
    ref = otm.estimate_many([r.telemetry for r in exp.records], learn_floor=False)
    _same(again, ref)
    _same(otm.estimate_many(exp.to_polars(), learn_floor=False), ref)
    _same(otm.estimate_many(exp.to_arrow(), learn_floor=False), ref)


def test_a_run_as_a_frame(experiments: list[Any]) -> None:
    run = experiments[0].runs[0]
    df = run.to_pandas()
    assert df["model"].tolist() == ["gpt-4o"] and df["run"].tolist() == ["summarise"]
    assert run.to_arrow().num_rows == 1 and run.to_polars().height == 1

"""docs/scale.md, run: a partitioned call log estimated with Dask equals one estimate_many.

The log (otm.testing.logs) is written as Parquet partitioned by service and
day, and as one JSONL file per partition; Dask's local threaded scheduler
maps ``estimate_partition`` (the function docs/scale.md shows) over the
partitions. Totals, per-record figures, per-service sums and the combined
range must equal a single ``otm.estimate_many`` over the same rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import otm
from otm.report.ranges import RangeSum
from otm.testing.logs import call_log

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

N = 6_000
FIGURES = ["energy_wh", "energy_wh_low", "energy_wh_high", "carbon_g", "water_ml", "cost_usd"]
KEYS = ["requestId", "service", "day", "platform", "modelName"]


# The function docs/scale.md shows, as it is written there.
def estimate_partition(part):
    impacts = otm.estimate_many(part, learn_floor=False).to_pandas()[FIGURES]
    impacts.index = part.index
    return pd.concat([part[KEYS], impacts], axis=1)


def combined_range(est) -> tuple[float, float, float]:
    """docs/scale.md: lows and highs add within a (provider, model), groups add in quadrature."""
    g = est.groupby(["platform", "modelName"])[["energy_wh", "energy_wh_low", "energy_wh_high"]].sum()
    g = g.compute() if hasattr(g, "compute") else g
    value = g["energy_wh"].sum()
    low = value - math.sqrt(((g["energy_wh"] - g["energy_wh_low"]) ** 2).sum())
    high = value + math.sqrt(((g["energy_wh_high"] - g["energy_wh"]) ** 2).sum())
    return value, low, high


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("scale")
    df = pd.DataFrame(call_log(N, seed=7, services=3, days=2))
    parquet = root / "calls-parquet"
    df.to_parquet(parquet, partition_cols=["service", "day"])
    jsonl = root / "calls-jsonl"
    jsonl.mkdir()
    for (service, day), part in df.groupby(["service", "day"]):
        part.to_json(jsonl / f"{service}-{day}.jsonl", orient="records", lines=True)
    return parquet, jsonl, df


@pytest.fixture(scope="module")
def single(log):
    """The reference: one estimate_many over every row, read back by pandas."""
    df = pd.read_parquet(log[0])
    return estimate_partition(df.reset_index(drop=True))


def test_dask_on_partitioned_parquet_equals_one_estimate_many(log, single) -> None:
    ddf = dd.read_parquet(log[0])
    assert ddf.npartitions == 6  # one per service and day
    est = ddf.map_partitions(estimate_partition)
    with dask.config.set(scheduler="threads"):
        totals = est[FIGURES].sum().compute()
        rows = est.compute()
    assert len(rows) == N
    for col in FIGURES:
        assert totals[col] == pytest.approx(single[col].sum(), rel=1e-9), col
    # record by record, whatever order the partitions came back in
    a = rows.set_index("requestId").sort_index()
    b = single.set_index("requestId").sort_index()
    assert a.index.equals(b.index)
    for col in FIGURES:
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-12, err_msg=col)
    # per service, as a fleet report would split it
    with dask.config.set(scheduler="threads"):
        by_service = est.groupby("service", observed=True)["energy_wh"].sum().compute()
    ref = single.groupby("service", observed=True)["energy_wh"].sum()
    for service, value in ref.items():
        assert by_service[service] == pytest.approx(value, rel=1e-9)


def test_dask_on_jsonl_files_equals_one_estimate_many(log, single) -> None:
    ddf = dd.read_json(str(log[1] / "*.jsonl"), lines=True)
    assert ddf.npartitions == 6
    est = ddf.map_partitions(estimate_partition)
    with dask.config.set(scheduler="threads"):
        totals = est[FIGURES].sum().compute()
    for col in FIGURES:
        assert totals[col] == pytest.approx(single[col].sum(), rel=1e-9), col


def test_the_combined_range_is_the_reports_rule(log, single) -> None:
    est = dd.read_parquet(log[0]).map_partitions(estimate_partition)
    with dask.config.set(scheduler="threads"):
        value, low, high = combined_range(est)
    rs = RangeSum()
    for row in single.itertuples():
        rs.add((row.platform, row.modelName), row.energy_wh, row.energy_wh_low, row.energy_wh_high)
    total = rs.total()
    assert value == pytest.approx(total.value, rel=1e-9)
    assert low == pytest.approx(total.low, rel=1e-9) and high == pytest.approx(total.high, rel=1e-9)
    assert low < value < high

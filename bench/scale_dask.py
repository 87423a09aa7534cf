"""Throughput of estimating a partitioned call log with Dask (docs/scale.md).

    python bench/scale_dask.py [--rows 1000000] [--services 12] [--days 4]

Writes a synthetic log (otm.testing.logs.call_log) as Parquet partitioned by
service and day into a temporary directory, then estimates every call:

* ``single``: one ``otm.estimate_many`` over the whole log read with pandas;
* ``dask threads``: ``map_partitions`` on Dask's local threaded scheduler;
* ``dask processes``: the same on Dask's local process scheduler.

and prints records per second for each (reading the Parquet included for
the Dask runs, excluded for ``single``), and checks that the totals agree.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

import otm
from otm.testing.logs import call_log

FIGURES = ["energy_wh", "energy_wh_low", "energy_wh_high", "carbon_g", "water_ml", "cost_usd"]


def estimate_partition(part: pd.DataFrame) -> pd.DataFrame:
    """One partition of the log in, the same rows out with their figures (docs/scale.md)."""
    impacts = otm.estimate_many(part, learn_floor=False).to_pandas()[FIGURES]
    impacts.index = part.index
    return pd.concat([part[["requestId", "service", "day", "modelName"]], impacts], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--services", type=int, default=12)
    ap.add_argument("--days", type=int, default=4)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "calls")
        t = time.perf_counter()
        pd.DataFrame(call_log(args.rows, services=args.services, days=args.days)).to_parquet(
            root, partition_cols=["service", "day"]
        )
        print(f"wrote {args.rows:,} rows in {time.perf_counter() - t:.1f} s")

        df = pd.read_parquet(root)
        otm.estimate_many(df.head(1000), learn_floor=False)  # load the reference data once
        t = time.perf_counter()
        single = otm.estimate_many(df, learn_floor=False)
        dt = time.perf_counter() - t
        ref = float(single.energy_wh_value.sum())
        print(f"single estimate_many: {len(df) / dt:,.0f} records/s ({dt:.1f} s)")
        del df

        for scheduler in ("threads", "processes"):
            log = dd.read_parquet(root)
            est = log.map_partitions(estimate_partition)
            t = time.perf_counter()
            with dask.config.set(scheduler=scheduler):
                totals = est[FIGURES].sum().compute()
            dt = time.perf_counter() - t
            print(
                f"dask {scheduler} ({log.npartitions} partitions, {os.cpu_count()} CPUs): "
                f"{args.rows / dt:,.0f} records/s ({dt:.1f} s), "
                f"energy {totals['energy_wh']:.6g} Wh (single: {ref:.6g} Wh)"
            )
            assert np.isclose(totals["energy_wh"], ref, rtol=1e-9)


if __name__ == "__main__":
    main()

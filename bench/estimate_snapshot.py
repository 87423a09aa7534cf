"""Did a change to the estimator move any figure? Snapshot every output, compare two snapshots.

    python bench/estimate_snapshot.py save before.pkl     # on the old code
    python bench/estimate_snapshot.py save after.pkl      # on the new code
    python bench/estimate_snapshot.py compare before.pkl after.pkl [--rtol 1e-12]

What is kept: on the seeded sweep of tests/estimate_sweep.py (telemetry x
deployment x region), each ``estimate()`` alone (a fresh history) and in
sequence (the history learned as it goes), ``estimate_many`` of the whole
sweep per deployment and region, and every array of an ``estimate_many`` over
synthetic columns (bench/estimate.py's records). ``compare`` walks them value by
value: strings, flags and keys must be equal, floats equal within ``rtol``
(relative; NaN equals NaN), and it prints the largest relative difference.
For speed work (structural changes only) it should say 0 or a few 1e-16.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from estimate import synthetic  # noqa: E402  (bench/estimate.py)
from estimate_sweep import sweep  # noqa: E402  (tests/estimate_sweep.py)

from otm.estimate import estimate, estimate_many, reset_floors  # noqa: E402
from otm.estimate.floor import set_persistence  # noqa: E402

_BATCH_FIELDS = (
    "energy_wh_value", "energy_wh_low", "energy_wh_high",
    "carbon_g_value", "carbon_g_low", "carbon_g_high",
    "water_ml_value", "water_ml_low", "water_ml_high",
    "cost_usd", "batch_value", "batch_low", "batch_high",
    "count_value", "count_low", "count_high", "method", "flags", "kept", "group", "itl_s",
)  # fmt: skip


def _batch(b: Any) -> dict[str, Any]:
    out: dict[str, Any] = {k: np.asarray(getattr(b, k)).tolist() for k in _BATCH_FIELDS}
    for name in ("breakdown_wh", "carbon_breakdown_g", "water_breakdown_ml"):
        out[name] = {k: v.tolist() for k, v in getattr(b, name).items()}
    out["totals"] = b.totals().model_dump()
    out["rows"] = [b[i].model_dump() for i in range(0, len(b), max(1, len(b) // 50))]
    return out


def snapshot(cases: int, records: int) -> dict[str, Any]:
    set_persistence(False)
    sw = sweep(cases, seed=10)
    snap: dict[str, Any] = {}
    alone = []
    for t, dep, region in sw:
        reset_floors()
        alone.append(estimate(t, deployment=dep, region=region).model_dump())
    snap["alone"] = alone
    reset_floors()
    snap["sequence"] = [estimate(t, deployment=dep, region=region).model_dump() for t, dep, region in sw]
    groups: dict[tuple[Any, Any], list[Any]] = {}
    for t, dep, region in sw:
        groups.setdefault((dep, region), []).append(t)
    reset_floors()
    snap["many"] = [
        _batch(estimate_many(ts, deployment=dep, region=region)) for (dep, region), ts in groups.items()
    ]
    reset_floors()
    snap["columns"] = _batch(estimate_many(synthetic(records)))
    reset_floors()
    snap["columns_no_history"] = _batch(estimate_many(synthetic(records, seed=2), learn_floor=False))
    return snap


def _walk(a: Any, b: Any, path: str, rtol: float, worst: list[Any], errors: list[str]) -> None:
    if len(errors) > 20:
        return
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            errors.append(f"{path}: keys differ")
            return
        for k in a:
            _walk(a[k], b[k], f"{path}/{k}", rtol, worst, errors)
    elif isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            errors.append(f"{path}: lengths differ")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, f"{path}[{i}]", rtol, worst, errors)
    elif isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b) or a == b:
            return
        rel = abs(a - b) / max(abs(a), abs(b))
        if rel > worst[0]:
            worst[0], worst[1] = rel, f"{path}: {a!r} vs {b!r}"
        if rel > rtol:
            errors.append(f"{path}: {a!r} vs {b!r} (relative {rel:.3g})")
    elif a != b or type(a) is not type(b):
        errors.append(f"{path}: {a!r} vs {b!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("path")
    s.add_argument("--cases", type=int, default=600)
    s.add_argument("--records", type=int, default=20_000)
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    c.add_argument("--rtol", type=float, default=1e-12)
    args = ap.parse_args()
    if args.cmd == "save":
        Path(args.path).write_bytes(pickle.dumps(snapshot(args.cases, args.records)))
        return 0
    a = pickle.loads(Path(args.before).read_bytes())  # noqa: S301 - files this script wrote
    b = pickle.loads(Path(args.after).read_bytes())  # noqa: S301
    worst: list[Any] = [0.0, ""]
    errors: list[str] = []
    _walk(a, b, "", args.rtol, worst, errors)
    floats = sum(1 for _ in _floats(a))
    print(f"{floats:,} numbers compared; largest relative difference {worst[0]:.3g} {worst[1]}")
    for e in errors[:20]:
        print("DIFFERS", e)
    print("identical within rtol" if not errors else f"{len(errors)}+ differences beyond rtol {args.rtol:g}")
    return 1 if errors else 0


def _floats(x: Any) -> Any:
    if isinstance(x, dict):
        for v in x.values():
            yield from _floats(v)
    elif isinstance(x, list):
        for v in x:
            yield from _floats(v)
    elif isinstance(x, float):
        yield x


if __name__ == "__main__":
    raise SystemExit(main())

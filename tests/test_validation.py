"""The validation figures of docs/validation.md, pinned: a regression in the estimator fails here.

Each split's constants were fitted on its training set only
(`bench/calibration/fits.json`, `python bench/validate.py --fit`); these tests
score the held-out configurations with the estimator itself and fail if the
out-of-sample figures get worse than measured (with a small margin). The
bounds are the figures docs/validation.md reports, not the goal of issue 10
(which they do not meet; the document says where the gap is).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def validate() -> ModuleType:
    return _bench("validate")


@pytest.fixture(scope="module")
def results(validate: ModuleType) -> dict[str, Any]:
    points = _bench("mlenergy").load_points()
    assert len(points) == 262, "75 v2 and 187 v3 configurations"
    return validate.evaluate(points, validate.load_fits())


# measured (docs/validation.md) -> bound with a margin: median |error|, within 1.5x, coverage
BOUNDS = {
    "joint": (0.18, 0.70, 0.80),
    "v2->v3": (0.55, 0.36, 0.52),
    "v3->v2": (0.33, 0.56, 0.70),
    "lomo (pooled)": (0.26, 0.64, 0.75),
    "logo:h100-sxm": (0.62, 0.40, 0.64),
    "logo:b200": (0.50, 0.37, 0.48),
}
# The discrepancy term's spread is chosen on the training side's leave-one-model-out
# ranges so that their median width stays within the goal's 3x; scored on an engine
# generation or GPU type it never saw, the width may come out a little above it.
WIDTH = {"joint": 3.0, "lomo (pooled)": 3.0}


@pytest.mark.parametrize("split", sorted(BOUNDS))
def test_out_of_sample_figures_do_not_regress(results: dict[str, Any], split: str) -> None:
    m = results[split]["metrics"]
    median_abs, within, coverage = BOUNDS[split]
    assert m["median_abs"] <= median_abs, m
    assert m["within_1_5"] >= within, m
    assert m["coverage"] >= coverage, m
    assert m["width"] <= WIDTH.get(split, 3.6), m  # no coverage bought by width


def test_the_discrepancy_spread_is_chosen_without_the_split_it_scores(validate: ModuleType) -> None:
    """Each left-out model's spread comes from the other models only: a change to one
    model's ranges cannot move the spread it is scored with."""
    points = _bench("mlenergy").load_points()
    fits = validate.load_fits()
    ranges = validate.lomo_ranges(points, fits)
    ks = validate.split_k(points, ranges)
    name = "lomo:qwen3-8b"
    inside, width = ranges[name]
    # make this model's own ranges look perfect at the narrowest spread, and hopeless at
    # every other: its own spread must not follow
    tampered = dict(ranges)
    tampered[name] = (np.zeros_like(inside), width * 100.0)
    assert validate.split_k(points, tampered)[name] == ks[name]
    from otm.estimate import DEFAULT

    assert DEFAULT.model_discrepancy == pytest.approx((1.0, 1.0 / ks["joint"][0], ks["joint"][1]), rel=1e-3)


def test_the_packaged_constants_are_the_joint_fit(validate: ModuleType) -> None:
    from otm.estimate import DEFAULT

    joint = validate.load_fits()["joint"].calibration(DEFAULT)
    for k in ("eta_bw", "eta_flops", "gemm_half_rows", "u_wait", "u_mem", "u_comp"):
        assert getattr(DEFAULT, k) == pytest.approx(getattr(joint, k), rel=1e-3), k
    from otm.estimate.engine import LEGACY, MODERN

    fitted = dict(joint.engines)
    for e in (MODERN, LEGACY):
        f = fitted[e.name]
        for field in ("t0_s", "c_seq_s", "a_coll_s"):
            assert getattr(e, field)[0] == pytest.approx(getattr(f, field)[0], rel=1e-3), (e.name, field)


def test_transfer_between_engine_generations_keeps_the_other_engine_at_its_prior(validate: ModuleType) -> None:
    from otm.estimate.engine import LEGACY_PRIOR, MODERN_PRIOR

    fits = validate.load_fits()
    assert fits["v2->v3"].engines["modern"].t0_s[0] == pytest.approx(MODERN_PRIOR.t0_s[0])
    assert fits["v3->v2"].engines["legacy"].t0_s[0] == pytest.approx(LEGACY_PRIOR.t0_s[0])


def test_each_request_alone_on_an_h200() -> None:
    """bench/table4.py on one H200 (not used to fit): every measurement inside its range;
    the short requests within the 10 % goal, the long one at its measured -22 %
    (docs/validation.md says why it misses: it steps 7 % above otm's one-sequence step,
    where the batch is hardly identified)."""
    rows = _bench("h200").rows(None)
    assert [r["request"] for r in rows] == ["100/300", "1000/1000", "10000/1500"]
    for r in rows:
        assert r["low_j"] <= r["measured_j"] <= r["high_j"], r
    for r in rows[:2]:
        assert 0.9 <= r["ratio"] <= 1.1, rows
    assert 0.75 <= rows[2]["ratio"] <= 1.1, rows


def test_every_comparable_disclosure_lies_inside_otms_range() -> None:
    d = _bench("disclosures")
    res = d.results()
    assert len([r for r in res if r["d"].kind == "disclosure"]) >= 5
    for r in res:
        if r["d"].comparable and r["d"].kind == "disclosure":
            assert r["inside"], (r["d"].who, r["low"], r["d"].figure, r["high"])

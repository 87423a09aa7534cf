"""The ML.ENERGY validation bound: a regression in the estimator's physics fails here.

The estimator sees only model, GPU, GPU count, time per output token and output
length (bench/validate.py, docs/validation.md) and must land near the measured
GPU energy per request. Bounds are the errors measured when the constants were
fitted, with a margin; see docs/validation.md for the numbers.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_validate() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "otm_bench_validate", ROOT / "bench" / "validate.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def validate() -> ModuleType:
    return _load_validate()


@pytest.fixture(scope="module")
def scored(validate: ModuleType) -> list:  # type: ignore[type-arg]
    points = validate.load_points()
    assert len(points) == 75, "bench/calibration/mlenergy_v2 should hold the 75 configurations"
    return validate.score(points)


def test_median_error_per_model(validate: ModuleType, scored: list) -> None:  # type: ignore[type-arg]
    s = validate.summary(scored)
    # measured: 5.0 % (8B) .. 13.9 % (70B); 9.5 % over all 75
    for model, r in s.items():
        assert r["median_abs"] <= 0.18, (model, r)
    assert s["all"]["median_abs"] <= 0.12
    assert abs(s["all"]["bias"]) <= 0.12  # measured +7.0 %


def test_worst_error_outside_the_small_batch_trap(scored: list) -> None:  # type: ignore[type-arg]
    # At batch >= 100 the batch is well identified from the speed: worst measured 31.8 %.
    big = [abs(s.rel_err) for s in scored if s.point.batch_eff >= 100]
    assert len(big) >= 60
    assert max(big) <= 0.40
    # Below, the batch is poorly identified (docs: "two traps"); the worst case
    # (Mixtral 8x7B on 4 A100 at batch 32: +329 %) is bounded, not hidden.
    assert max(abs(s.rel_err) for s in scored) <= 4.0


def test_ranges_cover_the_measurements(validate: ModuleType, scored: list) -> None:  # type: ignore[type-arg]
    s = validate.summary(scored)
    assert s["all"]["coverage"] >= 0.85  # measured 90.7 %
    for s_ in scored:
        assert s_.low_j <= s_.value_j <= s_.high_j


def test_inferred_batch_tracks_the_measured_batch(scored: list) -> None:  # type: ignore[type-arg]
    import numpy as np

    big = [(s.batch, s.point.batch_eff) for s in scored if s.point.batch_eff >= 100]
    ratio = np.array([b / m for b, m in big])
    assert np.median(np.abs(np.log(ratio))) <= np.log(1.2)

"""The one-record path: ``estimate()`` gives ``estimate_many``'s figures, and its caches move.

``estimate()`` runs the estimator's one ``compute`` on a row of plain numbers and keeps
what depends only on the model, deployment, region and calibration with the cached
group (docs/architecture.md "One estimate"). These tests hold it to the vectorised
path on a seeded sweep of telemetry x deployment x region (streams, non-streamed
calls, missing timings, hosted and self-hosted, dense, MoE and hybrid models), and
check that what it keeps is let go when the data, the settings or the learned
history change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from estimate_sweep import sweep

import otm
from otm import data
from otm.deployment import Deployment
from otm.estimate import estimate, estimate_many, reset_floors
from otm.estimate.assemble import build_group
from otm.estimate.calibration import DEFAULT
from otm.estimate.group import history_mask
from otm.estimate.hardware import hardware_plan
from otm.estimate.provider import model_work
from otm.estimate.results import summarise, summarise_one
from otm.estimate.stamp import data_stamp
from otm.estimate.user import METHODS, columns, row
from otm.telemetry import Telemetry

T0 = 1.7e9


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    reset_floors()
    yield
    reset_floors()
    data.unregister_all()


def _diff(a: Any, b: Any, path: str = "") -> str | None:
    """Where two model_dump()s differ (floats exactly; NaN equals NaN), or None."""
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b) if isinstance(b, dict) else b!r}"
        for k in a:
            d = _diff(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    return None if a == b and type(a) is type(b) else f"{path}: {a!r} != {b!r}"


def _stream(model: str, provider: str | None, itl: float, out: int = 300, inp: int = 800) -> Telemetry:
    return Telemetry(
        model=model,
        provider=provider,
        input_tokens=inp,
        output_tokens=out,
        streamed=True,
        start_time=T0,
        first_token_time=T0 + 0.4,
        last_token_time=T0 + 0.4 + (out - 1) * itl,
    )


# --- the one-record path is estimate_many's row ---------------------------------


CASES = sweep(600, seed=10)


def test_the_sweep_covers_every_method_and_reading() -> None:
    """The sweep reaches what the fast path must get right (else the tests below prove less)."""
    methods, flags = set(), set()
    for t, dep, region in CASES:
        reset_floors()
        im = estimate(t, deployment=dep, region=region)
        methods.add(im.assumptions["method"])
        obs = im.assumptions.get("observed", {})
        flags.add((bool(obs.get("central_moved")), bool(obs.get("beyond_assumptions"))))
    assert methods == set(METHODS)
    assert {(True, False), (False, True), (False, False)} <= flags


def test_one_estimate_is_estimate_many_of_it_across_the_sweep() -> None:
    for i, (t, dep, region) in enumerate(CASES):
        reset_floors()
        one = estimate(t, deployment=dep, region=region)
        reset_floors()
        many = estimate_many([t], deployment=dep, region=region)[0]
        d = _diff(one.model_dump(), many.model_dump())
        assert d is None, f"case {i} ({t.model}, {dep!r}, {region!r}): {d}"


def test_one_estimate_is_its_row_of_a_batch() -> None:
    """Within a batch of many records (other rows, other groups), without learning."""
    ts = [c[0] for c in CASES[:200]]
    batch = estimate_many(ts, region="FRA", learn_floor=False)
    for i, t in enumerate(ts):
        reset_floors()
        d = _diff(estimate(t, region="FRA").model_dump(), batch[i].model_dump())
        assert d is None, f"record {i} ({t.model}): {d}"


def test_one_estimate_after_another_learns_as_estimate_many_does() -> None:
    """Estimates in sequence teach each deployment's history (the floor moves as they
    go); the one-record path must follow it exactly as estimate_many of each does."""
    # a few deployments, so each one's history fills and moves
    few = [
        ("gpt-4o", "openai", None, None),
        ("claude-sonnet-4-5", "anthropic", None, "FRA"),
        ("llama-3.1-8b", None, Deployment.accelerator_only("H100", 1), None),
        ("Qwen/Qwen3-30B-A3B", None, Deployment(provider="local", accelerator="H200"), None),
    ]
    seq = []
    for i, (t, _, _) in enumerate(CASES[:400]):
        model, provider, dep, region = few[i % len(few)]
        seq.append((t.model_copy(update={"model": model, "provider": provider}), dep, region))
    singles = [estimate(t, deployment=d, region=r).model_dump() for t, d, r in seq]
    reset_floors()
    manys = [estimate_many([t], deployment=d, region=r)[0].model_dump() for t, d, r in seq]
    for i, (a, b) in enumerate(zip(singles, manys, strict=True)):
        assert _diff(a, b) is None, f"call {i}: {_diff(a, b)}"
    floors = {s["assumptions"]["history"]["itl_floor_s"] for s in singles if "history" in s["assumptions"]}
    assert len(floors) > 50  # the learned state did move


def test_row_is_columns_record_by_record() -> None:
    cal = DEFAULT
    kw = {"min_plausible_itl_s": cal.min_plausible_itl_s, "min_tokens_for_floor": cal.min_tokens_for_floor}
    ts = [c[0] for c in CASES]
    c = columns(ts, **kw)
    for i, t in enumerate(ts):
        x = row(t, **kw)
        for name in ("fresh_in", "cached_in", "output", "duration_s", "itl_s"):
            got, want = getattr(x, name), float(getattr(c, name)[i])
            assert got == want or (math.isnan(got) and math.isnan(want)), (i, name, got, want)
        assert x.method == int(c.method[i]) and x.floor_ok == bool(c.floor_ok[i]), i
        assert (x.provider, x.model, x.status) == (c.provider[i], c.model[i], c.status[i]), i


# --- what is kept is let go when it should be -----------------------------------


def _from_scratch(t: Telemetry, **kw: Any) -> dict[str, Any]:
    """The estimate with every cache of the estimator emptied first (the reference)."""
    for f in (build_group, model_work, hardware_plan):
        f.cache_clear()
    reset_floors()
    out = estimate(t, **kw).model_dump()
    reset_floors()
    return out


def test_registering_a_model_at_run_time_reaches_the_next_estimate() -> None:
    t = _stream("acme-fast-1", None, 0.02)
    data.register_model("acme-fast-1", total_params_b=8, source="test")
    small = estimate(t).model_dump()
    reset_floors()
    data.register_model("acme-fast-1", total_params_b=70, source="test")  # no cache cleared
    big = estimate(t).model_dump()
    assert big["energy_wh"]["value"] != small["energy_wh"]["value"]
    assert big["assumptions"]["model"]["total_params_b"]["value"] == 70.0
    assert _diff(big, _from_scratch(t)) is None


def test_registering_an_accelerator_at_run_time_reaches_the_next_estimate() -> None:
    t = _stream("llama-3.1-8b", None, 0.02)
    dep = Deployment.accelerator_only("acme-gpu", 1)
    kw = {"memory_gb": 80, "bf16_tflops": 900, "tdp_w": 700, "idle_w": 80}
    data.register_accelerator("acme-gpu", mem_bandwidth_tbs=3.0, source="test", **kw)
    slow = estimate(t, deployment=dep).model_dump()
    reset_floors()
    data.register_accelerator("acme-gpu", mem_bandwidth_tbs=6.0, source="test", **kw)
    fast = estimate(t, deployment=dep).model_dump()
    assert fast["energy_wh"]["value"] != slow["energy_wh"]["value"]
    assert _diff(fast, _from_scratch(t, deployment=dep)) is None


def test_registering_a_region_at_run_time_reaches_the_next_estimate() -> None:
    t = _stream("gpt-4o", "openai", 0.02)
    data.register_region("acme-grid", gco2e_per_kwh=100.0, water_l_per_kwh=1.0, source="test")
    clean = estimate(t, region="acme-grid").model_dump()
    reset_floors()
    data.register_region("acme-grid", gco2e_per_kwh=700.0, water_l_per_kwh=1.0, source="test")
    dirty = estimate(t, region="acme-grid").model_dump()
    assert dirty["carbon_g"]["value"] > 3 * clean["carbon_g"]["value"]
    assert _diff(dirty, _from_scratch(t, region="acme-grid")) is None


def test_configure_region_reaches_the_next_estimate(configure: Any) -> None:
    t = _stream("gpt-4o", "openai", 0.02)
    seen = {}
    for region in ("FRA", "IND", None):
        configure(region=region)
        im = estimate(t)
        seen[region] = (im.assumptions["site"]["region"], im.carbon_g.value)
        reset_floors()
    assert seen["FRA"][0] == "FRA" and seen["IND"][0] == "IND"
    assert seen[None][0] not in ("FRA", "IND")  # back to the provider's default
    assert seen["IND"][1] > 3 * seen["FRA"][1]  # coal-heavy grid against a nuclear one


def test_equal_deployments_share_a_group_and_others_do_not() -> None:
    a = Deployment(accelerator="H100", count=2, region="FRA")
    b = Deployment(accelerator="H100", count=2, region="FRA")  # another object, same values
    c = Deployment(accelerator="H100", count=4, region="FRA")
    ga = build_group("llama-3.1-70b", None, a, None, DEFAULT, data_stamp())
    assert build_group("llama-3.1-70b", None, b, None, DEFAULT, data_stamp()) is ga
    assert build_group("llama-3.1-70b", None, c, None, DEFAULT, data_stamp()) is not ga
    t = _stream("llama-3.1-70b", None, 0.03)
    assert estimate(t, deployment=a).assumptions["deployment"]["count"]["value"] == 2.0
    assert estimate(t, deployment=c).assumptions["deployment"]["count"]["value"] == 4.0


def test_the_history_mask_follows_the_learned_floor() -> None:
    """The mask kept with a group is the one its current floor gives, however the floor
    moved (slow streams first, then ever faster ones on the same deployment)."""
    g = build_group("gpt-4o", "openai", None, None, DEFAULT, data_stamp())
    kept = []
    for itl in [*np.full(8, 0.06), *np.geomspace(0.05, 0.004, 40)]:
        im = estimate(_stream("gpt-4o", "openai", float(itl)))
        h = im.assumptions.get("history")
        if h is None:
            continue
        ok, notes = history_mask(g, h["itl_floor_s"], h["streams"])
        want = None if ok is None else float(np.mean(ok[1:]))
        assert h["assumptions_kept"] == want, (itl, h)
        for note in notes:
            assert note in im.warnings
        kept.append(want)
    assert len(set(kept)) > 3  # the floor moved and the mask with it


def test_an_impact_is_its_own_to_change() -> None:
    t = _stream("claude-sonnet-4-5", "anthropic", 0.02)
    first = estimate(t)
    before = first.model_dump()
    first.assumptions["model"]["id"] = "changed"
    first.assumptions["site"]["pue"]["value"] = -1.0
    first.assumptions["deployment"]["accelerator_alternatives"].append("changed")
    first.assumptions["warnings"].append("changed")
    again = estimate(t).model_dump()
    assert again["assumptions"]["model"]["id"] == before["assumptions"]["model"]["id"]
    assert again["assumptions"]["site"] == before["assumptions"]["site"]
    assert "changed" not in again["assumptions"]["deployment"]["accelerator_alternatives"]
    assert "changed" not in again["assumptions"]["warnings"]


def test_an_estimate_accepts_a_mapping_and_the_package_call() -> None:
    t = _stream("gemini-2.5-flash", "google", 0.01)
    a = estimate(t).model_dump()
    reset_floors()
    b = otm.estimate(t.model_dump(by_alias=True)).model_dump()
    assert _diff(a, b) is None


def test_summarise_one_is_summarise_of_its_rows() -> None:
    """The one-request reduction (summarise_one) gives summarise's figures for every allowed
    set: all samples, some, none (then all), and a central sample other than 0."""
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=(5, 65))
    masks = [np.ones(65, bool), rng.random(65) > 0.5, np.zeros(65, bool), rng.random(65) > 0.9]
    for ok in masks:
        for cen in (0, 7):
            one = summarise_one(x, (5.0, 95.0), ok, cen)
            many = summarise(x, (5.0, 95.0), ok[None, :], cen)
            for a, b in zip(one, many, strict=True):
                assert np.array_equal(a, b), (ok.sum(), cen)

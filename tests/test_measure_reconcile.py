"""Reconciliation math on hand-made measurements and records with known impacts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from otm.deployment import Deployment
from otm.impact import Impact, Range
from otm.measure import GpuMeasurement, GpuMeter, reconcile
from otm.measure.meter import DeviceEnergy
from otm.record import Record
from otm.telemetry import Telemetry

T0 = 1_700_000_000.0


def measurement(
    watts: float = 360.0,
    seconds: float = 10.0,
    *,
    trace: list[tuple[float, float]] | None = None,
    idle_w: float | None = None,
    devices: int = 1,
    name: str = "NVIDIA H200",
) -> GpuMeasurement:
    """A window from T0 of ``seconds``; constant ``watts`` unless a (t offset, watts) step trace is given."""
    if trace is None:
        trace = [(0.0, watts)]
    ts, js = [T0], [0.0]
    for i, (t, w) in enumerate(trace):
        t_next = trace[i + 1][0] if i + 1 < len(trace) else seconds
        ts.append(T0 + t_next)
        js.append(js[-1] + w * (t_next - t))
    total = js[-1]
    devs = tuple(
        DeviceEnergy(
            index=i,
            name=name,
            uuid=None,
            method="counter",
            energy_j=total / devices,
            duration_s=seconds,
            peak_power_w=None,
            samples=10,
            idle_power_w=None if idle_w is None else idle_w / devices,
        )
        for i in range(devices)
    )
    return GpuMeasurement(
        devices=devs,
        start_time=T0,
        end_time=T0 + seconds,
        duration_s=seconds,
        interval_s=0.05,
        peak_power_w=max(w for _, w in trace),
        trace_t=tuple(ts),
        trace_j=tuple(js),
    )


def impact(wh: float, low: float | None = None, high: float | None = None) -> Impact:
    e = Range(value=wh, low=wh / 2 if low is None else low, high=wh * 2 if high is None else high)
    z = Range.point(0.0)
    return Impact(
        energy_wh=e,
        carbon_g=z,
        water_ml=z,
        breakdown_wh={"accelerator": wh},
        carbon_breakdown_g={},
        water_breakdown_ml={},
    )


def rec(
    start: float | None,
    end: float | None,
    *,
    est_wh: float | None = 0.1,
    tokens: tuple[int, int] = (100, 100),
    dep: Deployment | None = None,
    request_id: str | None = None,
) -> Record:
    t = Telemetry(
        provider="local",
        model="meta-llama/Llama-3.1-8B-Instruct",
        request_id=request_id,
        start_time=None if start is None else T0 + start,
        first_token_time=None if start is None else T0 + start,
        last_token_time=None if end is None else T0 + end,
        end_time=None if end is None else T0 + end,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        streamed=True,
    )
    r = Record(
        t, deployment=dep if dep is not None else Deployment.accelerator_only("NVIDIA H200", 1)
    )
    if est_wh is not None:
        r._impact = impact(est_wh)
    return r


def test_time_attribution_splits_shared_slices_equally() -> None:
    # 360 W for 10 s = 1 Wh. A: 1-3 s, B: 2-6 s, C: 8-9 s.
    a, b, c = rec(1, 3, est_wh=0.1), rec(2, 6, est_wh=0.3), rec(8, 9, est_wh=0.1)
    r = reconcile([a, b, c], measurement())
    got = [s.measured_wh * 3600 for s in r.requests]
    assert got == pytest.approx([360 + 180, 180 + 3 * 360, 360])  # joules
    assert r.window_wh == pytest.approx(1.0)
    assert r.active_wh == pytest.approx(6 * 360 / 3600)  # in flight 1-6 s and 8-9 s
    assert r.gap_wh == pytest.approx(4 * 360 / 3600)
    assert r.compared_wh == pytest.approx(r.active_wh)
    assert r.estimated_wh == Range(value=0.5, low=0.25, high=1.0)
    assert r.ratio == pytest.approx(0.6 / 0.5)
    assert r.ratio_range == pytest.approx((0.6 / 1.0, 0.6 / 0.25))
    assert r.within_range is True
    assert r.requests[0].ratio == pytest.approx((540 / 3600) / 0.1)
    assert r.requests[2].within_range is True


def test_attribution_follows_the_power_trace() -> None:
    # 100 W for 5 s then 500 W: a request over the second half gets the high-power energy.
    m = measurement(trace=[(0.0, 100.0), (5.0, 500.0)])
    first, second = rec(0, 5), rec(5, 10)
    r = reconcile([first, second], m)
    assert [s.measured_wh * 3600 for s in r.requests] == pytest.approx([500.0, 2500.0])


def test_token_attribution_weights_by_token_rate() -> None:
    # Both in flight 0-4 s; A pushes 3x the tokens per second of B.
    a, b = rec(0, 4, tokens=(200, 100)), rec(0, 4, tokens=(50, 50))
    r = reconcile([a, b], measurement(seconds=4.0), attribution="tokens")
    got = [s.measured_wh * 3600 for s in r.requests]
    assert got == pytest.approx([0.75 * 1440, 0.25 * 1440])
    # B alone afterwards keeps all of its slice even with a lower rate.
    a2, b2 = rec(0, 2, tokens=(300, 100)), rec(0, 4, tokens=(50, 50))
    r2 = reconcile([a2, b2], measurement(seconds=4.0), attribution="tokens")
    rate_a, rate_b = 400 / 2, 100 / 4
    first = 720.0  # 0-2 s at 360 W
    assert [s.measured_wh * 3600 for s in r2.requests] == pytest.approx(
        [first * rate_a / (rate_a + rate_b), first * rate_b / (rate_a + rate_b) + 720.0]
    )


def test_estimate_attribution_and_zero_weight_fallback() -> None:
    a, b = rec(0, 4, est_wh=0.3), rec(0, 4, est_wh=0.1)
    r = reconcile([a, b], measurement(seconds=4.0), attribution="estimate")
    assert [s.measured_wh * 3600 for s in r.requests] == pytest.approx([1080.0, 360.0])
    assert r.requests[0].ratio == pytest.approx(r.requests[1].ratio)  # same ratio by construction
    # zero tokens everywhere: the slice is still split, equally
    z1, z2 = rec(0, 4, tokens=(0, 0)), rec(0, 4, tokens=(0, 0))
    rz = reconcile([z1, z2], measurement(seconds=4.0), attribution="tokens")
    assert [s.measured_wh * 3600 for s in rz.requests] == pytest.approx([720.0, 720.0])


def test_shares_sum_to_active_energy_for_many_overlapping_requests() -> None:
    import random

    rnd = random.Random(7)
    recs = []
    for _ in range(300):
        s = rnd.uniform(-1, 10)
        recs.append(
            rec(s, s + rnd.uniform(0.01, 3), tokens=(rnd.randint(0, 500), rnd.randint(1, 500)))
        )
    m = measurement(trace=[(0.0, 200.0), (3.0, 650.0), (7.5, 90.0)])
    for how in ("time", "tokens", "estimate"):
        r = reconcile(recs, m, attribution=how)  # type: ignore[arg-type]
        assert sum(s.measured_wh for s in r.requests) == pytest.approx(r.active_wh, rel=1e-9)
        assert r.active_wh + r.gap_wh == pytest.approx(r.window_wh)
        assert all(s.measured_wh >= 0 for s in r.requests)


def test_records_outside_or_straddling_the_window() -> None:
    inside, before, after, edge = rec(1, 2), rec(-5, -1), rec(11, 12), rec(-2, 2, est_wh=0.4)
    no_times = rec(None, None)
    r = reconcile([inside, before, after, edge, no_times], measurement())
    assert len(r.requests) == 2
    assert r.skipped == {"outside the window": 2, "without start/end times": 1}
    straddler = r.requests[1]
    assert straddler.overlap == pytest.approx(0.5)
    assert straddler.estimated_wh is not None and straddler.estimated_wh.value == pytest.approx(0.2)
    assert any("straddle" in w for w in r.warnings)
    assert "left out" in r.summary()


def test_measured_outside_the_range_is_reported() -> None:
    r = reconcile([rec(0, 10, est_wh=0.1)], measurement())  # 1 Wh measured vs 0.1 [0.05-0.2]
    assert r.within_range is False
    assert r.ratio == pytest.approx(10.0)
    assert "ABOVE" in r.summary()
    low = reconcile([rec(0, 10, est_wh=5.0)], measurement())
    assert low.within_range is False and "BELOW" in low.summary()


def test_subtract_idle() -> None:
    m = measurement(idle_w=60.0)
    r = reconcile([rec(0, 10)], m, subtract_idle=True)
    assert r.window_wh == pytest.approx(300 * 10 / 3600)
    assert r.subtract_idle and "above idle" in r.summary()
    with pytest.raises(ValueError, match="idle baseline"):
        reconcile([rec(0, 10)], measurement(), subtract_idle=True)


def test_re_estimates_at_the_accelerator_only_boundary() -> None:
    seen: list[tuple[Deployment, Any]] = []

    def estimator(telemetry: Telemetry, *, deployment: Deployment, region: Any = None) -> Impact:
        seen.append((deployment, region))
        return impact(0.2)

    full = Deployment(accelerator="H100", count=2, pue=1.3, precision="fp8", idle_reserve=0.2)
    r1 = rec(0, 5, dep=full)  # has an impact, but at the wrong boundary: re-estimated
    r1.region = "FRA"
    r2 = rec(5, 10, dep=None)
    r2.deployment = None  # no deployment at all: the metered devices decide
    r = reconcile([r1, r2], measurement(devices=2), estimator=estimator)
    (d1, reg1), (d2, _) = seen
    assert (d1.accelerator, d1.count, d1.precision, reg1) == ("H100", 2, "fp8", "FRA")
    assert (d2.accelerator, d2.count) == ("NVIDIA H200", 2)
    for d in (d1, d2):
        assert d.pue == 1.0 and d.include_host is False and d.idle_reserve == 0.0
    assert r.estimated_wh is not None and r.estimated_wh.value == pytest.approx(0.4)
    seen.clear()
    reconcile(
        [rec(0, 5, dep=full)], measurement(), accelerator="A100", count=4, estimator=estimator
    )
    assert (seen[0][0].accelerator, seen[0][0].count) == ("A100", 4)
    # already at this boundary with an impact: reused, the estimator is not called
    seen.clear()
    reconcile([rec(0, 5, est_wh=0.25)], measurement(), estimator=estimator)
    assert seen == []


def test_estimator_failure_is_excluded_from_the_ratio() -> None:
    def estimator(telemetry: Telemetry, **kw: Any) -> Impact:
        if telemetry.request_id == "bad":
            raise KeyError("unknown model")
        return impact(0.1)

    good = rec(0, 5, est_wh=None, request_id="good")
    bad = rec(5, 10, est_wh=None, request_id="bad")
    r = reconcile([good, bad], measurement(), estimator=estimator)
    assert r.requests[1].estimated_wh is None and r.requests[1].ratio is None
    assert r.compared_wh == pytest.approx(0.5)  # only the estimated request's share
    assert r.active_wh == pytest.approx(1.0)
    assert r.ratio == pytest.approx(5.0)
    assert any("could not be estimated" in w for w in r.warnings)
    none = reconcile([bad], measurement(), estimator=estimator)
    assert none.estimated_wh is None and none.ratio is None and none.within_range is None
    assert "none" in none.summary()


def test_inputs_and_presentation() -> None:
    class Exp:
        def __init__(self, records: list[Record]) -> None:
            self.records = records

    r = reconcile(Exp([rec(0, 3, request_id="x"), rec(2, 5)]), measurement())
    d = r.to_dict()
    json.dumps(d)
    assert d["requests"][0]["request_id"] == "x" and d["ratio"] == pytest.approx(r.ratio)
    text = r.summary()
    for part in ("accelerator-only", "NVIDIA H200", "measured/est", "per request", "in gaps"):
        assert part in text
    assert "ratio=" in repr(r)
    empty = reconcile([], measurement())
    assert empty.requests == () and any("nothing to compare" in w for w in empty.warnings)
    with pytest.raises(ValueError):
        reconcile([], measurement(), attribution="vibes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no measurement"):
        reconcile([], GpuMeter())
    with pytest.raises(TypeError):
        reconcile([], object())  # type: ignore[arg-type]


def test_with_the_real_estimator_when_it_exists() -> None:
    est = pytest.importorskip("otm.estimate")
    if not hasattr(est, "estimate"):
        pytest.skip("otm.estimate.estimate is not written yet")
    t = Telemetry(
        provider="local",
        model="meta-llama/Llama-3.1-8B-Instruct",
        start_time=T0 + 1,
        first_token_time=T0 + 1.2,
        last_token_time=T0 + 6,
        end_time=T0 + 6,
        input_tokens=500,
        output_tokens=400,
        streamed=True,
    )
    r = Record(t, deployment=Deployment(accelerator="H100", count=1))
    full = est.estimate(t, deployment=Deployment(accelerator="H100", count=1))
    res = reconcile([r], measurement(), accelerator="H100", count=1)
    assert res.estimated_wh is not None
    assert (
        0 < res.estimated_wh.value <= full.energy_wh.value
    )  # the board alone is part of the whole
    assert res.ratio is not None and res.ratio > 0


def test_packaged_estimator_is_called_once_per_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    calls: list[tuple[int, Any, Any]] = []
    single: list[Any] = []
    fake = types.ModuleType("otm.estimate")

    def estimate_many(
        telemetries: list[Telemetry], *, deployment: Any = None, region: Any = None
    ) -> Any:
        calls.append((len(telemetries), deployment, region))
        if region == "broken":
            raise RuntimeError("vectorised path failed")
        return [impact(0.1 * len(telemetries)) for _ in telemetries]

    def estimate(telemetry: Telemetry, *, deployment: Any = None, region: Any = None) -> Impact:
        single.append(region)
        return impact(0.05)

    fake.estimate_many = estimate_many  # type: ignore[attr-defined]
    fake.estimate = estimate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "otm.estimate", fake)
    h100 = Deployment(accelerator="H100", count=1)
    recs = [
        rec(0, 2, dep=h100),
        rec(2, 4, dep=h100),
        rec(4, 6, dep=Deployment(accelerator="A100", count=1)),
    ]
    odd = rec(6, 8, dep=h100)
    odd.region = "broken"
    r = reconcile([*recs, odd], measurement())
    assert sorted((n, d.accelerator, reg) for n, d, reg in calls) == [
        (1, "A100", None),
        (1, "H100", "broken"),
        (2, "H100", None),
    ]
    assert single == ["broken"]  # the failed group fell back to one call per record
    values = [s.estimated_wh.value for s in r.requests if s.estimated_wh is not None]
    assert values == pytest.approx([0.2, 0.2, 0.1, 0.05])


def test_reconcile_takes_an_experiment(tmp_path: Any) -> None:
    experiment = pytest.importorskip("otm.report.experiment")
    from otm.events import current_scope, emit

    with experiment.experiment("local-gpu", output_dir=tmp_path) as exp:
        for start, end in ((1, 3), (2, 6)):
            r = rec(start, end)
            r.scope = current_scope()
            emit(r)
    res = reconcile(exp, measurement())
    assert len(res.requests) == 2
    assert res.active_wh == pytest.approx(5 * 360 / 3600)

"""Unit tests of the estimator, layer by layer, and of its public API."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import otm
from otm.deployment import Deployment
from otm.estimate import (
    DEFAULT,
    ImpactBatch,
    estimate,
    estimate_many,
    reset_floors,
    set_persistence,
)
from otm.estimate.assemble import build_group
from otm.estimate.combine import compute
from otm.estimate.decode import invert, step
from otm.estimate.floor import FLOORS, FloorTracker, key_text
from otm.estimate.group import Group, with_history
from otm.estimate.hardware import hardware_plan
from otm.estimate.provider import infer_from_name, model_work, weight_bytes_read
from otm.estimate.results import FLAG_AT_LIMIT, FLAG_IMPLAUSIBLE
from otm.estimate.sampling import design, pick, spread
from otm.estimate.user import METHOD_ITL, METHOD_LATENCY, METHOD_TOKENS, columns
from otm.telemetry import Telemetry

T0 = 1.7e9
# a self-hosted H100 whose engine is not named: the modern profile, the legacy one
# in a share of the samples (the widest self-hosted range)
OWN_H100 = Deployment(accelerator="H100", count=1, provider="local")
OWN_H100_VLLM = Deployment(accelerator="H100", count=1, provider="local", engine="vllm")


@pytest.fixture(autouse=True)
def _fresh_floors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the learned history would otherwise be written to the user's cache directory
    monkeypatch.setenv("OTM_CACHE_DIR", str(tmp_path / "cache"))
    reset_floors()
    yield
    reset_floors()


def _cols(ts: list[Telemetry]):  # type: ignore[no-untyped-def]
    return columns(
        ts,
        min_plausible_itl_s=DEFAULT.min_plausible_itl_s,
        min_tokens_for_floor=DEFAULT.min_tokens_for_floor,
    )


def _seq_bytes(g: Group, inp: float, out: float) -> np.ndarray:
    """Per sample, what one sequence streams per step for a request (as combine reads it)."""
    return g.seq_bytes(np.full_like(g.n, inp + 0.5 * out) * g.context_mix)


def _one_sequence_step(g: Group, inp: float, out: float) -> np.ndarray:
    """Per sample, the step of one sequence at this request's context."""
    t, _, _ = step(g.inst, np.ones_like(g.n), g.n, _seq_bytes(g, inp, out))
    return t


def stream(
    model: str,
    provider: str | None = None,
    inp: int = 500,
    out: int = 300,
    tps: float = 70.0,
    ttft: float = 0.5,
    **kw: object,
) -> Telemetry:
    return Telemetry(
        model=model,
        provider=provider,
        input_tokens=inp,
        output_tokens=out,
        start_time=T0,
        first_token_time=T0 + ttft,
        last_token_time=T0 + ttft + (out - 1) / tps,
        streamed=True,
        **kw,
    )


# ------------------------------------------------------------------ sampling


def test_design_is_deterministic_and_centred() -> None:
    d1, d2 = design(16, 3), design(16, 3)
    for k in d1:
        assert np.array_equal(d1[k], d2[k])
        assert d1[k][0] == 0.5
        assert np.all((d1[k] > 0) & (d1[k] < 1))
        # Latin hypercube: one point per stratum
        assert np.array_equal(np.sort(np.floor(d1[k][1:] * 16)), np.arange(16))


def test_spread_maps_centre_to_value_and_stays_in_bounds() -> None:
    u = np.linspace(0.0, 1.0, 101)
    for tri in [(10.0, 2.0, 50.0), (0.0, 0.0, 1.8), (1.0, 1.0, 1.0), (0.5, 0.1, 0.5)]:
        x = spread(tri, u)
        assert spread(tri, np.array([0.5]))[0] == pytest.approx(tri[0])
        assert np.all(x >= tri[1] - 1e-12) and np.all(x <= tri[2] + 1e-12)
        assert np.all(np.diff(x) >= -1e-12)  # monotone in u


def test_pick_central_option() -> None:
    u = design(64, 1)["accelerator"]
    idx = pick(u, 4)
    assert idx[0] == 0
    assert set(np.unique(idx)) == {0, 1, 2, 3}


# ------------------------------------------------------------------ provider layer


def test_known_dense_and_moe_models() -> None:
    d = model_work("meta-llama/Meta-Llama-3.1-70B-Instruct")
    assert d.found and not d.size_estimated and d.architecture == "dense"
    assert d.active_b[0] == pytest.approx(70.55)
    assert d.kv_elements_per_token()[0] == pytest.approx(2 * 80 * 8 * 128)
    m = model_work("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert m.is_moe
    # expert size e = (46.7-12.9)/(8-2); shared = 12.9 - 2e
    e = (46.7 - 12.9) / 6
    assert m.shared_fraction[0] == pytest.approx((12.9 - 2 * e) / 12.9)


def test_closed_model_carries_a_range() -> None:
    w = model_work("gpt-4o", "openai")
    assert w.found and w.size_estimated
    assert w.active_b[1] < w.active_b[0] < w.active_b[2]
    assert w.price is not None


def test_moe_weights_read_grow_with_batch() -> None:
    total, active, shared = np.array(46.7e9), np.array(12.9e9), np.array(0.13)
    b = np.array([1.0, 2.0, 4.0, 16.0, 64.0, 1e6])
    w = weight_bytes_read(b, total, active, shared)
    assert w[0] == pytest.approx(12.9e9)
    assert np.all(np.diff(w) > 0) or np.allclose(w[-2:], 46.7e9)
    assert w[-1] == pytest.approx(46.7e9)


@pytest.mark.parametrize(
    ("name", "active", "total"),
    [
        ("Qwen/Qwen3-235B-A22B-Thinking", 22.0, 235.0),
        ("some-org/foo-13b-chat", 13.0, 13.0),
        ("acme-1.5b", 1.5, 1.5),
    ],
)
def test_size_from_name_patterns(name: str, active: float, total: float) -> None:
    w = infer_from_name(name)
    assert not w.found and w.size_estimated
    assert w.active_b[0] == pytest.approx(active)
    assert w.total_b[0] == pytest.approx(total)
    assert w.warnings


def test_size_from_tier_words() -> None:
    nano, mini, flash, pro = (
        infer_from_name(n).active_b[0] for n in ("zz-nano", "zz-mini", "zz-flash", "zz-pro")
    )
    assert nano < mini < flash < pro
    assert infer_from_name("zz-flash-lite").active_b[0] == mini  # the smallest tier word wins
    assert infer_from_name("mixtral-8x7b").is_moe


# ------------------------------------------------------------------ hardware layer


def test_accelerator_only_plan() -> None:
    p = hardware_plan(Deployment.accelerator_only("H100", 4, provider="local"), None, None)
    assert p.self_hosted and p.count == 4 and p.accelerator_fixed
    assert p.pue == (1.0, 1.0, 1.0) and p.idle_reserve == (0.0, 0.0, 0.0) and not p.include_host
    # naming the hardware alone does not make it the user's own machine
    q = hardware_plan(Deployment.accelerator_only("H100", 4), None, None)
    assert not q.self_hosted and q.count == 4 and q.accelerator_fixed


def test_provider_profile_plan() -> None:
    p = hardware_plan(None, None, "openai")
    assert not p.self_hosted and p.provider_id == "openai"
    assert p.count is None and len(p.accelerators) > 1 and len(p.grids) > 1
    assert p.pue[1] >= 1.0


def test_region_precedence_and_unknowns() -> None:
    p = hardware_plan(Deployment(region="FRA"), "DEU", "openai")
    assert p.grids[0].id == "FRA" and p.region_source == "deployment"
    p = hardware_plan(None, "DEU", "openai")
    assert p.grids[0].id == "DEU" and p.region_source == "argument"
    p = hardware_plan(None, "atlantis", "openai")
    assert p.grids[0].id == "WORLD" and any("atlantis" in w for w in p.warnings)
    p = hardware_plan(Deployment(accelerator="quantum-abacus-9000"), None, None)
    assert any("quantum-abacus-9000" in w for w in p.warnings)


# ------------------------------------------------------------------ user layer


def test_methods_from_timings() -> None:
    ts = [
        stream("gpt-4o", "openai"),
        Telemetry(
            model="gpt-4o", input_tokens=10, output_tokens=50, start_time=T0, end_time=T0 + 3
        ),
        Telemetry(model="gpt-4o", input_tokens=10, output_tokens=50),
    ]
    c = columns(ts, min_plausible_itl_s=DEFAULT.min_plausible_itl_s, min_tokens_for_floor=16)
    assert list(c.method) == [METHOD_ITL, METHOD_LATENCY, METHOD_TOKENS]
    assert c.itl_s[0] == pytest.approx(1 / 70)
    assert np.isnan(c.itl_s[1]) and c.duration_s[1] == pytest.approx(3)


def test_hidden_reasoning_is_not_counted_in_the_stream() -> None:
    # 900 hidden reasoning tokens decoded during a 12 s TTFT, then 100 visible at 100 tok/s
    t = Telemetry(
        model="o3",
        input_tokens=10,
        output_tokens=1000,
        reasoning_tokens=900,
        start_time=T0,
        first_token_time=T0 + 12,
        last_token_time=T0 + 12 + 99 / 100,
        streamed=True,
    )
    c = columns([t], min_plausible_itl_s=DEFAULT.min_plausible_itl_s, min_tokens_for_floor=16)
    assert c.itl_s[0] == pytest.approx(0.01)
    assert c.output[0] == 1000  # every output token is decode work
    # reasoning streamed as visible deltas (anthropic thinking): all tokens are in the stream
    t2 = t.model_copy(
        update={
            "reasoning_streamed": True,
            "first_token_time": T0 + 0.5,
            "last_token_time": T0 + 0.5 + 999 / 100,
        }
    )
    c2 = columns([t2], min_plausible_itl_s=DEFAULT.min_plausible_itl_s, min_tokens_for_floor=16)
    assert c2.itl_s[0] == pytest.approx(0.01)


def test_floor_tracker_is_robust_and_bounded() -> None:
    f = FloorTracker(max_keys=2, capacity=8, persist=False)
    f.observe("a", 0.0001)  # one outlier
    assert f.floor("a") is None  # not enough streams yet
    f.observe("a", np.array([0.010, 0.011, 0.012, 0.010, 0.013, float("nan"), -1.0]))
    lo, n = f.floor("a")  # type: ignore[misc]
    assert n == 6 and lo > 0.005  # a low quantile, not the outlier
    f.observe("a", np.full(20, 0.02))
    assert f.samples("a").size == 8  # old streams age out
    assert np.all(f.samples("a") == 0.02)
    f.observe("b", 1.0)
    f.observe("c", 1.0)
    assert f.samples("a").size == 0  # evicted, bounded


def test_floor_keys_are_stable_text() -> None:
    """Keys are (provider, model, deployment) tuples, kept as text so they survive a file."""
    dep = Deployment(accelerator="H100", count=2, provider="local", engine="vllm")
    same = Deployment(provider="local", count=2, engine="vllm", accelerator="H100")
    assert key_text(("local", "llama-3.1-8b", dep)) == key_text(("local", "llama-3.1-8b", same))
    assert key_text(("local", "llama-3.1-8b", dep)) != key_text(
        ("local", "llama-3.1-8b", dep.model_copy(update={"count": 4}))
    )
    assert key_text(("openai", "gpt-4o", None)) != key_text(("openai", "gpt-4o", Deployment()))
    f = FloorTracker(persist=False)
    f.observe(("local", "llama-3.1-8b", dep), [0.01, 0.02])
    assert f.samples(("local", "llama-3.1-8b", same)).tolist() == [0.01, 0.02]


# ------------------------------------------------------------------ learned history on disk


def _tracker(path: Path) -> FloorTracker:
    t = FloorTracker(persist=True)
    t.set_persistence(True, path)
    return t


def test_learned_history_is_saved_and_loaded_by_a_new_tracker(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    key = ("local", "llama-3.1-8b", OWN_H100)
    first = _tracker(path)
    itls = np.linspace(0.010, 0.030, 100)
    first.observe(key, itls)
    first.observe("other", [0.05, 0.06])
    first.save()
    body = json.loads(path.read_text(encoding="utf-8"))
    assert body["version"] == 1 and key_text(key) in body["deployments"]
    second = _tracker(path)  # the next process
    kept = second.samples(key)
    # what is persisted per deployment is the floor's window: the most recent streams
    assert kept.tolist() == pytest.approx(itls[-DEFAULT.floor_window :].tolist())
    assert second.floor(key) == first.floor(key)
    assert second.samples("other").tolist() == [0.05, 0.06]
    # what the new tracker learns adds to what it loaded
    second.observe(key, 0.001)
    assert second.samples(key).size == DEFAULT.floor_window + 1


def test_a_damaged_profile_file_is_logged_once_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "profiles.json"
    path.write_text('{"version": 1, "deployments": {"k": {"itl_s": [0.01, ', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="otm"):
        a = _tracker(path)
        assert a.samples("k").size == 0 and a.floor("k") is None
        b = _tracker(path)  # another reader of the same damaged file
        assert b.samples("k").size == 0
        # learning goes on, and the next save replaces the damaged file with a sound one
        b.observe("k", np.full(6, 0.02))
        b.save()
    logged = [r for r in caplog.records if "profiles" in r.getMessage()]
    assert len(logged) == 1 and str(path) in logged[0].getMessage()
    assert _tracker(path).samples("k").tolist() == [0.02] * 6


def test_a_profile_file_of_another_version_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"version": 999, "deployments": {"k": {"itl_s": [0.01]}}}))
    assert _tracker(path).samples("k").size == 0


@pytest.mark.parametrize(("setting", "writes"), [("0", False), ("off", False), ("1", True)])
def test_otm_persist_profiles_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, writes: bool
) -> None:
    cache = tmp_path / "switch"
    monkeypatch.setenv("OTM_CACHE_DIR", str(cache))
    monkeypatch.setenv("OTM_PERSIST_PROFILES", setting)
    t = FloorTracker()  # the default follows the environment
    t.observe("k", np.full(10, 0.02))
    t.save()
    assert (cache / "profiles.json").exists() is writes
    if not writes:
        assert not cache.exists() or not any(cache.iterdir())


def test_estimates_learn_across_processes_through_the_profile_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process-wide tracker saves what estimate_many saw; the next process starts from it."""
    for attr in ("_persist", "_path", "_loaded"):
        monkeypatch.setattr(FLOORS, attr, getattr(FLOORS, attr))  # restored after the test
    path = tmp_path / "profiles.json"
    set_persistence(True, path)
    streams = [stream("llama-3.1-8b", inp=300, out=200, tps=40.0 + i) for i in range(8)]
    first = estimate_many(streams, deployment=OWN_H100)
    assert first[0].assumptions["history"]["streams"] == 8
    FLOORS.save()
    assert path.exists()

    reset_floors()  # a new process: nothing in memory ...
    set_persistence(True, path)  # ... and the file read afresh
    later = estimate(stream("llama-3.1-8b", inp=300, out=200, tps=45.0), deployment=OWN_H100)
    assert later.assumptions["history"]["streams"] == 9  # eight remembered, one new

    reset_floors()
    set_persistence(False)
    alone = estimate(stream("llama-3.1-8b", inp=300, out=200, tps=45.0), deployment=OWN_H100)
    assert "history" not in alone.assumptions


def test_columnar_input_equals_telemetry_input() -> None:
    ts = [
        stream("gpt-4o", "openai", inp=i, out=o, tps=s)
        for i, o, s in [(100, 50, 40.0), (2000, 700, 90.0)]
    ]
    a = estimate_many(ts, learn_floor=False)
    cols = {
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": np.array([100, 2000]),
        "output_tokens": np.array([50, 700]),
        "start_time": np.array([T0, T0]),
        "first_token_time": np.array([t.first_token_time for t in ts]),
        "last_token_time": np.array([t.last_token_time for t in ts]),
        "streamed": True,
    }
    b = estimate_many(cols, learn_floor=False)
    assert np.allclose(a.energy_wh_value, b.energy_wh_value)
    assert np.allclose(a.carbon_g_high, b.carbon_g_high)


# ------------------------------------------------------------------ physics


@pytest.mark.parametrize(
    ("model", "provider", "dep"),
    [
        ("llama-3.1-70b", None, Deployment(accelerator="H100", count=4, provider="local")),
        ("mixtral-8x7b", None, Deployment(accelerator="A100 80GB", count=2, provider="local")),
        ("deepseek-v3", "deepseek", Deployment(provider="deepseek", accelerator="H800", count=16)),
    ],
)
def test_every_sample_of_a_group_reads_back_the_batch_it_stepped(
    model: str, provider: str | None, dep: Deployment
) -> None:
    """decode.invert undoes decode.step on the group's own per-sample instance (dense and MoE)."""
    g = build_group(model, provider, dep, None, DEFAULT)
    seq = _seq_bytes(g, 2000, 400)
    for b in (1.0, 3.0, 40.0, 700.0):
        batch = np.full_like(g.n, b)
        t, mem, cmp = step(g.inst, batch, g.n, seq)
        assert np.all(mem + cmp <= t * (1 + 1e-12))
        np.testing.assert_allclose(invert(g.inst, t, g.n, seq), batch, rtol=1e-6)
    # faster than one sequence steps: the inversion says so (below 1), it does not clip
    one = _one_sequence_step(g, 2000, 400)
    assert np.all(invert(g.inst, 0.8 * one, g.n, seq) < 1.0)


def test_inference_from_a_known_batch() -> None:
    """A stream whose speed is what the model predicts at batch B is read back as about B."""
    dep = Deployment.accelerator_only("H100", 1, provider="local", engine="vllm")
    g = build_group("llama-3.1-8b", None, dep, None, DEFAULT)
    t, _, _ = step(g.inst, np.full_like(g.n, 64.0), g.n, _seq_bytes(g, 500, 300))
    im = estimate(stream("llama-3.1-8b", inp=500, out=300, tps=1 / float(t[0])), deployment=dep)
    assert im.assumptions["effective_batch"]["value"] == pytest.approx(64.0, rel=1e-6)
    lo, hi = im.assumptions["effective_batch"]["low"], im.assumptions["effective_batch"]["high"]
    assert lo < 64.0 < hi
    assert im.assumptions["observed"]["assumptions_kept"] == 1.0


def test_a_slower_engine_reads_a_smaller_batch_and_more_energy() -> None:
    """The same step on an engine with more host time per step means fewer sequences."""
    t = stream("llama-3.1-8b", inp=500, out=300, tps=30.0)
    ims = {
        e: estimate(t, deployment=OWN_H100.model_copy(update={"engine": e}))
        for e in ("vllm", "vllm-0.4.2", "transformers")
    }
    assert [im.assumptions["deployment"]["engine"] for im in ims.values()] == [
        "modern",
        "legacy",
        "eager",
    ]
    b = [im.assumptions["effective_batch"]["value"] for im in ims.values()]
    e = [im.energy_wh.value for im in ims.values()]
    # the modern engine (CUDA graphs, little host time) against the 2024 ones
    assert b[0] > max(b[1], b[2])
    assert e[0] < min(e[1], e[2])
    # not naming the engine samples the legacy profile beside the modern one: a wider range
    unnamed = estimate(t, deployment=OWN_H100)
    assert unnamed.assumptions["deployment"]["engine_alternative"] == "legacy"
    width = lambda im: im.energy_wh.high / im.energy_wh.low  # noqa: E731
    assert width(unnamed) > width(ims["vllm"])


def test_faster_streams_leave_fewer_assumptions_possible() -> None:
    """A guessed "ultra" model (150B [40, 600]) on one H100: the faster it streams, the
    fewer of its sampled sizes, engines and efficiencies can serve it; none is discarded
    for a slow stream."""
    tps = [0.5, 2.0, 5.0, 10.0, 20.0, 40.0]
    b = estimate_many(
        [stream("zz-ultra-giant", out=200, tps=s) for s in tps],
        deployment=OWN_H100,
        learn_floor=False,
    )
    kept = [im.assumptions["observed"]["assumptions_kept"] for im in b]
    assert kept[0] == 1.0
    assert all(k2 <= k1 for k1, k2 in zip(kept, kept[1:], strict=False))
    assert 0.0 < kept[-1] < kept[0]
    assert b.kept.tolist() == kept


def test_a_stream_faster_than_the_central_case_takes_its_figure_from_feasible_samples() -> None:
    inp, out = 400, 300
    g = build_group("llama-3.1-8b", None, OWN_H100_VLLM, None, DEFAULT)
    one = _one_sequence_step(g, inp, out)
    itl = float(one[0]) / 1.05  # faster than one sequence under the central assumptions
    assert np.any(one[1:] < itl)  # but not under all of them
    t = stream("llama-3.1-8b", inp=inp, out=out, tps=1 / itl)
    b = estimate_many([t], deployment=OWN_H100_VLLM, learn_floor=False)
    im = b[0]
    assert b.flags[0] == FLAG_AT_LIMIT
    obs = im.assumptions["observed"]
    assert obs["central_moved"] is True and obs["beyond_assumptions"] is False
    assert 0.0 < obs["assumptions_kept"] < 1.0
    assert any("faster than the central assumptions" in w for w in im.warnings)
    # the central figure is the median-energy feasible sample, not sample 0
    r = compute(g, _cols([t]), slice(0, 1))
    c = int(r.central[0])
    assert c != 0 and r.feasible[0, c]
    feasible_e = np.sort(r.energy_j[0, 1:][r.feasible[0, 1:]])
    assert r.energy_j[0, c] == feasible_e[(feasible_e.size - 1) // 2]
    assert im.energy_wh.value == pytest.approx(r.energy_j[0, c] / 3600.0, rel=1e-12)
    # the range is that of the feasible samples only
    assert im.energy_wh.high <= feasible_e.max() / 3600.0 * (1 + 1e-12)
    assert im.energy_wh.low >= feasible_e.min() / 3600.0 * (1 - 1e-12)
    # a little slower than the central floor: sample 0 serves it, nothing moved
    slow = estimate_many(
        [stream("llama-3.1-8b", inp=inp, out=out, tps=1 / (float(one[0]) * 1.05))],
        deployment=OWN_H100_VLLM,
        learn_floor=False,
    )
    assert slow.flags[0] == 0 and "central_moved" not in slow[0].assumptions["observed"]


def test_no_cliff_where_the_assumptions_run_out() -> None:
    """Energy per token moves by less than 2x across each point where the reading changes:
    the central case reaching one sequence, the central case ruled out, every case ruled
    out (the previous estimator jumped 10-60x there)."""
    inp, out = 400, 300
    g = build_group("llama-3.1-8b", None, OWN_H100_VLLM, None, DEFAULT)
    one = _one_sequence_step(g, inp, out)
    tol = 1.0 + DEFAULT.floor_tolerance
    central_floor = float(one[0])
    central_out = central_floor / tol
    all_out = float(one.min()) / tol
    assert all_out < central_out < central_floor

    itls = [
        central_floor * (1 + 1e-6),  # sample 0 at one sequence
        central_floor / 1.01,  # just past it: the feasible median
        central_out * 1.05,
        central_out / 1.05,
        all_out * 1.05,
        all_out / 1.05,
    ]
    b = estimate_many(
        [stream("llama-3.1-8b", inp=inp, out=out, tps=1 / x) for x in itls],
        deployment=OWN_H100_VLLM,
        learn_floor=False,
    )
    assert b.flags.tolist() == [
        0,
        FLAG_AT_LIMIT,
        FLAG_AT_LIMIT,
        FLAG_AT_LIMIT,
        FLAG_AT_LIMIT,
        FLAG_IMPLAUSIBLE,
    ]
    e = b.energy_wh_value / out
    for i in (0, 2, 4):
        assert 0.5 < e[i + 1] / e[i] < 2.0, (i, e)


def test_a_stream_faster_than_every_sample_is_read_as_one_sequence_at_its_own_speed() -> None:
    # 400 and 800 tokens/s on one H100 are beyond any plausible size of the guessed model
    ts = [stream("zz-ultra-giant", inp=0, out=200, tps=s) for s in (400.0, 800.0)]
    b = estimate_many(ts, deployment=OWN_H100, learn_floor=False)
    assert b.flags.tolist() == [FLAG_IMPLAUSIBLE, FLAG_IMPLAUSIBLE]
    for im in b:
        assert im.assumptions["method"] == "itl"  # the timing is kept, never discarded
        assert im.assumptions["effective_batch"] == {"value": 1.0, "low": 1.0, "high": 1.0}
        obs = im.assumptions["observed"]
        assert obs["beyond_assumptions"] is True and obs["assumptions_kept"] == 0.0
    assert any("faster than any sampled assumption" in w for w in b[0].warnings)
    assert any("400 tokens/s" in w for w in b[0].warnings)
    # one sequence holding the instance for the observed steps: energy follows the step
    assert b[0].energy_wh.value == pytest.approx(2.0 * b[1].energy_wh.value, rel=1e-9)
    untimed = estimate(
        Telemetry(model="zz-ultra-giant", input_tokens=0, output_tokens=200), deployment=OWN_H100
    )
    assert b[0].energy_wh.value != pytest.approx(untimed.energy_wh.value, rel=1e-3)


# ------------------------------------------------------------------ conditioning on history


def test_with_history_sets_aside_the_samples_slower_than_the_floor() -> None:
    g = build_group("llama-3.1-8b", None, OWN_H100, None, DEFAULT)
    fastest = _one_sequence_step(g, 1.0, 0.0)  # one sequence, a one-token context
    floor = float(np.median(fastest))
    h, notes = with_history(g, floor, 12)
    assert h.history_ok is not None and g.history_ok is None  # the cached group is untouched
    np.testing.assert_array_equal(h.history_ok, fastest <= floor * (1.0 + DEFAULT.floor_tolerance))
    gone = int((~h.history_ok).sum())
    assert 0 < gone < g.n.size
    assert len(notes) == 1 and f"{gone} of {g.n.size}" in notes[0] and "12 streams" in notes[0]
    # a floor slower than every sample's fastest step rules nothing out
    h2, notes2 = with_history(g, float(fastest.max()) * 1.5, 12)
    assert h2.history_ok is not None and h2.history_ok.all() and notes2 == []
    # faster than any sample: the assumptions are too slow; the history is only noted
    h3, notes3 = with_history(g, float(fastest.min()) / 2.0, 12)
    assert h3 is g and len(notes3) == 1 and "faster than otm's assumptions" in notes3[0]
    for missing in (None, float("nan"), 0.0, -1.0):
        assert with_history(g, missing, 12) == (g, [])


def test_a_learned_floor_narrows_the_range_and_never_widens_it() -> None:
    """Streams of a deployment faster than the slow samples allow: those samples are set
    aside for every request of it, and each request's range is no wider for it."""
    g = build_group("llama-3.1-8b", None, OWN_H100, None, DEFAULT)
    fastest = _one_sequence_step(g, 1.0, 0.0)
    floor = float(np.quantile(fastest, 0.5))
    probe = [stream("llama-3.1-8b", inp=800, out=300, tps=s) for s in (10.0, 30.0, 60.0, 90.0)]
    fresh = estimate_many(probe, deployment=OWN_H100, learn_floor=False)
    # the deployment's history: its fastest streams sit at the floor
    estimate_many(
        [stream("llama-3.1-8b", inp=1, out=64, tps=1 / floor) for _ in range(8)],
        deployment=OWN_H100,
    )
    after = estimate_many(probe, deployment=OWN_H100)
    for a, f in zip(after, fresh, strict=True):
        hist = a.assumptions["history"]
        assert hist["itl_floor_s"] == pytest.approx(floor) and hist["streams"] == 12
        assert 0.0 < hist["assumptions_kept"] < 1.0
        assert (
            a.assumptions["observed"]["assumptions_kept"]
            <= f.assumptions["observed"]["assumptions_kept"]
        )
        assert a.energy_wh.high - a.energy_wh.low <= (f.energy_wh.high - f.energy_wh.low) * (
            1 + 1e-9
        )
    assert any(
        a.energy_wh.high - a.energy_wh.low < 0.9 * (f.energy_wh.high - f.energy_wh.low)
        for a, f in zip(after, fresh, strict=True)
    )


def test_history_of_a_simulated_deployment_narrows_the_range_around_the_truth() -> None:
    """Simulate a self-hosted H100 whose true configuration is one of the sampled ones
    (a modern engine faster than the central case): its streams come from the step model
    at known batches. Estimating a request served at batch 32 once without history and
    once after the deployment's fastest streams were seen, the range must be narrower
    with history and keep containing the true energy (the step model's, at the true
    batch, under the true configuration) - for most true configurations, as a 5-95 %
    range should."""
    g = build_group("llama-3.1-8b", None, OWN_H100, None, DEFAULT)
    fastest = _one_sequence_step(g, 1.0, 0.0)
    modern = np.flatnonzero(g.engine_idx == 0)[1:]  # sample 0 is the central case itself
    by_speed = modern[np.argsort(fastest[modern])]
    truths = by_speed[int(0.1 * by_speed.size) : int(0.9 * by_speed.size)]
    assert truths.size >= 20

    def itl(k: int, batch: float, inp: int, out: int) -> float:
        t, _, _ = step(g.inst, np.full_like(g.n, batch), g.n, _seq_bytes(g, inp, out))
        return float(t[k])

    def timed(x: float, inp: int, out: int) -> Telemetry:
        return Telemetry(
            model="llama-3.1-8b",
            input_tokens=inp,
            output_tokens=out,
            streamed=True,
            start_time=T0,
            first_token_time=T0 + 0.05,
            last_token_time=T0 + 0.05 + (out - 1) * x,
        )

    seen = [(1, 200), (1, 900), (2, 300), (2, 1500), (3, 500), (4, 200), (6, 900), (8, 400)]
    inside = 0
    for k in truths.tolist():
        request = timed(itl(k, 32.0, 1000, 300), 1000, 300)
        reset_floors()
        before = estimate(request, deployment=OWN_H100)
        reset_floors()
        estimate_many([timed(itl(k, b, i, 400), i, 400) for b, i in seen], deployment=OWN_H100)
        after = estimate(request, deployment=OWN_H100)
        true_wh = compute(g, _cols([request]), slice(0, 1)).energy_j[0, k] / 3600.0
        assert compute(g, _cols([request]), slice(0, 1)).batch[0, k] == pytest.approx(32.0)
        assert after.assumptions["history"]["assumptions_kept"] < 1.0
        width = lambda im: im.energy_wh.high - im.energy_wh.low  # noqa: E731
        assert width(after) < width(before), k
        inside += after.energy_wh.low <= true_wh <= after.energy_wh.high
    assert inside >= 0.7 * truths.size, (inside, truths.size)


def test_an_untimed_request_keeps_every_sample() -> None:
    """No timing, no evidence: an assumed typical speed must not rule samples out."""
    dep = Deployment.accelerator_only("A100 80GB", 2)  # mixtral, hosted by mistral, 2 GPUs
    ts = [
        Telemetry(model="mixtral-8x7b", input_tokens=inp, output_tokens=200)
        for inp in (100, 20_000, 60_000)
    ] + [
        Telemetry(
            model="mixtral-8x7b",
            input_tokens=20_000,
            output_tokens=200,
            start_time=T0,
            end_time=T0 + 9,
        )
    ]
    b = estimate_many(ts, deployment=dep, learn_floor=False)
    assert [b[i].assumptions["method"] for i in range(4)] == ["tokens"] * 3 + ["latency"]
    assert b.kept.tolist() == [1.0] * 4


def test_a_central_case_set_aside_by_history_is_not_blamed_on_the_request() -> None:
    g = build_group("llama-3.1-8b", None, OWN_H100, None, DEFAULT)
    fastest = _one_sequence_step(g, 1.0, 0.0)
    floor = float(fastest[0]) / 1.1  # the deployment steps faster than the central case
    assert np.any(fastest <= floor)
    estimate_many(
        [stream("llama-3.1-8b", inp=1, out=64, tps=1 / floor) for _ in range(8)],
        deployment=OWN_H100,
    )
    slow = stream("llama-3.1-8b", inp=500, out=300, tps=20.0)  # far slower than any floor
    b = estimate_many([slow], deployment=OWN_H100)
    assert b[0].assumptions["history"]["assumptions_kept"] < 1.0
    assert not any("faster than the central assumptions" in w for w in b[0].warnings)
    assert b.flags[0] != FLAG_AT_LIMIT


# ------------------------------------------------------------------ the API


def test_estimate_is_estimate_many_of_one() -> None:
    t = stream("gpt-4o", "openai")
    a = estimate(t)
    reset_floors()
    b = estimate_many([t])[0]
    assert a == b


def test_determinism() -> None:
    t = stream("claude-sonnet-4-5", "anthropic", inp=3000, out=800, tps=55.0)
    assert estimate(t) == estimate(t)
    assert estimate(t, region="FRA") == estimate(t, region="FRA")


def test_breakdowns_sum_and_ranges_contain_values() -> None:
    for t in [
        stream("gpt-4o", "openai"),
        Telemetry(model="gemini-2.5-flash", provider="google", input_tokens=400, output_tokens=300),
    ]:
        im = estimate(t)
        assert sum(im.breakdown_wh.values()) == pytest.approx(im.energy_wh.value, rel=1e-9)
        assert sum(im.carbon_breakdown_g.values()) == pytest.approx(im.carbon_g.value, rel=1e-9)
        assert sum(im.water_breakdown_ml.values()) == pytest.approx(im.water_ml.value, rel=1e-9)
        for r in (im.energy_wh, im.carbon_g, im.water_ml):
            assert r.low <= r.value <= r.high
            assert r.low < r.high  # uncertain inputs give a real range


def test_accelerator_only_boundary() -> None:
    im = estimate(
        stream("llama-3.1-8b", tps=40.0), deployment=Deployment.accelerator_only("H100", 1)
    )
    assert im.breakdown_wh["host"] == im.breakdown_wh["idle"] == im.breakdown_wh["facility"] == 0.0
    assert im.breakdown_wh["accelerator"] == pytest.approx(im.energy_wh.value)
    full = estimate(
        stream("llama-3.1-8b", tps=40.0), deployment=Deployment(accelerator="H100", count=1)
    )
    assert full.energy_wh.value > im.energy_wh.value


def test_unknown_model_and_region_warn_not_raise() -> None:
    im = estimate(stream("definitely-not-a-model-xyz", "nobody"), region="Narnia")
    assert im.energy_wh.value > 0
    text = " ".join(im.warnings)
    assert "definitely-not-a-model-xyz" in text and "Narnia" in text
    assert im.assumptions["model"]["in_data"] is False


def test_zero_tokens_zero_impact() -> None:
    im = estimate(Telemetry(model="gpt-4o", provider="openai"))
    assert im.energy_wh.value == im.energy_wh.high == 0.0
    assert im.carbon_g.value == 0.0 and im.water_ml.value == 0.0


def test_error_status_still_estimates_the_work_done() -> None:
    ok = estimate(stream("gpt-4o", "openai"))
    err = estimate(stream("gpt-4o", "openai", status="error"))
    assert err.energy_wh.value == pytest.approx(ok.energy_wh.value)
    assert any("status 'error'" in w for w in err.warnings)


def test_cost_from_published_prices() -> None:
    t = Telemetry(
        model="gpt-4o",
        provider="openai",
        input_tokens=1_000_000,
        cached_input_tokens=400_000,
        output_tokens=100_000,
    )
    w = model_work("gpt-4o", "openai")
    assert w.price is not None
    expected = (
        0.6 * w.price.input_per_m
        + 0.4 * (w.price.cached_input_per_m or w.price.input_per_m)
        + 0.1 * w.price.output_per_m
    )
    assert estimate(t).cost_usd == pytest.approx(expected)
    assert estimate(stream("zz-unknown-9b")).cost_usd is None


def test_cached_input_costs_less_than_fresh() -> None:
    fresh = estimate(
        Telemetry(model="gpt-4o", provider="openai", input_tokens=50_000, output_tokens=10)
    )
    cached = estimate(
        Telemetry(
            model="gpt-4o",
            provider="openai",
            input_tokens=50_000,
            cached_input_tokens=45_000,
            output_tokens=10,
        )
    )
    assert cached.energy_wh.value < fresh.energy_wh.value


def test_deployment_batch_skips_inference() -> None:
    im = estimate(
        stream("llama-3.1-8b", tps=40.0),
        deployment=Deployment(accelerator="H100", count=1, batch=16),
    )
    assert im.assumptions["effective_batch"]["value"] == pytest.approx(16.0)


def test_deployment_batch_on_a_hosted_service_without_timings() -> None:
    # The instance of a hosted service is sized from a speed; with the batch given
    # and no timing, that speed is the service's typical one. Once it was NaN, and
    # the request came out at 0 Wh with a NaN accelerator count.
    untimed = Telemetry(model="gpt-4o", provider="openai", input_tokens=500, output_tokens=300)
    for t in (untimed, stream("gpt-4o", "openai")):
        small, large = (estimate(t, deployment=Deployment(batch=b)) for b in (12.0, 200.0))
        for im in (small, large):
            count = im.assumptions["deployment"]["count"]
            assert math.isfinite(count["value"]) and count["value"] >= 1
            assert 0 < im.energy_wh.low <= im.energy_wh.value <= im.energy_wh.high
        # fewer batch-mates: a larger share of the instance per request
        assert small.energy_wh.value > 3 * large.energy_wh.value


def test_grid_override_and_region() -> None:
    t = stream("gpt-4o", "openai")
    clean = estimate(t, deployment=Deployment(provider="openai", grid_gco2e_per_kwh=10.0))
    dirty = estimate(t, deployment=Deployment(provider="openai", grid_gco2e_per_kwh=800.0))
    assert clean.energy_wh.value == pytest.approx(dirty.energy_wh.value)
    assert clean.carbon_breakdown_g["operational"] * 80 == pytest.approx(
        dirty.carbon_breakdown_g["operational"]
    )


def test_impact_batch_interface() -> None:
    ts = [stream("gpt-4o", "openai", out=o) for o in (10, 100, 1000)] + [
        stream("llama-3.1-8b", tps=120.0)
    ]
    b = estimate_many(ts)
    assert isinstance(b, ImpactBatch) and len(b) == 4
    assert b[-1] == b[3]
    with pytest.raises(IndexError):
        b[4]
    tot = b.totals()
    assert tot.energy_wh.value == pytest.approx(float(b.energy_wh_value.sum()))
    assert tot.energy_wh.low <= tot.energy_wh.value <= tot.energy_wh.high
    assert tot.assumptions["records"] == 4 and len(tot.assumptions["groups"]) == 2
    assert sum(tot.breakdown_wh.values()) == pytest.approx(tot.energy_wh.value)
    assert [i.energy_wh.value for i in b] == list(b.energy_wh_value)
    assert len(estimate_many([])) == 0


def test_totals_keep_systematic_uncertainty_systematic() -> None:
    """Every record of a sample shares its assumptions, so a total of many identical
    records keeps the relative range of one; it does not shrink as records are added."""
    t = stream("gpt-4o", "openai", inp=800, out=400, tps=60.0)
    one = estimate_many([t], learn_floor=False).totals()
    many = estimate_many([t] * 50, learn_floor=False).totals()
    for key in ("energy_wh", "carbon_g", "water_ml"):
        r1, r50 = getattr(one, key), getattr(many, key)
        assert r50.value == pytest.approx(50 * r1.value, rel=1e-9)
        assert r50.low == pytest.approx(50 * r1.low, rel=1e-9)
        assert r50.high == pytest.approx(50 * r1.high, rel=1e-9)
    # a mixed log, one record read beyond the central case: the total still brackets the sum
    g = build_group("llama-3.1-8b", None, OWN_H100_VLLM, None, DEFAULT)
    fast = float(_one_sequence_step(g, 400, 300)[0]) / 1.05
    mixed = estimate_many(
        [stream("llama-3.1-8b", inp=400, out=300, tps=1 / fast), stream("llama-3.1-8b", tps=30.0)],
        deployment=OWN_H100_VLLM,
        learn_floor=False,
    )
    assert mixed.flags.tolist() == [FLAG_AT_LIMIT, 0]
    tot = mixed.totals()
    assert tot.energy_wh.value == pytest.approx(float(mixed.energy_wh_value.sum()))
    assert tot.energy_wh.low < tot.energy_wh.value < tot.energy_wh.high
    assert tot.energy_wh.high <= float(mixed.energy_wh_high.sum()) * (1 + 1e-9)


def test_a_hosted_instance_is_sized_from_its_speed() -> None:
    """A hosted service's count is unknown: a faster step needs more accelerators to read
    the weights in time, up to its largest plausible instance, never below what holds them."""
    speeds = [20.0, 40.0, 60.0, 80.0, 100.0]
    b = estimate_many(
        [stream("gemini-2.5-flash", "google", tps=s) for s in speeds], learn_floor=False
    )
    counts = b.count_value.tolist()
    assert all(c2 >= c1 for c1, c2 in zip(counts, counts[1:], strict=False))
    assert counts[-1] > counts[0]
    dep = b[0].assumptions["deployment"]
    assert dep["count_basis"] == "sized from memory and observed speed"
    cap = b.groups[0]["plausible"]["max_count"]
    assert all(1.0 <= c <= cap for c in b.count_low.tolist() + b.count_high.tolist())


def test_impact_json_round_trip() -> None:
    im = estimate(stream("gpt-4o", "openai"))
    again = otm.Impact.model_validate_json(im.model_dump_json())
    assert again == im


def test_registration_is_seen_by_the_next_estimate() -> None:
    from otm.data import unregister_all

    t = stream("zz-registered-later", tps=60.0)
    before = estimate(t)
    try:
        otm.register_model("zz-registered-later", total_params_b=2.0)
        after = estimate(t)
        assert before.assumptions["model"]["in_data"] is False
        assert after.assumptions["model"]["in_data"] is True
    finally:
        unregister_all()


# ------------------------------------------------------------------ sanity anchors


def test_gemini_like_median_prompt_is_a_sane_order_of_magnitude() -> None:
    """Google (2025) measured 0.24 Wh for the median Gemini Apps text prompt (full boundary).

    otm should land within 10x of it for a Gemini-like prompt, timed or not,
    and its range should contain the measured figure.
    """
    timed = estimate(stream("gemini-2.5-flash", "google", inp=400, out=300, tps=68.5))
    untimed = estimate(
        Telemetry(model="gemini-2.5-flash", provider="google", input_tokens=400, output_tokens=300)
    )
    for im in (timed, untimed):
        assert 0.024 <= im.energy_wh.value <= 2.4
    assert untimed.energy_wh.low <= 0.24 <= untimed.energy_wh.high


def test_no_nan_for_extreme_requests() -> None:
    ts = [
        Telemetry(
            model="gpt-4o",
            provider="openai",
            input_tokens=10**9,
            output_tokens=10**9,
            start_time=1,
            first_token_time=2,
            last_token_time=3,
            streamed=True,
        ),
        Telemetry(model="gpt-4o", provider="openai", input_tokens=10**9, output_tokens=10**9),
        Telemetry(
            model="gpt-4o",
            provider="openai",
            input_tokens=1,
            output_tokens=2,
            start_time=1,
            first_token_time=1,
            last_token_time=1e6,
            streamed=True,
        ),
        Telemetry(model=None, input_tokens=3, output_tokens=1, start_time=1, end_time=1),
    ]
    b = estimate_many(ts)
    for arr in (
        b.energy_wh_value,
        b.energy_wh_low,
        b.energy_wh_high,
        b.carbon_g_high,
        b.water_ml_high,
    ):
        assert np.all(np.isfinite(arr)) and np.all(arr >= 0)
    for im in b:
        assert math.isfinite(im.energy_wh.high)


def test_deepseek_disclosure_cross_check() -> None:
    """DeepSeek (2025) disclosed its V3/R1 decode service: 144 H800 per instance, 20-22
    tokens/s per user, ~12,600 sequences per instance (14,800 tokens/s per 8-GPU node),
    mean KV length ~5,000 tokens, at most 10.2 kW per node (<= 0.69 J per output token,
    host included, derived). Given that deployment and speed, otm should read a batch
    of the same order and stay under the energy bound."""
    t = Telemetry(
        model="deepseek-v3",
        provider="deepseek",
        input_tokens=4000,
        cached_input_tokens=2250,
        output_tokens=1000,
        start_time=T0,
        first_token_time=T0 + 1,
        last_token_time=T0 + 1 + 999 / 21,
        streamed=True,
    )
    dep = Deployment(provider="deepseek", accelerator="H800", count=144, pue=1.0, idle_reserve=0.0)
    im = estimate(t, deployment=dep)
    batch = im.assumptions["effective_batch"]
    assert 12_600 / 2 <= batch["value"] <= 12_600 * 2
    assert batch["low"] <= 12_600 <= batch["high"]
    decode_and_prefill_j_per_token = (
        (im.breakdown_wh["accelerator"] + im.breakdown_wh["host"]) * 3600 / 1000
    )
    assert decode_and_prefill_j_per_token <= 0.69


def test_a_non_finite_figure_is_not_a_silent_zero(caplog: pytest.LogCaptureFixture) -> None:
    # The guard reports 0 for NaN/inf (never a NaN in a user's sums) and says so once.
    from otm._log import reset_log_once
    from otm.estimate import driver

    reset_log_once()
    with caplog.at_level(logging.WARNING, logger="otm"):
        assert driver._finite(np.array([1.0, math.nan, math.inf])).tolist() == [1.0, 0.0, 0.0]
        assert driver._finite1(math.nan) == 0.0
        assert driver._finite(np.array([2.0])).tolist() == [2.0]
    said = [r for r in caplog.records if "NaN or infinite" in r.getMessage()]
    assert len(said) == 1

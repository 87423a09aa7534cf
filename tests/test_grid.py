"""Live grid intensity (otm.grid) against a local fake of the Electricity Maps API.

The fake is a stdlib HTTP server on 127.0.0.1 that serves the v3
``carbon-intensity/history`` and ``past-range`` shapes with a known value per
(zone, hour), and replays scripted faults: 429 with Retry-After, 5xx, a
response slower than the timeout, malformed bodies, another emission basis.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("tenacity")

import otm
import otm.config
from otm.deployment import Deployment
from otm.events import Delivery, emit
from otm.grid import (
    ElectricityMaps,
    GridCache,
    Intensity,
    LiveGrid,
    Unavailable,
    apply_live_grid,
    zone_for_region,
)
from otm.grid.electricitymaps import HOUR, _iso
from otm.record import Record
from otm.telemetry import Telemetry

TOKEN = "em-test-token"


def ci(zone: str, hour: int) -> float:
    """The fake's intensity: distinct per zone and hour."""
    base = {"FR": 40.0, "DE": 300.0, "SE-SE3": 20.0, "US-MIDA-PJM": 400.0}.get(zone, 100.0)
    return base + (hour // HOUR) % 24


class FakeEM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str], bytes | None, float]] = []
        """Replies served before the normal ones: (status, headers, body or None, delay_s)."""
        self.unknown_zones = {"XX"}
        self.basis = "lifecycle"
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.requests.append(
                        {"path": url.path, "query": q, "token": self.headers.get("auth-token")}
                    )
                    step = fake.script.pop(0) if fake.script else None
                if step is not None:
                    status, headers, body, delay = step
                    time.sleep(delay)
                    if body is None:
                        body = fake.body(url.path, q)
                    self.reply(status, body, headers)
                    return
                if self.headers.get("auth-token") != TOKEN:
                    self.reply(401, b'{"message":"invalid token"}')
                    return
                if q.get("zone") in fake.unknown_zones:
                    self.reply(404, b'{"message":"Zone not found"}')
                    return
                self.reply(200, fake.body(url.path, q))

            def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def point(self, zone: str, hour: int) -> dict[str, Any]:
        return {
            "zone": zone,
            "carbonIntensity": ci(zone, hour),
            "datetime": _iso(hour).replace("Z", ".000Z"),
            "updatedAt": _iso(hour + HOUR),
            "emissionFactorType": self.basis,
            "isEstimated": False,
            "estimationMethod": None,
        }

    def body(self, path: str, q: dict[str, str]) -> bytes:
        zone = q.get("zone", "")
        if path.endswith("/history"):
            now = int(time.time() // HOUR) * HOUR
            hours = [now - k * HOUR for k in range(23, -1, -1)]
            return json.dumps({"zone": zone, "history": [self.point(zone, h) for h in hours]}).encode()
        if path.endswith("/past-range"):
            start = int(_ts(q["start"]))
            end = int(_ts(q["end"]))
            hours = list(range(start, end, HOUR))
            assert len(hours) <= 240, "past-range asked for more than ten days"
            return json.dumps({"zone": zone, "data": [self.point(zone, h) for h in hours]}).encode()
        return b'{"message":"no such endpoint"}'

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _ts(s: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@pytest.fixture()
def em() -> Iterator[FakeEM]:
    f = FakeEM()
    yield f
    f.stop()


@pytest.fixture()
def client(em: FakeEM, tmp_path: Path) -> ElectricityMaps:
    return ElectricityMaps(
        TOKEN, base_url=em.url, timeout=5.0, cache=GridCache(tmp_path / "cache"), backoff_s=0.05
    )


NOW = time.time()
RECENT = NOW - 3 * HOUR
OLD = NOW - 30 * 86_400


def hour(t: float) -> int:
    return int(t // HOUR) * HOUR


# --------------------------------------------------------------------------- the API client


def test_recent_hours_come_from_history_with_the_lifecycle_basis(
    em: FakeEM, client: ElectricityMaps
) -> None:
    got = client.lookup([("FR", RECENT), ("FR", RECENT + 60), ("DE", NOW - 5 * HOUR)])
    assert got[("FR", hour(RECENT))] == Intensity("FR", hour(RECENT), ci("FR", hour(RECENT)), False)
    assert isinstance(got[("DE", hour(NOW - 5 * HOUR))], Intensity)
    assert len(got) == 2  # two distinct (zone, hour) keys
    assert [r["path"] for r in em.requests] == ["/v3/carbon-intensity/history"] * 2
    assert all(r["query"]["emissionFactorType"] == "lifecycle" for r in em.requests)
    assert all(r["token"] == TOKEN for r in em.requests)


def test_older_hours_come_from_past_range_in_windows_of_ten_days(
    em: FakeEM, client: ElectricityMaps
) -> None:
    times = [OLD + k * 6 * HOUR for k in range(60)]  # 15 days of calls, every 6 hours
    got = client.lookup([("DE", t) for t in times])
    assert all(got[("DE", hour(t))].gco2e_per_kwh == ci("DE", hour(t)) for t in times)  # type: ignore[union-attr]
    ranges = [r for r in em.requests if r["path"].endswith("past-range")]
    assert len(ranges) == 2  # 15 days -> two windows of <= 240 hours
    assert _ts(ranges[0]["query"]["start"]) == hour(times[0])


def test_the_disk_cache_answers_a_second_client(em: FakeEM, tmp_path: Path) -> None:
    kw: dict[str, Any] = {"base_url": em.url, "timeout": 5.0}
    first = ElectricityMaps(TOKEN, cache=GridCache(tmp_path / "c"), **kw)
    wanted = [("FR", OLD), ("FR", RECENT)]
    a = first.lookup(wanted)
    n = len(em.requests)
    assert n == 2
    second = ElectricityMaps(TOKEN, cache=GridCache(tmp_path / "c"), **kw)
    assert second.lookup(wanted) == a
    assert len(em.requests) == n and second.requests == 0


def test_429_waits_retry_after_then_succeeds(em: FakeEM, client: ElectricityMaps) -> None:
    em.script = [(429, {"Retry-After": "1"}, b'{"message":"rate limited"}', 0.0)]
    t = time.monotonic()
    got = client.lookup([("FR", RECENT)])
    assert time.monotonic() - t >= 0.95  # waited what the API asked
    assert isinstance(got[("FR", hour(RECENT))], Intensity)
    assert len(em.requests) == 2


def test_429_beyond_the_timeout_falls_back_and_is_remembered(
    em: FakeEM, tmp_path: Path
) -> None:
    em.script = [(429, {"Retry-After": "3600"}, b"{}", 0.0)]
    cache = GridCache(tmp_path / "c")
    a = ElectricityMaps(TOKEN, base_url=em.url, timeout=2.0, cache=cache)
    t = time.monotonic()
    got = a.lookup([("FR", RECENT)])[("FR", hour(RECENT))]
    assert time.monotonic() - t < 1.5  # did not sit out an hour, nor the whole timeout
    assert isinstance(got, Unavailable) and "429" in got.reason and "rate limited" in got.reason
    assert len(em.requests) == 1
    # another client (another process, same cache) does not call while blocked
    b = ElectricityMaps(TOKEN, base_url=em.url, timeout=2.0, cache=GridCache(tmp_path / "c"))
    got_b = b.lookup([("DE", RECENT)])[("DE", hour(RECENT))]
    assert isinstance(got_b, Unavailable) and "429" in got_b.reason
    assert len(em.requests) == 1


def test_429_http_date_retry_after_is_understood(em: FakeEM, client: ElectricityMaps) -> None:
    import email.utils

    when = email.utils.formatdate(time.time() + 1.2, usegmt=True)
    em.script = [(429, {"Retry-After": when}, b"{}", 0.0)]
    got = client.lookup([("FR", RECENT)])
    assert isinstance(got[("FR", hour(RECENT))], Intensity)


def test_5xx_is_retried_with_backoff(em: FakeEM, client: ElectricityMaps) -> None:
    em.script = [(500, {}, b"oops", 0.0), (503, {}, b"", 0.0)]
    got = client.lookup([("FR", RECENT)])
    assert isinstance(got[("FR", hour(RECENT))], Intensity)
    assert len(em.requests) == 3


def test_5xx_that_persists_falls_back_after_the_attempts(em: FakeEM, tmp_path: Path) -> None:
    em.script = [(502, {}, b"", 0.0)] * 10
    c = ElectricityMaps(
        TOKEN, base_url=em.url, attempts=3, backoff_s=0.01, cache=GridCache(tmp_path / "c")
    )
    got = c.lookup([("FR", RECENT)])[("FR", hour(RECENT))]
    assert isinstance(got, Unavailable) and "HTTP 502" in got.reason
    assert len(em.requests) == 3


def test_a_hung_server_is_cut_by_the_hard_timeout(em: FakeEM, tmp_path: Path) -> None:
    em.script = [(200, {}, None, 3.0)] * 5
    c = ElectricityMaps(
        TOKEN,
        base_url=em.url,
        timeout=0.6,
        request_timeout=5.0,
        cache=GridCache(tmp_path / "c"),
    )
    t = time.monotonic()
    got = c.lookup([("FR", RECENT), ("DE", RECENT)])
    took = time.monotonic() - t
    assert took < 1.2, took
    assert all(isinstance(v, Unavailable) for v in got.values())
    assert all("timed out" in v.reason or "in time" in v.reason for v in got.values())  # type: ignore[union-attr]


def test_per_request_timeout_is_retried(em: FakeEM, tmp_path: Path) -> None:
    em.script = [(200, {}, None, 1.0)]  # the first reply is too slow; the retry is served
    c = ElectricityMaps(
        TOKEN,
        base_url=em.url,
        timeout=5.0,
        request_timeout=0.3,
        backoff_s=0.01,
        cache=GridCache(tmp_path / "c"),
    )
    got = c.lookup([("FR", RECENT)])
    assert isinstance(got[("FR", hour(RECENT))], Intensity)
    assert len(em.requests) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"<html>gateway</html>",
        b"[1, 2, 3]",
        b'{"zone": "FR"}',
        b'{"zone": "FR", "history": [{"carbonIntensity": "high", "datetime": "2025-01-01T00:00:00Z"}]}',
        b'{"zone": "FR", "history": [{"carbonIntensity": -5, "datetime": "2025-01-01T00:00:00Z"}]}',
        b'{"zone": "FR", "history": [{"carbonIntensity": 1e9, "datetime": "2025-01-01T00:00:00Z"}]}',
        b'{"zone": "FR", "history": [{"carbonIntensity": 50, "datetime": "yesterday"}]}',
        b'{"zone": "FR", "history": [{"carbonIntensity": NaN, "datetime": "2025-01-01T00:00:00Z"}]}',
    ],
)
def test_malformed_bodies_fall_back_without_retrying(
    em: FakeEM, client: ElectricityMaps, body: bytes
) -> None:
    em.script = [(200, {}, body, 0.0)]
    got = client.lookup([("FR", RECENT)])[("FR", hour(RECENT))]
    assert isinstance(got, Unavailable) and "malformed" in got.reason
    assert len(em.requests) == 1


def test_another_emission_basis_is_never_mixed_in(em: FakeEM, client: ElectricityMaps) -> None:
    em.basis = "direct"
    got = client.lookup([("FR", RECENT)])[("FR", hour(RECENT))]
    assert isinstance(got, Unavailable) and "'direct' basis" in got.reason


def test_unknown_zone_is_reported_and_remembered(em: FakeEM, client: ElectricityMaps) -> None:
    got = client.lookup([("XX", RECENT), ("FR", RECENT)])
    bad = got[("XX", hour(RECENT))]
    assert isinstance(bad, Unavailable) and "HTTP 404" in bad.reason and "Zone not found" in bad.reason
    assert isinstance(got[("FR", hour(RECENT))], Intensity)
    n = len(em.requests)
    again = client.lookup([("XX", RECENT - HOUR)])[("XX", hour(RECENT - HOUR))]
    assert isinstance(again, Unavailable) and len(em.requests) == n  # not asked again today


def test_refused_token_stops_at_the_first_zone(em: FakeEM, tmp_path: Path) -> None:
    c = ElectricityMaps("wrong", base_url=em.url, cache=GridCache(tmp_path / "c"))
    got = c.lookup([("FR", RECENT), ("DE", RECENT), ("SE-SE3", RECENT)])
    assert all(isinstance(v, Unavailable) and "HTTP 401" in v.reason for v in got.values())
    assert len(em.requests) == 1


def test_no_token_no_request(em: FakeEM, tmp_path: Path) -> None:
    c = ElectricityMaps(None, base_url=em.url, cache=GridCache(tmp_path / "c"))
    got = c.lookup([("FR", RECENT)])[("FR", hour(RECENT))]
    assert isinstance(got, Unavailable) and "OTM_ELECTRICITYMAPS_TOKEN" in got.reason
    assert em.requests == []


def test_the_token_is_never_in_a_reason_or_a_log(
    em: FakeEM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="otm")
    secret = "sk-very-secret-token"
    c = ElectricityMaps(secret, base_url=em.url, cache=GridCache(tmp_path / "c"))
    got = c.lookup([("FR", RECENT)])
    assert secret not in repr(got) and secret not in repr(c) and secret not in caplog.text
    cache_text = "".join(p.read_text() for p in (tmp_path / "c").glob("*.json"))
    assert secret not in cache_text


def test_an_unwritable_cache_does_not_stop_the_lookup(em: FakeEM, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    c = ElectricityMaps(TOKEN, base_url=em.url, cache=GridCache(blocker / "cache"))
    assert isinstance(c.lookup([("FR", RECENT)])[("FR", hour(RECENT))], Intensity)


# --------------------------------------------------------------------------- zones


@pytest.mark.parametrize(
    ("region", "zone"),
    [
        ("FRA", "FR"),
        ("fr", "FR"),
        ("GBR", "GB"),
        ("aws:eu-west-3", "FR"),
        ("aws:us-east-1", "US-MIDA-PJM"),
        ("us-east-1", "US-MIDA-PJM"),
        ("US-VA", "US-MIDA-PJM"),
        ("azure:swedencentral", "SE-SE3"),
        ("SE-SE3", "SE-SE3"),
        ("gcp:asia-northeast1", "JP-TK"),
        ("WORLD", None),
        ("US-WA", None),
        ("nowhere-land", None),
    ],
)
def test_zone_for_region(region: str, zone: str | None) -> None:
    got, why = zone_for_region(region)
    assert got == zone, why
    assert why


def test_configured_zones_win() -> None:
    assert zone_for_region("US-WA", {"us-wa": "US-NW-BPAT"})[0] == "US-NW-BPAT"
    # a cloud region inherits its state's configured zone
    assert zone_for_region("azure:westus2", {"US-WA": "US-NW-BPAT"})[0] == "US-NW-BPAT"
    assert zone_for_region("aws:us-east-1", {"aws-us-east-1": "US-X"})[0] == "US-X"


# --------------------------------------------------------------------------- applying it


def rec(
    region: str | None = "FRA", t0: float = RECENT, dep: Deployment | None = None, model: str = "gpt-4o-mini"
) -> Record:
    tel = Telemetry(
        provider="openai",
        model=model,
        start_time=t0,
        first_token_time=t0 + 0.3,
        last_token_time=t0 + 2.3,
        end_time=t0 + 2.3,
        input_tokens=200,
        output_tokens=120,
        streamed=True,
    )
    return Record(tel, region=region, deployment=dep)


def test_live_intensity_replaces_the_static_one_for_operational_carbon(
    client: ElectricityMaps,
) -> None:
    r = rec("FRA")
    static = r.impact
    assert static is not None
    result = apply_live_grid([r], source=client, zones={})
    live = r.impact
    assert live is not None and result.live == 1 and result.zones == {"FR": 1}
    expect = ci("FR", hour(RECENT))
    # operational carbon = energy x the hour's intensity; energy, embodied, water unchanged
    assert live.carbon_breakdown_g["operational"] == pytest.approx(
        live.energy_wh.value / 1000 * expect, rel=1e-9
    )
    assert live.energy_wh == static.energy_wh and live.water_ml == static.water_ml
    assert live.carbon_breakdown_g["embodied"] == pytest.approx(static.carbon_breakdown_g["embodied"])
    assert live.carbon_g.value != pytest.approx(static.carbon_g.value)
    g = live.assumptions["grid_live"]
    assert g["used"] is True and g["zone"] == "FR" and g["basis"] == "lifecycle"
    assert g["gco2e_per_kwh"] == expect and g["datetime"] == _iso(hour(RECENT))
    assert live.assumptions["site"]["grid_gco2e_per_kwh"]["value"] == expect


def test_each_record_gets_its_own_hour_and_zone(client: ElectricityMaps) -> None:
    recs = [rec("FRA", RECENT), rec("FRA", RECENT - 2 * HOUR), rec("aws:us-east-1", OLD)]
    apply_live_grid(recs, source=client, zones={})
    got = [r.impact.assumptions["grid_live"] for r in recs]  # type: ignore[union-attr]
    assert [g["zone"] for g in got] == ["FR", "FR", "US-MIDA-PJM"]
    assert [g["gco2e_per_kwh"] for g in got] == [
        ci("FR", hour(RECENT)),
        ci("FR", hour(RECENT - 2 * HOUR)),
        ci("US-MIDA-PJM", hour(OLD)),
    ]


def test_fallbacks_keep_the_static_figure_with_the_reason(
    em: FakeEM, client: ElectricityMaps
) -> None:
    recs = [
        rec(None),  # no region: provider default grids, a range
        rec("US-WA"),  # no single zone
        rec("FRA", dep=Deployment(grid_gco2e_per_kwh=12.0)),  # the user's own figure wins
        rec("FRA"),
    ]
    em.script = [(503, {}, b"", 0.0)] * 10
    statics = [r.impact for r in recs]
    quick = ElectricityMaps(
        TOKEN, base_url=em.url, attempts=2, backoff_s=0.01, cache=client.cache
    )
    result = apply_live_grid(recs, source=quick, zones={})
    assert result.live == 0 and sum(result.fallbacks.values()) == 4
    reasons = [r.impact.assumptions["grid_live"]["reason"] for r in recs]  # type: ignore[union-attr]
    assert "no region" in reasons[0]
    assert "US-WA" in reasons[1]
    assert "grid_gco2e_per_kwh" in reasons[2]
    assert "HTTP 503" in reasons[3]
    for r, s in zip(recs, statics):
        assert r.impact is not None and s is not None
        assert r.impact.carbon_g == s.carbon_g  # the static figure, unchanged
        assert any("static yearly figure used" in w for w in r.impact.assumptions["warnings"])


def test_live_grid_runs_off_the_callers_thread(em: FakeEM, client: ElectricityMaps) -> None:
    em.script = [(200, {}, None, 0.4)]  # a slow API
    d = Delivery(name="t-grid")
    lg = LiveGrid(client, zones={}, delivery=d).install()
    try:
        r = rec("FRA")
        t = time.perf_counter()
        emit(r)
        assert time.perf_counter() - t < 0.1  # the caller did not wait for the API
        assert d.flush(5.0)
    finally:
        lg.uninstall()
        d.close()
    assert r.impact is not None and r.impact.assumptions["grid_live"]["used"] is True
    assert lg.result.live == 1


def test_settings_reach_the_client(em: FakeEM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTM_ELECTRICITYMAPS_TOKEN", TOKEN)
    monkeypatch.setenv("OTM_ELECTRICITYMAPS_URL", em.url)
    monkeypatch.setenv("OTM_GRID_CACHE_DIR", str(tmp_path / "gc"))
    monkeypatch.setenv("OTM_LIVE_GRID_TIMEOUT_S", "3")
    monkeypatch.setenv("OTM_GRID_ZONES", "US-WA=US-NW-BPAT")
    s = otm.config.resolve()
    c = ElectricityMaps.from_settings(s)
    assert c.token == TOKEN and c.base_url == em.url and c.timeout == 3.0
    assert c.cache is not None and c.cache.directory == tmp_path / "gc"
    assert s.grid_zones == {"US-WA": "US-NW-BPAT"}
    assert s.to_json()["electricitymaps_token"]["value"] == "**********"
    assert TOKEN not in repr(s) and TOKEN not in str(s.explain())


# --------------------------------------------------------------------------- otm report --live-grid


def _write_log(path: Path, records: list[Record]) -> None:
    with path.open("w") as f:
        for r in records:
            line = {"schema": "otm.record/1", "seq": r.seq, "experiment": "grid-test", **r.to_dict()}
            f.write(json.dumps(line) + "\n")


def test_report_live_grid_end_to_end(
    em: FakeEM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from otm.cli import main

    recs = [rec("FRA", RECENT - k * HOUR) for k in range(5)] + [rec("DEU", OLD), rec(None)]
    _write_log(tmp_path / "log.jsonl", recs)
    monkeypatch.setenv("OTM_ELECTRICITYMAPS_TOKEN", TOKEN)
    monkeypatch.setenv("OTM_ELECTRICITYMAPS_URL", em.url)
    monkeypatch.setenv("OTM_GRID_CACHE_DIR", str(tmp_path / "gc"))
    otm.config.reset()
    try:
        assert main(["report", str(tmp_path / "log.jsonl"), "--json", str(tmp_path / "static.json")]) == 0
        assert em.requests == []  # without --live-grid nothing is fetched
        assert (
            main(
                ["report", str(tmp_path / "log.jsonl"), "--live-grid", "--json", str(tmp_path / "live.json")]
            )
            == 0
        )
    finally:
        otm.config.reset()
    err = capsys.readouterr().err
    assert "for 6 of 7 requests" in err and "FR 5" in err and "DE 1" in err
    assert "1 kept the static yearly figure: no region given" in err
    static = json.loads((tmp_path / "static.json").read_text())
    live = json.loads((tmp_path / "live.json").read_text())
    # energy is the same; carbon follows the hourly intensities
    assert live["totals"]["energy_wh"]["value"] == pytest.approx(static["totals"]["energy_wh"]["value"])
    expected_operational = sum(
        r.impact.energy_wh.value / 1000 * ci(z, hour(r.telemetry.start_time))  # type: ignore[union-attr,arg-type]
        for r, z in zip(recs[:6], ["FR"] * 5 + ["DE"])
    ) + (recs[6].impact.carbon_breakdown_g["operational"])  # type: ignore[union-attr]
    assert live["carbon_breakdown_g"]["operational"] == pytest.approx(expected_operational, rel=1e-6)
    assert not math.isclose(live["totals"]["carbon_g"]["value"], static["totals"]["carbon_g"]["value"])
    assert len(em.requests) == 2  # one history call (FR), one past-range call (DE)


def test_report_live_grid_without_tenacity_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from otm.cli import main

    _write_log(tmp_path / "log.jsonl", [rec("FRA")])
    monkeypatch.setitem(sys.modules, "tenacity", None)
    assert main(["report", str(tmp_path / "log.jsonl"), "--live-grid"]) == 2
    assert "otm[grid]" in capsys.readouterr().err

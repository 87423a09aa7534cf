"""Electricity Maps: the hourly carbon intensity of a grid zone at the hour of a call.

    em = ElectricityMaps(token)                       # or ElectricityMaps.from_settings()
    got = em.lookup([("FR", call_start_unix_s), ...]) # {(zone, hour_start): Intensity | Unavailable}

Two endpoints of the v3 API, both asked for the **lifecycle** emission
factors (``emissionFactorType=lifecycle``) that otm's static figures use
(Ember): ``carbon-intensity/history`` (the last 24 hours, one request per
zone) and ``carbon-intensity/past-range`` (older hours, up to ten days per
request). A response that says it is on another basis is rejected rather
than mixed in.

Failures never raise: each hour that could not be had comes back as
:class:`Unavailable` with the reason (no token, unknown zone, rate limited,
server errors after retries, timed out, malformed body), and the caller keeps
the static figure. Retries use ``tenacity``: exponential backoff with jitter
on timeouts, connection errors and 5xx; on HTTP 429 the ``Retry-After`` the
API sends (also remembered in the on-disk cache, so other processes wait
too). The whole lookup has a hard ``timeout``: it runs on a daemon thread
and whatever is not back by then is reported as timed out.
"""

from __future__ import annotations

import email.utils
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from otm._log import log_once
from otm.grid.cache import GridCache

__all__ = ["BASIS", "DEFAULT_URL", "ElectricityMaps", "Intensity", "Unavailable"]

DEFAULT_URL = "https://api.electricitymap.org/v3"
BASIS = "lifecycle"
"""The emission-factor basis requested, the one otm's static grid figures use."""
HOUR = 3600
RECENT_S = 23 * HOUR
"""Hours younger than this come from the ``history`` endpoint (the last 24 hours)."""
RANGE_HOURS = 240
"""``past-range`` serves at most ten days of hourly values per request."""
MAX_PLAUSIBLE = 3000.0
"""gCO2e/kWh; no grid comes near it (lignite alone is ~1,100): larger values are malformed."""


@dataclass(frozen=True)
class Intensity:
    """A grid's carbon intensity over one hour, as the provider published it."""

    zone: str
    hour: int
    """Start of the hour, unix seconds (UTC)."""
    gco2e_per_kwh: float
    estimated: bool
    """The provider marked the value as estimated (not yet measured)."""
    basis: str = BASIS
    source: str = "electricitymaps"

    @property
    def datetime(self) -> str:
        return _iso(self.hour)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "zone": self.zone,
            "datetime": self.datetime,
            "gco2e_per_kwh": self.gco2e_per_kwh,
            "basis": self.basis,
            "provider_estimated": self.estimated,
        }


@dataclass(frozen=True)
class Unavailable:
    """No live figure for this hour; ``reason`` says why (the static figure is kept)."""

    reason: str


Lookup = Intensity | Unavailable


class _ApiError(Exception):
    def __init__(
        self,
        reason: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hour(t: float) -> int:
    return int(t // HOUR) * HOUR


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        s = float(value)
        return s if math.isfinite(s) and s >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - time.time())


class ElectricityMaps:
    """Client of the Electricity Maps API for past hourly carbon intensity (lifecycle).

    ``token``: the API token (sent as the ``auth-token`` header; never
    logged). ``timeout``: hard limit, seconds, for one :meth:`lookup`
    (retries included). ``request_timeout``: per HTTP request. ``attempts``:
    tries per request. ``cache``: a :class:`GridCache`, ``None`` for the
    default one in the user cache directory, ``False`` for none.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
        request_timeout: float = 5.0,
        attempts: int = 4,
        cache: GridCache | None | bool = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.token = token or None
        self.base_url = (base_url or DEFAULT_URL).rstrip("/")
        self.timeout = float(timeout)
        self.request_timeout = float(request_timeout)
        self.attempts = max(1, int(attempts))
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        if cache is None or cache is True:
            self.cache: GridCache | None = GridCache()
        elif cache is False:
            self.cache = None
        else:
            self.cache = cache
        self.requests = 0
        """HTTP requests sent (retries included), for reports and tests."""

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> ElectricityMaps:
        """A client configured from otm's settings (token, URL, timeout, cache directory)."""
        if settings is None:
            from otm.config import settings as current

            settings = current()
        token = settings.electricitymaps_token
        kw: dict[str, Any] = {
            "token": token.get_secret_value() if token is not None else None,
            "base_url": settings.electricitymaps_url,
            "timeout": settings.live_grid_timeout_s,
            "cache": GridCache(settings.grid_cache_dir) if settings.grid_cache_dir else None,
        }
        kw.update(overrides)
        return cls(**kw)

    def __repr__(self) -> str:
        return (
            f"<ElectricityMaps {self.base_url} token={'set' if self.token else 'missing'} "
            f"timeout={self.timeout}s>"
        )

    # ------------------------------------------------------------------ lookups

    def lookup(self, wanted: Iterable[tuple[str, float]]) -> dict[tuple[str, int], Lookup]:
        """The intensity of each ``(zone, unix time)``'s hour, keyed ``(zone, hour start)``."""
        keys = {(zone, _hour(t)) for zone, t in wanted}
        out: dict[tuple[str, int], Lookup] = {}
        if not keys:
            return out
        if not self.token:
            no_token = Unavailable(
                "no Electricity Maps token (set OTM_ELECTRICITYMAPS_TOKEN or the "
                "electricitymaps_token setting)"
            )
            return dict.fromkeys(keys, no_token)
        todo: dict[str, set[int]] = {}
        for zone, hour in keys:
            hit = self.cache.get(zone, hour) if self.cache is not None else None
            if isinstance(hit, tuple):
                out[(zone, hour)] = Intensity(zone, hour, hit[0], hit[1])
            elif hit == "missing":
                out[(zone, hour)] = Unavailable("Electricity Maps has no value for this hour")
            else:
                todo.setdefault(zone, set()).add(hour)
        if not todo:
            return out

        found: dict[tuple[str, int], Lookup] = {}
        reasons: dict[str, str] = {}
        lock = threading.Lock()
        deadline = time.monotonic() + self.timeout
        worker = threading.Thread(
            target=self._fetch_all,
            args=(todo, found, reasons, lock, deadline),
            name="otm-grid-fetch",
            daemon=True,
        )
        worker.start()
        worker.join(self.timeout)
        with lock:
            found = dict(found)
            reasons = dict(reasons)
        timed_out = worker.is_alive()
        for zone, hours in todo.items():
            for hour in hours:
                got = found.get((zone, hour))
                if got is None:
                    why = reasons.get(zone) or (
                        f"timed out after {self.timeout:g} s"
                        if timed_out
                        else "Electricity Maps has no value for this hour"
                    )
                    got = Unavailable(why)
                out[(zone, hour)] = got
        return out

    # ------------------------------------------------------------------ fetching (worker)

    def _fetch_all(
        self,
        todo: Mapping[str, set[int]],
        found: dict[tuple[str, int], Lookup],
        reasons: dict[str, str],
        lock: threading.Lock,
        deadline: float,
    ) -> None:
        try:
            now = time.time()
            for zone, hours in sorted(todo.items()):
                bad = self.cache.bad_zone(zone) if self.cache is not None else None
                if bad:
                    with lock:
                        reasons[zone] = bad
                    continue
                try:
                    for kind, params, span in self._requests(zone, hours, now):
                        values = self._fetch(kind, params, deadline)
                        missing = [h for h in span if h not in values]
                        if self.cache is not None:
                            self.cache.put(zone, values, missing)
                        with lock:
                            for h in hours:
                                if h in values:
                                    v, est = values[h]
                                    found[(zone, h)] = Intensity(zone, h, v, est)
                except _ApiError as exc:
                    with lock:
                        reasons[zone] = exc.reason
                    if exc.status in (400, 404) and self.cache is not None:
                        self.cache.mark_bad_zone(zone, exc.reason)
                    if exc.status in (401, 403):
                        with lock:  # the same token fails for every zone: stop here
                            for z in todo:
                                reasons.setdefault(z, exc.reason)
                        return
        except Exception as exc:  # never let the worker die silently with a half answer
            log_once("grid.electricitymaps", exc)
            with lock:
                for z in todo:
                    reasons.setdefault(z, f"internal error: {type(exc).__name__}")

    def _requests(
        self, zone: str, hours: set[int], now: float
    ) -> Iterable[tuple[str, dict[str, str], list[int]]]:
        """(endpoint, query, hours it covers): one history call for the last day, then
        past-range windows of at most ten days over the older hours."""
        base = {"zone": zone, "emissionFactorType": BASIS}
        recent = sorted(h for h in hours if h >= _hour(now) - RECENT_S)
        if recent:
            yield "history", base, recent
        older = sorted(h for h in hours if h < _hour(now) - RECENT_S)
        while older:
            start = older[0]
            window = [h for h in older if h < start + RANGE_HOURS * HOUR]
            older = older[len(window) :]
            end = window[-1] + HOUR
            yield "past-range", {**base, "start": _iso(start), "end": _iso(end)}, window

    def _fetch(self, kind: str, params: dict[str, str], deadline: float) -> dict[int, tuple[float, bool]]:
        """One endpoint, retried with tenacity within the deadline; the hours it returned."""
        import tenacity

        def attempt() -> dict[int, tuple[float, bool]]:
            self._wait_out_rate_limit(deadline)
            left = deadline - time.monotonic()
            if left <= 0:
                raise _ApiError(f"timed out after {self.timeout:g} s")
            body = self._get(kind, params, min(self.request_timeout, left))
            return _parse(body)

        backoff = tenacity.wait_exponential_jitter(
            initial=self.backoff_s, max=self.max_backoff_s, jitter=self.backoff_s
        )

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            if isinstance(exc, _ApiError) and exc.retry_after is not None:
                # with a cache, the next attempt waits out the shared block itself
                return 0.0 if self.cache is not None else exc.retry_after
            return float(backoff(state))

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts)
            | tenacity.stop_before_delay(max(0.0, deadline - time.monotonic())),
            wait=wait,
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, _ApiError) and e.retryable),
            reraise=True,
        )
        return retrying(attempt)

    def _wait_out_rate_limit(self, deadline: float) -> None:
        if self.cache is None:
            return
        left = self.cache.blocked_until() - time.time()
        if left <= 0:
            return
        if time.monotonic() + left >= deadline:
            raise _ApiError(
                f"rate limited by Electricity Maps (HTTP 429) until {_iso(time.time() + left)}",
                status=429,
            )
        time.sleep(left)

    def _get(self, kind: str, params: dict[str, str], timeout: float) -> bytes:
        url = f"{self.base_url}/carbon-intensity/{kind}?{urllib.parse.urlencode(params)}"
        from otm import __version__

        req = urllib.request.Request(
            url,
            headers={
                "auth-token": self.token or "",
                "Accept": "application/json",
                "User-Agent": f"otm/{__version__}",
            },
        )
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - https URL from settings
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except (TimeoutError, OSError) as exc:
            # URLError (connection refused, DNS), socket timeouts, resets mid-body
            reason = getattr(exc, "reason", exc)
            timeout_like = isinstance(reason, TimeoutError) or "timed out" in str(reason)
            raise _ApiError(
                "Electricity Maps did not answer in time"
                if timeout_like
                else f"could not reach Electricity Maps ({type(reason).__name__})",
                retryable=True,
            ) from None

    def _http_error(self, exc: urllib.error.HTTPError) -> _ApiError:
        status = exc.code
        detail = ""
        try:
            body = exc.read(2000)
            data = json.loads(body) if body else None
            if isinstance(data, dict):
                detail = str(data.get("message") or data.get("error") or "")[:200]
        except Exception:
            pass
        suffix = f": {detail}" if detail else ""
        if status == 429:
            after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            wait_s = 60.0 if after is None else after
            if self.cache is not None:
                self.cache.block(time.time() + wait_s)
            return _ApiError(
                f"rate limited by Electricity Maps (HTTP 429; retry after {wait_s:g} s)",
                retryable=True,
                retry_after=wait_s,
                status=429,
            )
        if status >= 500:
            return _ApiError(
                f"Electricity Maps server error (HTTP {status}){suffix}", retryable=True, status=status
            )
        if status in (401, 403):
            return _ApiError(
                f"Electricity Maps refused the token (HTTP {status}){suffix}", status=status
            )
        return _ApiError(f"Electricity Maps answered HTTP {status}{suffix}", status=status)


def _parse(body: bytes) -> dict[int, tuple[float, bool]]:
    """Hour -> (gCO2e/kWh, estimated) from a history, past-range or past body."""
    try:
        data = json.loads(body)
    except ValueError:
        raise _ApiError("malformed response from Electricity Maps (not JSON)") from None
    if not isinstance(data, dict):
        raise _ApiError("malformed response from Electricity Maps (not a JSON object)")
    items = data.get("history", data.get("data"))
    if items is None and "carbonIntensity" in data:
        items = [data]  # the single-hour 'past' shape
    if not isinstance(items, list):
        raise _ApiError("malformed response from Electricity Maps (no list of hours)")
    out: dict[int, tuple[float, bool]] = {}
    bad = 0
    for item in items:
        if not isinstance(item, dict):
            bad += 1
            continue
        basis = item.get("emissionFactorType")
        if basis is not None and str(basis).lower() != BASIS:
            raise _ApiError(
                f"Electricity Maps answered on the {basis!r} basis, not {BASIS!r}: "
                "not mixed with otm's lifecycle figures"
            )
        value = item.get("carbonIntensity")
        if value is None:
            continue  # the provider has no value for this hour
        when = _parse_time(item.get("datetime"))
        if (
            when is None
            or isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 <= value <= MAX_PLAUSIBLE
        ):
            bad += 1
            continue
        out[_hour(when)] = (float(value), bool(item.get("isEstimated", False)))
    if bad and not out:
        raise _ApiError("malformed response from Electricity Maps (no usable carbonIntensity)")
    return out


Fetcher = Callable[[Iterable[tuple[str, float]]], dict[tuple[str, int], Lookup]]
"""What the live-grid code needs of a source: :meth:`ElectricityMaps.lookup`."""

"""On-disk cache of hourly grid intensities, and of the API's rate-limit state.

One small JSON file per zone (``<dir>/<zone>.json``) maps the start of each
hour (unix seconds) to ``[gCO2e/kWh, estimated, fetched_at]``. A settled
hour is kept for good; an hour the provider marked as estimated, or fetched
within two days of it (providers revise recent hours), is refetched after
``refresh_s``. Hours the provider had no value for are remembered for
``refresh_s`` too, so a report does not ask again on every run.

``_state.json`` holds until when the API asked us to wait (HTTP 429 with
``Retry-After``), shared by every process using the cache, and zones the API
does not know (remembered for a day).

Writes go to a temporary file renamed over the old one, so a reader never
sees half a file; two processes writing at once lose at worst some entries,
which are fetched again. A cache that cannot be read or written is logged
once and otherwise ignored: it never stops a report.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from otm._log import log_once

__all__ = ["GridCache", "default_cache_dir"]

SETTLED_AFTER_S = 2 * 86_400
"""An hour fetched this long after it ended is taken as final."""


def default_cache_dir() -> Path:
    """The user cache directory for otm's grid data (``platformdirs`` when installed)."""
    try:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("otm", appauthor=False))
    except ImportError:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        base = Path(xdg) / "otm" if xdg else Path.home() / ".cache" / "otm"
    return base / "grid"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "_"


class GridCache:
    """Hour -> intensity per zone, plus rate-limit state, under ``directory``."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        refresh_s: float = 3_600.0,
        clock: Any = time.time,
    ) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._zones: dict[str, dict[str, Any]] = {}

    # -- files ------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self.directory / f"{_safe(name)}.json"

    def _read(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads(self._path(name).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log_once("grid.cache read", exc, f"otm: grid cache {self.directory} unreadable; ignored")
            return {}

    def _write(self, name: str, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, separators=(",", ":"))
                os.replace(tmp, self._path(name))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            log_once("grid.cache write", exc, f"otm: grid cache {self.directory} not writable; ignored")

    def _zone(self, zone: str) -> dict[str, Any]:
        data = self._zones.get(zone)
        if data is None:
            data = self._read(f"zone-{zone}")
            data.setdefault("hours", {})
            data.setdefault("missing", {})
            self._zones[zone] = data
        return data

    # -- hours ------------------------------------------------------------------

    def get(self, zone: str, hour: int) -> tuple[float, bool] | str | None:
        """``(gCO2e/kWh, estimated)``, ``"missing"`` (no value, recently asked) or None (ask)."""
        now = self._clock()
        with self._lock:
            data = self._zone(zone)
            entry = data["hours"].get(str(hour))
            if isinstance(entry, list) and len(entry) == 3:
                value, estimated, fetched = entry
                fresh = not estimated and fetched - hour >= SETTLED_AFTER_S
                if fresh or now - fetched < self.refresh_s:
                    try:
                        return float(value), bool(estimated)
                    except (TypeError, ValueError):
                        return None
            asked = data["missing"].get(str(hour))
            if isinstance(asked, (int, float)) and now - asked < self.refresh_s:
                return "missing"
        return None

    def put(
        self, zone: str, values: dict[int, tuple[float, bool]], missing: Iterable[int] = ()
    ) -> None:
        """Store fetched hours (and hours the provider had no value for) of one zone."""
        missing = list(missing)
        if not values and not missing:
            return
        now = self._clock()
        with self._lock:
            data = self._zone(zone)
            for hour, (value, estimated) in values.items():
                data["hours"][str(hour)] = [value, bool(estimated), now]
                data["missing"].pop(str(hour), None)
            for hour in missing:
                if str(hour) not in data["hours"]:
                    data["missing"][str(hour)] = now
            self._write(f"zone-{zone}", data)

    # -- rate limit and unknown zones ---------------------------------------------

    def blocked_until(self) -> float:
        """Unix time before which the API asked not to be called again (0: not blocked)."""
        with self._lock:
            until = self._read("_state").get("blocked_until", 0)
        return float(until) if isinstance(until, (int, float)) else 0.0

    def block(self, until: float) -> None:
        with self._lock:
            state = self._read("_state")
            state["blocked_until"] = max(float(until), float(state.get("blocked_until", 0) or 0))
            self._write("_state", state)

    def bad_zone(self, zone: str) -> str | None:
        """Why the API refused ``zone`` within the last day, else None."""
        with self._lock:
            entry = (self._read("_state").get("bad_zones") or {}).get(zone)
        if isinstance(entry, list) and len(entry) == 2 and self._clock() < entry[0]:
            return str(entry[1])
        return None

    def mark_bad_zone(self, zone: str, reason: str, for_s: float = 86_400.0) -> None:
        with self._lock:
            state = self._read("_state")
            zones = state.setdefault("bad_zones", {})
            zones[zone] = [self._clock() + for_s, reason]
            self._write("_state", state)

"""What each deployment has shown: its recent stream speeds, kept across processes.

A deployment's fastest steps say which assumptions about it are possible: a
sample of engine, precision and hardware that cannot step as fast as the
deployment keeps stepping is set aside for every request of it
(:func:`otm.estimate.group.with_history`). The speeds are kept per
(provider, model, deployment) robustly: only clean, plausible streams, only
the most recent ones, a low quantile rather than the minimum, and only once
several are in, so one burst or mis-timed record cannot set it.

The history persists in a small JSON file in the user's cache directory
(``$OTM_CACHE_DIR``, else ``$XDG_CACHE_HOME/otm``, else ``~/.cache/otm``), so
the hundredth run of a script starts from what the first ninety-nine saw.
``OTM_PERSIST_PROFILES=0`` (or :func:`set_persistence`) turns that off.
Reading or writing the file never raises: a failure is logged once.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from otm._log import log_once

__all__ = ["FLOORS", "FloorTracker", "profile_path", "set_persistence"]

_FILE_VERSION = 1
_SAVE_EVERY_S = 30.0
_KEEP_PER_KEY = 64  # what is persisted per deployment: the floor's window
_EMPTY = np.empty(0)
_EMPTY.setflags(write=False)


def _percentile(x: np.ndarray, q: float) -> float:
    """``np.percentile(x, q)`` (linear interpolation) without its overhead on small arrays."""
    pos = q / 100.0 * (x.size - 1)
    i = math.floor(pos)
    j = min(i + 1, x.size - 1)
    part = np.partition(x, (i, j)) if x.size > 256 else np.sort(x)
    f = pos - i
    return float(part[i]) * (1.0 - f) + float(part[j]) * f  # float64 arithmetic either way


def profile_path() -> Path:
    """Where the learned deployment profiles are kept."""
    base = os.environ.get("OTM_CACHE_DIR")
    if base:
        return Path(base) / "profiles.json"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "otm" / "profiles.json"


def _persist_default() -> bool:
    v = os.environ.get("OTM_PERSIST_PROFILES", "1").strip().lower()
    return v not in ("0", "false", "no", "off", "n", "f")


def key_text(key: Hashable) -> str:
    """A stable text form of a tracker key (provider, model, deployment)."""
    parts = []
    for p in key if isinstance(key, tuple) else (key,):
        if p is None:
            parts.append("")
        elif hasattr(p, "model_dump"):
            parts.append(json.dumps(p.model_dump(exclude_defaults=True), sort_keys=True))
        else:
            parts.append(str(p))
    return "|".join(parts)


class FloorTracker:
    """Recent clean stream speeds per deployment key (thread-safe, bounded, persisted)."""

    def __init__(self, max_keys: int = 4096, capacity: int = 256, persist: bool | None = None) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max = max_keys
        self._cap = capacity
        self._persist = _persist_default() if persist is None else persist
        self._path: Path | None = None
        self._loaded = False
        self._dirty = False
        self._last_save = 0.0

    # --- persistence ------------------------------------------------------

    def set_persistence(self, enabled: bool, path: str | os.PathLike[str] | None = None) -> None:
        with self._lock:
            self._persist = enabled
            self._path = Path(path) if path is not None else None
            self._loaded = False

    def _file(self) -> Path:
        return self._path or profile_path()

    def _load_locked(self) -> None:
        if self._loaded or not self._persist:
            return
        self._loaded = True
        path = self._file()
        try:
            if not path.exists():
                return
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != _FILE_VERSION:
                return
            for k, v in data.get("deployments", {}).items():
                a = np.asarray(v.get("itl_s", []), dtype=float)
                a = a[np.isfinite(a) & (a > 0)]
                if a.size and k not in self._seen:
                    self._seen[k] = a[-self._cap :]
        except Exception as e:  # noqa: BLE001 - a damaged cache must not break an estimate
            log_once("floor-load", e, f"otm: could not read learned deployment profiles from {path}")

    def save(self) -> None:
        """Write the kept speeds to the profile file now (atomically; never raises)."""
        with self._lock:
            if not self._persist or not self._dirty:
                return
            snapshot = {k: v[-_KEEP_PER_KEY:].tolist() for k, v in self._seen.items()}
            self._dirty = False
            self._last_save = time.monotonic()
        path = self._file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            body = {
                "version": _FILE_VERSION,
                "about": "otm: recent decode speeds per deployment (docs/methodology.md, 'Learning from history')",
                "deployments": {k: {"itl_s": v} for k, v in snapshot.items()},
            }
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(body), encoding="utf-8")
            os.replace(tmp, path)
        except Exception as e:  # noqa: BLE001 - never break the caller over a cache file
            log_once("floor-save", e, f"otm: could not save learned deployment profiles to {path}")

    # --- the tracker -----------------------------------------------------

    def samples(self, key: Hashable) -> np.ndarray:
        """The kept inter-token latencies of ``key``, oldest first (a copy)."""
        k = key_text(key)
        with self._lock:
            self._load_locked()
            v = self._seen.get(k)
            if v is None:
                return np.empty(0)
            self._seen.move_to_end(k)
            return v.copy()

    def observe(self, key: Hashable, itl_s: float | np.ndarray) -> None:
        """Keep clean stream latencies (seconds); non-finite and non-positive ones are dropped."""
        a = np.atleast_1d(np.asarray(itl_s, dtype=float))
        a = a[np.isfinite(a) & (a > 0)]
        if a.size == 0:
            return
        k = key_text(key)
        with self._lock:
            self._load_locked()
            old = self._seen.get(k)
            new = a if old is None else np.concatenate((old, a))
            self._seen[k] = new[-self._cap :].copy()
            self._seen.move_to_end(k)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
            self._dirty = True
            due = self._persist and time.monotonic() - self._last_save > _SAVE_EVERY_S
        if due:
            self.save()

    def floor(
        self,
        key: Hashable,
        extra: np.ndarray | None = None,
        *,
        window: int = 64,
        min_streams: int = 5,
        quantile: float = 10.0,
    ) -> tuple[float, int] | None:
        """(low quantile, streams used) of the last ``window`` kept streams plus ``extra``.

        None until ``min_streams`` streams are available.
        """
        kept = self.samples(key)[-window:] if window > 0 else np.empty(0)
        vals = kept if extra is None or extra.size == 0 else np.concatenate((kept, extra))
        if vals.size < max(min_streams, 1):
            return None
        return _percentile(vals, quantile), int(vals.size)

    def floor_then_observe(
        self,
        key: str,
        extra: np.ndarray,
        *,
        window: int = 64,
        min_streams: int = 5,
        quantile: float = 10.0,
    ) -> tuple[float, int] | None:
        """:meth:`floor` with ``extra``, then :meth:`observe` ``extra``, under one lock (what
        each estimate does). ``key``: the key's :func:`key_text`."""
        if extra.size == 1:  # one estimate: one latency, no numpy for its check
            v = float(extra[0])
            a = extra if math.isfinite(v) and v > 0 else _EMPTY
        else:
            a = extra[np.isfinite(extra) & (extra > 0)] if extra.size else extra
        with self._lock:
            self._load_locked()
            old = self._seen.get(key)
            kept = old[-window:] if old is not None and window > 0 else _EMPTY
            vals = kept if extra.size == 0 else (extra if kept.size == 0 else np.concatenate((kept, extra)))
            res = None if vals.size < max(min_streams, 1) else (_percentile(vals, quantile), int(vals.size))
            if a.size:
                # the last cap values of old + a, in one new array
                keep = self._cap - a.size
                new = a[-self._cap :].copy() if old is None or keep <= 0 else np.concatenate((old[-keep:], a))
                self._seen[key] = new
                self._dirty = True
            if old is not None or a.size:
                self._seen.move_to_end(key)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
            due = bool(a.size) and self._persist and time.monotonic() - self._last_save > _SAVE_EVERY_S
        if due:
            self.save()
        return res

    def get(self, key: Hashable) -> float | None:
        """The floor with the default rule (10th percentile of >= 5 recent streams)."""
        f = self.floor(key)
        return None if f is None else f[0]

    def reset(self) -> None:
        """Forget everything in memory (the profile file is left as it is)."""
        with self._lock:
            self._seen.clear()
            self._dirty = False
            self._loaded = True  # a reset tracker does not reload the file

    def items(self) -> Iterable[tuple[str, np.ndarray]]:
        with self._lock:
            return [(k, v.copy()) for k, v in self._seen.items()]

    def __getstate__(self) -> dict[str, Any]:  # pragma: no cover - not pickled in practice
        raise TypeError("FloorTracker is process state and is not pickled")


FLOORS = FloorTracker()
"""The process-wide tracker that :func:`otm.estimate` reads and updates."""


def set_persistence(enabled: bool, path: str | os.PathLike[str] | None = None) -> None:
    """Keep (or stop keeping) the learned deployment profiles in a file across processes."""
    FLOORS.set_persistence(enabled, path)


atexit.register(FLOORS.save)

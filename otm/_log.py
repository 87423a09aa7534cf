"""The one logger of otm, and a guard that logs each distinct failure once.

otm must never break the user's call: every failure inside otm is caught at the
boundary and reported here, once per (where, exception type), so a failing
exporter in a hot loop cannot flood the user's logs.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("otm")

_seen: set[tuple[str, str]] = set()
_seen_lock = threading.Lock()


def log_once(where: str, exc: BaseException | None = None, message: str | None = None) -> None:
    """Log a failure inside otm once per (where, exception type); never raises."""
    try:
        key = (where, type(exc).__name__ if exc is not None else (message or ""))
        with _seen_lock:
            if key in _seen:
                return
            _seen.add(key)
        text = message or f"otm: internal error in {where}; the call itself is unaffected"
        if exc is not None:
            logger.warning("%s: %r", text, exc, exc_info=exc)
        else:
            logger.warning("%s", text)
    except Exception:  # pragma: no cover - logging must never raise either
        pass


def reset_log_once() -> None:
    """Forget what was logged (tests)."""
    with _seen_lock:
        _seen.clear()

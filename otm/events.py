"""Delivery of finished records: global listeners and context scopes.

Capture calls :func:`current_scope` when a call starts (one ContextVar read)
and :func:`emit` once when its record is final. A scope is the tuple of
collectors (tracked runs, experiments) active in the caller's context; it is
captured at the start because a stream may be finalised later from another
context (a garbage-collector pass, another task). Listener and collector
failures are logged once and never reach the user's call.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from otm._log import log_once

if TYPE_CHECKING:
    from otm.record import Record


class Collector(Protocol):
    """Anything that gathers the records made inside a context (a run, an experiment)."""

    def collect(self, record: Record) -> None: ...


Listener = Callable[["Record"], None]

_scope: contextvars.ContextVar[tuple[Collector, ...]] = contextvars.ContextVar("otm_scope", default=())
_listeners: tuple[Listener, ...] = ()
_listeners_lock = threading.Lock()


_open_experiments: list[Collector] = []
_fallback: tuple[Collector, ...] = ()
"""The scope of calls made where no context scope reaches: a plain
``threading.Thread`` or a thread pool does not copy contextvars. It is the one
open experiment, if exactly one is open; with several, such calls are not
attributed (they could belong to any of them)."""
_open_lock = threading.Lock()


def current_scope() -> tuple[Collector, ...]:
    """The collectors active in this context, outermost first."""
    return _scope.get() or _fallback


def open_experiment(collector: Collector) -> None:
    """Register an open experiment: it receives calls from threads without its context."""
    global _fallback
    with _open_lock:
        _open_experiments.append(collector)
        _fallback = (_open_experiments[0],) if len(_open_experiments) == 1 else ()


def close_experiment(collector: Collector) -> None:
    global _fallback
    with _open_lock:
        if collector in _open_experiments:
            _open_experiments.remove(collector)
        _fallback = (_open_experiments[0],) if len(_open_experiments) == 1 else ()


def push_scope(collector: Collector) -> contextvars.Token[tuple[Collector, ...]]:
    """Make ``collector`` receive every record started in this context from now on."""
    return _scope.set(_scope.get() + (collector,))


def pop_scope(token: contextvars.Token[tuple[Collector, ...]]) -> None:
    try:
        _scope.reset(token)
    except (ValueError, RuntimeError):
        # Reset from another context (a generator finished elsewhere) or twice:
        # that context's scope ends with it.
        pass


def on_record(callback: Listener) -> Callable[[], None]:
    """Call ``callback(record)`` once for every finished record; returns an unsubscribe function."""
    global _listeners
    with _listeners_lock:
        _listeners = _listeners + (callback,)

    def unsubscribe() -> None:
        global _listeners
        with _listeners_lock:
            _listeners = tuple(cb for cb in _listeners if cb is not callback)

    return unsubscribe


def clear_listeners() -> None:
    global _listeners
    with _listeners_lock:
        _listeners = ()


def emit(record: Record) -> None:
    """Deliver a final record to its scope's collectors, then to the global listeners."""
    for collector in record.scope:
        try:
            collector.collect(record)
        except Exception as exc:
            log_once(f"collector {type(collector).__name__}", exc)
    for listener in _listeners:
        try:
            listener(record)
        except Exception as exc:
            log_once(f"listener {getattr(listener, '__qualname__', listener)!s}", exc)

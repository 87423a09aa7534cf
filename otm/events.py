"""Delivery of finished records: global listeners and context scopes.

Capture calls :func:`current_scope` when a call starts (one ContextVar read)
and :func:`emit` once when its record is final. A scope is the tuple of
collectors (tracked runs, experiments) active in the caller's context; it is
captured at the start because a stream may be finalised later from another
context (a garbage-collector pass, another task). Listener and collector
failures are logged once and never reach the user's call.

Listeners run on the thread that finished the call, so a slow one adds its
time to every call (and, in async code, stalls the event loop).
``on_record(callback, background=True)`` hands records to a :class:`Delivery`
instead: a bounded queue drained by one daemon thread, flushed at exit, that
the OpenTelemetry exporter and other consumers share.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from otm._log import log_once, logger

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


def on_record(callback: Listener, *, background: bool = False) -> Callable[[], None]:
    """Call ``callback(record)`` once for every finished record; returns an unsubscribe function.

    By default the callback runs on the thread that finished the call, before
    control returns to the caller: keep it cheap. ``background=True`` runs it
    on the shared :func:`delivery` worker instead (in the caller's context, so
    context variables such as the current OpenTelemetry span are seen); the
    call does not wait for it, and records beyond the queue's bound are
    dropped and counted. Unsubscribing a background callback waits (up to 5 s)
    for the records already queued.
    """
    if background:
        return delivery().subscribe(callback)
    return _add_listener(callback)


def _add_listener(callback: Listener) -> Callable[[], None]:
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


# --------------------------------------------------------------------------- background delivery

Overflow = Literal["drop_newest", "drop_oldest"]
OVERFLOWS: tuple[Overflow, ...] = ("drop_newest", "drop_oldest")


class Delivery:
    """A bounded queue of records drained by one daemon thread, off the caller's thread.

    :meth:`put` (the hot path) snapshots the caller's context variables,
    appends and returns: it never blocks and never runs a handler. The worker
    calls every subscribed handler with each record, inside that snapshot,
    in order. When ``max_queue`` records are waiting, ``overflow`` decides
    which one is lost: ``"drop_newest"`` (the record being put) or
    ``"drop_oldest"`` (the one waiting longest); either way it is counted in
    :attr:`dropped` and the first drop is logged. :meth:`submit` queues a
    one-off function instead (e.g. a collector's trailing work), on the same
    queue and worker. The queue is flushed for up to ``exit_timeout`` seconds
    at interpreter exit.
    """

    def __init__(
        self,
        *,
        max_queue: int = 10_000,
        overflow: Overflow = "drop_newest",
        name: str = "otm-delivery",
        exit_timeout: float = 5.0,
    ) -> None:
        if overflow not in OVERFLOWS:
            raise ValueError(f"overflow must be one of {OVERFLOWS}, got {overflow!r}")
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self.max_queue = max_queue
        self.overflow: Overflow = overflow
        self.name = name
        self.exit_timeout = exit_timeout
        self.delivered = 0
        """Records (and submitted jobs) handed to every handler."""
        self.dropped = 0
        """Records lost to a full queue."""
        self.failed = 0
        """Handler calls that raised (each logged once per kind of failure)."""
        self._handlers: tuple[Listener, ...] = ()
        self._items: deque[tuple[contextvars.Context, Callable[[Any], Any] | None, Any]] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._sleeping = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False
        self._warned = False
        self._atexit = False

    # -- subscribers ------------------------------------------------------------

    def subscribe(self, handler: Listener) -> Callable[[], None]:
        """Deliver every finished record to ``handler`` from now on; returns an unsubscribe
        function (which first waits, up to 5 s, for the records already queued)."""
        with self._lock:
            first = not self._handlers
            self._handlers = self._handlers + (handler,)
        if first:
            self._listening(True)

        def unsubscribe(timeout: float | None = 5.0) -> None:
            self.flush(timeout)
            with self._lock:
                before = len(self._handlers)
                self._handlers = tuple(h for h in self._handlers if h is not handler)
                last = before > 0 and not self._handlers
            if last:
                self._listening(False)

        return unsubscribe

    def _listening(self, on: bool) -> None:
        global _listeners
        with _listeners_lock:
            mine = tuple(cb for cb in _listeners if cb != self.put)
            _listeners = mine + (self.put,) if on else mine

    @property
    def handlers(self) -> tuple[Listener, ...]:
        return self._handlers

    # -- producer side (the caller's thread: clock-cheap) ------------------------

    def put(self, record: Any) -> None:
        """Queue ``record`` for every handler; never blocks."""
        self._enqueue((contextvars.copy_context(), None, record))

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        """Queue ``fn(arg)`` to run on the worker (bounded and counted like records)."""
        self._enqueue((contextvars.copy_context(), fn, arg))

    def _enqueue(self, item: tuple[contextvars.Context, Callable[[Any], Any] | None, Any]) -> None:
        dropped = False
        with self._lock:
            items = self._items
            if len(items) >= self.max_queue:
                self.dropped += 1
                dropped = True
                if self.overflow == "drop_oldest":
                    items.popleft()
                    items.append(item)
            else:
                items.append(item)
            if self._sleeping:  # wake the worker only when it waits (notify is not free)
                self._sleeping = False
                self._not_empty.notify()
            start = self._thread is None or self._pid != os.getpid()
        if start:
            self._start()
        if dropped and not self._warned:
            self._warned = True
            log_once(
                f"delivery.{self.name}.overflow",
                None,
                f"otm: background delivery queue {self.name!r} is full ({self.max_queue} records); "
                f"records are being dropped ({self.overflow}); see Delivery.dropped",
            )

    # -- lifecycle ----------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._stopping = False
            self._busy = 0
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
            if not self._atexit:
                self._atexit = True
                atexit.register(self._at_exit)

    @property
    def pending(self) -> int:
        """Records queued or being delivered now."""
        with self._lock:
            return len(self._items) + self._busy

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until everything queued so far is delivered; False if ``timeout`` ran out."""
        if self._thread is None or threading.current_thread() is self._thread:
            return not self._items
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._items or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush, then stop the worker (a later :meth:`put` starts it again)."""
        done = self.flush(timeout)
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._sleeping = False
            self._not_empty.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return done

    def _at_exit(self) -> None:
        try:
            if not self.flush(self.exit_timeout):
                logger.warning(
                    "otm: %d record(s) still queued in %r at exit were not delivered",
                    self.pending,
                    self.name,
                )
        except Exception:  # exit must not fail because of otm
            pass

    # -- consumer side (the worker thread) ---------------------------------------

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                while not self._items:
                    if self._stopping or self._thread is not me:
                        return
                    self._sleeping = True
                    self._not_empty.wait()
                    self._sleeping = False
                ctx, fn, arg = self._items.popleft()
                self._busy += 1
                handlers = self._handlers
            try:
                if fn is not None:
                    self._call(ctx, fn, arg)
                else:
                    for handler in handlers:
                        self._call(ctx, handler, arg)
                self.delivered += 1
            finally:
                with self._lock:
                    self._busy -= 1
                    if not self._items and not self._busy:
                        self._idle.notify_all()

    def _call(self, ctx: contextvars.Context, fn: Callable[[Any], Any], arg: Any) -> None:
        try:
            ctx.run(fn, arg)
        except Exception as exc:
            self.failed += 1
            log_once(f"delivery {getattr(fn, '__qualname__', fn)!s}", exc)

    def __repr__(self) -> str:
        return (
            f"<otm.events.Delivery {self.name!r} handlers={len(self._handlers)} "
            f"pending={self.pending} delivered={self.delivered} dropped={self.dropped} "
            f"max_queue={self.max_queue} overflow={self.overflow}>"
        )


_shared: Delivery | None = None
_shared_lock = threading.Lock()


def delivery() -> Delivery:
    """The process-wide background :class:`Delivery` (created on first use).

    ``on_record(..., background=True)`` and ``OtelExporter()`` (by default)
    use it, so otm's background work runs on one thread. Its bound and
    overflow policy can be changed in place::

        d = otm.events.delivery(); d.max_queue = 50_000; d.overflow = "drop_oldest"
    """
    global _shared
    d = _shared
    if d is None:
        with _shared_lock:
            if _shared is None:
                _shared = Delivery(name="otm-delivery")
            d = _shared
    return d

"""``@otm.track``: attribute every LLM call a function makes to a named run.

A run is a collector (see ``otm.events``): while the decorated function runs,
it is pushed onto the context's scope, so every call started in that context
(asyncio tasks, ``asyncio.to_thread``, threads started with a copied
context) is delivered to it. Nested runs each receive the calls of the inner ones.

Generators need care: their body runs only between resumptions, and code
between two ``yield``s belongs to the consumer. The scope is therefore set on
each resume and reset before each value is handed out, so it never leaks
into the consumer's loop.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from otm._log import log_once
from otm.events import pop_scope, push_scope

if TYPE_CHECKING:
    from otm.record import Record
    from otm.report.summary import Summary, Totals

F = TypeVar("F", bound=Callable[..., Any])

_last: Run | None = None
_last_lock = threading.Lock()


class Run:
    """The LLM calls made by one invocation of a tracked function."""

    def __init__(self, name: str, tags: Mapping[str, str] | None = None) -> None:
        from otm.events import current_scope

        self.name = name
        self.tags: dict[str, str] = {str(k): str(v) for k, v in (tags or {}).items()}
        self.started = time.time()
        self.ended: float | None = None
        self.error: str | None = None
        """Qualified name of the exception the function raised, if any."""
        self._t0 = time.perf_counter()
        self._duration: float | None = None
        self._records: list[Record] = []
        self._lock = threading.Lock()
        # Experiments active where the run started learn about it when it ends.
        self._parents = tuple(c for c in current_scope() if hasattr(c, "_add_run"))

    @property
    def record_tags(self) -> dict[str, str]:
        """Tags that capture puts on each record made in this run (over the
        configured defaults, under the client's own tags)."""
        return self.tags

    def collect(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[Record]:
        """The finished calls, in the order they finished (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def finished(self) -> bool:
        return self._duration is not None

    @property
    def duration_s(self) -> float:
        """Wall time of the function (so far, while it runs)."""
        if self._duration is not None:
            return self._duration
        return time.perf_counter() - self._t0

    @property
    def totals(self) -> Totals:
        """Energy, carbon, water (ranges), cost, tokens and requests by status."""
        from otm.report.summary import totals_of

        return totals_of(self.records)

    def summary(self) -> Summary:
        from otm.report.summary import summarize

        return summarize(self.records, name=self.name, tags=self.tags)

    def _finish(self, exc: BaseException | None) -> None:
        global _last
        self._duration = time.perf_counter() - self._t0
        self.ended = time.time()
        if exc is not None and not isinstance(exc, GeneratorExit):
            self.error = f"{type(exc).__module__}.{type(exc).__qualname__}"
        with _last_lock:
            _last = self
        for parent in self._parents:
            try:
                parent._add_run(self)
            except Exception as err:  # pragma: no cover - never break the user's function
                log_once("report.track add_run", err)

    # Data frames, one row per call (otm.report.frames; extras pandas, arrow, polars).
    def to_pandas(self) -> Any:
        """The run's calls as a pandas ``DataFrame`` (see ``Experiment.to_pandas``)."""
        from otm.report.frames import records_frame

        return records_frame(self.records, "pandas")

    def to_arrow(self) -> Any:
        from otm.report.frames import records_frame

        return records_frame(self.records, "arrow")

    def to_polars(self) -> Any:
        from otm.report.frames import records_frame

        return records_frame(self.records, "polars")

    def _repr_html_(self) -> str:
        from otm.report.display import run_html

        return run_html(self)

    def __rich__(self) -> Any:
        from otm.report.display import run_rich

        return run_rich(self)

    def __repr__(self) -> str:
        from otm.units import fmt_seconds, plural

        state = fmt_seconds(self.duration_s) if self.finished else "running"
        return f"<otm.Run {self.name!r} {plural(len(self._records), 'call')} {state}>"


def last_run() -> Run | None:
    """The tracked run that finished most recently (in any thread), or None."""
    with _last_lock:
        return _last


# ---------------------------------------------------------------------- the decorator


@overload
def track(fn: F, /) -> F: ...
@overload
def track(
    fn: str | None = None, /, *, name: str | None = None, tags: Mapping[str, str] | None = None
) -> Callable[[F], F]: ...


def track(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Any:
    """Attribute every LLM call made while the function runs to a :class:`Run`.

    Use as ``@otm.track``, ``@otm.track(name=..., tags=...)`` or
    ``@otm.track("name")``, on plain and async functions, generators and async
    generators. The function behaves exactly as before; ``otm.last_run()``
    returns the run once it finishes.
    """
    if fn is None or isinstance(fn, str):
        run_name = name or fn

        def decorate(f: F) -> F:
            return _decorate(f, run_name, tags)

        return decorate
    return _decorate(fn, name, tags)


def _decorate(fn: F, name: str | None, tags: Mapping[str, str] | None) -> F:
    if not callable(fn):
        raise TypeError(f"otm.track decorates a function, not {type(fn).__name__}")
    run_name = str(name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "run"))
    frozen_tags = dict(tags or {})

    def new_run() -> Run:
        return Run(run_name, frozen_tags)

    if inspect.isasyncgenfunction(fn):
        return _wrap_async_generator(fn, new_run, _finish_run)  # type: ignore[return-value]
    if inspect.iscoroutinefunction(fn):
        return _wrap_async(fn, new_run)  # type: ignore[return-value]
    if inspect.isgeneratorfunction(fn):
        return _wrap_generator(fn, new_run, _finish_run)  # type: ignore[return-value]
    return _wrap_sync(fn, new_run)  # type: ignore[return-value]


def _wrap_sync(fn: Callable[..., Any], new_run: Callable[[], Run]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = new_run()
        token = push_scope(run)
        error: BaseException | None = None
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            pop_scope(token)
            run._finish(error)

    return wrapper


def _wrap_async(fn: Callable[..., Any], new_run: Callable[[], Run]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = new_run()
        token = push_scope(run)
        error: BaseException | None = None
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            pop_scope(token)
            run._finish(error)

    return wrapper


def _finish_run(run: Any, error: BaseException | None) -> None:
    run._finish(error)


def _wrap_generator(
    fn: Callable[..., Generator[Any, Any, Any]],
    new_run: Callable[[], Any],
    finish: Callable[[Any, BaseException | None], None],
) -> Callable[..., Any]:
    """A generator function whose body runs inside a collector (a run, an experiment)
    created on the first resume and finished when the generator ends. The
    collector is in scope only while the body runs, never while the consumer does."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        run = new_run()
        gen = fn(*args, **kwargs)
        error: BaseException | None = None
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = push_scope(run)  # in scope only while the body runs
                try:
                    if to_throw is not None:
                        exc, to_throw = to_throw, None
                        item = gen.throw(exc)
                    else:
                        item = gen.send(to_send)
                except StopIteration as stop:
                    return stop.value
                finally:
                    pop_scope(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    token = push_scope(run)  # the body's finally blocks may still call an LLM
                    try:
                        gen.close()
                    finally:
                        pop_scope(token)
                    raise
                except BaseException as exc:  # consumer's .throw(): pass it into the body
                    to_throw, to_send = exc, None
        except BaseException as exc:
            error = exc
            raise
        finally:
            finish(run, error)

    return wrapper


def _wrap_async_generator(
    fn: Callable[..., AsyncGenerator[Any, Any]],
    new_run: Callable[[], Any],
    finish: Callable[[Any, BaseException | None], None],
) -> Callable[..., Any]:
    """The async-generator twin of :func:`_wrap_generator`."""
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        run = new_run()
        agen = fn(*args, **kwargs)
        error: BaseException | None = None
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = push_scope(run)
                try:
                    if to_throw is not None:
                        exc, to_throw = to_throw, None
                        item = await agen.athrow(exc)
                    else:
                        item = await agen.asend(to_send)
                except StopAsyncIteration:
                    return
                finally:
                    pop_scope(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    token = push_scope(run)
                    try:
                        await agen.aclose()
                    finally:
                        pop_scope(token)
                    raise
                except BaseException as exc:
                    to_throw, to_send = exc, None
        except BaseException as exc:
            error = exc
            raise
        finally:
            finish(run, error)

    return wrapper

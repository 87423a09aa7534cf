"""Streams: timing every chunk without changing what the user holds.

* :func:`instrument_stream` swaps the class of an SDK ``Stream``/``AsyncStream``
  for a cached subclass overriding only iteration and ``close`` (same object,
  same class name, same ``isinstance``); state lives in the instance
  ``__dict__``.
* :class:`SyncStreamProxy` / :class:`AsyncStreamProxy` wrap bare generators
  (google-genai) in generator-like objects that can carry ``.otm``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from otm._log import log_once
from otm.capture import handoff
from otm.capture.attach import ATTR
from otm.capture.call import Call, end
from otm.capture.patching import subclass, swapped_class
from otm.record import Record

_perf = time.perf_counter
_wall = time.time

Observer = Callable[[Call, Any], None]
"""Reads one chunk into the call: ``call.chunk(has_content)`` plus usage fields."""


def instrument_stream(stream: Any, call: Call, observe: Observer, *, is_async: bool) -> Any:
    """Make an SDK Stream/AsyncStream report to ``call``; returns the same object.

    The class is swapped for a cached subclass that overrides iteration and
    close only, so ``type(stream).__name__``, ``isinstance`` and every other
    attribute are unchanged. State lives in the instance ``__dict__``.
    """
    if "_otm_call" in stream.__dict__:  # already instrumented (e.g. a cached raw-response parse)
        return stream
    make = _make_async_stream_class if is_async else _make_stream_class
    sub = swapped_class(type(stream), (observe, is_async), lambda base: make(base, observe))
    d = stream.__dict__
    d["_otm_call"] = call
    d.setdefault(ATTR, None)
    stream.__class__ = sub
    call.streamed = True
    if call.t_headers is None:
        call.t_headers = _perf()
    call.hold(stream)
    call.finalise_on_gc(stream)
    return stream


def stream_call(stream: Any) -> Call | None:
    """The Call an instrumented SDK stream reports to (None if it is not instrumented)."""
    try:
        return stream.__dict__.get("_otm_call")
    except AttributeError:
        return None


def _end_held(stream: Any) -> None:
    """A swapped SDK stream was closed: its call ends (abandoned unless it already ended)."""
    call = stream.__dict__.get("_otm_call")
    if call is not None:
        end(call, "abandoned")


def _finish_from(call: Call, exc: BaseException) -> None:
    try:
        if isinstance(exc, GeneratorExit):
            # The consumer stopped reading after the last chunk it saw; an async
            # generator is closed only later, when the event loop gets to it.
            last = call.t_last_chunk if call.t_last_chunk is not None else call.t_headers
            end(call, "abandoned", at=last)
        else:
            call.fail(exc)
    except Exception as e:  # pragma: no cover - defensive
        log_once("capture.stream", e)


def _make_stream_class(base: Any, observe: Observer) -> type:
    def __iter__(self: Any) -> Iterator[Any]:
        call: Call = self.__dict__["_otm_call"]
        try:
            for item in base.__iter__(self):
                try:
                    observe(call, item)
                except Exception as exc:
                    log_once(f"observe {base.__name__}", exc)
                yield item
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        end(call, "ok")

    def __next__(self: Any) -> Any:
        call: Call = self.__dict__["_otm_call"]
        try:
            item = base.__next__(self)
        except StopIteration:
            end(call, "ok")
            raise
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        try:
            observe(call, item)
        except Exception as exc:
            log_once(f"observe {base.__name__}", exc)
        return item

    def close(self: Any) -> Any:
        try:
            return base.close(self)
        finally:
            _end_held(self)

    ns: dict[str, Any] = {"__iter__": __iter__, "__next__": __next__}
    if hasattr(base, "close"):
        ns["close"] = close
    return subclass(base, ns)


def _make_async_stream_class(base: Any, observe: Observer) -> type:
    async def __aiter__(self: Any) -> AsyncIterator[Any]:
        call: Call = self.__dict__["_otm_call"]
        try:
            async for item in base.__aiter__(self):
                try:
                    observe(call, item)
                except Exception as exc:
                    log_once(f"observe {base.__name__}", exc)
                yield item
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        end(call, "ok")

    async def __anext__(self: Any) -> Any:
        call: Call = self.__dict__["_otm_call"]
        try:
            item = await base.__anext__(self)
        except StopAsyncIteration:
            end(call, "ok")
            raise
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        try:
            observe(call, item)
        except Exception as exc:
            log_once(f"observe {base.__name__}", exc)
        return item

    async def close(self: Any) -> Any:
        try:
            return await base.close(self)
        finally:
            _end_held(self)

    ns: dict[str, Any] = {"__aiter__": __aiter__, "__anext__": __anext__}
    if hasattr(base, "close"):
        ns["close"] = close
    if hasattr(base, "aclose"):

        async def aclose(self: Any) -> Any:
            try:
                return await base.aclose(self)
            finally:
                _end_held(self)

        ns["aclose"] = aclose
    return subclass(base, ns)


class _StreamProxy:
    """What the generator-like wrappers share: state, the lazy start, the end on close.

    SDKs that return bare generators (google-genai) send no request before the
    generator is first advanced, so the clock starts at the first ``next()``
    and a wrapper dropped or closed before that records nothing.
    """

    __slots__ = ("__weakref__", "_call", "_gen", "_layers", "_lazy", "_observe", "_started", "otm")

    def __init__(
        self,
        gen: Any,
        call: Call,
        observe: Observer,
        *,
        lazy: bool = True,
        layers: tuple[int, ...] = (),
    ) -> None:
        self._gen = gen
        self._layers = layers
        """otm's layers active when the stream was made: a generator that calls
        the SDK lazily (EcoLogits) runs under them, so inner layers stand aside."""
        self._call = call
        self._observe = observe
        self._lazy = lazy
        """The request starts at the first ``next()`` (False: it was sent already,
        e.g. a stream another instrumentation wrapped in its own generator)."""
        self._started = not lazy
        self.otm: Record | None = None
        call.streamed = True
        call.hold(self)
        if lazy:
            return  # the GC finaliser is registered at the first next(): see _start
        if call.t_headers is None:
            call.t_headers = _perf()
        call.finalise_on_gc(self)

    def _start(self) -> None:
        self._started = True
        call = self._call
        call.start_wall = _wall()
        call.t0 = _perf()
        try:
            call.finalise_on_gc(self)
        except Exception as exc:
            log_once("capture.stream.start", exc)

    def _closed(self) -> None:
        if self._started:
            end(self._call, "abandoned")
        else:
            # Never advanced: no request was sent, so there is nothing to record.
            self._call.status = "never-started"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gen, name)

    def __repr__(self) -> str:
        return f"<otm {type(self).__name__} of {self._gen!r}>"


class SyncStreamProxy(_StreamProxy):
    """A generator-like wrapper for bare generators: iteration, ``next``, ``send``,
    ``throw``, ``close``; carries ``.otm`` once the stream ends."""

    __slots__ = ()

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        if not self._started:
            self._start()
        call = self._call
        try:
            if self._layers:
                token = handoff.layers.set(self._layers)
                try:
                    item = next(self._gen)
                finally:
                    handoff.layers.reset(token)
            else:
                item = next(self._gen)
        except StopIteration:
            end(call, "ok")
            raise
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        try:
            self._observe(call, item)
        except Exception as exc:
            log_once("observe generator", exc)
        return item

    def send(self, value: Any) -> Any:
        if value is None:
            return self.__next__()
        return self._gen.send(value)

    def throw(self, *args: Any) -> Any:
        return self._gen.throw(*args)

    def close(self) -> None:
        try:
            close = getattr(self._gen, "close", None)
            if close is not None:
                close()
        finally:
            self._closed()


class AsyncStreamProxy(_StreamProxy):
    """The async twin of :class:`SyncStreamProxy` (``async for``, ``__anext__``, ``aclose``)."""

    __slots__ = ()

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        if not self._started:
            self._start()
        call = self._call
        try:
            if self._layers:
                token = handoff.layers.set(self._layers)
                try:
                    item = await self._gen.__anext__()
                finally:
                    handoff.layers.reset(token)
            else:
                item = await self._gen.__anext__()
        except StopAsyncIteration:
            end(call, "ok")
            raise
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        try:
            self._observe(call, item)
        except Exception as exc:
            log_once("observe async generator", exc)
        return item

    async def asend(self, value: Any) -> Any:
        if value is None:
            return await self.__anext__()
        return await self._gen.asend(value)

    async def athrow(self, *args: Any) -> Any:
        return await self._gen.athrow(*args)

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._gen, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._closed()

"""LiteLLM calls in flight, and the one place each is finished: exactly once, by whoever is first.

A LiteLLM call can be finished two ways, in either order:

* LiteLLM's success or failure callback: on a worker thread for a sync call,
  as a task on the caller's event loop for an async one, some time after the
  call returned (for a stream, after it ended);
* the first read of ``.otm`` on what LiteLLM returned (:mod:`.litellm_attach`),
  which cannot wait for that callback: a worker may be busy or drop it, and an
  async reader would block the very loop the callback task needs.

Both read the same sources (:mod:`.litellm_read`) and the same ends, taken
when they happened rather than when the record is made: a non-streamed call
ends when LiteLLM had the provider's response (its post-API-call hook), a
stream when LiteLLM's iteration ended (or, should LiteLLM log it first, at
LiteLLM's end time). So the record is the same whichever comes first, and
it is made once: the first claims the call, the other finds it finished. A
reader that finds another thread finishing the call waits for that thread,
which is already running (never for a callback still to come); in one thread
(an event loop) that cannot happen.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from otm._log import log_once
from otm.capture import handoff
from otm.capture.attach import attach
from otm.capture.call import Call, _perf
from otm.capture.litellm_read import (
    fill_failure,
    fill_success,
    first_chunk,
    new_call,
    operation,
    perf_of,
    response_end,
    wall_of,
)
from otm.capture.wrappers import guarded

if TYPE_CHECKING:
    from otm.record import Record

_MAX_PENDING = 10_000
"""Calls whose end LiteLLM never reports (an abandoned stream) are forgotten past this many."""

_MAX_FINISHED = 1_024
"""Finished calls remembered by id: a late callback is skipped, a late ``.otm`` read is
answered. A response that was handed its record keeps it for good; one whose record
went to another object (``text_completion`` converts LiteLLM's chat response) finds it
here for this many later calls."""

_WAIT_S = 5.0
"""How long a reader waits for another thread that is finishing the same call."""


class _Flight:
    """One LiteLLM call otm is recording, from its pre-API-call hook to its record."""

    __slots__ = ("assembled", "call", "kwargs", "owner", "t_response", "t_stream_end", "waiter")

    def __init__(self, call: Call, kwargs: Mapping[str, Any]) -> None:
        self.call = call
        self.kwargs = kwargs
        """LiteLLM's details of the call (one dict it keeps filling: first-chunk time, ...)."""
        self.t_response: float | None = None
        """When LiteLLM last had a provider response (its post-API-call hook)."""
        self.t_stream_end: float | None = None
        """When LiteLLM's stream had been read to its end."""
        self.assembled: Any = None
        """The stream's whole response as LiteLLM assembled it (for its callback)."""
        self.owner: int | None = None
        """The thread finishing the call (set once, by whoever is first)."""
        self.waiter: threading.Event | None = None
        """Made only when a reader waits for another thread's finish."""


_flights: OrderedDict[str, _Flight] = OrderedDict()
_finished: OrderedDict[str, Record | None] = OrderedDict()
_lock = threading.Lock()
_anonymous = itertools.count()

# What a claim found.
_MINE, _BUSY, _DONE, _NOT_YET = range(4)


def _claim(cid: str, ready: Callable[[_Flight], bool] | None = None) -> tuple[int, Any]:
    """Claim the call ``cid`` for finishing: (_MINE, flight), (_BUSY, flight finished
    by another thread, or by this one further up the stack), (_DONE, its record) or
    (_NOT_YET, None): unknown, or not ``ready`` to be finished by this reader."""
    me = threading.get_ident()
    with _lock:
        if cid in _finished:
            return _DONE, _finished[cid]
        flight = _flights.get(cid)
        if flight is None or (ready is not None and flight.owner is None and not ready(flight)):
            return _NOT_YET, None
        if flight.owner is None:
            flight.owner = me
            return _MINE, flight
        if flight.owner != me and flight.waiter is None:
            flight.waiter = threading.Event()
        return _BUSY, flight


def _settle(
    cid: str,
    flight: _Flight,
    status: str,
    fill: Callable[[Call], str | None],
    at: float,
    holder: Any = None,
) -> Record | None:
    """Finish a claimed call: read what is known into it, build, attach and emit the record."""
    call = flight.call
    record = None
    try:
        # A failure to read is logged once; the call is still recorded with what is known.
        status = guarded(f"litellm.read[{status}]", fill, call) or status
        record = call.finish(status, holder, at=at)
    finally:
        with _lock:
            if _flights.get(cid) is flight:
                del _flights[cid]
            _remember(cid, record)
            waiter = flight.waiter
        handoff.release(cid)
        if waiter is not None:
            waiter.set()
    return record


def _remember(cid: str, record: Record | None) -> None:
    """(under the lock) ``cid`` is finished."""
    _finished[cid] = record
    while len(_finished) > _MAX_FINISHED:
        _finished.popitem(last=False)


def _wait_for(flight: _Flight, cid: str) -> Record | None:
    waiter = flight.waiter
    if waiter is None:  # this thread is finishing it, further up the stack
        return flight.call.record
    if not waiter.wait(_WAIT_S):
        log_once("litellm.wait", message="otm: a LiteLLM call took too long to finish; .otm is None")
    return _finished.get(cid)


# --------------------------------------------------------------------------- LiteLLM's hooks


def _call_id(kwargs: Mapping[str, Any]) -> str:
    cid = kwargs.get("litellm_call_id")
    return cid if isinstance(cid, str) and cid else f"otm-{next(_anonymous)}"


def begin(kwargs: Mapping[str, Any]) -> None:
    """The provider request is about to be sent (caller's thread or task)."""
    op = operation(kwargs)
    if op is None:
        return
    cid = _call_id(kwargs)
    handoff.claim(cid)
    with _lock:
        flight = _flights.get(cid)
        if flight is not None:  # a retry of the same call: the record covers all attempts
            flight.kwargs = kwargs
            return
        if cid in _finished:
            return
    fresh = _Flight(new_call(kwargs, op), kwargs)  # (outside the lock: the first may load otm.data)
    with _lock:
        if cid not in _flights and cid not in _finished:
            _flights[cid] = fresh
            while len(_flights) > _MAX_PENDING:
                _flights.popitem(last=False)


def responded(kwargs: Mapping[str, Any]) -> None:
    """LiteLLM has the provider's response (a stream's headers): its post-API-call hook."""
    cid = kwargs.get("litellm_call_id")
    if not isinstance(cid, str):
        return
    handoff.release(cid)  # the SDK call (if any) has returned
    flight = _flights.get(cid)
    if flight is not None:
        flight.t_response = _perf()
        flight.kwargs = kwargs


def success(kwargs: Mapping[str, Any], response: Any, start: Any, end: Any) -> None:
    """LiteLLM's success callback (for a stream: once, when it has ended)."""
    cid = kwargs.get("litellm_call_id")
    if kwargs.get("cache_hit") is True:
        if isinstance(cid, str):  # answered from LiteLLM's cache: no provider request
            handoff.release(cid)
            with _lock:
                flight = _flights.get(cid)
                if flight is not None and flight.owner is None:
                    del _flights[cid]
        return
    flight = _claimed_for_callback(kwargs, cid, start)
    if flight is None:
        return
    call = flight.call
    streamed = kwargs.get("stream") is True
    final = kwargs.get("complete_streaming_response") if streamed else None
    result = final if final is not None else response
    mark = flight.t_stream_end if streamed else flight.t_response
    at = mark if mark is not None else perf_of(call, end) or _perf()

    def fill(c: Call) -> None:
        fill_success(c, kwargs, result, response)
        if streamed:
            first_chunk(c, kwargs)

    _settle(flight_id(flight, cid), flight, "ok", fill, at, None if streamed else response)


def failure(kwargs: Mapping[str, Any], start: Any, end: Any) -> None:
    """LiteLLM's failure callback."""
    cid = kwargs.get("litellm_call_id")
    flight = _claimed_for_callback(kwargs, cid, start)
    if flight is None:
        return
    at = perf_of(flight.call, end) or _perf()
    _settle(flight_id(flight, cid), flight, "error", lambda c: fill_failure(c, kwargs), at)


def flight_id(flight: _Flight, cid: Any) -> str:
    return cid if isinstance(cid, str) else f"otm-{id(flight)}"


def _claimed_for_callback(kwargs: Mapping[str, Any], cid: Any, start: Any) -> _Flight | None:
    """The call a callback ends, claimed; None when it is finished or being finished
    elsewhere (a ``.otm`` read came first), or is not one otm records."""
    if isinstance(cid, str):
        state, found = _claim(cid)
        if state == _MINE:
            return found  # type: ignore[no-any-return]
        if state != _NOT_YET:
            return None
    # No pre-call hook was seen: a record from the callback alone.
    op = operation(kwargs)
    if op is None:
        return None
    call = new_call(kwargs, op)
    begun = wall_of(kwargs.get("api_call_start_time")) or wall_of(kwargs.get("start_time")) or wall_of(start)
    if begun is not None:  # place the start on otm's clocks
        call.t0 -= call.start_wall - begun
        call.start_wall = begun
    flight = _Flight(call, kwargs)
    flight.owner = threading.get_ident()
    return flight


# --------------------------------------------------------------------------- what the user holds


def _hidden(obj: Any, name: str) -> Any:
    hidden = getattr(obj, "_hidden_params", None)
    if isinstance(hidden, Mapping):
        return hidden.get(name)
    return getattr(hidden, name, None)


def _not_streamed(flight: _Flight) -> bool:
    return not flight.call.streamed


def _stream_ended(flight: _Flight) -> bool:
    return flight.t_stream_end is not None


def record_for_response(obj: Any) -> Record | None:
    """The record of the non-streamed call that returned ``obj`` (a ``ModelResponse``,
    ``TextCompletionResponse``, ``EmbeddingResponse``), finished now if LiteLLM has not
    logged it yet; None for a call otm did not record."""
    cid = _hidden(obj, "litellm_call_id")
    if not isinstance(cid, str):
        return None
    state, found = _claim(cid, _not_streamed)
    if state == _DONE or state == _NOT_YET:
        return found  # type: ignore[no-any-return]
    if state == _BUSY:
        return _wait_for(found, cid)
    flight: _Flight = found
    kwargs = flight.kwargs
    at = flight.t_response
    if at is None:
        at = perf_of(flight.call, response_end(kwargs, obj)) or _perf()
    return _settle(cid, flight, "ok", lambda c: fill_success(c, kwargs, obj), at, obj)


def _stream_id(wrapper: Any) -> str | None:
    cid = getattr(getattr(wrapper, "logging_obj", None), "litellm_call_id", None)
    return cid if isinstance(cid, str) else None


def record_for_stream(wrapper: Any) -> Record | None:
    """The record of the stream ``wrapper`` (LiteLLM's ``CustomStreamWrapper``) once its
    iteration has ended, finished now if LiteLLM has not logged it yet; None before."""
    cid = _stream_id(wrapper)
    if cid is None:
        return None
    state, found = _claim(cid, _stream_ended)
    if state == _DONE or state == _NOT_YET:
        return found  # type: ignore[no-any-return]
    if state == _BUSY:
        return _wait_for(found, cid)
    flight: _Flight = found
    kwargs = flight.kwargs

    assembled = flight.assembled

    def fill(c: Call) -> None:
        # The response LiteLLM's callback gets (assembled here only if LiteLLM did not).
        fill_success(c, kwargs, assembled if assembled is not None else _assembled(wrapper), wrapper)
        first_chunk(c, kwargs)

    return _settle(cid, flight, "ok", fill, flight.t_stream_end or _perf(), wrapper)


def _assembled(wrapper: Any) -> Any:
    build = getattr(wrapper, "_build_complete_streaming_response", None)
    if callable(build):
        return build()
    import litellm

    return litellm.stream_chunk_builder(chunks=wrapper.chunks, messages=wrapper.messages)


def stream_ended(wrapper: Any, at: float, assembled: Any = None) -> None:
    """LiteLLM's stream ``wrapper`` was read to its end at ``at`` (and ``assembled``
    its whole response), in the caller's thread or task."""
    cid = _stream_id(wrapper)
    if cid is None:
        return
    flight = _flights.get(cid)
    if flight is not None:
        if assembled is not None:
            flight.assembled = assembled
        if flight.t_stream_end is None:  # set last: a reader that sees it sees the rest
            flight.t_stream_end = at
            flight.call.hold(wrapper)  # LiteLLM's callback, if first, attaches .otm here
        return
    record = _finished.get(cid)
    if record is not None:
        attach(wrapper, record)


def forget() -> None:
    """Drop the calls in flight (``otm.uninstrument()``); finished ones stay readable."""
    with _lock:
        for cid in _flights:
            handoff.release(cid)
        _flights.clear()


__all__ = [
    "begin",
    "failure",
    "forget",
    "record_for_response",
    "record_for_stream",
    "responded",
    "stream_ended",
    "success",
]

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

A stream the caller breaks off gets no callback from LiteLLM: otm's layer on
the stream (:mod:`.litellm_streams`) finishes it here (:func:`cut`) on a
close, an exception or cancellation in its iteration, or when the garbage
collector frees it, with what it carried so far.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from otm._log import log_once
from otm.capture import handoff
from otm.capture.attach import attach
from otm.capture.call import Call, _perf
from otm.capture.litellm_read import (
    fill_exception,
    fill_failure,
    fill_partial,
    fill_success,
    first_chunk,
    input_text,
    new_call,
    operation,
    perf_of,
    request_id_of,
    response_end,
    wall_of,
)
from otm.capture.wrappers import guarded

if TYPE_CHECKING:
    from otm.record import Record

_MAX_PENDING = 10_000
"""A bound on the calls in flight. Every call ends (LiteLLM's callback, a first read, or
its stream's own end, cut short included); one that somehow never does is dropped,
unrecorded, past this many."""

_MAX_FINISHED = 1_024
"""Finished calls whose record is kept by id, for a late ``.otm`` read. Every object
LiteLLM hands the caller is given its record directly (a response, a stream, the
``TextCompletionResponse`` that ``text_completion`` converts LiteLLM's chat response
into), so this serves only a read racing the finish."""

_MAX_DONE = 1 << 16
"""Finished calls remembered (by the hash of their id: a few MB at most) so that
LiteLLM's callback, when it comes after a read finished the call, is skipped: its
worker may lag that many calls behind before a call could be recorded twice."""

_WAIT_S = 5.0
"""How long a reader waits for another thread that is finishing the same call."""


class _Flight:
    """One LiteLLM call otm is recording, from its pre-API-call hook to its record."""

    __slots__ = (
        "assembled",
        "call",
        "cid",
        "finalizer",
        "kwargs",
        "observe",
        "owner",
        "partial",
        "reading",
        "t_response",
        "t_stream_end",
        "waiter",
    )

    def __init__(self, call: Call, kwargs: Mapping[str, Any] | None, cid: str = "") -> None:
        self.call = call
        self.cid = cid
        self.kwargs = kwargs
        """LiteLLM's details of the call (one dict it keeps filling: first-chunk time, ...);
        None once the call is a stream (:func:`watch_stream`): the details name the stream."""
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
        # A stream's, set by watch_stream:
        self.observe: Callable[[Call, Any], None] | None = None
        """Reads one chunk into the call (clock and attribute reads)."""
        self.partial: Any = None
        """What a stream cut short is read from: the chunks LiteLLM keeps (chat)."""
        self.reading = False
        """LiteLLM's iteration is running: a close from inside it is LiteLLM's own."""
        self.finalizer: weakref.finalize[Any, Any] | None = None


_flights: OrderedDict[str, _Flight] = OrderedDict()
_finished: OrderedDict[str, Record | None] = OrderedDict()
_done: set[int] = set()
_done_order: deque[int] = deque()
# Reentrant: the garbage collector may free a stream, and cut its call, while this
# thread holds the lock.
_lock = threading.RLock()
_anonymous = itertools.count()
_DROPPED = -1
"""A flight's owner once it is dropped unfinished (uninstrument, too many pending)."""

# What a claim found.
_MINE, _BUSY, _DONE, _NOT_YET = range(4)


def _claim(cid: str, ready: Callable[[_Flight], bool] | None = None) -> tuple[int, Any]:
    """Claim the call ``cid`` for finishing: (_MINE, flight), (_BUSY, flight finished
    by another thread, or by this one further up the stack), (_DONE, its record) or
    (_NOT_YET, None): unknown, or not ``ready`` to be finished by this reader."""
    me = threading.get_ident()
    with _lock:
        if _is_done(cid):
            return _DONE, _finished.get(cid)
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
        _unwatch(flight)
        handoff.release(cid)
        if waiter is not None:
            waiter.set()
    return record


def _unwatch(flight: _Flight) -> None:
    finalizer, flight.finalizer = flight.finalizer, None
    if finalizer is not None:
        finalizer.detach()
    flight.partial = None


def _remember(cid: str, record: Record | None) -> None:
    """(under the lock) ``cid`` is finished."""
    _finished[cid] = record
    while len(_finished) > _MAX_FINISHED:
        _finished.popitem(last=False)
    h = hash(cid)
    if h not in _done:
        _done.add(h)
        _done_order.append(h)
        while len(_done_order) > _MAX_DONE:
            _done.discard(_done_order.popleft())


def _is_done(cid: str) -> bool:
    """(under the lock) Whether the call ``cid`` was finished."""
    return cid in _finished or hash(cid) in _done


def _wait_for(flight: _Flight, cid: str) -> Record | None:
    waiter = flight.waiter
    if waiter is None:  # this thread is finishing it, further up the stack
        return flight.call.record
    if not waiter.wait(_WAIT_S):
        log_once("litellm.wait", message="otm: a LiteLLM call took too long to finish; .otm is None")
    return flight.call.record


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
            if flight.observe is None:
                flight.kwargs = kwargs
            return
        if _is_done(cid):
            return
    fresh = _Flight(new_call(kwargs, op), kwargs, cid)  # (outside the lock: the first may load otm.data)
    dropped: list[_Flight] = []
    with _lock:
        if cid not in _flights and not _is_done(cid):
            _flights[cid] = fresh
            while len(_flights) > _MAX_PENDING:
                dropped.append(_flights.popitem(last=False)[1])
                dropped[-1].owner = _DROPPED
    for old in dropped:
        _unwatch(old)


def responded(kwargs: Mapping[str, Any]) -> None:
    """LiteLLM has the provider's response (a stream's headers): its post-API-call hook."""
    cid = kwargs.get("litellm_call_id")
    if not isinstance(cid, str):
        return
    handoff.release(cid)  # the SDK call (if any) has returned
    flight = _flights.get(cid)
    if flight is not None:
        flight.t_response = _perf()
        if flight.observe is None:  # (a stream's details name the stream: not kept)
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
    partial = flight.partial
    streamed = flight.observe is not None

    def fill(c: Call) -> str:
        if streamed:  # what the stream carried before it failed
            fill_partial(c, partial)
        return fill_failure(c, kwargs)

    _settle(flight_id(flight, cid), flight, "error", fill, at)


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
    flight = _Flight(call, kwargs, cid if isinstance(cid, str) else "")
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
    kwargs = flight.kwargs or {}
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
    kwargs = _details(wrapper) or flight.kwargs or {}

    assembled = flight.assembled

    def fill(c: Call) -> None:
        # The response LiteLLM's callback gets (assembled here only if LiteLLM did not).
        fill_success(c, kwargs, assembled if assembled is not None else _assembled(wrapper), wrapper)
        first_chunk(c, kwargs)

    return _settle(cid, flight, "ok", fill, flight.t_stream_end or _perf(), wrapper)


def _details(stream: Any) -> Mapping[str, Any] | None:
    """LiteLLM's details of the call a stream belongs to."""
    details = getattr(getattr(stream, "logging_obj", None), "model_call_details", None)
    return details if isinstance(details, Mapping) else None


def _assembled(wrapper: Any) -> Any:
    build = getattr(wrapper, "_build_complete_streaming_response", None)
    if callable(build):
        return build()
    if not isinstance(getattr(wrapper, "chunks", None), list):
        return None  # (a Responses stream: its response comes with its last event)
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


# --------------------------------------------------------------------------- streams cut short


def watch_stream(
    stream: Any, observe: Callable[[Call, Any], None], partial: Any, collected: Callable[[_Flight], None]
) -> _Flight | None:
    """LiteLLM made ``stream`` for a call otm records: its flight (None for a call otm does
    not record), from now on fed each chunk by ``observe`` and finished when the stream is
    cut short (``collected(flight)`` when the garbage collector frees it unfinished).

    A stream wrapping another of the same call (a Router's) shares the flight: chunks are
    seen once, on the inner stream, which the outer one keeps alive.
    """
    cid = _stream_id(stream)
    if cid is None:
        return None
    with _lock:
        flight = _flights.get(cid)
        if flight is None or flight.owner is not None:
            return None
        first = flight.observe is None
        if first:
            flight.observe = observe
            flight.partial = partial
            # LiteLLM's details name the stream (``original_response``): holding them
            # would keep an abandoned stream alive, and its record from being made.
            flight.kwargs = None
    call = flight.call
    call.hold(stream)
    if first:
        call.streamed = True
        call.chunks_counted = True
        lazy = getattr(stream, "completion_stream", 0) is None and getattr(stream, "make_call", None)
        if call.t_headers is None and not lazy:
            call.t_headers = _perf()  # the response began: LiteLLM made its stream from it
        call.request_id = call.request_id or request_id_of(stream)
        details = _details(stream)
        if details is not None:
            input_text(call, details)
        finalizer = weakref.finalize(stream, collected, flight)
        finalizer.atexit = False
        flight.finalizer = finalizer
    return flight


def cut(
    flight: _Flight,
    status: str,
    at: float | None,
    exc: BaseException | None = None,
    text: str | None = None,
) -> None:
    """Finish a stream the caller broke off, once (none if it ended or is being finished):
    ``abandoned`` (a close, a garbage-collector pass), or from ``exc`` (``error``,
    ``cancelled``), with the tokens and times seen so far. Never waits."""
    me = threading.get_ident()
    call = flight.call
    with _lock:
        if flight.owner is not None or _is_done(flight.cid) or flight.t_stream_end is not None:
            return
        if exc is None and not call.chunks and call.t_headers is None and flight.t_response is None:
            # A lazy stream (its request is sent at the first read) dropped unread: no request.
            if _flights.get(flight.cid) is flight:
                del _flights[flight.cid]
            flight.owner = _DROPPED
            dropped = True
        else:
            flight.owner = me
            dropped = False
    if dropped:
        _unwatch(flight)
        handoff.release(flight.cid)
        return
    partial = flight.partial

    def fill(c: Call) -> str | None:
        fill_partial(c, partial, text)
        return fill_exception(c, exc) if exc is not None else None

    _settle(flight.cid, flight, status, fill, at if at is not None else _perf())


def converted(chat: Any, text: Any) -> None:
    """``text_completion`` converted LiteLLM's chat response ``chat`` into ``text``, the
    object the caller gets: it gets the call's record too, now or when the call finishes."""
    cid = _hidden(text, "litellm_call_id") or _hidden(chat, "litellm_call_id")
    if not isinstance(cid, str):
        return
    with _lock:
        flight = _flights.get(cid)
        record = _finished.get(cid)
    if flight is not None:
        flight.call.hold(text)
    elif record is not None:
        attach(text, record)


def forget() -> None:
    """Drop the calls in flight (``otm.uninstrument()``); finished ones stay readable."""
    with _lock:
        dropped = list(_flights.items())
        _flights.clear()
        for _, flight in dropped:
            flight.owner = _DROPPED
    for cid, flight in dropped:
        handoff.release(cid)
        _unwatch(flight)


__all__ = [
    "begin",
    "converted",
    "cut",
    "failure",
    "forget",
    "record_for_response",
    "record_for_stream",
    "responded",
    "stream_ended",
    "success",
    "watch_stream",
]

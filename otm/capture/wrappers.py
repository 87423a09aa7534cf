"""The wrapt wrappers around SDK methods, and the guard every otm step runs in.

A wrapper starts a :class:`~otm.capture.call.Call` (``begin``), runs the SDK
method, and hands what it returned to ``complete`` (which attaches figures or
instruments a stream). Failures inside otm are logged once and never change
the user's result or exception.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from otm._log import log_once
from otm.capture import handoff
from otm.capture.call import _NOT_FINISHED, Call
from otm.capture.patching import is_inert, registry
from otm.capture.settings import snapshot

_active = handoff.layers


def _enter(wrapper: Callable[..., Any]) -> contextvars.Token[tuple[int, ...]] | None:
    """None when an outer layer of the same otm wrapper already records this call."""
    active = _active.get()
    me = id(wrapper)
    if me in active:
        return None
    registry.on_top(wrapper)
    return _active.set(active + (me,))


def guarded(where: str, fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    """Run otm-side code; on failure log once and return ``default``."""
    try:
        return fn(*args)
    except Exception as exc:
        log_once(where, exc)
        return default


def _salvage(where: str, call: Call, result: Any) -> None:
    """``complete`` failed: still record a non-streamed call with what is known."""
    if call.status == _NOT_FINISHED and not call.streamed:
        guarded(f"{where}.salvage", call.finish, "ok", result)


def make_sync_wrapper(
    where: str,
    begin: Callable[[Any, tuple[Any, ...], dict[str, Any]], Call | None],
    complete: Callable[[Call, Any], Any],
) -> Callable[..., Any]:
    """A wrapt wrapper for a sync SDK method.

    ``begin(instance, args, kwargs)`` starts a Call (or returns None to pass
    through); ``complete(call, result)`` attaches figures or instruments the
    returned stream and returns what the user receives (normally ``result``
    itself). Failures inside otm never change the user's result or exception.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if snapshot().disabled or is_inert(wrapper) or handoff.owned():
            return wrapped(*args, **kwargs)
        token = _enter(wrapper)
        if token is None:
            return wrapped(*args, **kwargs)
        try:
            try:
                call = begin(instance, args, kwargs)
            except Exception as exc:
                log_once(f"{where}.begin", exc)
                call = None
            if call is None:
                return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                guarded(f"{where}.fail", call.fail, exc)
                raise
            try:
                return complete(call, result)
            except Exception as exc:
                log_once(f"{where}.complete", exc)
                _salvage(where, call, result)
                return result
        finally:
            _active.reset(token)

    return wrapper


def make_async_wrapper(
    where: str,
    begin: Callable[[Any, tuple[Any, ...], dict[str, Any]], Call | None],
    complete: Callable[[Call, Any], Any],
) -> Callable[..., Any]:
    """The async twin of :func:`make_sync_wrapper` for ``async def`` SDK methods."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if snapshot().disabled or is_inert(wrapper) or handoff.owned():
            return wrapped(*args, **kwargs)
        if id(wrapper) in _active.get():
            return wrapped(*args, **kwargs)  # an outer layer of this wrapper records the call

        async def run() -> Any:
            token = _enter(wrapper)
            try:
                try:
                    call = begin(instance, args, kwargs)
                except Exception as exc:
                    log_once(f"{where}.begin", exc)
                    call = None
                if call is None:
                    return await wrapped(*args, **kwargs)
                try:
                    result = await wrapped(*args, **kwargs)
                except BaseException as exc:
                    guarded(f"{where}.fail", call.fail, exc)
                    raise
                try:
                    return complete(call, result)
                except Exception as exc:
                    log_once(f"{where}.complete", exc)
                    _salvage(where, call, result)
                    return result
            finally:
                if token is not None:
                    _active.reset(token)

        return run()

    return wrapper


def make_passthrough_wrapper(where: str, after: Callable[[Any], Any]) -> Callable[..., Any]:
    """A wrapt wrapper that calls the SDK method, then ``after(result)``.

    For methods that start no request themselves (openai's ``.stream()``
    helpers return a context manager; the request starts in its
    ``__enter__``). ``after`` returns what the user receives (normally
    ``result`` itself); if it fails, the result passes through unchanged.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        result = wrapped(*args, **kwargs)
        if snapshot().disabled or is_inert(wrapper):
            return result
        try:
            return after(result)
        except Exception as exc:
            log_once(f"{where}.after", exc)
            return result

    return wrapper

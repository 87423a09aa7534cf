"""Putting a record on what the caller holds, as ``.otm``, without changing how it looks.

Light on purpose: ``otm.instrument()`` gives the SDKs' model base classes the
``.otm`` descriptor, while the record machinery (:mod:`.records`) loads with
the first record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from otm._log import log_once

if TYPE_CHECKING:
    from otm.record import Record

ATTR = "otm"
"""Name of the attribute carrying the record on responses, streams and helpers."""


def attach(obj: Any, record: Record) -> None:
    """Put ``record`` on ``obj`` as ``.otm`` without touching its fields or equality."""
    try:
        object.__setattr__(obj, ATTR, record)
    except Exception as exc:  # frozen or slotted objects: nothing to attach to
        log_once(f"attach to {type(obj).__name__}", exc)


# --------------------------------------------------------------------------- .otm on SDK models
#
# A pydantic model keeps instance attributes in its ``__dict__``, so a record
# set there shows in ``vars(r)``, ``dict(r)`` and ``for k, v in r``. Instead,
# the SDKs' model base classes get an ``otm`` descriptor, and the record rides
# on the instance's ``__dict__`` itself: the dict is swapped for a dict
# subclass with one slot. Its items are unchanged, so every way of looking at
# the model (fields, ``vars``, iteration, ``==``, ``repr``, dumps) is the bare
# SDK's; and because the record is part of the instance's own state, pickle,
# ``copy``, ``deepcopy`` and ``model_copy`` carry it as they did before.


class _RecordDict(dict):  # type: ignore[type-arg]
    """A model's ``__dict__``, unchanged, carrying the record in a slot."""

    __slots__ = ("record",)
    record: Record | None


class RecordAttribute:
    """``.otm`` on instances of an SDK's models (a data descriptor on their base class)."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        d = object.__getattribute__(obj, "__dict__")
        if type(d) is _RecordDict:
            return d.record
        raise AttributeError(ATTR)

    def __set__(self, obj: Any, value: Any) -> None:
        d = object.__getattribute__(obj, "__dict__")
        if type(d) is not _RecordDict:
            d = _RecordDict(d)
            object.__setattr__(obj, "__dict__", d)
        d.record = value


_RECORD_ATTRIBUTE = RecordAttribute()


class LazyRecordAttribute(RecordAttribute):
    """``.otm`` on models whose record may not be attached yet when it is first read.

    For integrations that learn of a call's end after it returned (LiteLLM's
    callbacks): with no record attached, ``resolve(obj)`` finds (or finishes)
    the record, which is then attached as :class:`RecordAttribute` does. A
    resolver that finds none (or fails, logged once) leaves ``.otm`` missing.
    """

    def __init__(self, resolve: Callable[[Any], Any]) -> None:
        self._resolve = resolve

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        d = object.__getattribute__(obj, "__dict__")
        if type(d) is _RecordDict:
            return d.record
        try:
            record = self._resolve(obj)
        except Exception as exc:
            log_once(f"resolve .otm on {type(obj).__name__}", exc)
            record = None
        if record is None:
            raise AttributeError(ATTR)
        if type(object.__getattribute__(obj, "__dict__")) is not _RecordDict:
            self.__set__(obj, record)
        return record


class ResolvedAttribute:
    """``.otm`` on plain objects (streams) whose record is found on first read: ``resolve(obj)``
    or None (not ended yet); once found it is kept on the instance, where reads go next."""

    def __init__(self, resolve: Callable[[Any], Any]) -> None:
        self._resolve = resolve

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        try:
            record = self._resolve(obj)
        except Exception as exc:
            log_once(f"resolve .otm on {type(obj).__name__}", exc)
            return None
        if record is not None:
            attach(obj, record)
        return record


def give_records(owner: type, attribute: Any) -> bool:
    """Put ``attribute`` (an ``.otm`` descriptor) on ``owner`` once; True if it was put there.
    It stays after ``uninstrument()``: records already made remain readable."""
    current = owner.__dict__.get(ATTR)
    if type(current) is type(attribute):
        return False
    setattr(owner, ATTR, attribute)
    if isinstance(attribute, RecordAttribute):
        _hide_in_dir(owner)
    return True


def _hide_in_dir(base: type) -> None:
    """``dir()`` of an instance without a record does not list ``otm``: code that reads every
    name ``dir()`` gives (LiteLLM does, on openai's models) must not meet a missing one."""
    inner: Callable[[Any], Iterable[str]] = base.__dict__.get("__dir__") or base.__dir__  # type: ignore[assignment]

    def __dir__(self: Any) -> list[str]:
        names = list(inner(self))
        if ATTR in names and type(object.__getattribute__(self, "__dict__")) is not _RecordDict:
            names.remove(ATTR)
        return names

    __dir__.__wrapped__ = inner  # type: ignore[attr-defined]
    type.__setattr__(base, "__dir__", __dir__)


def keep_records_out_of(bases: tuple[type, ...]) -> None:
    """Give these model base classes the ``.otm`` descriptor (once; it stays, so records
    on responses made before ``uninstrument()`` remain readable)."""
    for base in bases:
        if base.__dict__.get(ATTR) is not _RECORD_ATTRIBUTE:
            setattr(base, ATTR, _RECORD_ATTRIBUTE)
            _hide_in_dir(base)

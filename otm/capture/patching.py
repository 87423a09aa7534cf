"""Patching: class-level patches of SDK methods, and per-object class swaps.

* :class:`PatchRegistry` wraps SDK methods with wrapt: idempotent, reversible,
  thread-safe. What otm patched is kept in its own registry (never inferred
  from wrapt types), so other instrumentors stacked on the same methods are
  left alone: if one wrapped a method after otm, uninstalling leaves its
  wrapper in place and otm's layer underneath goes inert (:func:`is_inert`).
* :func:`swap_class` gives one object (a stream, a raw response, a helper) a
  subclass of its own class that overrides a few methods: same object, same
  class name, same ``isinstance``. The subclasses are made once per (class,
  variant) and kept in one cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from otm._log import log_once

Target = tuple[type, str, Callable[..., Any]]
"""(class, method name, wrapt wrapper): one method to patch."""

_inert: set[int] = set()
"""ids of wrappers left in place under someone else's wrapper: they pass calls through."""

class _Patch(NamedTuple):  # a NamedTuple, not a dataclass: importing dataclasses costs otm.instrument() ~5 ms
    provider: str
    owner: type
    name: str
    original: Any
    installed: Any
    wrapper: Any
    below: Any = None
    """What otm's layer wraps after moving back on top of another instrumentor (else None)."""


class PatchRegistry:
    """What otm patched, so it can be undone; idempotent and thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._patches: dict[tuple[type, str], _Patch] = {}
        self._by_wrapper: dict[int, tuple[type, str]] = {}
        self._providers: set[str] = set()

    def is_installed(self, provider: str) -> bool:
        return provider in self._providers

    def installed(self) -> set[str]:
        return set(self._providers)

    def install(self, provider: str, targets: list[Target]) -> int:
        """Mark ``provider`` instrumented and wrap each ``owner.name`` with wrapt; returns
        how many were patched (0 if ``provider`` was instrumented already)."""
        with self._lock:
            if provider in self._providers:
                return 0
            self._providers.add(provider)
            return self._patch(provider, targets)

    def extend(self, provider: str, targets: list[Target]) -> int:
        """Wrap more methods of an instrumented ``provider`` (classes its SDK loaded since);
        nothing once it is uninstalled. Returns how many were patched."""
        with self._lock:
            if provider not in self._providers:
                return 0
            return self._patch(provider, targets)

    def _patch(self, provider: str, targets: list[Target]) -> int:
        if not targets:
            return 0
        import wrapt

        with self._lock:
            n = 0
            for owner, name, wrapper in targets:
                key = (owner, name)
                if key in self._patches or name not in owner.__dict__:
                    continue
                original = owner.__dict__[name]
                try:
                    wrapt.wrap_function_wrapper(owner, name, wrapper)
                except Exception as exc:
                    log_once(f"patch {owner.__qualname__}.{name}", exc)
                    continue
                _inert.discard(id(wrapper))
                self._patches[key] = _Patch(
                    provider, owner, name, original, owner.__dict__[name], wrapper
                )
                self._by_wrapper[id(wrapper)] = key
                n += 1
            return n

    def uninstall(self, provider: str | None = None) -> None:
        """Restore originals; a patch that someone else wrapped afterwards stays but goes inert."""
        with self._lock:
            for key, patch in list(self._patches.items()):
                if provider is not None and patch.provider != provider:
                    continue
                if patch.owner.__dict__.get(patch.name) is patch.installed:
                    if patch.below is None:
                        setattr(patch.owner, patch.name, patch.original)
                    else:  # the other instrumentor stays; otm's layer under it goes inert
                        setattr(patch.owner, patch.name, patch.below)
                        _inert.add(id(patch.wrapper))
                else:
                    _inert.add(id(patch.wrapper))
                del self._patches[key]
                self._by_wrapper.pop(id(patch.wrapper), None)
            if provider is None:
                self._providers.clear()
            else:
                self._providers.discard(provider)


    def on_top(self, wrapper: Callable[..., Any]) -> bool:
        """Whether otm's layer for ``wrapper`` is the outermost one on its method.

        When another instrumentor patched over it (EcoLogits after otm), otm's
        layer moves back on top, wrapping the other one, so that otm sees (and
        gives ``.otm`` to) what the caller receives, here and on every other
        method where it was displaced; returns False for the call in flight,
        which is recorded from underneath. Two attribute reads when nothing
        changed.
        """
        key = self._by_wrapper.get(id(wrapper))
        if key is None:
            return True
        patch = self._patches.get(key)
        if patch is None or key[0].__dict__.get(key[1]) is patch.installed:
            return True
        with self._lock:
            moved = self._move_on_top(key)
        if moved:  # the tool likely patched the other methods too: get ahead of their first calls
            self.restack()
        return not moved

    def restack(self) -> int:
        """Move otm's layer back on top wherever another instrumentor wrapped over it.

        Run before calls are made (an openai or anthropic resource being built,
        EcoLogits' ``init`` returning), so that the first call after the other
        tool patched already goes through otm's outer layer: the call-time check
        of :meth:`on_top` can only fix the calls after it. Only where otm's layer
        is still inside the new one (``__wrapped__``): a method someone restored
        to the SDK's own is left alone. Returns how many methods moved.
        """
        moved = 0
        for key, patch in list(self._patches.items()):
            current = key[0].__dict__.get(key[1])
            if current is patch.installed or not _wraps(current, patch.installed):
                continue
            with self._lock:
                moved += self._move_on_top(key)
        return moved

    def _move_on_top(self, key: tuple[type, str]) -> bool:
        """Wrap otm's wrapper around what is on ``key`` now (under the lock); True if it moved."""
        import wrapt

        patch = self._patches.get(key)
        if patch is None:
            return False
        owner, name = key
        current = owner.__dict__.get(name)
        if current is patch.installed or current is None:
            return False
        try:
            wrapt.wrap_function_wrapper(owner, name, patch.wrapper)
        except Exception as exc:
            log_once(f"re-patch {owner.__qualname__}.{name}", exc)
            return False
        self._patches[key] = patch._replace(installed=owner.__dict__[name], below=current)
        return True


def _wraps(outer: Any, inner: Any, depth: int = 8) -> bool:
    """Whether ``inner`` is in ``outer``'s chain of ``__wrapped__`` (wrapt, functools.wraps)."""
    for _ in range(depth):
        try:
            outer = getattr(outer, "__wrapped__", None)
        except Exception:
            return False
        if outer is None:
            return False
        if outer is inner:
            return True
    return False


registry = PatchRegistry()
"""The process's patches (what ``otm.instrument()`` installs)."""


def is_inert(wrapper: Callable[..., Any]) -> bool:
    """Whether ``wrapper`` was uninstalled while another instrumentor kept it wrapped."""
    return id(wrapper) in _inert


_swapped: dict[tuple[type, Any], type] = {}
_swapped_set: set[type] = set()
_swapped_lock = threading.Lock()


def swapped_class(base: type, variant: Any, make: Callable[[Any], type]) -> type:
    """The subclass ``make(base)`` for ``(base, variant)``, made once and cached."""
    key = (base, variant)
    sub = _swapped.get(key)
    if sub is None:
        with _swapped_lock:
            sub = _swapped.get(key)
            if sub is None:
                sub = make(base)
                _swapped[key] = sub
                _swapped_set.add(sub)
    return sub


def swap_class(obj: Any, variant: Any, make: Callable[[Any], type]) -> bool:
    """Give ``obj`` the cached subclass of its class for ``variant``; False if already swapped."""
    base = type(obj)
    if base in _swapped_set:
        return False
    obj.__class__ = swapped_class(base, variant, make)
    return True


def subclass(base: Any, namespace: dict[str, Any]) -> type:
    """A subclass of ``base`` that looks like it (same name, qualname and module)."""
    ns = {"__module__": base.__module__, "__qualname__": base.__qualname__, **namespace}
    return type(base.__name__, (base,), ns)

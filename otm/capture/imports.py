"""Post-import hooks: run a function when the program imports a given module.

``otm.instrument()`` must not import the SDKs itself (importing every
installed SDK costs seconds and a hundred MB for a program that uses one), so
for an SDK that is not imported yet it registers a hook here and patches the
SDK the moment the program imports it. An SDK already imported is patched at
once by the caller. Within an SDK, the classes otm patches may load later
still (openai loads each resource module when a client first uses it), so a
package can also be *watched*: a hook runs after each module under it is
executed, for as long as the watch lasts (:func:`watch`).

A small finder at the front of ``sys.meta_path`` watches for the hooked
names only: it lets the other finders find the module, wraps the loader so
that the hook runs right after the module has executed, then gives the module
its real loader back. The finder leaves ``sys.meta_path`` when no hook is
pending and no package is watched. (wrapt has post-import hooks too, but importing wrapt costs more than
the whole budget of ``instrument()``, and its hooks cannot be removed.)
A failing hook is logged once and never reaches the program's ``import``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from otm._log import log_once

Hook = Callable[[ModuleType], None]

_hooks: dict[str, Hook] = {}
"""One-shot hooks, by exact module name."""
_watches: dict[str, Hook] = {}
"""Standing hooks, by package: run for the package and each module under it."""
_roots: frozenset[str] = frozenset()
"""Top-level names of the watched packages: the finder's first, cheap test."""
_lock = threading.RLock()
_local = threading.local()


def when_imported(name: str, hook: Hook) -> bool:
    """Run ``hook(module)`` when module ``name`` is imported; at once if it already is.

    Returns True if the hook ran now. A later registration for the same name
    replaces a pending one.
    """
    module = sys.modules.get(name)
    if module is not None:
        _run(name, hook, module)
        return True
    with _lock:
        _hooks[name] = hook
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
    return False


def watch(package: str, hook: Hook) -> None:
    """Run ``hook(module)`` after ``package``, or any module under it, is imported, until
    :func:`unwatch`. Modules imported already are not passed: the caller looks at those.
    A later watch of the same package replaces the earlier one."""
    global _roots
    with _lock:
        _watches[package] = hook
        _roots = frozenset(p.partition(".")[0] for p in _watches)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def unwatch(package: str) -> None:
    """Stop watching ``package`` (nothing if it is not watched)."""
    global _roots
    with _lock:
        if _watches.pop(package, None) is not None:
            _roots = frozenset(p.partition(".")[0] for p in _watches)
        _remove_finder_if_idle()


def watched() -> set[str]:
    """The packages being watched."""
    with _lock:
        return set(_watches)


def _watches_of(fullname: str) -> list[Hook]:
    if fullname.partition(".")[0] not in _roots:
        return []
    return [
        hook
        for package, hook in list(_watches.items())
        if fullname == package or fullname.startswith(package + ".")
    ]


def cancel(name: str | None = None) -> None:
    """Forget the pending hook for ``name`` (every pending hook and watch with None)."""
    global _roots
    with _lock:
        if name is None:
            _hooks.clear()
            _watches.clear()
            _roots = frozenset()
        else:
            _hooks.pop(name, None)
        _remove_finder_if_idle()


def pending() -> set[str]:
    """The module names with a hook waiting for their import."""
    with _lock:
        return set(_hooks)


def _remove_finder_if_idle() -> None:
    if not _hooks and not _watches:
        try:
            sys.meta_path.remove(_finder)
        except ValueError:
            pass


def _run(name: str, hook: Hook, module: ModuleType) -> None:
    try:
        hook(module)
    except Exception as exc:
        log_once(f"post-import hook for {name}", exc)


def _fire(name: str, module: ModuleType) -> None:
    with _lock:
        hook = _hooks.pop(name, None)
        _remove_finder_if_idle()
        standing = _watches_of(name)
    if hook is not None:
        _run(name, hook, module)
    for watcher in standing:
        _run(name, watcher, module)


class _HookLoader:
    """The real loader, plus the hook once the module has executed."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        # The module keeps its real loader (importlib.resources and friends read it).
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self._loader
        _fire(self._name, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """Finds nothing itself: asks the other finders, and wraps the loader of a hooked module."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _hooks and not _watches_of(fullname):
            return None
        busy: set[str] = getattr(_local, "busy", None) or set()
        if fullname in busy:
            return None
        busy.add(fullname)
        _local.busy = busy
        try:
            for finder in list(sys.meta_path):
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            busy.discard(fullname)
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _HookLoader(loader, fullname)
        return spec


_finder = _Finder()

__all__ = ["cancel", "pending", "unwatch", "watch", "watched", "when_imported"]

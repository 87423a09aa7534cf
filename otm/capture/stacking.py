"""Staying the outermost layer when another instrumentor patches the SDK after otm.

What the caller holds is what the outermost layer returns: EcoLogits builds a
new response and hands back its own generator for a stream, so ``.otm`` is on
it only if otm's layer is outside EcoLogits'. A call made through the other
layer first cannot be fixed from underneath (a generator takes no attribute,
and EcoLogits' does not even call the SDK before it is iterated), so otm moves
back on top (:meth:`~otm.capture.patching.PatchRegistry.restack`) *before*
calls are made, at two moments:

* when an SDK resource (``client.chat.completions``, ``client.messages``, ...)
  is built: a client made after the other tool patched is covered whatever the
  tool;
* right after ``EcoLogits.init`` returns: EcoLogits is covered even for
  clients built before it.

Otherwise the first call that finds otm underneath moves it back on top
(:meth:`~otm.capture.patching.PatchRegistry.on_top`) and is recorded from
underneath (once; ``.otm`` may be missing on that one call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from otm._log import log_once
from otm.capture import imports
from otm.capture.patching import registry

_ECOLOGITS = "ecologits._ecologits"
_lock = threading.Lock()
_watched: Any = None
"""EcoLogits' class while otm's hook sits on its ``init`` (else None)."""


def restack_after_init() -> Callable[..., Any]:
    """A wrapt wrapper for an SDK resource's ``__init__``: restack once it is built."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        try:
            registry.restack()
        except Exception as exc:
            log_once("capture.restack", exc)
        return result

    return wrapper


def _after_init(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    if _watched is not None:
        try:
            registry.restack()
        except Exception as exc:
            log_once("capture.restack after EcoLogits.init", exc)
    return result


def _hook_ecologits(module: ModuleType) -> None:
    global _watched
    import wrapt

    cls = getattr(module, "EcoLogits", None)
    if cls is None or "init" not in cls.__dict__:
        return
    with _lock:
        if _watched is not None:
            return
        wrapt.wrap_function_wrapper(cls, "init", _after_init)
        _watched = cls


def watch() -> None:
    """Restack after ``EcoLogits.init`` (now if EcoLogits is imported, else when it is)."""
    if _watched is None:
        imports.when_imported(_ECOLOGITS, _hook_ecologits)


def unwatch() -> None:
    """Take the hook off ``EcoLogits.init`` (if nothing wrapped it since) and cancel a pending one."""
    global _watched
    imports.cancel(_ECOLOGITS)
    with _lock:
        cls, _watched = _watched, None
        if cls is None:
            return
        current = cls.__dict__.get("init")
        original = getattr(current, "__wrapped__", None)
        if getattr(current, "_self_wrapper", None) is _after_init and original is not None:
            type.__setattr__(cls, "init", original)
        # else another tool wrapped it since: the hook stays, inert (``_watched`` is None)


__all__ = ["restack_after_init", "unwatch", "watch"]

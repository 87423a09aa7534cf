"""Which integration owns the request in flight, so one user call makes one record.

LiteLLM sends some requests through the official SDK clients that otm also
patches (Azure chat, OpenAI embeddings and text completions go through
``...with_raw_response.create``). LiteLLM's own callbacks record those calls
(they see every provider the same way); the SDK wrappers stand aside while
such a request is on the wire.

LiteLLM brackets each provider request with its pre- and post-API-call hooks,
in the caller's thread or task, right around the SDK call. The pre hook
*claims* the context (a ContextVar holding the call's id, plus the id in an
open set); the post hook, or the call's success/failure event, *releases* it.
A claim left in a context after its call ended (an exception path without a
post hook) has no effect once the id is released: the SDK wrappers check both.
"""

from __future__ import annotations

import contextvars

_owner: contextvars.ContextVar[str | None] = contextvars.ContextVar("otm_owner", default=None)
_open: set[str] = set()


def claim(call_id: str) -> None:
    """The request ``call_id`` is about to be sent by an integration that records it itself."""
    _open.add(call_id)
    _owner.set(call_id)


def release(call_id: str) -> None:
    """The request ``call_id`` is no longer on the wire (any thread)."""
    _open.discard(call_id)


def owned() -> bool:
    """True inside a request another integration records (one ContextVar read on the hot path)."""
    owner = _owner.get()
    return owner is not None and owner in _open


# --------------------------------------------------------------------------- otm's own layers

layers: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("otm_layers", default=())
"""The otm wrappers running in this context. When another instrumentor sits
between two layers of the same otm wrapper (otm moved back on top of it), the
inner layer sees its id here and passes the call through: the outer one records."""


__all__ = ["claim", "layers", "owned", "release"]

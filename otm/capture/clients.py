"""Per-client settings: what ``otm.wrap(client, ...)`` fixed for one client's calls.

Kept in a weak-keyed table (an id-keyed one for clients that cannot be weakly
referenced), keyed on the client and on the inner object its resources reach
it through, which its ``with_options()``/``copy()`` copies share.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClientSettings:
    """What ``otm.wrap(client, ...)`` fixed for the calls made through one client."""

    deployment: Any = None
    region: str | None = None
    tags: dict[str, str] | None = None
    provider: str | None = None


_client_settings: weakref.WeakKeyDictionary[Any, ClientSettings] = weakref.WeakKeyDictionary()
_client_settings_by_id: dict[int, ClientSettings] = {}


def set_client_settings(client: Any, settings: ClientSettings) -> None:
    try:
        _client_settings[client] = settings
    except TypeError:  # not weak-referenceable: keep by id (lives as long as the process)
        _client_settings_by_id[id(client)] = settings


def _lookup_settings(key: Any) -> ClientSettings | None:
    try:
        found = _client_settings.get(key)
    except TypeError:
        found = None
    if found is None and _client_settings_by_id:
        found = _client_settings_by_id.get(id(key))
    return found


def settings_keys_of(client: Any, inner: str = "_client") -> list[object]:
    """What ``wrap()`` keys a client's settings on: the client, and the inner
    object its resources reach it through or its copies share (``inner``)."""
    keys: list[object] = [client]
    obj = getattr(client, inner, None)
    if obj is not None:
        keys.append(obj)
    return keys


def get_client_settings(client: Any) -> ClientSettings | None:
    """The settings ``wrap()`` fixed for ``client``, or for the HTTP client it shares
    with its ``with_options()``/``copy()`` copies (openai, anthropic: ``_client``)."""
    if client is None:
        return None
    found = _lookup_settings(client)
    if found is None:
        http = getattr(client, "_client", None)
        if http is not None:
            found = _lookup_settings(http)
    return found

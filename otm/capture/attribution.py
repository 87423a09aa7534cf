"""Which provider served a call, from what capture can see of the client."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from otm._log import log_once

_DEFAULT_PORTS = {"https": 443, "http": 80}
_servers: weakref.WeakKeyDictionary[Any, tuple[str | None, int | None]] = (
    weakref.WeakKeyDictionary()
)
_NO_SERVER: tuple[str | None, int | None] = (None, None)


def _base_url(client: Any) -> Any:
    return getattr(client, "base_url", None)


def server_of(
    client: Any, base_url: Callable[[Any], Any] = _base_url
) -> tuple[str | None, int | None]:
    """``(server.address, server.port)`` a client sends its requests to, from its base URL
    (the scheme's default port when none is written). Decided once per client."""
    if client is None:
        return _NO_SERVER
    try:
        return _servers[client]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable
        return _server(client, base_url)
    found = _server(client, base_url)
    try:
        _servers[client] = found
    except TypeError:
        pass
    return found


def _server(client: Any, base_url: Callable[[Any], Any]) -> tuple[str | None, int | None]:
    try:
        url = base_url(client)
        if not url:
            return _NO_SERVER
        parts = urlsplit(str(url))
        host = parts.hostname
        if not host:
            return _NO_SERVER
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
        return host, port
    except Exception as exc:  # a malformed URL: no server attributes, the call goes on
        log_once("capture.server_of", exc)
        return _NO_SERVER


def provider_from_host(host: str | None, default: str) -> str:
    """The provider behind an API host, from otm.data's table of known API hosts
    (``"local"`` for this machine and private networks); ``default`` otherwise."""
    if host:
        try:
            from otm.data import provider_for_host

            found = provider_for_host(host.lower().rstrip("."))
            if found:
                return found
        except Exception as exc:
            log_once("capture.provider_from_host", exc)
    return default

"""What a client's base URL says: the server it sends to, and the provider its host names.

What the host alone says is decided once per client (:func:`host_of`, cached).
A call keeps the host *name* (:class:`HostName`): the lookup in otm's
provider table waits for the call's record (:func:`resolve`, through
:func:`.attribution.attribution_of`, where the model settles the provider),
so neither ``otm.instrument()`` nor the start of a call loads otm's data.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from otm._log import log_once

if TYPE_CHECKING:
    from otm.data.attribution import HostKind

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


class Host(NamedTuple):
    """What a client's host says: the provider it names, and what kind of host it is."""

    provider: str
    kind: HostKind


def host_from_name(host: str | None, *, vendor: str, unknown: str) -> Host:
    """``vendor``'s API when there is no host; ``"local"`` for this machine or a
    private network; the provider of a known API host; else ``unknown``."""
    if not host:
        return Host(vendor, "api")
    try:
        from otm.data import provider_for_host

        found = provider_for_host(host.lower().rstrip("."))
    except Exception as exc:
        log_once("capture.host", exc)
        return Host(unknown, "unknown")
    if found == "local":
        return Host("local", "private")
    if found:
        return Host(found, "api")
    return Host(unknown, "unknown")


_hosts: weakref.WeakKeyDictionary[Any, Host | HostName] = weakref.WeakKeyDictionary()


def host_of(client: Any, detect: Callable[[Any], Host | HostName]) -> Host | HostName:
    """``detect(client)``, decided once per client (a weak-keyed cache: the hot path is a
    dict lookup)."""
    try:
        return _hosts[client]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable
        return detect(client)
    found = detect(client)
    try:
        _hosts[client] = found
    except TypeError:
        pass
    return found


class HostName(NamedTuple):
    """A client's host name, looked up in otm's provider table when a record needs it:
    ``vendor``'s API when there is none, ``unknown`` when the table does not know it."""

    name: str
    vendor: str
    unknown: str


def host_name(host: str | None, *, vendor: str, unknown: str) -> Host | HostName:
    """What a host name says without looking anything up: ``vendor``'s API when there is
    no host, else the name to look up when the record is built (:func:`resolve`)."""
    if not host:
        return Host(vendor, "api")
    return HostName(host.lower().rstrip("."), vendor, unknown)


def resolve(host: Host | HostName) -> Host:
    """What ``host`` says; a :class:`HostName` is looked up in otm's provider table
    (which loads otm's data: callers cache the result)."""
    if isinstance(host, HostName):
        return host_from_name(host.name, vendor=host.vendor, unknown=host.unknown)
    return host

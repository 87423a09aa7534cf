"""Which provider served a call, from the client's base URL and the model.

What the host alone says is decided once per client (:func:`host_of`, cached):
a provider's own API host, this machine or a private network, or a host otm
does not know. The model is known only per call, so the provider is settled
when the record is built (:func:`attribution_of`), by the rule all three
adapters and the estimator share, :func:`otm.data.attribute_provider`: a
closed model behind a private or unknown URL is a gateway to its maker; only an
open-weight model there is self-hosted. ``wrap(provider=...)`` overrides both.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from otm._log import log_once
from otm.data import generation
from otm.data.attribution import Attribution, HostKind, attribute_provider

if TYPE_CHECKING:
    from otm.capture.call import Call

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


_hosts: weakref.WeakKeyDictionary[Any, Host] = weakref.WeakKeyDictionary()


def host_of(client: Any, detect: Callable[[Any], Host]) -> Host:
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


_decided: dict[tuple[str, str, str | None, str | None], Attribution] = {}
_decided_generation = -1


def attribution_of(call: Call, served: str | None) -> Attribution:
    """The provider of a finished call and how it was decided (see the module doc).

    Cached per (host, model names) until the data changes (a registered model
    may be closed), so a call pays a dict lookup."""
    settings = call.settings
    if settings is not None and settings.provider:
        return Attribution(settings.provider, "client")
    global _decided_generation
    key = (call.provider, call.host_kind, served, call.model)
    found = _decided.get(key)
    if found is not None and _decided_generation == generation():
        return found
    try:
        found = _decide(call.provider, call.host_kind, served, call.model)
    except Exception as exc:
        log_once("capture.attribution", exc)
        return Attribution(call.provider, "api" if call.host_kind == "api" else "unknown-host")
    if _decided_generation != generation() or len(_decided) > 4096:
        _decided.clear()
        _decided_generation = generation()
    _decided[key] = found
    return found


def _decide(
    host_provider: str, kind: HostKind, served: str | None, requested: str | None
) -> Attribution:
    found = attribute_provider(served, host_provider=host_provider, host_kind=kind)
    if found.source != "gateway" and requested and requested != served:
        # A gateway may answer with its own alias: the requested name may still tell.
        by_request = attribute_provider(requested, host_provider=host_provider, host_kind=kind)
        if by_request.source == "gateway":
            return by_request
    return found

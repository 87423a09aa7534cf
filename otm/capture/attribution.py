"""Which provider served a call, from the client's host and the model.

What the host alone says is decided once per client (:mod:`.hosts`). The
model is known only per call, so the provider is settled when the record is
built (:func:`attribution_of`), by the rule all three adapters and the
estimator share, :func:`otm.data.attribute_provider`: a closed model behind a
private or unknown URL is a gateway to its maker; only an open-weight model
there is self-hosted. ``wrap(provider=...)`` overrides both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otm._log import log_once
from otm.capture.hosts import Host, HostName, host_from_name, host_of, resolve, server_of
from otm.data import generation
from otm.data.attribution import Attribution, HostKind, attribute_provider

if TYPE_CHECKING:
    from otm.capture.call import Call

__all__ = ["Host", "HostKind", "attribution_of", "host_from_name", "host_of", "server_of"]

_decided: dict[tuple[HostName | None, str, str, str | None, str | None], Attribution] = {}
_decided_generation = -1


def attribution_of(call: Call, served: str | None) -> Attribution:
    """The provider of a finished call and how it was decided (see the module doc).

    Cached per (host, model names) until the data changes (a registered model
    may be closed), so a call pays a dict lookup."""
    settings = call.settings
    if settings is not None and settings.provider:
        return Attribution(settings.provider, "client")
    global _decided_generation
    key = (call.host, call.provider, call.host_kind, served, call.model)
    found = _decided.get(key)
    if found is not None and _decided_generation == generation():
        return found
    provider, kind = call.provider, call.host_kind
    try:
        if call.host is not None:
            provider, kind = resolve(call.host)
        found = _decide(provider, kind, served, call.model)
    except Exception as exc:
        log_once("capture.attribution", exc)
        return Attribution(provider, "api" if kind == "api" else "unknown-host")
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

"""Which provider served a call, from what capture can see of the client."""

from __future__ import annotations

from otm._log import log_once


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

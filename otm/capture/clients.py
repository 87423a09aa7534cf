"""Per-client settings: what ``otm.wrap(client, ...)`` fixed for one client's calls.

Kept in a weak-keyed table (an id-keyed one for clients that cannot be weakly
referenced), keyed on the client and on the inner object its resources reach
it through, which its ``with_options()``/``copy()`` copies share.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from otm._log import log_once


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


# --------------------------------------------------------------------------- validating wrap()


def client_settings(
    *, deployment: Any, region: Any, tags: Any, provider: Any, check_data: bool = True
) -> ClientSettings:
    """What ``otm.wrap()`` was given, checked once (it is the user's own code, run once).

    Unambiguous inputs are coerced (a dict of Deployment fields, tag values
    that are numbers); anything else raises ``TypeError``/``ValueError`` naming
    the argument, instead of being accepted and then losing every record of
    the client. ``check_data`` also looks the region up in otm's data.
    """
    return ClientSettings(
        deployment=_deployment(deployment),
        region=_region(region, check_data),
        tags=_tags(tags),
        provider=_provider(provider),
    )


def _deployment(value: Any) -> Any:
    from otm.deployment import Deployment

    if value is None or isinstance(value, Deployment):
        return value
    if isinstance(value, dict):
        try:
            return Deployment.model_validate(value)
        except ValueError as exc:
            raise ValueError(f"otm.wrap(deployment=...): not a valid Deployment: {exc}") from None
    hint = (
        f"; for an accelerator write otm.Deployment(accelerator={value!r})"
        if isinstance(value, str)
        else ""
    )
    raise TypeError(
        f"otm.wrap(deployment=...) takes an otm.Deployment (or a dict of its fields), "
        f"not {type(value).__name__}{hint}"
    )


def _region(value: Any, check_data: bool) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TypeError(
            f"otm.wrap(region=...) takes a region code such as 'FRA', 'US-VA' or "
            f"'aws:us-east-1', not {value!r}"
        )
    region = value.strip()
    if check_data:
        try:
            from otm import data

            known = data.find_region(region) is not None
            close = [] if known else data.suggest("region", region)
        except Exception as exc:  # the data layer cannot tell: the estimator will say so
            log_once("wrap.region", exc)
            return region
        if not known:
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise ValueError(f"otm.wrap(region={value!r}): unknown region{hint}")
    return region


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(
            f"otm.wrap(tags=...) takes a dict of names to values, not {type(value).__name__}"
        )
    out: dict[str, str] = {}
    for key, v in value.items():
        if not isinstance(key, str) or not key.strip():
            raise TypeError(f"otm.wrap(tags=...): tag names are non-empty text, not {key!r}")
        if isinstance(v, bool):
            out[key.strip()] = str(v).lower()
        elif isinstance(v, (str, int, float)):
            out[key.strip()] = str(v)
        else:
            raise TypeError(
                f"otm.wrap(tags=...): tag {key!r} must be text or a number, not {type(v).__name__}"
            )
    return out


def _provider(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TypeError(
            f"otm.wrap(provider=...) takes a provider name such as 'openai' or 'local', "
            f"not {value!r}"
        )
    return value.strip()

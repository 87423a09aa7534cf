"""Who served a call: the one rule capture and the estimator share.

A base URL on this machine or a private network is not, by itself, a
self-hosted model: LiteLLM proxies and company gateways sit on such URLs and
forward to the providers' APIs. A closed model (no published weights: GPT,
the o-series, Claude, Gemini, anything whose data row says
``open_weights: false``) can only be served by its maker or the maker's cloud
partners, so behind such a URL, or behind a host otm does not know, it is
attributed to its maker's provider (``source="gateway"``). Only an
open-weight (or unknown) model behind a private URL defaults to self-hosted
(``"local"``). ``otm.wrap(client, provider=...)`` overrides all of this (capture
records ``source="client"``).

Pure functions over the model table; cheap (a cached lookup per model name).
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from .registry import find_model

HostKind = Literal["api", "private", "unknown"]
"""How the client's host was recognised: a provider's own API host (from the
providers table), this machine or a private/link-local network, or neither."""

Source = Literal["api", "gateway", "self-hosted", "unknown-host", "client"]


class Attribution(NamedTuple):
    provider: str
    source: Source


# Name patterns for closed models missing from the table (new releases, custom
# aliases): the maker's provider id. Open-weight look-alikes are listed first.
_OPEN_LOOKALIKES = re.compile(r"^(gpt-oss|gpt-j|gpt-neo|gpt2|gpt-2)\b")
_CLOSED_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(gpt-|chatgpt-|o\d+($|-))"), "openai"),
    (re.compile(r"^claude-"), "anthropic"),
    (re.compile(r"^gemini-"), "google"),
)


def _bare_name(model: str) -> str:
    """``openai/gpt-4o`` -> ``gpt-4o``; ``anthropic.claude-3-5-sonnet-v1:0`` -> ``claude-...``."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    for vendor in ("anthropic.", "us.anthropic.", "eu.anthropic.", "google.", "openai."):
        if name.startswith(vendor):
            return name[len(vendor) :]
    return name


def closed_model_provider(model: str | None) -> str | None:
    """The provider of a closed (weights not published) model, or None if it is open or unknown."""
    if not isinstance(model, str) or not model.strip():
        return None
    row = find_model(model)
    if row is not None:
        return None if row.open_weights else row.provider
    name = _bare_name(model)
    if _OPEN_LOOKALIKES.match(name):
        return None
    for pattern, provider in _CLOSED_PATTERNS:
        if pattern.match(name):
            return provider
    return None


def attribute_provider(model: str | None, *, host_provider: str, host_kind: HostKind) -> Attribution:
    """The provider that served ``model`` reached through a host of ``host_kind``.

    ``host_provider`` is what the host alone says: the provider id of a known
    API host, ``"local"`` for a private one, the SDK's default for an unknown
    one (``"openai-compatible"`` behind the openai client).
    """
    if host_kind == "api":
        return Attribution(host_provider, "api")
    maker = closed_model_provider(model)
    if maker is not None:
        return Attribution(maker, "gateway")
    if host_kind == "private":
        return Attribution("local", "self-hosted")
    return Attribution(host_provider, "unknown-host")

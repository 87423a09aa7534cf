"""Capture: drop-in instrumentation of the official LLM clients.

``instrument()`` patches the public methods of every installed SDK at class
level (see docs/capture.md for the list of call paths); ``wrap(client, ...)``
does the same for one client's SDK and fixes per-client settings (a known
deployment, a region, tags). Capture produces Telemetry and knows nothing
about energy.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, TypeVar

from otm._log import log_once, logger
from otm.capture.adapter import SdkAdapter
from otm.capture.clients import client_settings, set_client_settings
from otm.capture.patching import registry
from otm.capture.records import keep_records_out_of
from otm.capture.settings import snapshot

# provider name -> (otm adapter module, the SDK's import name)
ADAPTERS: dict[str, tuple[str, str]] = {
    "openai": ("otm.capture.openai_sdk", "openai"),
    "anthropic": ("otm.capture.anthropic_sdk", "anthropic"),
    "google": ("otm.capture.google_sdk", "google.genai"),
}
_ALIASES = {"google-genai": "google", "genai": "google", "gemini": "google"}

T = TypeVar("T")


def _sdk_installed(import_name: str) -> bool:
    try:
        return importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError):
        return False


def _normalise(providers: str | Iterable[str] | None) -> list[str]:
    if providers is None:
        return list(ADAPTERS)
    if isinstance(providers, str):
        providers = [p for p in providers.replace(",", " ").split() if p]
    out = []
    for p in providers:
        name = _ALIASES.get(p.strip().lower(), p.strip().lower())
        if name not in ADAPTERS:
            raise ValueError(f"unknown provider {p!r}; choose from {sorted(ADAPTERS)}")
        out.append(name)
    return out


def instrument(providers: str | Iterable[str] | None = None) -> list[str]:
    """Patch every installed SDK (or the named ones). Idempotent; returns what is instrumented.

    Call it at start-up, before clients build their cached ``with_raw_response``
    wrappers. A no-op when otm is disabled (``OTM_DISABLED=1``).
    """
    from otm.config import ensure_configured  # settings from env/config file, resolved once

    configured = ensure_configured()
    if providers is None and configured.providers is not None:
        providers = list(configured.providers)
    if configured.disabled:
        return []
    for name in _normalise(providers):
        if registry.is_installed(name):
            continue
        module_name, sdk = ADAPTERS[name]
        if not _sdk_installed(sdk):
            if providers is not None:
                logger.info("otm: %s SDK is not installed; nothing to instrument", name)
            continue
        try:
            adapter: SdkAdapter = importlib.import_module(module_name)  # type: ignore[assignment]
            keep_records_out_of(adapter.model_bases())
            n = registry.install(name, adapter.targets())
            logger.debug("otm: instrumented %s (%d methods)", name, n)
        except Exception as exc:
            log_once(f"instrument {name}", exc)
    return sorted(registry.installed())


def uninstrument(providers: str | Iterable[str] | None = None) -> None:
    """Undo :func:`instrument` for every (or the named) SDK."""
    if providers is None:
        registry.uninstall(None)
        return
    for name in _normalise(providers):
        registry.uninstall(name)


def _adapter_for(client: Any) -> tuple[str, SdkAdapter] | None:
    mod = type(client).__module__.split(".")[0]
    for name, (module_name, sdk) in ADAPTERS.items():
        if mod == sdk.split(".")[0] and _sdk_installed(sdk):
            adapter: SdkAdapter = importlib.import_module(module_name)  # type: ignore[assignment]
            if adapter.owns(client):
                return name, adapter
    return None


def wrap(
    client: T,
    *,
    deployment: Any = None,
    region: str | None = None,
    tags: dict[str, str] | None = None,
    provider: str | None = None,
) -> T:
    """Instrument ``client``'s SDK and return the same client object.

    ``deployment`` (an :class:`otm.Deployment`, or a dict of its fields),
    ``region`` and ``tags`` apply to the calls made through this client;
    ``provider`` overrides the provider recognised from its base URL (e.g.
    ``"local"`` for a vLLM server). Invalid arguments raise ``TypeError`` or
    ``ValueError`` here, once, rather than costing every record of the client.
    """
    disabled = snapshot().disabled
    given = client_settings(
        deployment=deployment,
        region=region,
        tags=tags,
        provider=provider,
        check_data=not disabled,  # under the kill switch the user's data file is not loaded
    )
    try:
        found = _adapter_for(client)
        if found is None:
            log_once(
                "wrap",
                message=f"otm.wrap: {type(client).__qualname__} is not a supported client; left as is",
            )
            return client
        name, module = found
        if not disabled:
            instrument([name])
        settings = replace(given, provider=given.provider or module.detect_provider(client))
        for key in module.settings_keys(client):
            set_client_settings(key, settings)
    except Exception as exc:
        log_once("wrap", exc)
    return client


__all__ = ["instrument", "uninstrument", "wrap"]

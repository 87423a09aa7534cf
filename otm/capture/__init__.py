"""Capture: drop-in instrumentation of the official LLM clients.

``instrument()`` patches the public methods of every installed SDK at class
level (see docs/capture.md for the list of call paths): an SDK the program
has imported at once, any other one when the program imports it (a
post-import hook, :mod:`otm.capture.imports`), so ``instrument()`` itself
imports no SDK and, before any SDK is imported, not even the settings
machinery (pydantic). Within an SDK, each class is patched when the SDK
loads it (:mod:`otm.capture.sites`), and otm's record machinery loads with
the first record. ``wrap(client, ...)``
does the same for one client's SDK and fixes per-client settings (a known
deployment, a region, tags). Capture produces Telemetry and knows nothing
about energy.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from otm._log import log_once, logger
from otm.capture import imports, sites, stacking
from otm.capture.patching import registry

if TYPE_CHECKING:
    from otm.capture.adapter import SdkAdapter

# provider name -> (otm adapter module, the SDK's import name)
ADAPTERS: dict[str, tuple[str, str]] = {
    "openai": ("otm.capture.openai_sdk", "openai"),
    "anthropic": ("otm.capture.anthropic_sdk", "anthropic"),
    "google": ("otm.capture.google_sdk", "google.genai"),
    "litellm": ("otm.capture.litellm_logger", "litellm"),
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

    An SDK the program has imported is patched now; an installed one it has
    not imported yet is patched when it is imported (and listed already).
    Call it at start-up, before clients build their cached
    ``with_raw_response`` wrappers. A no-op when otm is disabled
    (``OTM_DISABLED=1``).
    """
    explicit = providers is not None
    names = _normalise(providers)
    if not _settings_needed_now(names):
        # Nothing to patch yet: leave the settings (and pydantic) for the
        # first import of an SDK; only the environment's kill switch counts now.
        if _env_disabled():
            return []
        for name in names:
            _patch_when_imported(name, explicit)
        return _instrumented()

    from otm.config import ensure_configured  # settings from env/config file, resolved once

    configured = ensure_configured()
    if not explicit and configured.providers is not None:
        names = _normalise(list(configured.providers))
    if configured.disabled:
        return []
    for name in names:
        if registry.is_installed(name):
            continue
        if ADAPTERS[name][1] in sys.modules:
            _install(name)
        else:
            _patch_when_imported(name, explicit)
    return _instrumented()


def _instrumented() -> list[str]:
    """What is patched, and what will be when the program imports it."""
    sdk_to_name = {sdk: name for name, (_, sdk) in ADAPTERS.items()}
    waiting = {sdk_to_name[sdk] for sdk in imports.pending() if sdk in sdk_to_name}
    return sorted(registry.installed() | waiting)


def _settings_needed_now(names: list[str]) -> bool:
    """Whether an SDK to patch is imported already, or the settings are loaded anyway."""
    return "otm.config" in sys.modules or any(ADAPTERS[n][1] in sys.modules for n in names)


def _env_disabled() -> bool:
    return os.environ.get("OTM_DISABLED", "").strip().lower() in ("1", "true", "yes", "on", "y", "t")


def _patch_when_imported(name: str, explicit: bool) -> None:
    sdk = ADAPTERS[name][1]
    if registry.is_installed(name) or sdk in imports.pending():
        return
    if not _sdk_installed(sdk):
        if explicit:
            logger.info("otm: %s SDK is not installed; nothing to instrument", name)
        return
    imports.when_imported(sdk, functools.partial(_on_import, name, explicit))


def _on_import(name: str, explicit: bool, module: ModuleType) -> None:
    """The program imported a hooked SDK: patch it now, under the settings in force."""
    from otm.config import ensure_configured

    try:
        configured = ensure_configured()
    except Exception as exc:  # an import must never fail because of otm's settings
        log_once(f"instrument {name} on import", exc)
        return
    if configured.disabled:
        return
    if not explicit and configured.providers is not None and name not in configured.providers:
        return
    _install(name)


def _install(name: str) -> None:
    if registry.is_installed(name):
        return
    module_name = ADAPTERS[name][0]
    try:
        adapter: SdkAdapter = importlib.import_module(module_name)  # type: ignore[assignment]
        bases = getattr(adapter, "model_bases", None)
        if bases is not None:
            from otm.capture.attach import keep_records_out_of

            keep_records_out_of(bases())  # .otm invisible to every view of a response
        # What the SDK has loaded is patched now, the rest as it loads it.
        n = sites.install(name, adapter.sites())
        stacking.watch()  # stay outside instrumentors that patch after otm (EcoLogits)
        install = getattr(adapter, "install", None)  # integrations through the library's own hooks
        if install is not None:
            n += install()
        logger.debug("otm: instrumented %s (%d methods)", name, n)
    except Exception as exc:
        log_once(f"instrument {name}", exc)


def uninstrument(providers: str | Iterable[str] | None = None) -> None:
    """Undo :func:`instrument` for every (or the named) SDK, pending post-import hooks included."""
    names = list(ADAPTERS) if providers is None else _normalise(providers)
    for name in names:
        imports.cancel(ADAPTERS[name][1])
        sites.uninstall(name)
        if registry.is_installed(name):
            module = sys.modules.get(ADAPTERS[name][0])
            uninstall_hooks = getattr(module, "uninstall", None)
            if uninstall_hooks is not None:
                try:
                    uninstall_hooks()
                except Exception as exc:
                    log_once(f"uninstrument {name}", exc)
        registry.uninstall(name)
    if not registry.installed():
        stacking.unwatch()


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
    # Imported here: instrument() before any SDK import must not load the settings machinery.
    from otm.capture.clients import client_settings, set_client_settings
    from otm.capture.settings import snapshot

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
        for key in module.settings_keys(client):
            set_client_settings(key, given)
    except Exception as exc:
        log_once("wrap", exc)
    return client


__all__ = ["instrument", "uninstrument", "wrap"]

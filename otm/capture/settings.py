"""Capture's view of otm's settings: the snapshot of :mod:`otm.config`, read per call.

Settings flow one way. ``otm.config`` resolves them (arguments, environment,
config file) and never writes into capture; capture reads the snapshot when a
call starts and keeps it on the call, so a call is recorded under the settings
it started with. The kill switch is the one change acted on at once: it
removes otm's patches (through :func:`otm.config.on_change`).
"""

from __future__ import annotations

from otm import config
from otm._log import log_once
from otm.capture import sites
from otm.capture.patching import registry
from otm.config import Settings

_fallback: Settings | None = None


def snapshot() -> Settings:
    """The settings in force; the defaults if they cannot be resolved (logged once).

    Resolving happens once (``otm.instrument()`` does it first); afterwards
    this is a function call and an attribute read.
    """
    try:
        return config.current()
    except Exception as exc:
        log_once(
            "capture.settings",
            exc,
            message="otm: settings could not be resolved; capturing with the defaults",
        )
        global _fallback
        if _fallback is None:
            _fallback = Settings.model_construct()
        return _fallback


def _on_change(settings: Settings) -> None:
    if settings.disabled:
        for provider in registry.installed():
            sites.uninstall(provider)  # stop waiting for classes the SDKs load later
        registry.uninstall(None)


config.on_change(_on_change)

"""A fingerprint of the run-time data registrations, so cached lookups notice them.

The estimator caches resolved models, hardware and groups. A user may
``otm.register_model(...)`` (or override an accelerator, region, provider)
at any time; the fingerprint changes with every registration and is part of
every cache key, so the next estimate resolves afresh.
"""

from __future__ import annotations


def data_stamp() -> tuple[int, ...]:
    """Identity of every user-registered row (packaged rows never change)."""
    try:
        from otm.data.registry import registry

        r = registry()
        tables = (r.models, r.accelerators, r.regions, r.providers)
        return tuple(id(row) for t in tables for row in t.user_rows.values())
    except Exception:  # a data layer without run-time registrations  # noqa: BLE001 - never raise from a lookup
        return ()

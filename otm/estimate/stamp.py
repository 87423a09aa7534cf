"""A fingerprint of the run-time data registrations, so cached lookups notice them.

The estimator caches resolved models, hardware and groups. A user may
``otm.register_model(...)`` (or override an accelerator, region, provider)
at any time; :func:`otm.data.generation` changes with every registration and
removal, it is part of every cache key, so the next estimate resolves afresh.
"""

from __future__ import annotations

from otm.data import generation


def data_stamp() -> tuple[int, ...]:
    """The data layer's registration counter, as a cache key."""
    return (generation(),)

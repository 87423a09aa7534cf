"""Packaged reference data: accelerators, providers, regions, models, sources.

Importing this package reads no data file; the tables load on first use
(thread-safe) and every lookup after that is a dictionary hit on a normalised
key, cached per name.

Lookups are forgiving: case and separators (``_ . space /``) do not matter,
vendor and provider prefixes are dropped (``NVIDIA H100``, ``models/gemini-2.5-pro``,
``meta-llama/Llama-3.1-8B-Instruct``), and so are dated snapshots
(``-2024-08-06``, ``-20240620``, ``@20241022``), ``-latest``, ``:free`` and
Bedrock ``-v1:0`` suffixes. ``find_*`` returns None on a miss; ``get_*``
raises :class:`UnknownIdError` (a ``KeyError``) carrying ``suggestions``.

Run-time registrations (``register_*``, ``load_user_data``) are validated like
packaged rows and win over them, aliases included. :func:`generation` is a
counter bumped by every registration or removal, for caches to key on.
"""

from __future__ import annotations

from .attribution import Attribution, attribute_provider, closed_model_provider
from .registry import (
    DataError,
    Kind,
    UnknownIdError,
    all_accelerators,
    all_models,
    all_providers,
    all_regions,
    all_sources,
    find_accelerator,
    find_model,
    find_provider,
    find_region,
    generation,
    get_accelerator,
    get_model,
    get_provider,
    get_region,
    get_source,
    is_loaded,
    load_user_data,
    provider_for_host,
    register_accelerator,
    register_model,
    register_provider,
    register_region,
    suggest,
    unregister_all,
    world_region,
)
from .resolve import normalise_id
from .schema import (
    PRECISION_BYTES,
    AcceleratorSpec,
    ModelSpec,
    Price,
    ProviderSpec,
    RegionSpec,
    Source,
    Span,
)

__all__ = [
    "PRECISION_BYTES",
    "AcceleratorSpec",
    "Attribution",
    "DataError",
    "Kind",
    "ModelSpec",
    "Price",
    "ProviderSpec",
    "RegionSpec",
    "Source",
    "Span",
    "UnknownIdError",
    "all_accelerators",
    "all_models",
    "all_providers",
    "all_regions",
    "all_sources",
    "attribute_provider",
    "closed_model_provider",
    "find_accelerator",
    "find_model",
    "find_provider",
    "find_region",
    "generation",
    "get_accelerator",
    "get_model",
    "get_provider",
    "get_region",
    "get_source",
    "is_loaded",
    "load_user_data",
    "normalise_id",
    "provider_for_host",
    "register_accelerator",
    "register_model",
    "register_provider",
    "register_region",
    "suggest",
    "unregister_all",
    "world_region",
]

"""Exports of otm records to observability systems.

``otm.export.otel.OtelExporter`` (also ``otm.export.OtelExporter``): spans and
metrics through OpenTelemetry. Loaded on first use, so importing this package
does not import OpenTelemetry. See docs/export.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["OtelExporter"]


def __getattr__(name: str) -> Any:
    if name == "OtelExporter":
        return importlib.import_module("otm.export.otel").OtelExporter
    raise AttributeError(f"module 'otm.export' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from otm.export.otel import OtelExporter

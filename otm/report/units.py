"""Human-readable numbers for the reports: the shared formatter of :mod:`otm.units`."""

from __future__ import annotations

from otm.units import (
    BASE_UNIT,
    DASH,
    fmt,
    fmt_cost,
    fmt_int,
    fmt_percent,
    fmt_range,
    fmt_seconds,
    fmt_span,
    fmt_value_range,
    plain,
    plural,
    scale_for,
    sig,
)

__all__ = [
    "BASE_UNIT",
    "DASH",
    "fmt",
    "fmt_cost",
    "fmt_int",
    "fmt_percent",
    "fmt_range",
    "fmt_seconds",
    "fmt_span",
    "fmt_value_range",
    "plain",
    "plural",
    "scale_for",
    "sig",
]

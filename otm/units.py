"""Human-readable numbers: the one formatter behind every figure otm shows.

Reprs, ``print(response.otm)``, notebook and terminal displays, the CLI's
tables and every report (text, Markdown, LaTeX, HTML, CSV) format their
numbers here, so they agree and none prints an exponent: ``1.98e-05`` is
``0.0000198``, a range is ``(3.7–100)``, never ``(3.7–1e+02)``.

It imports nothing from otm, so every layer may use it.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Protocol

DASH = "–"
"""What a missing figure prints as (and the en dash between low and high)."""

_TINY_DIGITS = 24
"""Past this many decimals a figure prints as ``≈0`` rather than a wall of zeros."""

# (factor, unit) from largest to smallest; the first factor <= |value| wins.
_SCALES: dict[str, tuple[tuple[float, str], ...]] = {
    "energy": ((1e6, "MWh"), (1e3, "kWh"), (1.0, "Wh"), (1e-3, "mWh"), (1e-6, "µWh")),
    "carbon": (
        (1e6, "tCO2e"),
        (1e3, "kgCO2e"),
        (1.0, "gCO2e"),
        (1e-3, "mgCO2e"),
        (1e-6, "µgCO2e"),
    ),
    "water": ((1e6, "m³"), (1e3, "L"), (1.0, "mL"), (1e-3, "µL")),
    "cost": ((1.0, "USD"),),
}

BASE_UNIT = {"energy": "Wh", "carbon": "gCO2e", "water": "mL", "cost": "USD"}


class RangeLike(Protocol):
    @property
    def value(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(x)
    except TypeError:
        return False


def sig(x: float | None, n: int = 3, *, trim: bool = False) -> str:
    """``x`` to ``n`` significant figures in plain decimals, never with an exponent.

    ``1234.5 -> "1,230"``, ``0.0000198 -> "0.0000198"``, ``99.95 -> "100"``.
    ``trim`` drops trailing zeros (``0.250 -> "0.25"``), for axis ticks.
    None, NaN and infinities print as ``–``.
    """
    if x is None or not _finite(x):
        return DASH
    x = float(x)
    if x == 0:
        return "0"
    # Round in decimal first: 99.95 becomes 100 (shown "100", not "100.0"), and
    # 1e21 shows as 1 followed by zeros rather than the float's binary residue.
    d = Decimal(f"{x:.{n}g}")
    digits = n - 1 - math.floor(math.log10(abs(x)))
    if d.adjusted() != math.floor(math.log10(abs(x))):
        digits -= 1  # rounding carried into a new decade
    if digits > _TINY_DIGITS:
        return "≈0"
    out = format(d, f",.{max(digits, 0)}f")
    if trim and "." in out:
        out = out.rstrip("0").rstrip(".")
    return out


def plain(x: float | None, n: int = 6) -> str:
    """A machine-readable decimal (no thousands separators, no exponent), ``""`` when unknown.

    For CSV cells: spreadsheets and parsers read ``0.0000198`` as readily as
    ``1.98e-05``, and people can read it too.
    """
    if x is None or not _finite(x):
        return ""
    return sig(x, n, trim=True).replace(",", "")


def scale_for(kind: str, value: float, n: int = 3) -> tuple[float, str]:
    """(factor, unit) to show ``value`` of ``kind`` (energy, carbon, water, cost) in.

    Chosen on the value rounded to ``n`` figures, so 0.9999 Wh shows as
    ``1.00 Wh`` rather than ``1,000 mWh``.
    """
    scales = _SCALES[kind]
    a = abs(float(f"{value:.{n}g}")) if _finite(value) else 0.0
    if not math.isfinite(a):
        a = abs(value)
    if a == 0:
        return 1.0, BASE_UNIT[kind]
    for factor, unit in scales:
        if a >= factor:
            return factor, unit
    return scales[-1]


def fmt_cost(value: float | None, n: int = 3) -> str:
    """``$1,234.56`` from a dollar up, ``$0.0000198`` below (significant figures)."""
    if value is None or not _finite(value):
        return DASH
    sign = "-" if value < 0 else ""
    a = abs(value)
    if a >= 1:
        return f"{sign}${format(Decimal(repr(a)), ',.2f')}"
    return f"{sign}${sig(a, n)}"


def fmt(kind: str, value: float | None, n: int = 3) -> str:
    """``1234.5`` energy -> ``"1.23 kWh"``; costs in dollars (:func:`fmt_cost`)."""
    if value is None or not _finite(value):
        return DASH
    if kind == "cost":
        return fmt_cost(value, n)
    factor, unit = scale_for(kind, value, n)
    return f"{sig(value / factor, n)} {unit}"


def fmt_span(
    low: float | None, high: float | None, n: int = 3, factor: float = 1.0, *, trim: bool = False
) -> str:
    """``"3.7–100"``: a low and a high (divided by ``factor``), without parentheses."""
    if low is None or high is None:
        return DASH
    return f"{sig(low / factor, n, trim=trim)}{DASH}{sig(high / factor, n, trim=trim)}"


def fmt_range(kind: str, r: RangeLike | None, n: int = 3, *, short: bool = False) -> str:
    """``"1.23 kWh (0.9–2.1 kWh)"``: one unit, chosen for the value, for the value and its range.

    ``short`` leaves the unit out of the parentheses: ``"1.23 kWh (0.9–2.1)"``.
    """
    if r is None:
        return DASH
    factor, unit = scale_for(kind, r.value, n)
    span = fmt_span(r.low, r.high, n, factor)
    return f"{sig(r.value / factor, n)} {unit} ({span}{'' if short else ' ' + unit})"


def fmt_value_range(r: RangeLike | None, n: int = 3) -> str:
    """A unitless range: ``"12.5 (3.7–100)"``."""
    if r is None:
        return DASH
    return f"{sig(r.value, n)} ({fmt_span(r.low, r.high, n)})"


def fmt_int(x: float | None) -> str:
    """``12345 -> "12,345"``."""
    if x is None or not _finite(x):
        return DASH
    return f"{round(x):,}"


def fmt_seconds(x: float | None) -> str:
    """``0.35 -> "350 ms"``, ``2.5 -> "2.50 s"``."""
    if x is None or not _finite(x):
        return DASH
    if abs(x) < 1:
        return f"{sig(x * 1000, 3)} ms"
    return f"{sig(x, 3)} s"


def fmt_percent(share: float | None, decimals: int = 0) -> str:
    """``0.234 -> "23%"``."""
    if share is None or not _finite(share):
        return DASH
    return f"{share * 100:.{decimals}f}%"


def plural(n: float | None, word: str, words: str | None = None) -> str:
    """``"1 request"``, ``"2 requests"``, ``"1,000 requests"`` (``words``: an irregular plural)."""
    count = fmt_int(n)
    many = words if words is not None else word + "s"
    return f"{count} {word if n == 1 else many}"


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

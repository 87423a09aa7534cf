"""Human-readable numbers: significant figures and a unit scaled to the value."""

from __future__ import annotations

import math

from otm.impact import Range

# (factor, unit) from largest to smallest; the first factor <= |value| wins.
_SCALES: dict[str, tuple[tuple[float, str], ...]] = {
    "energy": ((1e6, "MWh"), (1e3, "kWh"), (1.0, "Wh"), (1e-3, "mWh")),
    "carbon": ((1e6, "tCO2e"), (1e3, "kgCO2e"), (1.0, "gCO2e"), (1e-3, "mgCO2e")),
    "water": ((1e6, "m³"), (1e3, "L"), (1.0, "mL")),
    "cost": ((1.0, "USD"),),
}

BASE_UNIT = {"energy": "Wh", "carbon": "gCO2e", "water": "mL", "cost": "USD"}


def sig(x: float | None, n: int = 3) -> str:
    """``x`` to ``n`` significant figures, without exponent for everyday magnitudes."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if x == 0:
        return "0"
    x = float(f"{x:.{n}g}")  # round first: 99.95 becomes 100, shown as "100" not "100.0"
    if abs(x) >= 10**n:
        return f"{round(x):,}"
    if abs(x) < 1e-4:
        return f"{x:.{n - 1}e}"
    digits = n - 1 - math.floor(math.log10(abs(x)))
    return f"{x:.{max(digits, 0)}f}"


def scale_for(kind: str, value: float) -> tuple[float, str]:
    scales = _SCALES[kind]
    a = abs(value)
    if a == 0:
        return 1.0, BASE_UNIT[kind]
    for factor, unit in scales:
        if a >= factor:
            return factor, unit
    return scales[-1]


def fmt(kind: str, value: float | None, n: int = 3) -> str:
    """``1234.5`` energy -> ``"1.23 kWh"``."""
    if value is None:
        return "–"
    if kind == "cost":
        return f"${value:,.2f}" if abs(value) >= 1 else f"${sig(value, n)}"
    factor, unit = scale_for(kind, value)
    return f"{sig(value / factor, n)} {unit}"


def fmt_range(kind: str, r: Range | None, n: int = 3) -> str:
    """``"1.23 kWh (0.9–2.1 kWh)"``: one unit for the value and its range."""
    if r is None:
        return "–"
    factor, unit = scale_for(kind, r.value)
    return f"{sig(r.value / factor, n)} {unit} ({sig(r.low / factor, n)}–{sig(r.high / factor, n)} {unit})"


def fmt_int(x: float | None) -> str:
    return "–" if x is None else f"{round(x):,}"


def fmt_seconds(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 1:
        return f"{sig(x * 1000, 3)} ms"
    return f"{sig(x, 3)} s"

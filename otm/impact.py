"""Impact: what one request cost, as central value with a low/high range.

The estimator produces it; records, reports and exports consume it.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from otm.units import fmt_value_range, sig


class Range(BaseModel):
    """A central estimate with a plausible low and high (low <= value <= high)."""

    model_config = ConfigDict(frozen=True)

    value: float
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        for name in ("value", "low", "high"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if not (self.low <= self.value <= self.high):
            raise ValueError(f"range not ordered: low={self.low} value={self.value} high={self.high}")
        return self

    @classmethod
    def point(cls, x: float) -> Range:
        return cls(value=x, low=x, high=x)

    def __float__(self) -> float:
        return float(self.value)

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        return f"{format(self.value, spec)} ({format(self.low, spec)}–{format(self.high, spec)})"

    def __repr__(self) -> str:
        v, lo, hi = (sig(x, 4, trim=True) for x in (self.value, self.low, self.high))
        return f"Range({v}, low={lo}, high={hi})"

    def __str__(self) -> str:
        return fmt_value_range(self)

    def scale(self, k: float) -> Range:
        return Range(value=self.value * k, low=self.low * k, high=self.high * k)


class Impact(BaseModel):
    """Energy, carbon and water of one request (or a sum of requests)."""

    model_config = ConfigDict(frozen=True)

    energy_wh: Range
    carbon_g: Range
    water_ml: Range
    breakdown_wh: dict[str, float]
    """Central energy by where it is spent: accelerator, host, idle, facility."""
    carbon_breakdown_g: dict[str, float]
    """operational (energy x grid), embodied (hardware amortised)."""
    water_breakdown_ml: dict[str, float]
    """onsite (cooling, IT energy x WUE), offsite (power generation)."""
    cost_usd: float | None = None
    assumptions: dict[str, Any] = Field(default_factory=dict)

    @property
    def energy_j(self) -> Range:
        return self.energy_wh.scale(3600.0)

    @property
    def warnings(self) -> list[str]:
        return list(self.assumptions.get("warnings", []))

    # How it shows itself (otm.display): figures with units and ranges.
    def __str__(self) -> str:
        from otm.display import impact_text

        return impact_text(self)

    def __repr__(self) -> str:
        from otm.display import impact_repr

        return impact_repr(self)

    def _repr_html_(self) -> str:
        from otm.display import impact_html

        return impact_html(self)

    def __rich__(self) -> Any:
        from otm.display import impact_rich

        return impact_rich(self)

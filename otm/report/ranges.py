"""Adding up the ranges of many requests.

Summing every low and every high assumes all errors move together, which
overstates the uncertainty of a large experiment; treating them all as
independent understates it, because requests served by the same model on the
same hardware in the same region share the same unknowns (model size, batch,
power draw, PUE, grid intensity). So we split the difference along that line:

* within a group of requests sharing (provider, model, deployment, region),
  errors are fully correlated: lows add to lows, highs to highs;
* across groups they are independent: the groups' half-widths (value - low,
  high - value) combine in quadrature.

The result always contains the sum of central values, and its low is never
below the sum of the lows (so it stays non-negative for physical quantities).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

from otm.impact import Range


class RangeSum:
    """Running sum of (value, low, high) triples, kept per correlation group."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[Hashable, list[float]] = {}

    def add(self, group: Hashable, value: float, low: float, high: float) -> None:
        g = self._groups.get(group)
        if g is None:
            self._groups[group] = [value, low, high]
        else:
            g[0] += value
            g[1] += low
            g[2] += high

    def merge(self, other: RangeSum) -> None:
        for group, (v, lo, hi) in other._groups.items():
            self.add(group, v, lo, hi)

    def __bool__(self) -> bool:
        return bool(self._groups)

    @property
    def groups(self) -> int:
        return len(self._groups)

    def total(self) -> Range:
        """Sum of central values; correlated within groups, quadrature across them."""
        value = 0.0
        down = 0.0
        up = 0.0
        for v, lo, hi in self._groups.values():
            value += v
            down += max(v - lo, 0.0) ** 2
            up += max(hi - v, 0.0) ** 2
        low = value - math.sqrt(down)
        high = value + math.sqrt(up)
        # Guard float rounding so the Range invariant low <= value <= high holds.
        return Range(value=value, low=min(low, value), high=max(high, value))


def fully_correlated(ranges: list[Range]) -> Range:
    """The worst case, for comparison: every low added, every high added."""
    return Range(
        value=sum(r.value for r in ranges),
        low=sum(r.low for r in ranges),
        high=sum(r.high for r in ranges),
    )

"""Re-estimating records with the live grid intensity of the hour they ran in.

    from otm.grid import apply_live_grid
    result = apply_live_grid(records)          # records' impacts now use live intensities
    print(result.live, result.fallbacks)       # how many, and why the others kept the static figure

Operational carbon is energy x grid intensity; the live intensity replaces the
region's static yearly figure for the hour of the call (its start, UTC), and
nothing else changes. Each record's ``impact.assumptions["grid_live"]`` says
what was used: the zone, hour, value, basis and source, or the reason the
static figure was kept (no token, no zone for the region, rate limited, timed
out...), which is also added to the impact's warnings.

Only records whose region is known are adjusted (a region on the record or
its deployment): without one the estimate carries several candidate grids as
a range, and one live figure would narrow it falsely. A deployment that fixes
``grid_gco2e_per_kwh`` itself (a PPA, a measured mix) wins over live data.

``LiveGrid().install()`` does the same for records as they finish, on the
background delivery thread (never on the call's path): a record's
``.impact`` is replaced by the live one once fetched.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otm._log import log_once
from otm.grid.electricitymaps import ElectricityMaps, Intensity, Lookup, Unavailable
from otm.grid.zones import zone_for_region

if TYPE_CHECKING:
    from otm.impact import Impact
    from otm.record import Record

__all__ = ["LiveGrid", "LiveGridResult", "apply_live_grid", "live_impacts", "reestimate_with_grid"]


def grid_region(record: Record) -> str | None:
    """The region the estimate reads its grid from: the deployment's, else the record's."""
    dep = record.deployment
    if dep is not None and dep.region:
        return dep.region
    return record.region


def _when(record: Record) -> float | None:
    t = record.telemetry
    for v in (t.start_time, t.end_time, t.last_token_time):
        if v is not None:
            return float(v)
    return None


def reestimate_with_grid(records: Sequence[Record], grid: Sequence[float]) -> list[Impact | None]:
    """Impacts of ``records``, each with its own grid intensity (NaN: the region's own figure).

    The one place that knows how a per-record intensity reaches the estimator.
    Today: records are grouped by (deployment, region, intensity) and each
    group is estimated with ``otm.estimate_many(..., deployment=<its deployment
    with grid_gco2e_per_kwh set>)``. When ``estimate_many`` takes a per-record
    ``grid_gco2e_per_kwh`` column, this becomes one call with that column.
    """
    from otm.deployment import Deployment
    from otm.estimate import estimate_many

    out: list[Impact | None] = [None] * len(records)
    groups: dict[tuple[Any, str | None, float | None], list[int]] = {}
    for i, (rec, ci) in enumerate(zip(records, grid)):
        value = None if ci is None or (isinstance(ci, float) and math.isnan(ci)) else float(ci)
        groups.setdefault((rec.deployment, rec.region, value), []).append(i)
    for (dep, region, value), rows in groups.items():
        if value is None:
            deployment = dep
        else:
            deployment = (
                dep.model_copy(update={"grid_gco2e_per_kwh": value})
                if dep is not None
                else Deployment(grid_gco2e_per_kwh=value)
            )
        try:
            batch = estimate_many(
                [records[i].telemetry for i in rows], deployment=deployment, region=region
            )
        except Exception as exc:
            log_once("grid.reestimate", exc)
            continue
        for j, i in enumerate(rows):
            out[i] = batch[j]
    return out


@dataclass
class LiveGridResult:
    """What :func:`apply_live_grid` did."""

    live: int = 0
    """Records re-estimated with a live intensity."""
    fallbacks: Counter[str] = field(default_factory=Counter)
    """Reason -> records that kept the static figure."""
    zones: Counter[str] = field(default_factory=Counter)
    """Zone -> records re-estimated with its live intensity."""

    @property
    def total(self) -> int:
        return self.live + sum(self.fallbacks.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "fallbacks": dict(self.fallbacks),
            "zones": dict(self.zones),
        }


def _lookups(
    records: Sequence[Record],
    fetch: Callable[[Iterable[tuple[str, float]]], Mapping[tuple[str, int], Lookup]],
    zones: Mapping[str, str] | None,
) -> list[Lookup]:
    plan: list[tuple[str, float] | Unavailable] = []
    zone_memo: dict[str, tuple[str | None, str]] = {}
    for rec in records:
        dep = rec.deployment
        if dep is not None and dep.grid_gco2e_per_kwh is not None:
            plan.append(Unavailable("the deployment fixes grid_gco2e_per_kwh"))
            continue
        region = grid_region(rec)
        if not region:
            plan.append(
                Unavailable("no region given: the estimate keeps the provider's candidate grids")
            )
            continue
        if region not in zone_memo:
            zone_memo[region] = zone_for_region(region, zones)
        zone, why = zone_memo[region]
        when = _when(rec)
        if zone is None:
            plan.append(Unavailable(why))
        elif when is None:
            plan.append(Unavailable("the record has no time"))
        else:
            plan.append((zone, when))
    wanted = [p for p in plan if isinstance(p, tuple)]
    got = fetch(wanted) if wanted else {}
    out: list[Lookup] = []
    for p in plan:
        if isinstance(p, Unavailable):
            out.append(p)
        else:
            zone, when = p
            out.append(got.get((zone, int(when // 3600) * 3600), Unavailable("not fetched")))
    return out


def live_impacts(
    records: Sequence[Record],
    *,
    source: ElectricityMaps | None = None,
    zones: Mapping[str, str] | None = None,
) -> list[tuple[Impact | None, Lookup]]:
    """For each record: its impact with the live grid intensity (or its static impact), and
    the lookup (an :class:`Intensity`, or :class:`Unavailable` with the reason)."""
    src = source if source is not None else ElectricityMaps.from_settings()
    if zones is None:
        zones = _configured_zones()
    looks = _lookups(records, src.lookup, zones)
    # One grouped estimate for the records that need one: the live ones (with
    # their hour's intensity) and those not estimated yet (with the region's
    # own figure, NaN); the others keep the impact they carry.
    rows = [
        i
        for i, (rec, lk) in enumerate(zip(records, looks))
        if isinstance(lk, Intensity) or rec._impact is None
    ]
    grid = [_value(looks[i]) for i in rows]
    fresh = reestimate_with_grid([records[i] for i in rows], grid)
    impacts: list[Impact | None] = [None] * len(records)
    for i, imp in zip(rows, fresh):
        impacts[i] = imp
    out: list[tuple[Impact | None, Lookup]] = []
    for i, (rec, lk) in enumerate(zip(records, looks)):
        imp = impacts[i]
        if imp is None:
            if isinstance(lk, Intensity):  # the re-estimate failed (logged): keep the static one
                lk = Unavailable("re-estimating with the live intensity failed")
            imp = rec.impact
        out.append((None if imp is None else _annotate(imp, lk), lk))
    return out


def _value(lookup: Lookup) -> float:
    return lookup.gco2e_per_kwh if isinstance(lookup, Intensity) else math.nan


def _annotate(impact: Impact, lookup: Lookup) -> Impact:
    a = dict(impact.assumptions)
    warnings = list(a.get("warnings") or ())
    if isinstance(lookup, Intensity):
        a["grid_live"] = {"used": True, **lookup.to_dict()}
        if lookup.estimated:
            warnings.append(
                f"live grid intensity for {lookup.zone} at {lookup.datetime} is the provider's estimate"
            )
    else:
        a["grid_live"] = {"used": False, "reason": lookup.reason}
        warnings.append(f"live grid intensity unavailable ({lookup.reason}): static yearly figure used")
    a["warnings"] = warnings
    return impact.model_copy(update={"assumptions": a})


def apply_live_grid(
    records: Iterable[Record],
    *,
    source: ElectricityMaps | None = None,
    zones: Mapping[str, str] | None = None,
) -> LiveGridResult:
    """Replace each record's impact with the live-grid one (or annotate why not)."""
    recs = list(records)
    result = LiveGridResult()
    for rec, (impact, lk) in zip(recs, live_impacts(recs, source=source, zones=zones)):
        if isinstance(lk, Intensity):
            result.live += 1
            result.zones[lk.zone] += 1
        else:
            result.fallbacks[lk.reason] += 1
        if impact is not None:
            with rec._lock:
                rec._impact = impact
    return result


def _configured_zones() -> dict[str, str]:
    try:
        from otm.config import settings

        return dict(settings().grid_zones)
    except Exception as exc:  # an invalid setting must not stop a report
        log_once("grid.zones setting", exc)
        return {}


class LiveGrid:
    """Re-estimate every finished record with live grid intensity, off the call's path.

    ``install()`` subscribes to the background delivery (``otm.events``): the
    lookup (cached per zone and hour, bounded by the source's timeout) runs on
    the delivery thread, never on the thread that made the call. Install it
    before an ``OtelExporter`` sharing the same delivery, and the exported
    spans carry the live figures.
    """

    def __init__(
        self,
        source: ElectricityMaps | None = None,
        *,
        zones: Mapping[str, str] | None = None,
        delivery: Any = None,
    ) -> None:
        self.source = source
        self.zones = zones
        self._delivery = delivery
        self._unsubscribe: Callable[..., None] | None = None
        self.result = LiveGridResult()

    def install(self) -> LiveGrid:
        from otm import events

        if self._unsubscribe is None:
            if self.source is None:
                self.source = ElectricityMaps.from_settings()
            d = self._delivery if self._delivery is not None else events.delivery()
            self._unsubscribe = d.subscribe(self._on_record)
        return self

    def uninstall(self, timeout: float | None = 5.0) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe(timeout)

    @property
    def installed(self) -> bool:
        return self._unsubscribe is not None

    def _on_record(self, record: Record) -> None:
        r = apply_live_grid([record], source=self.source, zones=self.zones)
        self.result.live += r.live
        self.result.fallbacks.update(r.fallbacks)
        self.result.zones.update(r.zones)

    def __enter__(self) -> LiveGrid:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

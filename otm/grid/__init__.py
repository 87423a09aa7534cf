"""Live grid carbon intensity: the hour a call ran in, instead of a yearly average.

otm's regions carry static yearly grid intensities (lifecycle, mostly Ember).
This package fetches the hourly intensity of the call's grid zone from
Electricity Maps (lifecycle basis, never mixed with direct figures) and
re-estimates records with it: at report time (``otm report --live-grid``,
:func:`apply_live_grid`) or off the call's path as records finish
(:class:`LiveGrid`). It needs an API token (``OTM_ELECTRICITYMAPS_TOKEN``) and
``pip install 'otm[grid]'`` (tenacity). Every failure falls back to the static
figure, with the reason in the record's ``impact.assumptions["grid_live"]``.
See docs/reporting.md "Live grid intensity".
"""

from __future__ import annotations

from otm.grid.apply import (
    LiveGrid,
    LiveGridResult,
    apply_live_grid,
    grid_region,
    live_impacts,
    reestimate_with_grid,
)
from otm.grid.cache import GridCache, default_cache_dir
from otm.grid.electricitymaps import DEFAULT_URL, ElectricityMaps, Intensity, Unavailable
from otm.grid.zones import SITE_ZONES, zone_for_region

__all__ = [
    "DEFAULT_URL",
    "SITE_ZONES",
    "ElectricityMaps",
    "GridCache",
    "Intensity",
    "LiveGrid",
    "LiveGridResult",
    "Unavailable",
    "apply_live_grid",
    "default_cache_dir",
    "grid_region",
    "live_impacts",
    "reestimate_with_grid",
    "zone_for_region",
]

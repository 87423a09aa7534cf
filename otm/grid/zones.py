"""Which Electricity Maps zone an otm region draws its electricity from.

The region is resolved forgivingly by the data layer (``FRA``, ``FR``,
``aws:eu-west-3``...), then:

1. a zone the user configured for it (setting ``grid_zones``), for the region
   or any region it inherits from;
2. a zone known for the site: cloud regions in countries that Electricity Maps
   splits into several zones, and US states where one balancing authority
   serves the data-centre sites (``SITE_ZONES``, sources in docs/reporting.md);
3. grid zones whose otm id is the Electricity Maps key (``SE-SE3``, ``NO-NO1``,
   ``CA-QC``...);
4. for a country, its ISO alpha-2 code (``FR``, ``DE``, ``GB``), which is the
   Electricity Maps key of every single-zone country.

Anything else (the world average, a Chinese province) has no zone, and the
reason says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otm.data import RegionSpec

__all__ = ["SITE_ZONES", "ZONE_SHAPED_KINDS", "zone_for_region"]

SITE_ZONES: dict[str, str] = {
    # US data-centre sites -> the balancing authority (Electricity Maps zone) serving them
    "aws:us-east-1": "US-MIDA-PJM",  # N. Virginia: Dominion, in PJM
    "gcp:us-east4": "US-MIDA-PJM",
    "azure:eastus": "US-MIDA-PJM",
    "azure:eastus2": "US-MIDA-PJM",
    "aws:us-east-2": "US-MIDA-PJM",  # Ohio: AEP, in PJM
    "aws:us-gov-east-1": "US-MIDA-PJM",
    "gcp:us-east5": "US-MIDA-PJM",
    "azure:northcentralus": "US-MIDA-PJM",  # Chicago: ComEd, in PJM
    "aws:us-west-1": "US-CAL-CISO",  # N. California
    "azure:westus": "US-CAL-CISO",
    "gcp:us-west2": "US-CAL-LDWP",  # Los Angeles: LADWP is its own balancing authority
    "aws:us-west-2": "US-NW-BPAT",  # Boardman, Oregon: Bonneville
    "aws:us-gov-west-1": "US-NW-BPAT",
    "gcp:us-west1": "US-NW-BPAT",  # The Dalles, Oregon: Bonneville
    "azure:westus2": "US-NW-GCPD",  # Quincy, Washington: Grant County PUD
    "gcp:us-central1": "US-MIDW-MISO",  # Council Bluffs, Iowa: MidAmerican, in MISO
    "azure:centralus": "US-MIDW-MISO",
    "gcp:us-east1": "US-CAR-SC",  # Moncks Corner, South Carolina: Santee Cooper
    "gcp:us-south1": "US-TEX-ERCO",  # Dallas
    "azure:southcentralus": "US-TEX-ERCO",  # San Antonio
    "gcp:us-west3": "US-NW-PACE",  # Salt Lake City: PacifiCorp East
    "gcp:us-west4": "US-NW-NEVP",  # Las Vegas: NV Energy
    # US states served (nearly) whole by one balancing authority
    "US-VA": "US-MIDA-PJM",
    "US-OH": "US-MIDA-PJM",
    "US-PA": "US-MIDA-PJM",
    "US-NJ": "US-MIDA-PJM",
    "US-MD": "US-MIDA-PJM",
    "US-DE": "US-MIDA-PJM",
    "US-DC": "US-MIDA-PJM",
    "US-NY": "US-NY-NYIS",
    "US-MA": "US-NE-ISNE",
    "US-CT": "US-NE-ISNE",
    "US-RI": "US-NE-ISNE",
    "US-VT": "US-NE-ISNE",
    "US-NH": "US-NE-ISNE",
    "US-TX": "US-TEX-ERCO",
    "US-CA": "US-CAL-CISO",
    "US-GA": "US-SE-SOCO",
    "US-TN": "US-TEN-TVA",
    "US-IA": "US-MIDW-MISO",
    "US-MN": "US-MIDW-MISO",
    "US-NV": "US-NW-NEVP",
    "US-UT": "US-NW-PACE",
    # sites in countries Electricity Maps splits into several zones
    "aws:ap-northeast-1": "JP-TK",  # Tokyo
    "gcp:asia-northeast1": "JP-TK",
    "azure:japaneast": "JP-TK",
    "aws:ap-northeast-3": "JP-KN",  # Osaka (Kansai)
    "gcp:asia-northeast2": "JP-KN",
    "azure:japanwest": "JP-KN",
    "aws:ap-southeast-2": "AU-NSW",  # Sydney
    "gcp:australia-southeast1": "AU-NSW",
    "azure:australiaeast": "AU-NSW",
    "aws:ap-southeast-4": "AU-VIC",  # Melbourne
    "gcp:australia-southeast2": "AU-VIC",
    "azure:australiasoutheast": "AU-VIC",
    "aws:ap-south-1": "IN-WE",  # Mumbai
    "gcp:asia-south1": "IN-WE",
    "azure:centralindia": "IN-WE",  # Pune
    "gcp:asia-south2": "IN-NO",  # Delhi
    "aws:ap-south-2": "IN-SO",  # Hyderabad
    "azure:southindia": "IN-SO",  # Chennai
    "aws:sa-east-1": "BR-CS",  # Sao Paulo
    "gcp:southamerica-east1": "BR-CS",
    "azure:brazilsouth": "BR-CS",
    "aws:eu-south-1": "IT-NO",  # Milan
    "gcp:europe-west8": "IT-NO",
    "gcp:europe-west12": "IT-NO",  # Turin
    "azure:italynorth": "IT-NO",
}
"""otm region id -> Electricity Maps zone, where the site fixes the zone.

Approximate by nature: a state or a metropolitan area can straddle grids.
Override with the ``grid_zones`` setting (``"US-WA=US-NW-BPAT,aws:us-west-2=US-NW-PACW"``)."""

ZONE_SHAPED_KINDS = frozenset({"grid-zone"})
"""Region kinds whose otm id is an Electricity Maps zone key (bidding zones, provinces of Canada)."""

_NOT_ZONES = ("CN-",)
"""otm grid-zone ids that are not Electricity Maps keys (Chinese provinces: no zone)."""


def zone_for_region(
    region: str, overrides: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """``(zone, how)`` for an otm region; ``zone`` is None when there is none, ``how`` says why."""
    from otm.data import find_region, normalise_id

    row = find_region(region)
    if row is None:
        return None, f"region {region!r} is not in otm's data"
    wanted = {normalise_id(k, "region"): v for k, v in (overrides or {}).items()}
    chain = []
    seen: set[str] = set()
    cur: RegionSpec | None = row
    while cur is not None and cur.id not in seen:
        seen.add(cur.id)
        chain.append(cur)
        cur = find_region(cur.parent) if cur.parent else None
    for r in chain:
        for key in (r.id, *r.aliases):
            zone = wanted.get(normalise_id(key, "region"))
            if zone:
                return zone, f"configured for {r.id} (grid_zones)"
    for r in chain:
        zone = SITE_ZONES.get(r.id)
        if zone:
            return zone, f"site of {r.id}"
    for r in chain:
        if r.kind in ZONE_SHAPED_KINDS and not r.id.startswith(_NOT_ZONES):
            return r.id, f"grid zone {r.id}"
        if r.kind == "country" and r.alpha2:
            return r.alpha2, f"country {r.id}"
        if r.kind == "us-state":
            return None, (
                f"no single Electricity Maps zone known for {r.id} (a state can span several "
                "balancing authorities); "
                "set one with the grid_zones setting"
            )
    return None, f"no Electricity Maps zone for {row.id}"

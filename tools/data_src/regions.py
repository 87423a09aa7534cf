"""Regions: WORLD, countries, US states, grid zones and cloud regions.

Countries and WORLD: lifecycle, location-based grid intensity (Ember via Our
World in Data, data year 2025 as shipped by EcoLogits 0.11.3) and off-site
water per kWh (WRI method, EcoLogits). US states: EPA eGRID2023 state output
rates, which count direct combustion only; we scale them to a lifecycle basis
with the national ratio (OWID lifecycle 2023 / eGRID direct 2023) and flag
them estimated. Cloud regions name a parent (country, state or grid zone) and
inherit its figures at load time.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .iso import ALPHA2, EXTRA_NAMES

R = dict[str, Any]

_REF = Path(__file__).parent / "reference_grid.csv"

US_STATES: dict[str, str] = {
    "AL": "Alabama",
    "AK": "Alaska",
    "AZ": "Arizona",
    "AR": "Arkansas",
    "CA": "California",
    "CO": "Colorado",
    "CT": "Connecticut",
    "DE": "Delaware",
    "DC": "District of Columbia",
    "FL": "Florida",
    "GA": "Georgia",
    "HI": "Hawaii",
    "ID": "Idaho",
    "IL": "Illinois",
    "IN": "Indiana",
    "IA": "Iowa",
    "KS": "Kansas",
    "KY": "Kentucky",
    "LA": "Louisiana",
    "ME": "Maine",
    "MD": "Maryland",
    "MA": "Massachusetts",
    "MI": "Michigan",
    "MN": "Minnesota",
    "MS": "Mississippi",
    "MO": "Missouri",
    "MT": "Montana",
    "NE": "Nebraska",
    "NV": "Nevada",
    "NH": "New Hampshire",
    "NJ": "New Jersey",
    "NM": "New Mexico",
    "NY": "New York",
    "NC": "North Carolina",
    "ND": "North Dakota",
    "OH": "Ohio",
    "OK": "Oklahoma",
    "OR": "Oregon",
    "PA": "Pennsylvania",
    "RI": "Rhode Island",
    "SC": "South Carolina",
    "SD": "South Dakota",
    "TN": "Tennessee",
    "TX": "Texas",
    "UT": "Utah",
    "VT": "Vermont",
    "VA": "Virginia",
    "WA": "Washington",
    "WV": "West Virginia",
    "WI": "Wisconsin",
    "WY": "Wyoming",
}

# States missing from the shared reference extract: approximate eGRID state output emission
# rates (direct CO2e, g/kWh) recalled from eGRID 2022/2023 releases. Flagged as estimates
# with a +-20% range; verify against EPA eGRID2023 before relying on a single state.
US_STATES_RECALLED: dict[str, float] = {
    "AK": 470,
    "AR": 450,
    "CT": 220,
    "DE": 340,
    "DC": 270,
    "FL": 360,
    "HI": 680,
    "ID": 110,
    "KS": 300,
    "ME": 105,
    "MD": 260,
    "MA": 360,
    "MI": 400,
    "MT": 440,
    "NH": 105,
    "NJ": 215,
    "ND": 630,
    "RI": 360,
    "SD": 110,
    "VT": 15,
    "WV": 850,
}

CHINA_PROVINCES: dict[str, str] = {
    "CN-BJ": "Beijing",
    "CN-SH": "Shanghai",
    "CN-GD": "Guangdong",
    "CN-GZ": "Guizhou",
    "CN-NM": "Inner Mongolia",
    "CN-NX": "Ningxia",
    "CN-GS": "Gansu",
    "CN-SC": "Sichuan",
    "CN-HE": "Hebei",
    "CN-ZJ": "Zhejiang",
    "CN-JS": "Jiangsu",
    "CN-QH": "Qinghai",
    "CN-YN": "Yunnan",
}

# (id, name, parent, gco2e, low/high note, method) for Canadian provinces that cloud regions sit in.
CANADA_ZONES: list[R] = [
    {
        "id": "CA-QC",
        "name": "Quebec (Canada)",
        "gco2e_per_kwh": 30,
        "water_l_per_kwh": None,
        "method": "~94% hydro: IPCC AR5 lifecycle median for hydro 24 gCO2e/kWh plus small other shares; Google reports 2 g/kWh "
        "(location-based, operational) for its Montreal region; plausible range 2-40",
        "sources": ["ipcc-ar5-annex3", "google-region-carbon"],
    },
    {
        "id": "CA-ON",
        "name": "Ontario (Canada)",
        "gco2e_per_kwh": 60,
        "water_l_per_kwh": None,
        "method": "nuclear ~55%, hydro ~25%, gas ~10-15%: lifecycle mix with IPCC AR5 medians (nuclear 12, hydro 24, gas 490); "
        "Google reports 47 g/kWh for Toronto; plausible range 30-100",
        "sources": ["ipcc-ar5-annex3", "google-region-carbon"],
    },
    {
        "id": "CA-AB",
        "name": "Alberta (Canada)",
        "gco2e_per_kwh": 480,
        "water_l_per_kwh": None,
        "method": "gas-dominated after the 2024 coal phase-out, ~15-20% wind/solar: IPCC AR5 gas lifecycle median 490 x ~0.85 "
        "+ renewables; plausible range 380-650",
        "sources": ["ipcc-ar5-annex3"],
    },
]

# --------------------------------------------------------------------------- clouds
# (bare region name, display name, parent region id)
AWS: list[tuple[str, str, str]] = [
    ("us-east-1", "US East (N. Virginia)", "US-VA"),
    ("us-east-2", "US East (Ohio)", "US-OH"),
    ("us-west-1", "US West (N. California)", "US-CA"),
    ("us-west-2", "US West (Oregon)", "US-OR"),
    ("us-gov-east-1", "AWS GovCloud (US-East, Ohio)", "US-OH"),
    ("us-gov-west-1", "AWS GovCloud (US-West, Oregon)", "US-OR"),
    ("ca-central-1", "Canada (Central, Montreal)", "CA-QC"),
    ("ca-west-1", "Canada West (Calgary)", "CA-AB"),
    ("mx-central-1", "Mexico (Central)", "MEX"),
    ("sa-east-1", "South America (Sao Paulo)", "BRA"),
    ("eu-west-1", "Europe (Ireland)", "IRL"),
    ("eu-west-2", "Europe (London)", "GBR"),
    ("eu-west-3", "Europe (Paris)", "FRA"),
    ("eu-central-1", "Europe (Frankfurt)", "DEU"),
    ("eu-central-2", "Europe (Zurich)", "CHE"),
    ("eu-north-1", "Europe (Stockholm)", "SE-SE3"),
    ("eu-south-1", "Europe (Milan)", "ITA"),
    ("eu-south-2", "Europe (Spain)", "ESP"),
    ("il-central-1", "Israel (Tel Aviv)", "ISR"),
    ("me-south-1", "Middle East (Bahrain)", "BHR"),
    ("me-central-1", "Middle East (UAE)", "ARE"),
    ("af-south-1", "Africa (Cape Town)", "ZAF"),
    ("ap-east-1", "Asia Pacific (Hong Kong)", "HKG"),
    ("ap-south-1", "Asia Pacific (Mumbai)", "IND"),
    ("ap-south-2", "Asia Pacific (Hyderabad)", "IND"),
    ("ap-northeast-1", "Asia Pacific (Tokyo)", "JPN"),
    ("ap-northeast-2", "Asia Pacific (Seoul)", "KOR"),
    ("ap-northeast-3", "Asia Pacific (Osaka)", "JPN"),
    ("ap-southeast-1", "Asia Pacific (Singapore)", "SGP"),
    ("ap-southeast-2", "Asia Pacific (Sydney)", "AUS"),
    ("ap-southeast-3", "Asia Pacific (Jakarta)", "IDN"),
    ("ap-southeast-4", "Asia Pacific (Melbourne)", "AUS"),
    ("ap-southeast-5", "Asia Pacific (Malaysia)", "MYS"),
    ("ap-southeast-7", "Asia Pacific (Thailand)", "THA"),
]
# AWS 2024 on-site WUE by region (third-party transcription of the Amazon Sustainability page)
AWS_WUE: dict[str, float] = {
    "eu-north-1": 0.02,
    "us-east-2": 0.10,
    "eu-west-1": 0.03,
    "eu-central-1": 0.01,
    "sa-east-1": 0.23,
    "us-east-1": 0.12,
    "ap-southeast-4": 0.02,
    "ap-northeast-1": 0.91,
    "us-west-2": 0.16,
    "us-west-1": 0.51,
    "ap-southeast-1": 1.68,
    "ap-southeast-2": 0.12,
    "ca-central-1": 0.04,
    "eu-south-2": 0.24,
    "ca-west-1": 0.08,
    "ap-southeast-3": 2.75,
}

GCP: list[tuple[str, str, str]] = [
    ("us-central1", "Council Bluffs, Iowa", "US-IA"),
    ("us-east1", "Moncks Corner, South Carolina", "US-SC"),
    ("us-east4", "Ashburn, Northern Virginia", "US-VA"),
    ("us-east5", "Columbus, Ohio", "US-OH"),
    ("us-south1", "Dallas, Texas", "US-TX"),
    ("us-west1", "The Dalles, Oregon", "US-OR"),
    ("us-west2", "Los Angeles, California", "US-CA"),
    ("us-west3", "Salt Lake City, Utah", "US-UT"),
    ("us-west4", "Las Vegas, Nevada", "US-NV"),
    ("northamerica-northeast1", "Montreal, Quebec", "CA-QC"),
    ("northamerica-northeast2", "Toronto, Ontario", "CA-ON"),
    ("southamerica-east1", "Sao Paulo, Brazil", "BRA"),
    ("southamerica-west1", "Santiago, Chile", "CHL"),
    ("europe-west1", "St. Ghislain, Belgium", "BEL"),
    ("europe-west2", "London, England", "GBR"),
    ("europe-west3", "Frankfurt, Germany", "DEU"),
    ("europe-west4", "Eemshaven, Netherlands", "NLD"),
    ("europe-west6", "Zurich, Switzerland", "CHE"),
    ("europe-west8", "Milan, Italy", "ITA"),
    ("europe-west9", "Paris, France", "FRA"),
    ("europe-west10", "Berlin, Germany", "DEU"),
    ("europe-west12", "Turin, Italy", "ITA"),
    ("europe-central2", "Warsaw, Poland", "POL"),
    ("europe-north1", "Hamina, Finland", "FIN"),
    ("europe-southwest1", "Madrid, Spain", "ESP"),
    ("me-central1", "Doha, Qatar", "QAT"),
    ("me-central2", "Dammam, Saudi Arabia", "SAU"),
    ("me-west1", "Tel Aviv, Israel", "ISR"),
    ("africa-south1", "Johannesburg, South Africa", "ZAF"),
    ("asia-east1", "Changhua County, Taiwan", "TWN"),
    ("asia-east2", "Hong Kong", "HKG"),
    ("asia-northeast1", "Tokyo, Japan", "JPN"),
    ("asia-northeast2", "Osaka, Japan", "JPN"),
    ("asia-northeast3", "Seoul, South Korea", "KOR"),
    ("asia-south1", "Mumbai, India", "IND"),
    ("asia-south2", "Delhi, India", "IND"),
    ("asia-southeast1", "Jurong West, Singapore", "SGP"),
    ("asia-southeast2", "Jakarta, Indonesia", "IDN"),
    ("australia-southeast1", "Sydney, Australia", "AUS"),
    ("australia-southeast2", "Melbourne, Australia", "AUS"),
]
# Google campus trailing-twelve-month PUE (Google efficiency page, Oct 2025 transcription)
GCP_PUE: dict[str, float] = {
    "us-central1": 1.11,
    "us-east1": 1.10,
    "us-east4": 1.09,
    "us-east5": 1.06,
    "us-south1": 1.10,
    "us-west1": 1.10,
    "us-west4": 1.09,
    "europe-west1": 1.08,
    "europe-west4": 1.08,
    "europe-north1": 1.10,
    "asia-east1": 1.12,
    "asia-southeast1": 1.13,
    "southamerica-west1": 1.09,
}

AZURE: list[tuple[str, str, str]] = [
    ("eastus", "East US (Virginia)", "US-VA"),
    ("eastus2", "East US 2 (Virginia)", "US-VA"),
    ("centralus", "Central US (Iowa)", "US-IA"),
    ("northcentralus", "North Central US (Illinois)", "US-IL"),
    ("southcentralus", "South Central US (Texas)", "US-TX"),
    ("westcentralus", "West Central US (Wyoming)", "US-WY"),
    ("westus", "West US (California)", "US-CA"),
    ("westus2", "West US 2 (Washington)", "US-WA"),
    ("westus3", "West US 3 (Arizona)", "US-AZ"),
    ("canadacentral", "Canada Central (Toronto)", "CA-ON"),
    ("canadaeast", "Canada East (Quebec City)", "CA-QC"),
    ("brazilsouth", "Brazil South (Sao Paulo)", "BRA"),
    ("mexicocentral", "Mexico Central (Queretaro)", "MEX"),
    ("northeurope", "North Europe (Ireland)", "IRL"),
    ("westeurope", "West Europe (Netherlands)", "NLD"),
    ("uksouth", "UK South (London)", "GBR"),
    ("ukwest", "UK West (Cardiff)", "GBR"),
    ("francecentral", "France Central (Paris)", "FRA"),
    ("germanywestcentral", "Germany West Central (Frankfurt)", "DEU"),
    ("swedencentral", "Sweden Central (Gavle)", "SE-SE3"),
    ("norwayeast", "Norway East (Oslo)", "NO-NO1"),
    ("switzerlandnorth", "Switzerland North (Zurich)", "CHE"),
    ("italynorth", "Italy North (Milan)", "ITA"),
    ("polandcentral", "Poland Central (Warsaw)", "POL"),
    ("spaincentral", "Spain Central (Madrid)", "ESP"),
    ("japaneast", "Japan East (Tokyo)", "JPN"),
    ("japanwest", "Japan West (Osaka)", "JPN"),
    ("koreacentral", "Korea Central (Seoul)", "KOR"),
    ("southeastasia", "Southeast Asia (Singapore)", "SGP"),
    ("eastasia", "East Asia (Hong Kong)", "HKG"),
    ("australiaeast", "Australia East (New South Wales)", "AUS"),
    ("australiasoutheast", "Australia Southeast (Victoria)", "AUS"),
    ("centralindia", "Central India (Pune)", "IND"),
    ("southindia", "South India (Chennai)", "IND"),
    ("uaenorth", "UAE North (Dubai)", "ARE"),
    ("southafricanorth", "South Africa North (Johannesburg)", "ZAF"),
    ("qatarcentral", "Qatar Central (Doha)", "QAT"),
    ("israelcentral", "Israel Central", "ISR"),
]
# Microsoft PUE by geography (Microsoft efficiency page, Oct 2025 transcription)
AZURE_PUE_BY_PARENT: dict[str, float] = {
    "US-AZ": 1.13,
    "US-IL": 1.25,
    "US-IA": 1.16,
    "US-TX": 1.28,
    "US-VA": 1.14,
    "US-WA": 1.16,
    "US-WY": 1.12,
    "SGP": 1.30,
    "IRL": 1.18,
    "NLD": 1.14,
    "SE-SE3": 1.16,
    "POL": 1.19,
}


def _read_ref() -> list[dict[str, str]]:
    with open(_REF, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _srcs(s: str) -> list[str]:
    return [x for x in s.split(";") if x]


def build_regions() -> list[R]:
    ref = _read_ref()
    by_code = {r["code"]: r for r in ref}
    rows: list[R] = []
    used_aliases: set[str] = set()

    def alias_ok(a: str) -> bool:
        k = a.strip().lower()
        if not k or k in used_aliases:
            return False
        used_aliases.add(k)
        return True

    world = by_code["WORLD"]
    rows.append(
        {
            "id": "WORLD",
            "name": "World",
            "kind": "world",
            "aliases": [a for a in ("WOR", "global", "earth", "world average") if alias_ok(a)],
            "gco2e_per_kwh": float(world["gco2e"]),
            "data_year": 2025,
            "water_l_per_kwh": float(world["water"]),
            "sources": _srcs(world["sources"]),
            "year": 2025,
            "notes": "Ember: 458 gCO2e/kWh in 2025 (2.7% below 2024); off-site water world default 3.908 L/kWh (EcoLogits/WRI).",
        }
    )
    used_aliases.update({"world"})

    # ---- countries
    for r in ref:
        if r["level"] != "country":
            continue
        a3 = r["code"]
        a2 = ALPHA2[a3]
        g = float(r["gco2e"])
        row: R = {
            "id": a3,
            "name": r["name"],
            "kind": "country",
            "alpha2": a2,
            "country": a3,
            "gco2e_per_kwh": g,
            "data_year": 2025,
            "water_l_per_kwh": float(r["water"]),
            "sources": _srcs(r["sources"]),
            "year": 2025,
        }
        est: list[str] = []
        methods: list[str] = []
        if r["water_default"] == "yes":
            est.append("water_l_per_kwh")
            methods.append("no country water factor: world default 3.908 L/kWh (EcoLogits/WRI)")
        if g <= 0:
            row["gco2e_per_kwh"] = 24.0
            est.append("gco2e_per_kwh")
            methods.append(
                "source gives 0 (hydro-only grid); set to the IPCC AR5 lifecycle median for hydro, 24 g/kWh"
            )
            row["sources"] = row["sources"] + ["ipcc-ar5-annex3"]
        if est:
            row.update(estimated=True, estimated_fields=est, method="; ".join(methods))
        names = [a2, r["name"], *EXTRA_NAMES.get(a3, ())]
        row["aliases"] = [a for a in names if a.upper() != a3 and alias_ok(a)]
        used_aliases.add(a3.lower())
        row["notes"] = (
            "data year 2025 inferred: EcoLogits' world and USA values match Ember's GER 2026 figures for 2025"
        )
        rows.append(row)

    # ---- US states
    usa_life = float(by_code["USA-2023"]["gco2e"])
    usa_direct = float(by_code["US-EGRID"]["gco2e"])
    k = usa_life / usa_direct
    for code, name in US_STATES.items():
        sid = f"US-{code}"
        ref_row = by_code.get(sid)
        if ref_row is not None and ref_row["level"] == "us-state":
            direct, recalled = float(ref_row["gco2e"]), False
        else:
            direct, recalled = US_STATES_RECALLED[code], True
        method = (
            f"eGRID2023 state output rate is direct combustion CO2e ({direct:g} g/kWh); scaled to a lifecycle basis by "
            f"the national ratio OWID lifecycle 2023 / eGRID direct 2023 = {usa_life:g}/{usa_direct:g} = {k:.3f}; "
            "low-carbon states are understated (no upstream for nuclear/hydro/wind)"
        )
        if recalled:
            method = (
                "state missing from the shared reference extract: eGRID output rate recalled from the 2022/2023 "
                "releases (uncertain, +-20%); " + method
            )
        aliases = [
            a
            for a in (
                f"US:{code}",
                f"{name}, US",
                f"{name} (US)",
                f"{name}, USA",
                f"US {name}",
                name if name != "Georgia" else "Georgia (US state)",
            )
            if alias_ok(a)
        ]
        if code == "DC":
            aliases += [a for a in ("Washington DC", "Washington, D.C.", "D.C.") if alias_ok(a)]
        rows.append(
            {
                "id": sid,
                "name": name,
                "kind": "us-state",
                "parent": "USA",
                "country": "USA",
                "gco2e_per_kwh": round(direct * k, 1),
                "data_year": 2023,
                "water_l_per_kwh": None,
                "basis": "eGRID direct x national lifecycle ratio",
                "sources": ["egrid-2023", "codecarbon-global-mix", "owid-carbon-intensity"]
                + (["otm-estimate"] if recalled else []),
                "year": 2023,
                "estimated": True,
                "estimated_fields": ["gco2e_per_kwh", "water_l_per_kwh"],
                "method": method + "; water: national average (no state factor)",
                "aliases": aliases,
            }
        )

    # ---- grid zones: China provinces, Nordic bidding zones, Canadian provinces
    for code, name in CHINA_PROVINCES.items():
        r = by_code[code]
        rows.append(
            {
                "id": code,
                "name": f"{name} (China)",
                "kind": "grid-zone",
                "parent": "CHN",
                "country": "CHN",
                "gco2e_per_kwh": float(r["gco2e"]),
                "data_year": int(r["data_year"]),
                "water_l_per_kwh": None,
                "basis": "CO2 only, direct, official provincial average (MEE)",
                "sources": _srcs(r["sources"]),
                "year": int(r["data_year"]),
                "estimated": True,
                "estimated_fields": ["gco2e_per_kwh", "water_l_per_kwh"],
                "method": (
                    "official provincial CO2-only direct factor used as is (a lifecycle CO2e value would be roughly 5-15% "
                    "higher); water: national average"
                ),
                "aliases": [a for a in (name, f"{name}, China") if alias_ok(a)],
            }
        )
    for r in ref:
        if r["level"] != "bidding-zone" or r["code"] == "FI":
            continue
        zone = r["code"]  # SE1..SE4, NO1..NO5
        cc = {"SE": "SWE", "NO": "NOR"}[zone[:2]]
        zid = f"{zone[:2]}-{zone}"
        rows.append(
            {
                "id": zid,
                "name": r["name"],
                "kind": "grid-zone",
                "parent": cc,
                "country": cc,
                "gco2e_per_kwh": float(r["gco2e"]),
                "data_year": int(r["data_year"]),
                "water_l_per_kwh": None,
                "basis": "production mix x per-source lifecycle factors (no imports)",
                "sources": _srcs(r["sources"]),
                "year": int(r["data_year"]),
                "estimated": True,
                "estimated_fields": ["water_l_per_kwh"],
                "method": "water: national average",
                "aliases": [a for a in (zone,) if alias_ok(a)],
            }
        )
    for z in CANADA_ZONES:
        rows.append(
            {
                "id": z["id"],
                "name": z["name"],
                "kind": "grid-zone",
                "parent": "CAN",
                "country": "CAN",
                "gco2e_per_kwh": z["gco2e_per_kwh"],
                "data_year": 2024,
                "water_l_per_kwh": None,
                "sources": z["sources"] + ["otm-estimate"],
                "year": 2024,
                "estimated": True,
                "estimated_fields": ["gco2e_per_kwh", "water_l_per_kwh"],
                "method": z["method"] + "; water: national average",
                "aliases": [
                    a for a in (z["name"].split(" (")[0], z["id"].replace("-", ":")) if alias_ok(a)
                ],
            }
        )

    # ---- cloud regions
    gcp_ref = {r["code"].split(":", 1)[1]: r for r in ref if r["level"] == "gcp-region"}

    def cloud(provider: str, bare: str, name: str, parent: str, src: str) -> R:
        rid = f"{provider}:{bare}"
        row: R = {
            "id": rid,
            "name": f"{ {'aws': 'AWS', 'gcp': 'Google Cloud', 'azure': 'Azure'}[provider] } {name}",
            "kind": "cloud-region",
            "parent": parent,
            "provider": provider,
            "sources": [src],
            "aliases": [a for a in (bare, f"{provider}-{bare}") if alias_ok(a)],
        }
        notes: list[str] = [f"grid and water figures inherited from {parent}"]
        if provider == "aws" and bare in AWS_WUE:
            row["wue_onsite_l_per_kwh"] = AWS_WUE[bare]
            row["sources"].append("aws-wue-regions-2024")
            notes.append(f"AWS reports on-site WUE {AWS_WUE[bare]} L/kWh here (2024)")
        if provider == "gcp":
            if bare in GCP_PUE:
                row["pue"] = GCP_PUE[bare]
                row["sources"].append("google-pue-page")
                notes.append(f"Google campus TTM PUE {GCP_PUE[bare]}")
            g = gcp_ref.get(bare)
            if g is not None:
                row["sources"].append("google-region-carbon")
                notes.append(
                    f"Google reports {g['gco2e']} gCO2e/kWh location-based grid intensity for this region "
                    "(year not stated; not used as the figure, for a consistent lifecycle annual basis)"
                )
        if provider == "azure" and parent in AZURE_PUE_BY_PARENT:
            row["pue"] = AZURE_PUE_BY_PARENT[parent]
            row["sources"].append("ms-efficiency-page")
            notes.append(f"Microsoft PUE for this geography {AZURE_PUE_BY_PARENT[parent]}")
        row["notes"] = "; ".join(notes)
        return row

    for bare, name, parent in AWS:
        rows.append(cloud("aws", bare, name, parent, "aws-regions"))
    for bare, name, parent in GCP:
        rows.append(cloud("gcp", bare, name, parent, "gcp-regions"))
    for bare, name, parent in AZURE:
        rows.append(cloud("azure", bare, name, parent, "azure-regions"))
    return rows

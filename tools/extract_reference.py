"""Extract the grid and water figures otm/data uses from the shared reference CSVs.

Usage: python tools/extract_reference.py REFERENCE_DIR

Writes tools/data_src/reference_grid.csv (one row per zone: code, name, level,
gCO2e/kWh, data year, basis, off-site water L/kWh, whether the water figure is
the world default, source ids). tools/build_data.py reads that file, so the
build itself needs no access to the reference folder.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

OUT = Path(__file__).parent / "data_src" / "reference_grid.csv"


def main(ref: Path) -> None:
    with open(ref / "grid_intensity.csv", encoding="utf-8") as f:
        grid = list(csv.DictReader(f))
    with open(ref / "water_intensity.csv", encoding="utf-8") as f:
        water = {r["zone_code"]: r for r in csv.DictReader(f)}
    out: list[dict[str, str]] = []
    for r in grid:
        src = r["source_title"]
        level = r["level"]
        code = r["zone_code"]
        if level == "country" and src.startswith("EcoLogits"):
            w = water.get(code, {})
            out.append(
                {
                    "code": code,
                    "name": r["zone_name"],
                    "level": "country",
                    "gco2e": r["gco2e_per_kwh"],
                    "data_year": "2025",
                    "basis": "lifecycle",
                    "water": w.get("offsite_water_l_per_kwh", ""),
                    "water_default": w.get("world_default_used", ""),
                    "sources": "ecologits-electricity-mixes;owid-carbon-intensity;wri-water-guidance",
                }
            )
        elif level == "global" and code == "WORLD" and r["data_year"] == "2025":
            w = water.get("WOR", {})
            out.append(
                {
                    "code": "WORLD",
                    "name": "World",
                    "level": "world",
                    "gco2e": r["gco2e_per_kwh"],
                    "data_year": "2025",
                    "basis": "lifecycle",
                    "water": w.get("offsite_water_l_per_kwh", ""),
                    "water_default": "no",
                    "sources": "ember-ger-2026;ecologits-electricity-mixes;wri-water-guidance",
                }
            )
        elif level == "US state":
            out.append(
                {
                    "code": code,
                    "name": r["zone_name"],
                    "level": "us-state",
                    "gco2e": r["gco2e_per_kwh"],
                    "data_year": r["data_year"],
                    "basis": "direct",
                    "water": "",
                    "water_default": "",
                    "sources": "egrid-2023",
                }
            )
        elif level == "country" and code == "US" and "eGRID" in src:
            out.append(
                {
                    "code": "US-EGRID",
                    "name": "United States (eGRID national)",
                    "level": "reference",
                    "gco2e": r["gco2e_per_kwh"],
                    "data_year": r["data_year"],
                    "basis": "direct",
                    "water": "",
                    "water_default": "",
                    "sources": "egrid-2023",
                }
            )
        elif (
            level == "country"
            and code == "USA"
            and src.startswith("CodeCarbon")
            and r["data_year"] == "2023"
        ):
            out.append(
                {
                    "code": "USA-2023",
                    "name": "United States (OWID lifecycle, 2023)",
                    "level": "reference",
                    "gco2e": r["gco2e_per_kwh"],
                    "data_year": "2023",
                    "basis": "lifecycle",
                    "water": "",
                    "water_default": "",
                    "sources": "codecarbon-global-mix;owid-carbon-intensity",
                }
            )
        elif level == "China province":
            out.append(
                {
                    "code": code,
                    "name": r["zone_name"],
                    "level": "cn-province",
                    "gco2e": r["gco2e_per_kwh"],
                    "data_year": r["data_year"],
                    "basis": "direct CO2 only",
                    "water": "",
                    "water_default": "",
                    "sources": "china-mee-2025",
                }
            )
        elif level == "bidding zone":
            out.append(
                {
                    "code": code,
                    "name": r["zone_name"],
                    "level": "bidding-zone",
                    "gco2e": r["gco2e_per_kwh"],
                    "data_year": r["data_year"],
                    "basis": "lifecycle",
                    "water": "",
                    "water_default": "",
                    "sources": "entsoe-nordic-2025",
                }
            )
        elif level == "cloud region":
            out.append(
                {
                    "code": code.replace("me-cenrtal1", "me-central1"),
                    "name": r["zone_name"],
                    "level": "gcp-region",
                    "gco2e": r["gco2e_per_kwh"],
                    "data_year": "",
                    "basis": "location-based (Google)",
                    "water": "",
                    "water_default": "",
                    "sources": "google-region-carbon",
                }
            )
    with open(OUT, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(out[0]))
        writer.writeheader()
        writer.writerows(out)
    print(f"wrote {len(out)} rows to {OUT}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))

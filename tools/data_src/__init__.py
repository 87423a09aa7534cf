"""Curated inputs from which tools/build_data.py writes otm/data/*.json."""

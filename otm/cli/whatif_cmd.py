"""``otm whatif``: the same telemetry, re-estimated across regions and hardware.

The same query on the same model can emit thirty times more carbon in one
grid than in another. This command shows the spread for the user's own calls
(from a log, or one request described on the command line) and where their
own calls fall in it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from otm.cli._args import (
    check_accelerator,
    check_region,
    check_request,
    count,
    note_unknown_models,
    positive,
    positive_int,
    seconds,
)

# A spread of grids from the cleanest to the most carbon-intensive, plus the
# US states and cloud regions where most LLM serving runs. Users add theirs
# with --regions.
DEFAULT_REGIONS = (
    "SWE", "NOR", "FRA", "CHE", "BRA", "CAN", "GBR", "ESP", "DEU", "USA",
    "US-CA", "US-VA", "US-TX", "US-IA", "JPN", "CHN", "AUS", "IND", "POL", "ZAF",
    "aws:us-east-1", "gcp:europe-west9", "azure:westeurope",
)
DEFAULT_ACCELERATORS = ("H100", "H200", "B200", "A100 80GB", "tpu-v6e", "MI300X")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("whatif", help="re-estimate the same calls across regions and hardware")
    p.add_argument("log", nargs="?", help="a JSONL log of records or telemetry (else describe one request)")
    p.add_argument("--model", help="model of the request to describe")
    p.add_argument("--provider", default=None)
    p.add_argument("--input-tokens", type=count, default=0)
    p.add_argument("--cached-tokens", type=count, default=0)
    p.add_argument("--output-tokens", type=count, default=0)
    p.add_argument("--ttft", type=seconds, default=None, help="time to first token, seconds")
    p.add_argument("--duration", type=seconds, default=None, help="start to last token, seconds")
    p.add_argument("--tps", type=positive, default=None, help="observed output tokens per second")
    p.add_argument("--region", default=None, help="your own region (default: each call's own)")
    p.add_argument("--regions", default=None, help="comma-separated regions to compare")
    p.add_argument("--accelerators", default=None, help="comma-separated accelerators to compare")
    p.add_argument("--limit", type=positive_int, default=None, help="read at most this many records from the log")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _telemetry_from_args(args: argparse.Namespace) -> list[Any]:
    from otm.cli import UsageError
    from otm.telemetry import Telemetry

    if not args.model:
        raise UsageError("give a LOG.jsonl, or describe one request with --model and token counts")
    if args.input_tokens == 0 and args.output_tokens == 0:
        raise UsageError("describe the request's tokens: --input-tokens and --output-tokens")
    check_request(args)
    note_unknown_models("whatif", [args.model], args.provider)
    start = 1_700_000_000.0
    first = last = None
    streamed = False
    if args.ttft is not None:
        first = start + args.ttft
        if args.tps and args.output_tokens > 1:
            last = first + (args.output_tokens - 1) / args.tps
            streamed = True
        elif args.duration is not None:
            last = start + max(args.duration, args.ttft)
            streamed = last > first
    elif args.duration is not None:
        first = last = start + args.duration
    return [
        Telemetry(
            provider=args.provider,
            model=args.model,
            start_time=start if (first is not None) else None,
            first_token_time=first,
            last_token_time=last,
            input_tokens=args.input_tokens,
            cached_input_tokens=args.cached_tokens,
            output_tokens=args.output_tokens,
            streamed=streamed,
        )
    ]


def _load(args: argparse.Namespace) -> tuple[list[Any], list[tuple[str | None, Any]]]:
    """Telemetry and each call's own (region, deployment), as it was made."""
    if not args.log:
        return _telemetry_from_args(args), [(args.region, None)]
    from otm.cli import UsageError
    from otm.report.reader import read_log, resolve_log

    if not resolve_log(args.log).is_file():
        raise UsageError(f"no such log: {args.log}")
    tels: list[Any] = []
    own: list[tuple[str | None, Any]] = []
    for i, rec in enumerate(read_log(args.log)):
        if args.limit is not None and i >= args.limit:
            break
        tels.append(rec.telemetry)
        dep_region = getattr(rec.deployment, "region", None) if rec.deployment is not None else None
        own.append((args.region or rec.region or dep_region, rec.deployment))
    if not tels:
        raise UsageError(f"no readable records in {args.log}")
    note_unknown_models("whatif", [t.model for t in tels if t.model])
    return tels, own


def _split(value: str | None, default: Sequence[str]) -> list[str]:
    if not value:
        return list(default)
    return [v.strip() for v in value.split(",") if v.strip()]


def compute(
    tels: list[Any],
    own_settings: list[tuple[str | None, Any]],
    regions: Sequence[str],
    accelerators: Sequence[str],
) -> dict[str, Any]:
    """Totals of the workload per region and per accelerator, and the user's own total."""
    from otm.data import find_accelerator, find_region
    from otm.deployment import Deployment
    from otm.estimate import estimate_many

    def totals(**kw: Any) -> dict[str, Any]:
        t = estimate_many(tels, learn_floor=False, **kw).totals()
        return {
            "energy_wh": t.energy_wh.value,
            "carbon_g": t.carbon_g.value,
            "carbon_g_low": t.carbon_g.low,
            "carbon_g_high": t.carbon_g.high,
            "water_ml": t.water_ml.value,
        }

    # The user's own figures: each call with its own region and deployment.
    own = {"energy_wh": 0.0, "carbon_g": 0.0, "carbon_g_low": 0.0, "carbon_g_high": 0.0, "water_ml": 0.0}
    groups: dict[tuple[str | None, Any], list[Any]] = {}
    for t, key in zip(tels, own_settings):
        groups.setdefault(key, []).append(t)
    for (r, dep), group in groups.items():
        part = estimate_many(group, region=r, deployment=dep, learn_floor=False).totals()
        own["energy_wh"] += part.energy_wh.value
        own["carbon_g"] += part.carbon_g.value
        own["carbon_g_low"] += part.carbon_g.low
        own["carbon_g_high"] += part.carbon_g.high
        own["water_ml"] += part.water_ml.value

    region_rows = []
    for code in regions:
        region = find_region(code)
        if region is None:
            continue
        row = totals(region=code)
        row.update(region=code, name=region.name, grid_gco2e_per_kwh=region.gco2e_per_kwh)
        region_rows.append(row)
    region_rows.sort(key=lambda r: r["carbon_g"])

    hw_rows = []
    fixed_region = next((r for r, _ in own_settings if r), None)
    for name in accelerators:
        acc = find_accelerator(name)
        if acc is None:
            continue
        row = totals(deployment=Deployment(accelerator=acc.id, region=fixed_region))
        row.update(accelerator=acc.name)
        hw_rows.append(row)
    hw_rows.sort(key=lambda r: r["energy_wh"])

    out: dict[str, Any] = {"requests": len(tels), "own": own, "regions": region_rows, "accelerators": hw_rows}
    if region_rows:
        lo, hi = region_rows[0], region_rows[-1]
        out["region_carbon_ratio"] = hi["carbon_g"] / lo["carbon_g"] if lo["carbon_g"] > 0 else None
        out["own_rank"] = sum(1 for r in region_rows if r["carbon_g"] < own["carbon_g"]) + 1
    if hw_rows:
        out["hardware_energy_ratio"] = (
            hw_rows[-1]["energy_wh"] / hw_rows[0]["energy_wh"] if hw_rows[0]["energy_wh"] > 0 else None
        )
    return out


def run(args: argparse.Namespace) -> int:
    from otm.cli._table import print_table
    from otm.units import fmt_int, fmt_span, plural, sig

    check_region(args.region)
    regions = _split(args.regions, DEFAULT_REGIONS)
    accelerators = _split(args.accelerators, DEFAULT_ACCELERATORS)
    for code in regions:
        check_region(code, "--regions")
    for name in accelerators:
        check_accelerator(name, "--accelerators")
    tels, own = _load(args)
    result = compute(tels, own, regions, accelerators)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    own = result["own"]
    n = result["requests"]
    what = plural(n, "request")
    print_table(
        f"Same {what}, served in different regions (provider's hardware)",
        ["region", "grid gCO2e/kWh", "energy Wh", "carbon gCO2e (low–high)", "water mL", "× cleanest"],
        [
            [
                f"{r['region']} ({r['name']})",
                fmt_int(r["grid_gco2e_per_kwh"]),
                sig(r["energy_wh"]),
                f"{sig(r['carbon_g'])} ({fmt_span(r['carbon_g_low'], r['carbon_g_high'])})",
                sig(r["water_ml"]),
                sig(r["carbon_g"] / result["regions"][0]["carbon_g"], 2) if result["regions"][0]["carbon_g"] > 0 else "-",
            ]
            for r in result["regions"]
        ],
    )
    print()
    print_table(
        f"Same {what}, served on different accelerators",
        ["accelerator", "energy Wh", "carbon gCO2e", "water mL"],
        [[r["accelerator"], sig(r["energy_wh"]), sig(r["carbon_g"]), sig(r["water_ml"])] for r in result["accelerators"]],
    )
    print()
    ratio = result.get("region_carbon_ratio")
    if ratio:
        print(f"Carbon of the same work varies 1 : {sig(ratio, 2)} between the cleanest and the dirtiest region above.")
    if result.get("hardware_energy_ratio"):
        print(f"Energy varies 1 : {sig(result['hardware_energy_ratio'], 2)} across the accelerators above.")
    print(
        f"Your calls as made: {sig(own['energy_wh'])} Wh, {sig(own['carbon_g'])} gCO2e "
        f"({fmt_span(own['carbon_g_low'], own['carbon_g_high'])}), {sig(own['water_ml'])} mL — "
        f"rank {result.get('own_rank', '?')} of {len(result['regions']) + 1} by carbon."
    )
    return 0

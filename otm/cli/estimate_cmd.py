"""``otm estimate``: the estimator on one hypothetical or logged request.

    otm estimate --model gpt-4o --input-tokens 800 --output-tokens 400 --tps 70
    otm estimate --model llama-3.1-8b --provider local --accelerator H100 --count 1 \\
        --pue 1.0 --input-tokens 500 --output-tokens 300 --ttft 0.2 --duration 6 --json
"""

from __future__ import annotations

import argparse
import json
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "estimate",
        help="energy, carbon and water of one request (with ranges)",
        description="Estimate one request from its model, token counts and (optionally) timings.",
    )
    p.add_argument(
        "--model", required=True, help="model name (API name, snapshot or Hugging Face id)"
    )
    p.add_argument(
        "--provider", default=None, help="API provider (openai, anthropic, google, local...)"
    )
    p.add_argument(
        "--input-tokens", type=count, required=True, help="prompt tokens, cached ones included"
    )
    p.add_argument(
        "--output-tokens", type=count, required=True, help="output tokens, reasoning included"
    )
    p.add_argument(
        "--cached-tokens", type=count, default=0, help="prompt tokens served from the cache"
    )
    p.add_argument(
        "--reasoning-tokens",
        type=count,
        default=0,
        help="hidden reasoning tokens (part of output)",
    )
    p.add_argument(
        "--ttft", type=seconds, default=None, help="time to first token, seconds (streamed)"
    )
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--duration", type=seconds, default=None, help="start to last token, seconds"
    )
    speed.add_argument(
        "--tps", type=positive, default=None, help="observed output speed, tokens/s (streamed)"
    )
    p.add_argument("--region", default=None, help="where it ran: FRA, US-VA, aws:us-east-1...")
    p.add_argument(
        "--accelerator",
        default=None,
        help="serving accelerator (H100, B200, tpu-v6e...); the provider's profile fills the rest "
        "(site, host, engine): add --provider local for your own machine",
    )
    p.add_argument(
        "--count", type=positive_int, default=None, help="accelerators per instance (>= 1)"
    )
    p.add_argument(
        "--pue",
        type=positive,
        default=None,
        help="facility PUE, 1 to 3 (1.0 with --accelerator-only)",
    )
    p.add_argument(
        "--accelerator-only",
        action="store_true",
        help="boundary of a GPU power meter: no host, idle or facility",
    )
    p.add_argument(
        "--engine",
        default=None,
        help="serving engine: vllm, sglang, tensorrt-llm, vllm-0.4 (legacy), transformers (eager)...",
    )
    p.add_argument(
        "--precision",
        default=None,
        help="weights as served (fp8, mxfp4, awq, q4_k_m...); default: what the model id says",
    )
    p.add_argument("--json", action="store_true", help="print the Impact as JSON")
    p.set_defaults(func=run)


def _telemetry(args: argparse.Namespace) -> Any:
    from otm.telemetry import Telemetry

    check_request(args)
    data: dict[str, Any] = {
        "model": args.model,
        "provider": args.provider,
        "input_tokens": args.input_tokens,
        "cached_input_tokens": args.cached_tokens,
        "output_tokens": args.output_tokens,
        "reasoning_tokens": args.reasoning_tokens,
    }
    start = 0.0
    ttft = args.ttft
    visible = max(args.output_tokens - args.reasoning_tokens, 0)
    if args.tps is not None:
        # a stream: visible tokens arrive at tps after the first one
        first = start + (ttft if ttft is not None else 0.0)
        data.update(start_time=start, first_token_time=first, streamed=True)
        data["last_token_time"] = first + max(visible - 1, 0) / args.tps
    elif args.duration is not None:
        data.update(start_time=start, end_time=start + args.duration)
        if ttft is not None:
            data.update(
                first_token_time=start + ttft, last_token_time=start + args.duration, streamed=True
            )
        else:
            data["last_token_time"] = start + args.duration
    elif ttft is not None:
        data.update(start_time=start, first_token_time=start + ttft)
    return Telemetry.model_validate(data)


def _deployment(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from otm.cli import UsageError
    from otm.deployment import Deployment

    check_accelerator(args.accelerator)
    try:
        if args.accelerator_only:
            if not args.accelerator:
                raise UsageError("--accelerator-only needs --accelerator")
            return Deployment.accelerator_only(
                args.accelerator,
                args.count or 1,
                provider=args.provider,
                engine=args.engine,
                precision=args.precision,
            )
        if args.accelerator or args.count or args.pue is not None or args.engine or args.precision:
            return Deployment(
                accelerator=args.accelerator,
                count=args.count,
                pue=args.pue,
                provider=args.provider,
                engine=args.engine,
                precision=args.precision,
            )
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-") if err.get("loc") else "a value"
        raise UsageError(f"{flag}: {err['msg']} (got {err.get('input')!r})") from None
    return None


def run(args: argparse.Namespace) -> int:
    from otm.estimate import estimate

    check_region(args.region)
    telemetry, deployment = _telemetry(args), _deployment(args)
    note_unknown_models("estimate", [args.model], args.provider)
    impact = estimate(telemetry, deployment=deployment, region=args.region)
    if args.json:
        print(json.dumps(impact.model_dump(mode="json"), indent=2))
        return 0
    _print(impact)
    return 0


def _fmt(x: float) -> str:
    from otm.units import sig

    return sig(x)


def _span(r: Any) -> str:
    from otm.units import fmt_span

    return fmt_span(r.low, r.high)


def _bracket(d: dict[str, Any]) -> str:
    """A range read from the assumptions' dicts: ``"12.5 (3.7–100)"``."""
    from otm.units import fmt_span, sig

    return f"{sig(d.get('value', 0))} ({fmt_span(d.get('low', 0), d.get('high', 0))})"


def _print(impact: Any) -> None:
    from otm.cli._table import print_table
    from otm.units import fmt_cost, fmt_percent

    a = impact.assumptions
    e, ej = impact.energy_wh, impact.energy_j
    rows = [
        ("energy (Wh)", _fmt(e.value), _span(e)),
        ("energy (J)", _fmt(ej.value), _span(ej)),
        ("carbon (gCO2e)", _fmt(impact.carbon_g.value), _span(impact.carbon_g)),
        ("water (mL)", _fmt(impact.water_ml.value), _span(impact.water_ml)),
        ("cost (USD)", "n/a" if impact.cost_usd is None else fmt_cost(impact.cost_usd), ""),
    ]
    print_table("Impact (central, 5th-95th percentile range)", ("figure", "value", "range"), rows)

    total = e.value or 1.0
    b_rows = [(k, _fmt(v), fmt_percent(v / total)) for k, v in impact.breakdown_wh.items()]
    b_rows += [(f"carbon: {k}", _fmt(v), "g") for k, v in impact.carbon_breakdown_g.items()]
    b_rows += [(f"water: {k}", _fmt(v), "mL") for k, v in impact.water_breakdown_ml.items()]
    print_table("Breakdown (energy in Wh)", ("part", "value", "share / unit"), b_rows)

    m, d, s = a.get("model", {}), a.get("deployment", {}), a.get("site", {})
    act = m.get("active_params_b", {})
    cnt = d.get("count", {})
    batch = a.get("effective_batch", {})
    arows = [
        ("model", f"{m.get('id')} ({m.get('size')})"),
        (
            "active params (B)",
            _bracket(act),
        ),
        ("architecture / precision", f"{m.get('architecture')} / {m.get('precision')}"),
        (
            "accelerator",
            f"{d.get('accelerator')} x {_bracket(cnt)}",
        ),
        (
            "provider",
            f"{d.get('provider')} ({'self-hosted' if d.get('self_hosted') else 'hosted'})",
        ),
        (
            "region",
            f"{s.get('region')} ({s.get('region_source')}), {_fmt(s.get('grid_gco2e_per_kwh', {}).get('value', 0))} gCO2e/kWh",
        ),
        (
            "PUE / WUE",
            f"{_fmt(s.get('pue', {}).get('value', 0))} / {_fmt(s.get('wue_l_per_kwh', {}).get('value', 0))} L/kWh",
        ),
        ("method", str(a.get("method"))),
        (
            "effective batch",
            _bracket(batch),
        ),
    ]
    print_table("Assumptions", ("what", "value"), arows)
    if impact.warnings:
        print_table("Warnings", ("",), [(w,) for w in impact.warnings])

"""Published per-request figures of hosted services beside otm's estimate of the closest request.

Each row: who disclosed what, for which request, at which boundary; the otm
request that comes closest and the matching part of otm's result. First-party
disclosures come first; third-party estimates are listed as such. Sources:
docs/data-sources.md (`google-gemini-impact-2025`, `altman-gentle-singularity`,
`mistral-lca-2025`, `epoch-chatgpt-energy`, `jegham-2025`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACC_ONLY: dict[str, Any] = {"pue": 1.0, "include_host": False, "idle_reserve": 0.0}


@dataclass(frozen=True)
class Disclosure:
    who: str
    kind: str  # "disclosure" | "estimate"
    figure: float
    unit: str  # "Wh" | "gCO2e" | "mL"
    boundary: str
    request: str
    otm_request: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    pick: Callable[[Any], tuple[float, float, float]]
    deployment: dict[str, Any] | None = None
    region: str | None = None
    comparable: bool = True
    why: str = ""


def _energy(im: Any) -> tuple[float, float, float]:
    return im.energy_wh.value, im.energy_wh.low, im.energy_wh.high


def _carbon(im: Any) -> tuple[float, float, float]:
    return im.carbon_g.value, im.carbon_g.low, im.carbon_g.high


def _water(im: Any) -> tuple[float, float, float]:
    return im.water_ml.value, im.water_ml.low, im.water_ml.high


ROWS: tuple[Disclosure, ...] = (
    Disclosure(
        "Google, median Gemini Apps text prompt (May 2025, measured fleet)",
        "disclosure",
        0.24,
        "Wh",
        "comprehensive: accelerators, host, idle machines, data-centre overhead",
        "the median prompt of a model-ranked distribution; tokens not published",
        "gemini-2.5-flash, 400 in / 300 out, untimed",
        "gemini-2.5-flash",
        "google",
        400,
        300,
        _energy,
        why="a fleet median spreads idle and low-load hours, routing and safety models, and multi-turn "
        "context over every prompt; one request of 400/300 tokens read at a typical speed carries "
        "less of that",
    ),
    Disclosure(
        "Google, the same prompt, active accelerators only",
        "disclosure",
        0.14,
        "Wh",
        "the accelerators' part of the 0.24 Wh (58 %)",
        "as above",
        "as above, accelerator-only boundary",
        "gemini-2.5-flash",
        "google",
        400,
        300,
        _energy,
        deployment=ACC_ONLY,
    ),
    Disclosure(
        "Google, the same prompt, the narrow 'existing approach'",
        "disclosure",
        0.10,
        "Wh",
        "active accelerators only, a separate narrower calculation",
        "as above",
        "as above, accelerator-only boundary",
        "gemini-2.5-flash",
        "google",
        400,
        300,
        _energy,
        deployment=ACC_ONLY,
    ),
    Disclosure(
        "OpenAI (S. Altman, June 2025), average ChatGPT query",
        "disclosure",
        0.34,
        "Wh",
        "not stated",
        "a mean over all ChatGPT queries; model and tokens not stated",
        "gpt-4o, 1,000 in / 500 out, untimed",
        "gpt-4o",
        "openai",
        1000,
        500,
        _energy,
        why="a mean over every query includes long contexts, reasoning models and tools; the "
        "request here is one ordinary chat turn",
    ),
    Disclosure(
        "Mistral AI (July 2025 LCA), one 400-token Le Chat response, Mistral Large 2",
        "disclosure",
        1.14,
        "gCO2e",
        "life cycle: marginal inference incl. hardware manufacturing and upstream supply chain",
        "400 output tokens; input and region not stated",
        "mistral-large-2, 500 in / 400 out, untimed, region FRA",
        "mistral-large-2",
        "mistral",
        500,
        400,
        _carbon,
        region="FRA",
        comparable=False,
        why="a life-cycle figure: otm's carbon is operational plus the accelerators' and servers' "
        "embodied share; the LCA counts the whole supply chain. No energy figure is published to "
        "compare like with like",
    ),
    Disclosure(
        "Mistral AI, the same response, water",
        "disclosure",
        45.0,
        "mL",
        "life cycle (supply-chain water consumption)",
        "as above",
        "as above",
        "mistral-large-2",
        "mistral",
        500,
        400,
        _water,
        region="FRA",
        comparable=False,
        why="supply-chain water (manufacturing) is outside otm's on-site + power-generation boundary",
    ),
    Disclosure(
        "Epoch AI (2025), typical GPT-4o query",
        "estimate",
        0.30,
        "Wh",
        "H100 node at 70 % of its power x PUE 1.2",
        "500 output tokens, 10 % utilisation assumed",
        "gpt-4o, 100 in / 500 out, untimed",
        "gpt-4o",
        "openai",
        100,
        500,
        _energy,
    ),
    Disclosure(
        "Jegham et al. (2025), short GPT-4o prompt",
        "estimate",
        0.42,
        "Wh",
        "hardware and PUE inferred from API latency",
        "100 in / 300 out",
        "gpt-4o, 100 in / 300 out, untimed",
        "gpt-4o",
        "openai",
        100,
        300,
        _energy,
    ),
)


def results() -> list[dict[str, Any]]:
    import otm
    from otm.estimate import estimate, reset_floors

    out = []
    for d in ROWS:
        reset_floors()
        t = otm.Telemetry(model=d.model, provider=d.provider, input_tokens=d.input_tokens, output_tokens=d.output_tokens)
        dep = otm.Deployment(**d.deployment) if d.deployment else None
        v, lo, hi = d.pick(estimate(t, deployment=dep, region=d.region))
        out.append({"d": d, "value": v, "low": lo, "high": hi, "inside": lo <= d.figure <= hi})
    return out


def _fmt(x: float) -> str:
    from otm.units import sig

    return sig(x, 2)


def table() -> str:
    lines = [
        "| source | kind | published | boundary | otm request | otm (central, range) | inside | central / published |",
        "|---|---|---:|---|---|---|---|---:|",
    ]
    for r in results():
        d = r["d"]
        inside = ("yes" if r["inside"] else "no") if d.comparable else "not comparable"
        lines.append(
            f"| {d.who} | {d.kind} | {_fmt(d.figure)} {d.unit} | {d.boundary} | {d.otm_request} | "
            f"{_fmt(r['value'])} ({_fmt(r['low'])}-{_fmt(r['high'])}) {d.unit} | {inside} | "
            f"{r['value'] / d.figure:.2f} |"
        )
    return "\n".join(lines)


NOTES = (
    "Every first-party energy disclosure lies inside otm's range for the matching boundary. The "
    "central values are lower (0.4-0.5x for Google's comprehensive figure and OpenAI's mean): a fleet "
    "median or mean carries idle and low-load hours, routing and safety models, longer contexts and "
    "reasoning that one request read at a typical speed does not, and none of these disclosures "
    "publishes the tokens of its request.",
    "Google's carbon (0.03 gCO2e) is market-based; otm's is location-based, so it is not compared "
    "here. Google's water (0.26 mL) is on-site only: compare `water_breakdown_ml['onsite']`.",
    "Mistral's life-cycle figures are not comparable to otm's boundary (the supply chain and its "
    "water); they are listed for completeness with otm's figure beside them.",
    "Third-party estimates (Epoch AI, Jegham et al.) are listed as estimates, not disclosures; "
    "both assume low utilisation (Epoch: 10 % of the FLOPs), so their figures sit at the high end "
    "of otm's range. Microsoft researchers' modelled 0.31 Wh (Oviedo et al. 2025) is not compared: "
    "its proxy models, precision and throughput per node are not stated precisely enough to pose "
    "the same request.",
)

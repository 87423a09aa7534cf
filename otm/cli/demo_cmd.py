"""``otm demo``: the whole product, offline, in a few seconds.

It starts the embedded fake provider server in-process (OpenAI-compatible chat
with streaming, Anthropic and Gemini shapes, real SSE with real delays), runs
real SDK calls through otm — non-streamed, streamed, async, a decorated
function, a local model on a known deployment — all inside an experiment,
prints a table per request and the summary, and writes the report.

``otm demo --live`` makes a few small calls to the real APIs whose keys are
set (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY / GOOGLE_API_KEY).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

# Each offline call: (label, provider SDK, model, scenario overrides). Token
# counts and timings are what the fake server will do; otm measures them.
# Typed loosely on purpose: the same message list goes to the openai and the
# anthropic SDKs, whose TypedDicts differ.
_PROMPT: Any = [{"role": "user", "content": "In two sentences, why does inference energy depend on batch size?"}]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run real SDK calls through otm against an embedded server (offline)")
    p.add_argument("--live", action="store_true", help="call the real APIs whose keys are set instead")
    p.add_argument("--output-dir", default=None, help="where the experiment report goes (default: otm-runs)")
    p.add_argument("--json", action="store_true", help="print the records and summary as JSON")
    p.set_defaults(func=run)


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _scenario(**kw: Any) -> dict[str, str]:
    from otm.testing.server import scenario_headers

    return scenario_headers(**kw)


def _offline_calls(server: Any) -> None:
    """The demo workload: every usage pattern of otm against the local server."""
    import otm

    if _have("openai"):
        import openai

        # The embedded server stands in for api.openai.com: say so, or otm
        # would (rightly) read its 127.0.0.1 address as a local model.
        client = otm.wrap(
            openai.OpenAI(base_url=server.openai_base_url, api_key="demo-key", max_retries=0), provider="openai"
        )

        # 1. a plain call
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=_PROMPT,
            extra_headers=_scenario(ttfb_s=0.35, input_tokens=24, output_tokens=60),
        )
        # 2. a streamed call, consumed the way users do
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=_PROMPT,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=_scenario(ttfb_s=0.30, gap_s=0.012, input_tokens=24, output_tokens=80),
        )
        for _ in stream:
            pass

        # 3. a decorated function: its calls are attributed to the run
        @otm.track(name="summarise", tags={"step": "summarise"})
        def summarise(texts: list[str]) -> list[str]:
            out = []
            for i, text in enumerate(texts):
                r = client.chat.completions.create(
                    model="gpt-4.1-mini",
                    messages=[{"role": "user", "content": f"Summarise: {text}"}],
                    extra_headers=_scenario(ttfb_s=0.2, input_tokens=400 + 150 * i, cached_input_tokens=256, output_tokens=40),
                )
                out.append(r.choices[0].message.content or "")
            return out

        summarise(["first document", "second document"])

        # 4. async: several concurrent streams
        async def fan_out() -> None:
            aclient = otm.wrap(
                openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="demo-key", max_retries=0),
                provider="openai",
            )

            async def one(i: int) -> None:
                s = await aclient.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=_PROMPT,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=_scenario(ttfb_s=0.2 + 0.05 * i, gap_s=0.01, input_tokens=30, output_tokens=40 + 10 * i),
                )
                async for _ in s:
                    pass

            await asyncio.gather(*(one(i) for i in range(3)))
            await aclient.close()

        asyncio.run(fan_out())

        # 5. a local model on known hardware (a vLLM server, say): wrap() fixes the deployment
        local = otm.wrap(
            openai.OpenAI(base_url=server.openai_base_url, api_key="none", max_retries=0),
            deployment=otm.Deployment(accelerator="H100", count=1, region="FRA", pue=1.3),
            provider="local",
            tags={"env": "lab"},
        )
        s = local.chat.completions.create(
            model="meta-llama/Llama-3.1-8B-Instruct",
            messages=_PROMPT,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=_scenario(ttfb_s=0.05, gap_s=0.008, input_tokens=24, output_tokens=120),
        )
        for _ in s:
            pass

    if _have("anthropic"):
        import anthropic

        aclient = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="demo-key", max_retries=0)
        aclient.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=256,
            messages=_PROMPT,
            extra_headers=_scenario(ttfb_s=0.4, input_tokens=28, output_tokens=90, reasoning_tokens=0),
        )
        with aclient.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=256,
            messages=_PROMPT,
            extra_headers=_scenario(ttfb_s=0.25, gap_s=0.01, input_tokens=28, output_tokens=70),
        ) as ms:
            for _ in ms.text_stream:
                pass

    if _have("google.genai"):
        from google import genai
        from google.genai import types

        gclient = genai.Client(api_key="demo-key", http_options=types.HttpOptions(base_url=server.gemini_base_url))
        gclient.models.generate_content(
            model="gemini-2.5-flash",
            contents="Why does batch size matter for inference energy?",
            config=types.GenerateContentConfig(
                http_options=types.HttpOptions(headers=_scenario(ttfb_s=0.3, input_tokens=14, output_tokens=70, reasoning_tokens=120))
            ),
        )
        for _ in gclient.models.generate_content_stream(
            model="gemini-2.5-pro",
            contents="Explain prefill and decode.",
            config=types.GenerateContentConfig(
                http_options=types.HttpOptions(headers=_scenario(ttfb_s=0.5, gap_s=0.015, input_tokens=10, output_tokens=50, reasoning_tokens=300))
            ),
        ):
            pass


def _live_calls() -> int:
    """A few tiny calls to the real APIs whose keys are set; returns how many providers ran."""
    ran = 0
    if os.environ.get("OPENAI_API_KEY") and _have("openai"):
        import openai

        client = openai.OpenAI()
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=_PROMPT, stream=True)
        for _ in stream:
            pass
        ran += 1
    if os.environ.get("ANTHROPIC_API_KEY") and _have("anthropic"):
        import anthropic

        anthropic.Anthropic().messages.create(model="claude-haiku-4-5", max_tokens=200, messages=_PROMPT)
        ran += 1
    if (os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")) and _have("google.genai"):
        from google import genai

        genai.Client().models.generate_content(model="gemini-2.5-flash", contents=_PROMPT[0]["content"])
        ran += 1
    return ran


def _fmt_range(r: Any, kind: str) -> str:
    from otm.units import fmt_range

    return "n/a" if r is None else fmt_range(kind, r, short=True)


def _print_records(records: list[Any]) -> None:
    from otm.cli._table import print_table
    from otm.units import fmt_int, fmt_seconds

    rows = []
    for rec in records:
        t = rec.telemetry
        imp = rec.impact
        rows.append(
            [
                t.provider or "?",
                t.model or "?",
                "stream" if t.streamed else "plain",
                t.status,
                f"{t.input_tokens}/{t.output_tokens}" + ("*" if t.tokens_estimated else ""),
                fmt_seconds(t.ttft_s),
                fmt_int(t.output_tps),
                _fmt_range(None if imp is None else imp.energy_wh, "energy"),
                _fmt_range(None if imp is None else imp.carbon_g, "carbon"),
                _fmt_range(None if imp is None else imp.water_ml, "water"),
            ]
        )
    print_table(
        "Requests measured by otm",
        ["provider", "model", "mode", "status", "tokens in/out", "TTFT", "tok/s", "energy", "carbon", "water"],
        rows,
    )


def run(args: argparse.Namespace) -> int:
    import otm
    from otm.testing.server import FakeProviderServer, Scenario

    output_dir = args.output_dir  # None: the configured output directory
    if otm.settings().disabled:
        print(
            f"otm demo: otm is disabled (by {otm.settings().source('disabled')}): no call would "
            "be measured. Unset OTM_DISABLED (or set it to 0) to run the demo.",
            file=sys.stderr,
        )
        return 1
    otm.instrument()
    try:
        with otm.experiment("otm-demo-live" if args.live else "otm-demo", output_dir=output_dir) as exp:
            if args.live:
                if _live_calls() == 0:
                    print("otm demo --live: no API key set (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY)", file=sys.stderr)
                    return 2
            else:
                with FakeProviderServer(scenario=Scenario(ttfb_s=0.2, gap_s=0.01, output_tokens=40)) as server:
                    _offline_calls(server)
        records = list(exp.records)
        summary = exp.summary()
    finally:
        otm.uninstrument()

    if args.json:
        print(json.dumps({"records": [r.to_dict() for r in records], "summary": _jsonable(summary)}, indent=2, default=str))
        return 0 if records else 1

    _print_records(records)
    print()
    from otm.cli.report_cmd import _print_summary

    _print_summary(summary)
    report = getattr(exp, "report_path", None) or getattr(exp, "path", None)
    if report is not None:
        print(f"\nReport written to {Path(report)}")
    else:
        print(f"\nNo report written: {exp.output_dir} cannot be written (see above)", file=sys.stderr)
    if any(r.telemetry.tokens_estimated for r in records):
        print("* token counts estimated from text (the stream carried no usage)")
    return 0 if records else 1


def _jsonable(summary: Any) -> Any:
    if hasattr(summary, "model_dump"):
        return summary.model_dump(mode="json")
    if hasattr(summary, "to_dict"):
        return summary.to_dict()
    return summary


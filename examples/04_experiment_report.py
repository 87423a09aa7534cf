"""Collect every LLM call of an experiment, then report it (HTML, Markdown, JSON, CSV).

``with otm.experiment(name, output_dir=...)`` gathers every call made inside
the block (threads and asyncio tasks included), logs each to
``<output_dir>/<name>-<timestamp>/records.jsonl`` and writes the reports on
exit. ``exp.summary()`` gives totals with ranges, splits by model and tag,
SCI intensities and a sentence ready for a paper.

Runs offline against an embedded fake of the OpenAI API (drop the fake-server
lines and use ``openai.OpenAI()`` for the real one).
"""

import tempfile

import openai

import otm
from otm.testing import FakeProviderServer, Scenario, scenario_headers
from otm.units import fmt_range, plural

otm.instrument("openai")
output_dir = tempfile.mkdtemp(prefix="otm-example-")  # your own: e.g. "otm-runs"

with FakeProviderServer(
    Scenario(ttfb_s=0.15, gap_s=0.008, input_tokens=300, output_tokens=40)
) as server:
    client = otm.wrap(  # fake server only: it is on 127.0.0.1, otherwise "local"
        openai.OpenAI(base_url=server.openai_base_url, api_key="fake-key"), provider="openai"
    )

    with otm.experiment("prompt-ablation", output_dir=output_dir, tags={"dataset": "demo"}) as exp:
        for model in ("gpt-4o-mini", "gpt-4o"):
            for question in ("What is PUE?", "What is embodied carbon?"):
                stream = client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": question}],
                    stream=True,
                    stream_options={"include_usage": True},
                    # fake server: the bigger model streams more slowly
                    extra_headers=scenario_headers(
                        gap_s=0.008 if model == "gpt-4o-mini" else 0.015
                    ),
                )
                for _ in stream:
                    pass

s = exp.summary()
print(
    f"{s.requests} requests: energy {fmt_range('energy', s.energy_wh)}, "
    f"carbon {fmt_range('carbon', s.carbon_g)}, water {fmt_range('water', s.water_ml)}"
)
for m in s.by_model:
    per_call = fmt_range("energy", m.energy_per_request_wh)
    print(f"  {m.model:<12} {plural(m.totals.requests, 'call')}, {per_call} per call")
print(f"  SCI: {fmt_range('carbon', s.sci['gco2e_per_1k_tokens'])} per 1k tokens")
print()
print(s.sentence)  # paste into your paper's methods section
print()
print("report:", exp.report_path)
print("files: ", ", ".join(sorted(p.name for p in exp.path.iterdir())))

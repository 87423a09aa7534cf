"""Wrap one client whose hardware you know: a local vLLM server on one H100 in France.

``otm.wrap`` instruments the client's SDK and returns the same client; the
deployment, region and tags you give apply to every call made through it, so
otm does not have to guess the hardware or the grid.

Runs offline: an embedded fake server stands in for vLLM's OpenAI-compatible
API. Against a real server, drop the fake-server lines and use
``base_url="http://localhost:8000/v1"``.
"""

import openai

import otm
from otm.estimate import estimate
from otm.testing import FakeProviderServer, Scenario
from otm.units import fmt_range

MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # the Hugging Face id vLLM serves
h100_in_france = otm.Deployment(accelerator="H100", count=1, region="FRA")

# fake server: vLLM answering a lone request fast (8 ms between tokens)
fake = Scenario(ttfb_s=0.05, gap_s=0.008, input_tokens=60, output_tokens=120)
with FakeProviderServer(fake) as server:
    client = otm.wrap(
        openai.OpenAI(base_url=server.openai_base_url, api_key="none"),
        deployment=h100_in_france,
        provider="local",  # your own machines (a base URL on this machine is local anyway)
        tags={"env": "lab"},
    )
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Explain KV caching in one paragraph."}],
        stream=True,
        stream_options={"include_usage": True},  # vLLM reports exact token counts
    )
    for _ in stream:
        pass

rec = stream.otm
t, impact = rec.telemetry, rec.impact
print(f"{t.provider}/{t.model}: {t.output_tokens} tokens at {t.output_tps:.0f} tokens/s")
print(f"  tags {rec.tags}, energy {fmt_range('energy', impact.energy_wh)}, carbon {fmt_range('carbon', impact.carbon_g)}")

site, dep = impact.assumptions["site"], impact.assumptions["deployment"]
print(
    f"resolved: {dep['accelerator']} x{dep['count']['value']:.0f} in {site['region_name']}, "
    f"grid {site['grid_gco2e_per_kwh']['value']:.0f} gCO2e/kWh"
)
print(f"inferred effective batch: {impact.assumptions['effective_batch']['value']:.1f}")

# The same request at the boundary a GPU power meter sees (no host, idle or PUE):
gpu_only = estimate(t, deployment=otm.Deployment.accelerator_only("H100", region="FRA"))
print(f"accelerator-only boundary: {fmt_range('energy', gpu_only.energy_wh)}")

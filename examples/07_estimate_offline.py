"""The estimator on its own: logged telemetry in, energy, carbon and water out.

No SDK and no network: ``otm.estimate`` reads one record (otm's own field
names or the camelCase records OTM-style collectors emit), ``otm.estimate_many``
many at once (numpy over every record), and a ``region`` or an
``otm.Deployment`` turns the same log into a what-if.
"""

import json

import numpy as np

import otm
from otm.units import fmt_range

# One line of a collector's log (times in unix milliseconds are understood too).
line = (
    '{"platform": "openai", "modelName": "gpt-4o", "startTime": 1760000000000, '
    '"firstTokenTime": 1760000000450, "lastTokenTime": 1760000004450, '
    '"inputTokens": 1200, "outputTokens": 400, "inputTextLength": 5100}'
)
t = otm.Telemetry.model_validate(json.loads(line))
print(f"{t.model}: {t.input_tokens} in / {t.output_tokens} out", end=", ")
print(f"TTFT {t.ttft_s:.2f} s, {t.output_tps:.0f} tokens/s")
impact = otm.estimate(t)
print(impact)  # energy, carbon, water (value and range, with units) and cost
site, model = impact.assumptions["site"], impact.assumptions["model"]
size = "estimated" if model["size_estimated"] else "published"
print(f"  served (assumed) in {site['region_name']}; model size {size}")

# Many records: a list of Telemetry, or columns of numpy arrays (scalars broadcast).
rng = np.random.default_rng(0)
n = 5_000
log = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "streamed": True,
    "input_tokens": rng.integers(100, 3000, n),
    "output_tokens": rng.integers(20, 800, n),
    "ttft_s": rng.uniform(0.2, 1.5, n),
}
log["decode_s"] = log["output_tokens"] / rng.uniform(40, 160, n)  # 40-160 tokens/s
batch = otm.estimate_many(log)
total = batch.totals()  # ranges keep systematic uncertainty systematic
print(
    f"{len(batch)} logged requests: {fmt_range('energy', total.energy_wh)}, "
    f"{fmt_range('carbon', total.carbon_g)}, {fmt_range('water', total.water_ml)}"
)
print(
    f"  median request {np.median(batch.energy_wh_value) * 1000:.2f} mWh, "
    f"p95 {np.percentile(batch.energy_wh_value, 95) * 1000:.2f} mWh"
)

# What if the same workload ran elsewhere, or on hardware you chose?
print("what-if, same requests:")
for region in ("FRA", "US-VA", "POL", "aws:eu-north-1"):
    tot = otm.estimate_many(log, region=region).totals()
    print(f"  in {region:<15} {fmt_range('carbon', tot.carbon_g)}")
# provider= keeps the provider's serving profile; without it, naming an
# accelerator means "my own machines" (self-hosted engine, site and sizing).
b200 = otm.Deployment(accelerator="B200", provider="openai", region="SWE", pue=1.1)
tot = otm.estimate_many(log, deployment=b200).totals()
print(
    f"  on B200s in Sweden, PUE 1.1: {fmt_range('energy', tot.energy_wh)}, "
    f"{fmt_range('carbon', tot.carbon_g)}"
)

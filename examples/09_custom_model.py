"""Teach otm an in-house model with ``otm.register_model``, then estimate its calls.

Unknown models are sized from their name (with a wide range and a warning);
a registered one uses the figures you give. ``register_accelerator``,
``register_provider`` and ``register_region`` work the same way, and
``from otm.data import load_user_data`` registers a whole file of them.
"""

import otm
from otm.units import fmt_cost, fmt_range

# A streamed call to our model, as logged (unix seconds): 0.3 s to the first
# token, then 250 tokens at 25 tokens/s, on 2 H100s in Germany.
telemetry = otm.Telemetry(
    provider="local",
    model="acme-assist-v3",
    streamed=True,
    start_time=1_760_000_000.0,
    first_token_time=1_760_000_000.3,
    last_token_time=1_760_000_010.26,
    input_tokens=900,
    output_tokens=250,
)
deployment = otm.Deployment(accelerator="H100", count=2, region="DEU")

before = otm.estimate(telemetry, deployment=deployment)
print(f"unregistered: {fmt_range('energy', before.energy_wh)}")
print(
    f"  size guessed: {before.assumptions['model']['active_params_b']['value']:.0f}B active, "
    f"{len(before.warnings)} warnings, e.g. {(before.warnings or ['none'])[0][:70]}..."
)

spec = otm.register_model(
    "acme-assist-v3",
    aliases=["acme/assist-v3"],
    total_params_b=140,  # a mixture of experts: 140B in all ...
    active_params_b=22,  # ... 22B used per token
    architecture="moe",
    precision="fp8",
    layers=60,
    kv_heads=8,
    head_dim=128,
    price=(0.50, 1.50),  # USD per million input / output tokens
    source={"id": "acme-model-card", "title": "ACME Assist v3 model card", "year": 2026},
)
total_b, active_b = spec.total_params_b.value, spec.active_params_b.value
print(f"registered {spec.id}: {total_b:.0f}B total, {active_b:.0f}B active, {spec.precision}")

after = otm.estimate(telemetry, deployment=deployment)
print(
    f"registered:   {fmt_range('energy', after.energy_wh)}   carbon {fmt_range('carbon', after.carbon_g)}   "
    f"water {fmt_range('water', after.water_ml)}   cost {fmt_cost(after.cost_usd)}"
)
print(
    f"  inferred effective batch {after.assumptions['effective_batch']['value']:.1f}, "
    f"grid {after.assumptions['site']['grid_gco2e_per_kwh']['value']:.0f} gCO2e/kWh"
)

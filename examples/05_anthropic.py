"""Anthropic: ``messages.create`` and the ``messages.stream`` helper, both measured.

A message carries ``.otm`` when ``create`` returns; with the stream helper the
``MessageStream`` (and the message ``get_final_message()`` returns) carries it
once the stream has been read.

Runs offline against an embedded fake of the Anthropic API. With a real key,
drop the fake-server lines and use ``anthropic.Anthropic()``.
"""

import anthropic

import otm
from otm.testing import FakeProviderServer, Scenario, scenario_headers
from otm.units import fmt_range

otm.instrument("anthropic")

# fake server: 80 output tokens, 12 ms apart when streamed
fake = Scenario(ttfb_s=0.3, gap_s=0.012, input_tokens=50, output_tokens=80)
with FakeProviderServer(fake) as server:
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="fake-key")
    # fake server only: it is on 127.0.0.1, which otm would otherwise take for "local"
    otm.wrap(client, provider="anthropic")
    messages = [{"role": "user", "content": "Name three ways to cut inference energy."}]

    # 1. a plain message (the fake server takes 1.2 s, as a real one would for 80 tokens)
    msg = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=300,
        messages=messages,
        extra_headers=scenario_headers(ttfb_s=1.2),
    )
    t = msg.otm.telemetry
    print(f"create  {t.model}: {t.input_tokens} in / {t.output_tokens} out in {t.duration_s:.2f} s")
    print(
        f"  energy {fmt_range('energy', msg.otm.energy_wh)}   "
        f"carbon {fmt_range('carbon', msg.otm.carbon_g)}   water {fmt_range('water', msg.otm.water_ml)}"
    )

    # 2. the stream helper: text_stream, iteration and get_final_message() are all measured
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=300, messages=messages
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

rec = stream.otm
assert final.otm is rec  # the final message carries the same record
t = rec.telemetry
print(f"stream  {t.model}: {len(text)} chars, TTFT {t.ttft_s:.2f} s, {t.output_tps:.0f} tokens/s")
print(f"  energy {fmt_range('energy', rec.energy_wh)}   carbon {fmt_range('carbon', rec.carbon_g)}", end="   ")
print(f"water {fmt_range('water', rec.water_ml)}")
model = rec.impact.assumptions["model"]
print(
    f"  model size {model['active_params_b']['value']:.0f}B active "
    f"({'estimated' if model['size_estimated'] else 'published'}), "
    f"served in {rec.impact.assumptions['site']['region_name']}"
)

"""Instrument the openai SDK once; every response then carries ``.otm``.

Runs offline: an embedded fake of the OpenAI API stands in for the real one.
With a real key, drop the lines marked "fake server" and use ``openai.OpenAI()``.
"""

import openai

import otm
from otm.testing import FakeProviderServer, Scenario, scenario_headers
from otm.units import fmt, fmt_range, sig

otm.instrument()  # patch every installed SDK, for clients created before or after

# fake server: 0.3 s to the first token, then 80 tokens 10 ms apart when streamed
fake = Scenario(ttfb_s=0.3, gap_s=0.01, input_tokens=40, output_tokens=80)
with FakeProviderServer(fake) as server:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="fake-key")
    # fake server: it listens on 127.0.0.1, which otm would take for a local model
    otm.wrap(client, provider="openai")

    messages = [{"role": "user", "content": "Why does batch size change inference energy?"}]

    # 1. a plain call: .otm is there as soon as the call returns
    #    (fake server: the whole answer after 1 s, as a real server would take)
    r = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, extra_headers=scenario_headers(ttfb_s=1.0)
    )
    rec = r.otm
    print(rec)  # who, what the client saw, and the figures with units and ranges

    # 2. a streamed call: .otm is there once the stream ends. Asking for usage
    #    gives exact token counts (otherwise otm counts them from the text).
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    t = stream.otm.telemetry
    print(f"streamed {len(text)} chars, TTFT {t.ttft_s:.2f} s, {t.output_tps:.0f} tokens/s")
    impact = stream.otm.impact
    print(f"  energy {fmt_range('energy', impact.energy_wh)}  ({sig(impact.energy_j.value)} J)")

# Where the energy goes (central values in Wh; they sum to energy_wh.value)
for part, wh in impact.breakdown_wh.items():
    print(f"  {part:<12} {fmt('energy', wh)}")
print("  carbon:", ", ".join(f"{k} {fmt('carbon', v)}" for k, v in impact.carbon_breakdown_g.items()))
print("  method:", impact.assumptions["method"], "| warnings:", impact.warnings or "none")

otm.uninstrument()  # undo the patches (optional)

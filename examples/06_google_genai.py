"""Google Gen AI (Gemini): generate_content, generate_content_stream and a chat.

A response carries ``.otm`` when the call returns. ``generate_content_stream``
hands you a generator-like proxy that carries ``.otm`` once it has been read
to the end (so does its last chunk). Each ``send_message`` of a chat is one
record, on the response.

Runs offline against an embedded fake of the Gemini API. With a real key,
drop the fake-server lines and use ``genai.Client()``.
"""

from google import genai
from google.genai import types

import otm
from otm.testing import FakeProviderServer, Scenario, scenario_headers
from otm.units import fmt_range

otm.instrument("google")


def show(label: str, rec) -> None:
    t = rec.telemetry
    print(
        f"{label:<8} {t.model}: {t.input_tokens} in / {t.output_tokens} out "
        f"({t.reasoning_tokens} thinking), {t.duration_s:.2f} s"
    )
    print(f"  energy {fmt_range('energy', rec.energy_wh)}   carbon {fmt_range('carbon', rec.carbon_g)}", end="   ")
    print(f"water {fmt_range('water', rec.water_ml)}")


# fake server: 40 tokens, 10 ms apart when streamed
fake = Scenario(ttfb_s=0.3, gap_s=0.01, input_tokens=20, output_tokens=40)
with FakeProviderServer(fake) as server:
    url = types.HttpOptions(base_url=server.gemini_base_url)
    client = genai.Client(api_key="fake-key", http_options=url)
    # fake server only: it is on 127.0.0.1, which otm would otherwise take for "local"
    otm.wrap(client, provider="google")

    # 1. one call that thinks first (fake server: 80 thinking tokens, 2 s in all)
    thinking = scenario_headers(ttfb_s=2.0, reasoning_tokens=80)
    config = types.GenerateContentConfig(http_options=types.HttpOptions(headers=thinking))
    r = client.models.generate_content(
        model="gemini-2.5-flash", contents="What is PUE?", config=config
    )
    show("generate", r.otm)

    # 2. a stream: read it to the end, then read .otm on the proxy
    stream = client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="What is WUE?"
    )
    text = "".join(chunk.text or "" for chunk in stream)
    show("stream", stream.otm)
    print(
        f"  {len(text)} chars, TTFT {stream.otm.telemetry.ttft_s:.2f} s, "
        f"{stream.otm.telemetry.output_tps:.0f} tokens/s"
    )

    # 3. a chat: every turn is its own record (fake server: 0.8 s per turn)
    turn = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers=scenario_headers(ttfb_s=0.8))
    )
    chat = client.chats.create(model="gemini-2.5-flash-lite", config=turn)
    for question in ("Hi!", "What is embodied carbon?"):
        reply = chat.send_message(question)
    show("chat", reply.otm)

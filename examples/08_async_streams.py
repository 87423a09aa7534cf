"""Async: several streams at once with ``openai.AsyncOpenAI``.

Each stream gets its own record (``stream.otm``) when it ends, measured from
its own chunks, however the streams interleave. ``otm.on_record`` calls you
back once per finished call, from whichever task finished it.

Runs offline against an embedded fake of the OpenAI API (drop the fake-server
lines and use ``openai.AsyncOpenAI()`` for the real one).
"""

import asyncio

import openai

import otm
from otm.testing import FakeProviderServer, Scenario, scenario_headers
from otm.units import fmt, fmt_range

otm.instrument("openai")
finished = []
otm.on_record(finished.append)  # returns an unsubscribe function


async def ask(client: openai.AsyncOpenAI, i: int):
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"Question {i}"}],
        stream=True,
        stream_options={"include_usage": True},
        # fake server: each stream a little slower than the one before
        extra_headers=scenario_headers(
            ttfb_s=0.2 + 0.1 * i, gap_s=0.006 * (i + 1), output_tokens=30 + 10 * i
        ),
    )
    async for _chunk in stream:
        pass
    return stream.otm


async def main(base_url: str) -> None:
    client = otm.wrap(  # fake server only: it is on 127.0.0.1, otherwise "local"
        openai.AsyncOpenAI(base_url=base_url, api_key="fake-key"), provider="openai"
    )
    records = await asyncio.gather(*(ask(client, i) for i in range(4)))
    for rec in records:
        t = rec.telemetry
        print(
            f"{t.output_tokens:3d} tokens, TTFT {t.ttft_s:.2f} s, {t.output_tps:5.0f} tokens/s -> "
            f"energy {fmt_range('energy', rec.energy_wh)}, carbon {fmt('carbon', rec.carbon_g.value)}"
        )
    await client.close()


with FakeProviderServer(Scenario(input_tokens=25)) as server:
    asyncio.run(main(server.openai_base_url))

total_wh = sum(r.energy_wh.value for r in finished)
print(f"{len(finished)} records via otm.on_record, {fmt('energy', total_wh)} in all")

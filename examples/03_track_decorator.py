"""Attribute the LLM calls a function makes to a named run with ``@otm.track``.

Works on plain and async functions (and generators); calls made in asyncio
tasks started inside are attributed too. ``otm.last_run()`` returns the run
that finished last; its ``.records`` and ``.totals`` are what it cost.

Runs offline against an embedded fake of the OpenAI API (drop the fake-server
lines and use ``openai.OpenAI()`` for the real one).
"""

import asyncio

import openai

import otm
from otm.testing import FakeProviderServer, Scenario
from otm.units import fmt_range

otm.instrument("openai")  # or otm.instrument() for every installed SDK


@otm.track(name="summarise", tags={"step": "summarise"})
def summarise(client: openai.OpenAI, docs: list[str]) -> list[str]:
    out = []
    for doc in docs:
        r = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Summarise: {doc}"}]
        )
        out.append(r.choices[0].message.content)
    return out


@otm.track  # the run is named after the function
async def classify(client: openai.AsyncOpenAI, items: list[str]) -> list[str]:
    async def one(item: str) -> str:
        r = await client.chat.completions.create(
            model="gpt-4.1-nano", messages=[{"role": "user", "content": f"Label: {item}"}]
        )
        return r.choices[0].message.content

    return await asyncio.gather(*(one(i) for i in items))  # concurrent calls, one run


def show(run) -> None:  # run: an otm.report.Run
    t = run.totals
    print(
        f"run {run.name!r} {run.tags}: {len(run.records)} calls in {run.duration_s:.2f} s, "
        f"{t.input_tokens} in / {t.output_tokens} out tokens"
    )
    print(
        f"  energy {fmt_range('energy', t.energy_wh)}   carbon {fmt_range('carbon', t.carbon_g)}   "
        f"water {fmt_range('water', t.water_ml)}"
    )


# fake server: every call takes 0.6 s and returns 30 tokens
with FakeProviderServer(Scenario(ttfb_s=0.6, input_tokens=200, output_tokens=30)) as server:
    sync_client = openai.OpenAI(base_url=server.openai_base_url, api_key="fake-key")
    async_client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="fake-key")
    for c in (sync_client, async_client):
        otm.wrap(c, provider="openai")  # fake server only: it is on 127.0.0.1, otherwise "local"

    summarise(sync_client, ["first report", "second report"])
    show(otm.last_run())

    asyncio.run(classify(async_client, ["apple", "granite", "oak"]))
    show(otm.last_run())

"""Capture of LiteLLM through its CustomLogger callbacks, against the local fake server.

LiteLLM is driven the way a user drives it (``litellm.completion`` /
``acompletion``, plain and streamed, no proxy server) on its own HTTP path
(anthropic, hosted_vllm) and through the official SDK clients (openai, azure):
every call makes exactly one record with the server's figures. Provider names
are checked on the URL logic only (no connection to any other address).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list fetch at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # LiteLLM's tokenizer lookup: no hub requests
litellm = pytest.importorskip("litellm")

import otm
from otm.capture import handoff, litellm_logger, litellm_read
from otm.capture.litellm_logger import provider_for
from otm.testing.server import Scenario

IN, OUT = 37, 5
TTFB, GAP = 0.15, 0.02
SLACK = 0.3  # LiteLLM's own work between the wire and its first-chunk stamp, on a loaded machine
MESSAGES = [{"role": "user", "content": "How much energy does this take?"}]
ROUTES = ["openai", "anthropic", "hosted_vllm"]


@pytest.fixture(scope="module", autouse=True)
def _warm(fake_server: Any) -> None:
    """Pay LiteLLM's first-use costs (lazy imports, tokenizer look-ups) before anything is timed."""
    async def warm_async(route: str) -> None:
        await litellm.acompletion(**_kw(fake_server, route))
        async for _ in await litellm.acompletion(stream=True, **_kw(fake_server, route)):
            pass

    for route in ROUTES:
        list(litellm.completion(stream=True, **_kw(fake_server, route)))
        litellm.completion(**_kw(fake_server, route))
        asyncio.run(warm_async(route))
    # LiteLLM reads its callback lists when its worker thread logs the call:
    # let these calls' logging finish before a test registers otm's logger.
    time.sleep(1.0)


@pytest.fixture(autouse=True)
def _litellm(server: Any) -> Iterator[None]:
    server.scenario = Scenario(input_tokens=IN, output_tokens=OUT, ttfb_s=TTFB, gap_s=GAP)
    otm.instrument(["litellm", "openai"])
    yield
    otm.uninstrument()


def wait_for(records: list[Any], n: int, timeout: float = 5.0) -> list[Any]:
    """LiteLLM logs success on a worker thread (sync) or a task (async): wait for it."""
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # and make sure no second record follows
    return records


def _kw(server: Any, route: str, **extra: Any) -> dict[str, Any]:
    bases = {
        "openai": ("openai/gpt-4o-mini", server.openai_base_url),
        "anthropic": ("anthropic/claude-sonnet-4-5", server.anthropic_base_url),
        "hosted_vllm": ("hosted_vllm/meta-llama/Llama-3.1-8B-Instruct", server.openai_base_url),
        "azure": ("azure/gpt-4o-mini", server.url),
    }
    model, base = bases[route]
    kw: dict[str, Any] = {
        "model": model,
        "api_base": base,
        "api_key": "test",
        "messages": MESSAGES,
        "max_retries": 0,
    }
    if route == "azure":
        kw["api_version"] = "2024-10-21"
    kw.update(extra)
    return kw


def check(t: Any, *, streamed: bool, exact: bool = True) -> None:
    assert t.status == "ok"
    assert t.streamed is streamed
    assert t.provider == "local"  # the fake server is on this machine
    assert t.request_id and t.request_id.startswith("req_")
    if exact:
        assert (t.input_tokens, t.output_tokens) == (IN, OUT)
        assert t.tokens_estimated is False
    assert t.ttft_s is not None and TTFB - 0.01 <= t.ttft_s <= TTFB + SLACK
    if streamed:
        # first chunk after the server's delay; the last one (OUT - 1) gaps later
        assert t.duration_s >= t.ttft_s + (OUT - 1) * GAP * 0.5
    else:
        assert t.first_token_time == t.last_token_time


@pytest.mark.parametrize("route", ROUTES)
def test_completion(route: str, server: Any, records: list[Any]) -> None:
    r = litellm.completion(**_kw(server, route))
    assert r.usage.prompt_tokens == IN  # LiteLLM's own result is untouched
    wait_for(records, 1)
    assert len(records) == 1
    t = records[0].telemetry
    check(t, streamed=False)
    assert t.operation == "chat"
    assert t.model and "gpt-4o-mini" in t.model or "claude" in t.model or "Llama" in t.model


@pytest.mark.parametrize("route", ROUTES)
def test_streaming(route: str, server: Any, records: list[Any]) -> None:
    extra = {"stream_options": {"include_usage": True}} if route != "anthropic" else {}
    chunks = list(litellm.completion(stream=True, **_kw(server, route, **extra)))
    assert chunks
    wait_for(records, 1)
    assert len(records) == 1
    check(records[0].telemetry, streamed=True)


def test_openai_style_stream_without_usage_is_flagged_estimated(
    server: Any, records: list[Any]
) -> None:
    # No usage chunk asked for: LiteLLM counts the tokens itself, which otm
    # must not present as the provider's figures.
    list(litellm.completion(stream=True, **_kw(server, "openai")))
    wait_for(records, 1)
    t = records[0].telemetry
    assert t.streamed and t.status == "ok"
    assert t.tokens_estimated is True
    assert t.output_tokens > 0


@pytest.mark.parametrize("route", ROUTES)
async def test_async_completion_and_stream(route: str, server: Any, records: list[Any]) -> None:
    await litellm.acompletion(**_kw(server, route))
    extra = {"stream_options": {"include_usage": True}} if route != "anthropic" else {}
    stream = await litellm.acompletion(stream=True, **_kw(server, route, **extra))
    async for _ in stream:
        pass
    deadline = time.monotonic() + 5
    while len(records) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(records) == 2
    by_stream = {r.telemetry.streamed: r.telemetry for r in records}
    check(by_stream[False], streamed=False)
    check(by_stream[True], streamed=True)


@pytest.mark.parametrize("route", ["openai", "anthropic"])
def test_http_error_is_recorded_and_reaches_the_caller(
    route: str, server: Any, records: list[Any]
) -> None:
    server.scenario = Scenario(status=429)
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(**_kw(server, route))
    wait_for(records, 1)
    assert len(records) == 1
    t = records[0].telemetry
    assert t.status == "error"
    assert t.http_status == 429
    assert t.error_type == "litellm.exceptions.RateLimitError"
    assert (t.input_tokens, t.output_tokens) == (0, 0)


# --------------------------------------------------------------------------- one call, one record


def test_azure_through_the_openai_sdk_makes_one_record(server: Any, records: list[Any]) -> None:
    # LiteLLM sends Azure chat through AzureOpenAI(...).chat.completions.with_raw_response.create,
    # which otm's openai adapter also patches: the LiteLLM record is the one kept.
    litellm.completion(**_kw(server, "azure"))
    list(litellm.completion(stream=True, **_kw(server, "azure")))
    wait_for(records, 2)
    assert len(records) == 2
    assert {r.telemetry.streamed for r in records} == {False, True}
    # LiteLLM names the provider by the API base (this machine), the SDK adapter
    # would have said azure-openai: the records are LiteLLM's.
    assert all(r.telemetry.provider == "local" for r in records)
    assert records[0].telemetry.input_tokens == IN


async def test_azure_async_makes_one_record(server: Any, records: list[Any]) -> None:
    await litellm.acompletion(**_kw(server, "azure"))
    deadline = time.monotonic() + 5
    while not records and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert len(records) == 1
    assert records[0].telemetry.provider == "local"


def test_embeddings_through_the_openai_sdk_make_one_record(server: Any, records: list[Any]) -> None:
    litellm.embedding(
        model="openai/text-embedding-3-small",
        api_base=server.openai_base_url,
        api_key="test",
        input=["one", "two"],
    )
    wait_for(records, 1)
    assert len(records) == 1
    t = records[0].telemetry
    assert t.operation == "embeddings"
    assert t.output_tokens == 0


def test_direct_sdk_calls_after_a_litellm_call_are_still_recorded(
    server: Any, records: list[Any]
) -> None:
    openai = pytest.importorskip("openai")
    litellm.completion(**_kw(server, "azure"))
    wait_for(records, 1)
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="t", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(records) == 2
    # a closed model on 127.0.0.1 is a gateway: attributed to its maker (otm.data.attribute_provider)
    assert records[-1].telemetry.provider == "openai"
    assert not handoff.owned()


# --------------------------------------------------------------------------- install / uninstall


def _registered() -> bool:
    lists = ("callbacks", "input_callback", "success_callback", "failure_callback",
             "_async_success_callback", "_async_failure_callback")
    return any(
        isinstance(cb, litellm_logger.OtmLogger) for name in lists for cb in getattr(litellm, name)
    )


def test_uninstrument_removes_the_logger_everywhere(server: Any, records: list[Any]) -> None:
    litellm.completion(**_kw(server, "anthropic"))  # LiteLLM copies callbacks into its lists
    wait_for(records, 1)
    assert _registered()
    otm.uninstrument()
    assert not _registered()
    litellm.completion(**_kw(server, "anthropic"))
    time.sleep(0.3)
    assert len(records) == 1


def test_instrument_registers_once(server: Any) -> None:
    otm.instrument()
    otm.instrument(["litellm"])
    assert sum(isinstance(cb, litellm_logger.OtmLogger) for cb in litellm.callbacks) == 1
    assert "litellm" in otm.instrument()


def test_records_reach_the_experiment_that_made_the_call(
    server: Any, records: list[Any], tmp_path: Any
) -> None:
    with otm.experiment("litellm", output_dir=tmp_path, reports=()) as exp:
        litellm.completion(**_kw(server, "anthropic"))
        wait_for(records, 1)
    assert len(exp.records) == 1


def test_a_failing_record_never_breaks_the_call(
    server: Any, records: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("otm bug")

    monkeypatch.setattr(litellm_read, "read_usage", boom)
    r = litellm.completion(**_kw(server, "anthropic"))
    assert r.usage.prompt_tokens == IN


# --------------------------------------------------------------------------- provider names


@pytest.mark.parametrize(
    ("name", "api_base", "expected"),
    [
        ("openai", None, "openai"),
        ("openai", "https://api.openai.com/v1", "openai"),
        ("openai", "https://api.groq.com/openai/v1", "groq"),
        ("azure", "https://my-res.openai.azure.com", "azure-openai"),
        ("azure", None, "azure-openai"),
        ("azure_ai", None, "azure-openai"),
        ("anthropic", None, "anthropic"),
        ("vertex_ai", None, "google"),
        ("vertex_ai", "https://europe-west4-aiplatform.googleapis.com", "google"),
        ("gemini", None, "google"),
        ("bedrock", None, "bedrock"),
        ("bedrock_converse", None, "bedrock"),
        ("together_ai", None, "together"),
        ("fireworks_ai", None, "fireworks"),
        ("groq", None, "groq"),
        ("mistral", None, "mistral"),
        ("deepseek", None, "deepseek"),
        ("cohere_chat", None, "cohere"),
        ("hosted_vllm", "http://10.1.2.3:8000/v1", "local"),
        ("hosted_vllm", "http://localhost:8000/v1", "local"),
        ("hosted_vllm", "https://llm.example.org/v1", "openai-compatible"),
        ("hosted_vllm", None, "local"),
        ("ollama", "http://localhost:11434", "local"),
        ("ollama_chat", None, "local"),
        ("openai_like", "https://llm.example.org/v1", "openai-compatible"),
        ("some_new_provider", None, "some_new_provider"),
        (None, None, "litellm"),
    ],
)
def test_provider_names(name: str | None, api_base: str | None, expected: str) -> None:
    assert provider_for(name, api_base) == expected

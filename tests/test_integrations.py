"""Frameworks that call the official SDKs underneath are measured by otm.instrument() alone.

Each test drives a real framework object against the local fake provider
server and checks the otm record that capture made underneath: one record per
request, the provider's token counts, streamed or not. Frameworks that are not
installed are skipped, and so are providers whose capture adapter is missing.
See docs/integrations.md for what is and is not covered.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import otm
from otm import config

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

IN, OUT = 37, 5  # distinctive token counts the fake server reports


@pytest.fixture(autouse=True)
def on(monkeypatch: pytest.MonkeyPatch, server: Any) -> Iterator[None]:
    """Clean settings, a distinctive scenario, and otm.instrument() before any client is built."""
    from otm.testing.server import Scenario

    for key in list(os.environ):
        if key.startswith("OTM_"):
            monkeypatch.delenv(key)
    config.reset()
    server.scenario = Scenario(input_tokens=IN, output_tokens=OUT)
    otm.instrument()
    yield
    otm.uninstrument()
    config.reset()


def need(framework: str, provider: str) -> Any:
    """Import ``framework`` and require otm's capture adapter for ``provider``, else skip."""
    mod = pytest.importorskip(framework)
    adapter = {"openai": "openai_sdk", "anthropic": "anthropic_sdk", "google": "google_sdk"}[
        provider
    ]
    pytest.importorskip(f"otm.capture.{adapter}")
    return mod


def check(records: list[Any], *, streamed: bool, exact: bool = True, n: int = 1) -> Any:
    assert len(records) == n, [r.telemetry for r in records]
    t = records[-1].telemetry
    assert t.status == "ok"
    assert t.streamed is streamed
    if exact:
        assert (t.input_tokens, t.output_tokens) == (IN, OUT)
        assert t.tokens_estimated is False
    else:
        assert t.output_tokens > 0
    if streamed:
        assert t.first_token_time is not None and t.last_token_time is not None
    return t


# --------------------------------------------------------------------------- LangChain


def _lc_openai(server: Any, **kw: Any) -> Any:
    lc = need("langchain_openai", "openai")
    return lc.ChatOpenAI(
        model="gpt-4o-mini", base_url=server.openai_base_url, api_key="test", max_retries=0, **kw
    )


def _lc_anthropic(server: Any, **kw: Any) -> Any:
    lc = need("langchain_anthropic", "anthropic")
    return lc.ChatAnthropic(
        model="claude-sonnet-4-5",
        base_url=server.anthropic_base_url,
        api_key="test",
        max_retries=0,
        **kw,
    )


def _lc_google(server: Any, **kw: Any) -> Any:
    lc = need("langchain_google_genai", "google")
    return lc.ChatGoogleGenerativeAI(
        model="gemini-2.5-flash",
        base_url=server.gemini_base_url,
        google_api_key="test",
        max_retries=0,
        **kw,
    )


LANGCHAIN: dict[str, Callable[[Any], Any]] = {
    "openai-chat": lambda s: _lc_openai(s, stream_usage=True),
    "openai-responses": lambda s: _lc_openai(s, use_responses_api=True),
    "anthropic": _lc_anthropic,
    "google-genai": _lc_google,
}


@pytest.mark.parametrize("which", list(LANGCHAIN))
def test_langchain_invoke(which: str, server: Any, records: list[Any]) -> None:
    llm = LANGCHAIN[which](server)
    msg = llm.invoke("How much energy does this take?")
    assert msg.usage_metadata["input_tokens"] == IN  # the framework is unaffected
    assert "tok0" in str(msg.content)
    check(records, streamed=False)


@pytest.mark.parametrize("which", list(LANGCHAIN))
def test_langchain_stream(which: str, server: Any, records: list[Any]) -> None:
    llm = LANGCHAIN[which](server)
    text = "".join(str(c.content) for c in llm.stream("Stream it"))
    assert "tok0" in text
    check(records, streamed=True)


# LangChain caches one async HTTP client per base URL for the process: its
# pooled connections belong to one event loop, so these tests share the session's.
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("which", list(LANGCHAIN))
async def test_langchain_async(which: str, server: Any, records: list[Any]) -> None:
    llm = LANGCHAIN[which](server)
    await llm.ainvoke("async")
    check(records, streamed=False)
    async for _ in llm.astream("async stream"):
        pass
    check(records, streamed=True, n=2)


def test_langchain_openai_stream_without_usage_still_measured(
    server: Any, records: list[Any]
) -> None:
    # A custom base_url turns LangChain's stream_usage off: no usage chunk
    # arrives, so capture counts the streamed text instead (flagged estimated).
    llm = _lc_openai(server)
    list(llm.stream("no usage chunk"))
    t = check(records, streamed=True, exact=False)
    assert t.tokens_estimated is True


def test_langchain_openai_stream_with_request_usage_setting(
    server: Any, records: list[Any]
) -> None:
    # OTM's opt-in request_usage asks the stream for usage on LangChain's behalf.
    otm.configure(request_usage=True)
    llm = _lc_openai(server)
    list(llm.stream("usage please"))
    check(records, streamed=True)


def test_langchain_records_carry_configured_tags_and_region(
    server: Any, records: list[Any]
) -> None:
    otm.configure(tags={"app": "rag-bot"})
    llm = _lc_anthropic(server)
    llm.invoke("tagged")
    check(records, streamed=False)
    assert records[0].tags.get("app") == "rag-bot"


def test_langchain_openai_per_client_settings_through_wrap(server: Any, records: list[Any]) -> None:
    llm = _lc_openai(server)
    assert otm.wrap(llm.root_client, region="FRA", tags={"model-host": "eu"}) is llm.root_client
    llm.invoke("wrapped")
    check(records, streamed=False)
    assert records[0].region == "FRA"
    assert records[0].tags.get("model-host") == "eu"


def test_langchain_batch_makes_one_record_per_request(server: Any, records: list[Any]) -> None:
    llm = _lc_anthropic(server)
    llm.batch(["a", "b", "c"])
    assert len(records) == 3
    assert all(r.telemetry.input_tokens == IN for r in records)


@pytest.mark.parametrize("which", list(LANGCHAIN))
def test_langchain_model_built_before_instrument(
    which: str, server: Any, records: list[Any]
) -> None:
    # A module-level model built before otm.instrument() is still measured,
    # as long as it made no call before.
    otm.uninstrument()
    llm = LANGCHAIN[which](server)
    otm.instrument()
    llm.invoke("built early")
    check(records, streamed=False)


def test_langchain_calls_are_attributed_to_a_tracked_run(server: Any, records: list[Any]) -> None:
    # LangChain runs batch items on worker threads with a copied context, and
    # async ones as tasks: the calls still land in the run that made them.
    pytest.importorskip("otm.report.track")
    llm = _lc_anthropic(server)

    @otm.track(name="rag-answer")
    def answer() -> None:
        llm.batch(["a", "b"])
        llm.invoke("c")

    answer()
    run = otm.last_run()
    assert run is not None and run.name == "rag-answer"
    assert len(run.records) == 3 == len(records)


def test_langchain_without_instrument_makes_no_record(server: Any, records: list[Any]) -> None:
    llm = _lc_anthropic(server)
    otm.uninstrument()
    llm.invoke("not measured")
    assert records == []


# --------------------------------------------------------------------------- LlamaIndex


def _llama_openai(server: Any) -> Any:
    need("llama_index.llms.openai", "openai")
    from llama_index.llms.openai import OpenAI

    return OpenAI(
        model="gpt-4o-mini", api_base=server.openai_base_url, api_key="test", max_retries=0
    )


def test_llama_index_openai_complete_and_chat(server: Any, records: list[Any]) -> None:
    from_llama = _llama_openai(server)
    from llama_index.core.llms import ChatMessage

    from_llama.complete("hello")
    check(records, streamed=False)
    from_llama.chat([ChatMessage(role="user", content="hi")])
    check(records, streamed=False, n=2)


def test_llama_index_openai_stream_chat(server: Any, records: list[Any]) -> None:
    llm = _llama_openai(server)
    from llama_index.core.llms import ChatMessage

    for _ in llm.stream_chat([ChatMessage(role="user", content="hi")]):
        pass
    # LlamaIndex asks for no usage chunk: tokens are counted from the text.
    check(records, streamed=True, exact=False)


# --------------------------------------------------------------------------- LiteLLM


def _litellm(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import
    mod = pytest.importorskip("litellm")
    pytest.importorskip("otm.capture.litellm_logger")
    return mod


@pytest.mark.parametrize(
    ("route", "base"), [("openai", "openai_base_url"), ("anthropic", "anthropic_base_url")]
)
def test_litellm_makes_one_record_per_call(
    monkeypatch: pytest.MonkeyPatch, server: Any, records: list[Any], route: str, base: str
) -> None:
    # otm.instrument() registers otm's LiteLLM logger: the openai route (the
    # openai client's low-level post()) and the anthropic route (LiteLLM's own
    # HTTP client) are both measured, once. tests/test_capture_litellm.py has the rest.
    import time

    litellm = _litellm(monkeypatch)
    r = litellm.completion(
        model=f"{route}/gpt-4o-mini" if route == "openai" else f"{route}/claude-sonnet-4-5",
        api_base=getattr(server, base),
        api_key="test",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert r.usage.prompt_tokens == IN  # the call itself went through
    deadline = time.monotonic() + 5
    while not records and time.monotonic() < deadline:  # logged on LiteLLM's worker thread
        time.sleep(0.01)
    time.sleep(0.05)
    check(records, streamed=False)


def test_frameworks_are_not_core_dependencies() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    meta = tomllib.loads(
        (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8")
    )
    deps = " ".join(meta["project"]["dependencies"]).lower()
    for name in ("langchain", "llama", "litellm"):
        assert name not in deps
    assert importlib.util.find_spec("otm") is not None

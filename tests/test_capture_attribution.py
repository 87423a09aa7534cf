"""Provider attribution that does not misfire: a closed model behind a loopback, private,
link-local or unknown URL is a gateway to its maker; only an open-weight model there is
self-hosted; ``wrap(provider=...)`` overrides. One rule (``otm.data.attribute_provider``)
for the three adapters. The URL logic is tested on the clients' base URLs without
connecting anywhere; calls go to the local fake server only."""

from __future__ import annotations

from typing import Any

import pytest

import otm
from otm.capture.call import Call
from otm.capture.clients import ClientSettings
from otm.data import attribute_provider, closed_model_provider
from otm.testing.server import scenario_headers as H

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

from otm.capture import anthropic_sdk, google_sdk, openai_sdk  # noqa: E402

# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("model", "maker"),
    [
        ("gpt-4o", "openai"),
        ("gpt-4o-2024-08-06", "openai"),
        ("openai/gpt-4o-mini", "openai"),  # LiteLLM's provider/model names
        ("gpt-7-turbo", "openai"),  # not in the data yet: by name
        ("o1", "openai"),
        ("o3-mini", "openai"),
        ("o4-mini-high", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("anthropic/claude-3-5-haiku", "anthropic"),
        ("us.anthropic.claude-9-opus-v1:0", "anthropic"),  # Bedrock inference profile
        ("gemini-2.5-flash", "google"),
        ("gemini/gemini-9-ultra", "google"),
        ("gpt-oss-120b", None),  # open weights, despite the name
        ("gpt-oss-20b", None),
        ("meta-llama/Llama-3.1-8B-Instruct", None),
        ("qwen3-32b", None),
        ("gemma-3-27b-it", None),
        ("my-finetune", None),
        (None, None),
    ],
)
def test_closed_models_name_their_maker(model: str | None, maker: str | None) -> None:
    assert closed_model_provider(model) == maker


@pytest.mark.parametrize(
    ("model", "kind", "host_provider", "expected"),
    [
        ("gpt-4o", "private", "local", ("openai", "gateway")),
        ("gpt-4o", "unknown", "openai-compatible", ("openai", "gateway")),
        ("gpt-4o", "api", "groq", ("groq", "api")),  # a known API host is what it is
        ("claude-sonnet-4-5", "private", "local", ("anthropic", "gateway")),
        ("gemini-2.5-pro", "private", "local", ("google", "gateway")),
        ("llama-3.1-8b", "private", "local", ("local", "self-hosted")),
        ("my-finetune", "private", "local", ("local", "self-hosted")),
        ("llama-3.1-8b", "unknown", "openai-compatible", ("openai-compatible", "unknown-host")),
        ("llama-3.1-8b", "api", "together", ("together", "api")),
    ],
)
def test_the_rule(model: str, kind: Any, host_provider: str, expected: tuple[str, str]) -> None:
    assert attribute_provider(model, host_provider=host_provider, host_kind=kind) == expected


# --------------------------------------------------------------------------- each adapter's URLs

PRIVATE_URLS = [
    "http://127.0.0.1:4000",
    "http://localhost:4000",
    "http://10.1.2.3:8000",
    "http://172.16.0.9",
    "http://192.168.1.20:8000",
    "http://169.254.10.10",  # link-local
    "http://[::1]:4000",
    "http://[fe80::1]:4000",
    "http://host.docker.internal:4000",
]


def _openai(url: str) -> Any:
    return openai.OpenAI(base_url=url + "/v1", api_key="x")


def _anthropic(url: str) -> Any:
    return anthropic.Anthropic(base_url=url, api_key="x")


def _google(url: str) -> Any:
    return genai.Client(api_key="x", http_options=types.HttpOptions(base_url=url))


ADAPTERS: dict[str, tuple[Any, Any, str, str]] = {
    # sdk: (adapter, client factory, its vendor's closed model, operation)
    "openai": (openai_sdk, _openai, "gpt-4o", "chat"),
    "anthropic": (anthropic_sdk, _anthropic, "claude-sonnet-4-5", "chat"),
    "google": (google_sdk, _google, "gemini-2.5-flash", "generate_content"),
}


def _record_for(sdk: str, url: str, model: str, settings: ClientSettings | None = None) -> Any:
    """What a call through a client on ``url`` is attributed to (no request is sent)."""
    adapter, make, _, op = ADAPTERS[sdk]
    host = adapter.detect_host(make(url))
    call = Call(host.provider, op, model, settings, host_kind=host.kind)
    return call.finish().telemetry


@pytest.mark.parametrize("url", PRIVATE_URLS)
@pytest.mark.parametrize("sdk", list(ADAPTERS))
def test_private_urls_closed_models_are_gateways_open_ones_self_hosted(sdk: str, url: str) -> None:
    _, _, closed, _ = ADAPTERS[sdk]
    assert ADAPTERS[sdk][0].detect_host(ADAPTERS[sdk][1](url)).kind == "private"
    t = _record_for(sdk, url, closed)
    assert (t.provider, t.provider_source) == (sdk, "gateway")
    t = _record_for(sdk, url, "gpt-4o")  # any closed model: its own maker, whatever the SDK
    assert (t.provider, t.provider_source) == ("openai", "gateway")
    t = _record_for(sdk, url, "meta-llama/Llama-3.1-8B-Instruct")
    assert (t.provider, t.provider_source) == ("local", "self-hosted")


@pytest.mark.parametrize("sdk", list(ADAPTERS))
def test_wrap_provider_overrides_the_rule(sdk: str) -> None:
    _, _, closed, _ = ADAPTERS[sdk]
    t = _record_for(sdk, "http://127.0.0.1:4000", closed, ClientSettings(provider="local"))
    assert (t.provider, t.provider_source) == ("local", "client")
    t = _record_for(sdk, "http://127.0.0.1:4000", "llama-3.1-8b", ClientSettings(provider="together"))
    assert (t.provider, t.provider_source) == ("together", "client")


@pytest.mark.parametrize("sdk", list(ADAPTERS))
def test_vendor_api_and_unknown_public_hosts(sdk: str) -> None:
    adapter, make, closed, _ = ADAPTERS[sdk]
    vendor_url = {
        "openai": "https://api.openai.com",
        "anthropic": "https://api.anthropic.com",
        "google": "https://generativelanguage.googleapis.com",
    }[sdk]
    assert adapter.detect_host(make(vendor_url)) == (sdk, "api")
    t = _record_for(sdk, vendor_url, closed)
    assert (t.provider, t.provider_source) == (sdk, "api")
    gateway = "https://llm-gateway.example.org"  # a company gateway on a public name
    assert adapter.detect_host(make(gateway)).kind == "unknown"
    t = _record_for(sdk, gateway, closed)
    assert (t.provider, t.provider_source) == (sdk, "gateway")


def test_a_served_alias_still_reaches_the_maker_through_the_requested_name() -> None:
    call = Call("local", "chat", "gpt-4o", host_kind="private")
    call.served_model = "my-gateway-alias"
    t = call.finish().telemetry
    assert (t.provider, t.provider_source, t.model) == ("openai", "gateway", "my-gateway-alias")


# --------------------------------------------------------------------------- end to end, estimated


@pytest.fixture()
def instrumented_all() -> Any:
    otm.instrument()
    yield
    otm.uninstrument()


def _chat(server: Any, *, model: str, provider: str | None = None) -> Any:
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0)
    if provider is not None:
        otm.wrap(c, provider=provider)
    s = c.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=H(output_tokens=40, input_tokens=200, ttfb_s=0.05, gap_s=0.004),
    )
    for _ in s:
        pass
    return s.otm


def test_gpt4o_through_a_local_proxy_is_estimated_as_openai(
    server: Any, instrumented_all: None
) -> None:
    proxied = _chat(server, model="gpt-4o")
    direct = _chat(server, model="gpt-4o", provider="openai")
    as_local = _chat(server, model="gpt-4o", provider="local")
    assert (proxied.telemetry.provider, proxied.telemetry.provider_source) == ("openai", "gateway")
    assert (direct.telemetry.provider_source, as_local.telemetry.provider_source) == ("client",) * 2
    ratio = proxied.energy_wh.value / direct.energy_wh.value
    assert 0.5 < ratio < 2.0, ratio  # the same call, not a consumer GPU serving gpt-4o
    assert as_local.energy_wh.value > 3 * direct.energy_wh.value  # what it was read as before
    open_model = _chat(server, model="meta-llama/Llama-3.1-8B-Instruct")
    assert (open_model.telemetry.provider, open_model.telemetry.provider_source) == (
        "local",
        "self-hosted",
    )


def test_anthropic_and_google_through_a_local_proxy(
    server: Any, instrumented_all: None, records: list[Any]
) -> None:
    a = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
    a.messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    a.messages.create(
        model="llama-3.1-8b", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    g = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=server.gemini_base_url))
    g.models.generate_content(model="gemini-2.5-flash", contents="hi")
    g.models.generate_content(model="gemma-3-27b-it", contents="hi")
    got = [(r.telemetry.provider, r.telemetry.provider_source) for r in records]
    assert got == [
        ("anthropic", "gateway"),
        ("local", "self-hosted"),
        ("google", "gateway"),
        ("local", "self-hosted"),
    ]


def test_a_model_registered_later_changes_the_decision() -> None:
    from otm import data

    def attributed() -> tuple[str | None, str | None]:
        t = Call("local", "chat", "acme-secret-1", host_kind="private").finish().telemetry
        return t.provider, t.provider_source

    assert attributed() == ("local", "self-hosted")  # unknown: self-hosted, and cached
    try:
        data.register_model(
            "acme-secret-1", total_params_b=70, provider="openai", open_weights=False
        )
        assert attributed() == ("openai", "gateway")  # the cache follows the data
    finally:
        data.unregister_all()
    assert attributed() == ("local", "self-hosted")

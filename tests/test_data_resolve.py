"""Forgiving identifier resolution: regions, accelerators, models, providers, hosts."""

from __future__ import annotations

import pytest

from otm import data
from otm.data import UnknownIdError, normalise_id


@pytest.mark.parametrize(
    "name,expected",
    [
        ("FR", "FRA"),
        ("fra", "FRA"),
        ("France", "FRA"),
        ("  france ", "FRA"),
        ("germany", "DEU"),
        ("DE", "DEU"),
        ("US", "USA"),
        ("United States", "USA"),
        ("UK", "GBR"),
        ("US-VA", "US-VA"),
        ("us_va", "US-VA"),
        ("us-va", "US-VA"),
        ("Virginia", "US-VA"),
        ("US-DC", "US-DC"),
        ("Georgia", "GEO"),
        ("US-GA", "US-GA"),
        ("aws:us-east-1", "aws:us-east-1"),
        ("AWS:US-EAST-1", "aws:us-east-1"),
        ("aws/us-east-1", "aws:us-east-1"),
        ("us-east-1", "aws:us-east-1"),
        ("eu-west-1", "aws:eu-west-1"),
        ("gcp:europe-west9", "gcp:europe-west9"),
        ("google:europe-west9", "gcp:europe-west9"),
        ("us-central1", "gcp:us-central1"),
        ("azure:westeurope", "azure:westeurope"),
        ("westeurope", "azure:westeurope"),
        ("WORLD", "WORLD"),
        ("world", "WORLD"),
        ("SE3", "SE-SE3"),
    ],
)
def test_region_variants(name: str, expected: str) -> None:
    assert data.get_region(name).id == expected


def test_cloud_region_parent_and_notes() -> None:
    r = data.get_region("gcp:europe-west9")
    assert r.kind == "cloud-region" and r.parent == "FRA" and r.country == "FRA"
    assert r.gco2e_per_kwh == data.get_region("FRA").gco2e_per_kwh
    aws = data.get_region("aws:us-east-1")
    assert aws.parent == "US-VA" and aws.wue_onsite_l_per_kwh is not None
    az = data.get_region("azure:westeurope")
    assert az.parent == "NLD" and az.pue is not None


@pytest.mark.parametrize(
    "name,expected",
    [
        ("H100", "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("h100-sxm", "h100-sxm"),
        ("h100_80gb_hbm3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("tpu-v6e", "tpu-v6e"),
        ("TPU v6e", "tpu-v6e"),
        ("Trillium", "tpu-v6e"),
        ("TPU v5 lite", "tpu-v5e"),
        ("ironwood", "tpu-v7"),
        ("B200", "b200"),
        ("NVIDIA B200", "b200"),
        ("GB200", "gb200"),
        ("A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("AMD Instinct MI300X", "mi300x"),
        ("trainium2", "trainium2"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA A10G", "a10g"),
    ],
)
def test_accelerator_variants(name: str, expected: str) -> None:
    assert data.get_accelerator(name).id == expected


@pytest.mark.parametrize(
    "name,expected",
    [
        # dated snapshots, -latest, case
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        # Hugging Face ids
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
        ("Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b"),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseek-r1-distill-llama-70b"),
        ("openai/gpt-oss-120b", "gpt-oss-120b"),
        ("google/gemma-3-27b-it", "gemma-3-27b"),
        # Gemini API / Vertex paths
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("models/gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        (
            "projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001",
            "gemini-2.0-flash",
        ),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-1.5-flash-002@default", "gemini-1.5-flash"),
        # OpenRouter
        ("openrouter/openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("anthropic/claude-3.7-sonnet:thinking", "claude-3-7-sonnet"),
        ("deepseek/deepseek-r1:free", "deepseek-r1"),
        ("meta-llama/llama-3.1-8b-instruct:free", "llama-3.1-8b"),
        ("x-ai/grok-4", "grok-4"),
        # Bedrock
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("eu.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("meta.llama3-1-70b-instruct-v1:0", "llama-3.1-70b"),
        ("amazon.nova-pro-v1:0", "nova-pro"),
        ("mistral.mistral-large-2407-v1:0", "mistral-large-2"),
        # Vertex partner models
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("claude-opus-4@20250514", "claude-opus-4"),
        # serving platforms
        ("accounts/fireworks/models/llama-v3p1-405b-instruct", "llama-3.1-405b"),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo", "llama-3.1-70b"),
        ("llama-3.3-70b-versatile", "llama-3.3-70b"),
        ("llama3.1:8b", "llama-3.1-8b"),
        ("qwen2.5:7b-instruct-q4_K_M", "qwen2.5-7b"),
        ("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", "llama-3.1-8b"),
        # embeddings
        ("text-embedding-3-small", "text-embedding-3-small"),
        ("models/gemini-embedding-001", "gemini-embedding-001"),
    ],
)
def test_model_variants(name: str, expected: str) -> None:
    assert data.get_model(name).id == expected


def test_distinct_models_not_collapsed() -> None:
    # suffix stripping must not merge models that differ
    assert data.get_model("gpt-4o-mini").id != data.get_model("gpt-4o").id
    assert data.get_model("o1-preview").id == "o1-preview"
    assert data.get_model("gpt-4-turbo").id == "gpt-4-turbo"
    assert data.get_model("gpt-3.5-turbo").id == "gpt-3.5-turbo"
    assert data.get_model("gemini-2.5-flash-lite").id == "gemini-2.5-flash-lite"
    assert data.get_model("claude-3-5-haiku-20241022").id == "claude-3-5-haiku"


@pytest.mark.parametrize(
    "name,base,domain",
    [
        ("gpt-6-astra-healthcare", "gpt-6-astra", "healthcare"),
        ("gpt-6.2-sol-healthcare", "gpt-6.2-sol", "healthcare"),
        ("openai/gpt-4o-law-2024-08-06", "gpt-4o", "law"),
        ("claude-sonnet-4-6-legal", "claude-sonnet-4-6", "legal"),
        ("Gemini-2.5-Pro_Medical", "gemini-2.5-pro", "medical"),
    ],
)
def test_domain_variants_resolve_to_their_base_as_an_estimate(
    name: str, base: str, domain: str
) -> None:
    m = data.find_model(name)
    assert m is not None and m.id == base
    assert m.estimated and {"total_params_b", "active_params_b"} <= set(m.estimated_fields)
    assert m.method and f"{domain}-specialised variant of {base!r}" in m.method
    assert "otm-estimate" in m.sources
    # the packaged row itself is untouched
    assert data.get_model(base).method != m.method
    # and the estimator reports the flag
    import otm

    a = otm.estimate(otm.Telemetry(model=name, input_tokens=10, output_tokens=10)).assumptions
    assert a["model"]["id"] == base and a["model"]["size_estimated"]
    assert "variant" in a["model"]["size_method"]


def test_domain_words_do_not_rewrite_known_or_unrelated_names() -> None:
    assert data.find_model("x-law") is None  # the base "x" is no model
    assert data.find_model("law") is None
    assert data.find_model("medium-gpt-unknown") is None
    assert not data.get_model("gpt-4o").method.startswith("'")  # type: ignore[union-attr]


def test_find_never_raises_and_get_suggests() -> None:
    for fn in (data.find_model, data.find_accelerator, data.find_region, data.find_provider):
        assert fn("definitely-not-a-thing-xyz") is None
        assert fn("") is None
        assert fn(None) is None  # type: ignore[arg-type]
    with pytest.raises(UnknownIdError) as ei:
        data.get_model("gpt-4oo")
    assert isinstance(ei.value, KeyError)
    assert "gpt-4o" in ei.value.suggestions
    with pytest.raises(KeyError) as ei2:
        data.get_accelerator("H1000")
    assert ei2.value.suggestions  # type: ignore[attr-defined]
    assert "gpt-4oo" in str(ei.value)


def test_suggest() -> None:
    assert "h100-sxm" in data.suggest("accelerator", "h10")
    assert "FRA" in data.suggest("region", "Frace")
    assert "anthropic" in data.suggest("provider", "antropic")
    assert len(data.suggest("model", "claude", n=3)) <= 3
    with pytest.raises(ValueError):
        data.suggest("planet", "earth")  # type: ignore[arg-type]


def test_normalise_id() -> None:
    assert normalise_id("NVIDIA H100_80GB.HBM3") == "nvidia-h100-80gb-hbm3"
    assert normalise_id("NVIDIA H100 80GB HBM3", kind="accelerator") == "h100-80gb-hbm3"
    assert normalise_id("models/gemini-2.5-pro", kind="model") == "gemini-2-5-pro"
    assert normalise_id("meta-llama/Llama-3.1-8B", kind="model") == "llama-3-1-8b"
    assert normalise_id("AWS-us-east-1", kind="region") == "aws:us-east-1"
    assert normalise_id("US_VA") == "us-va"


def test_provider_lookup_and_aliases() -> None:
    assert data.get_provider("Azure").id == "azure-openai"
    assert data.get_provider("gemini").id == "google"
    assert data.get_provider("vertex_ai").id == "google"
    assert data.get_provider("x.ai").id == "xai"
    assert data.get_provider("ollama").id == "local"
    p = data.get_provider("openai")
    assert p.hardware[0] == "h100-sxm" and p.region == "USA"
    g = data.get_provider("google")
    assert g.hardware[0].startswith("tpu-")


@pytest.mark.parametrize(
    "host,expected",
    [
        ("api.openai.com", "openai"),
        ("https://api.openai.com/v1", "openai"),
        ("my-resource.openai.azure.com", "azure-openai"),
        ("api.anthropic.com", "anthropic"),
        ("generativelanguage.googleapis.com", "google"),
        ("us-central1-aiplatform.googleapis.com", "google"),
        ("api.mistral.ai", "mistral"),
        ("api.deepseek.com", "deepseek"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("api.together.xyz", "together"),
        ("api.fireworks.ai", "fireworks"),
        ("openrouter.ai", "openrouter"),
        ("api.x.ai", "xai"),
        ("bedrock-runtime.eu-west-1.amazonaws.com", "bedrock"),
        ("localhost", "local"),
        ("http://localhost:11434/v1", "local"),
        ("127.0.0.1:8000", "local"),
        ("127.1.2.3", "local"),
        ("[::1]:8000", "local"),
        ("::1", "local"),
        ("0.0.0.0", "local"),
        ("10.1.2.3", "local"),
        ("172.16.0.1", "local"),
        ("172.31.255.1", "local"),
        ("192.168.0.10", "local"),
        ("gpu-box.local", "local"),
        ("host.docker.internal", "local"),
        ("172.32.0.1", None),
        ("example.com", None),
        ("notopenai.com", None),
        ("", None),
    ],
)
def test_provider_for_host(host: str, expected: str | None) -> None:
    assert data.provider_for_host(host) == expected


def test_find_model_with_provider_context() -> None:
    m = data.find_model("llama-3.1-8b-instant", provider="groq")
    assert m is not None and m.id == "llama-3.1-8b"
    assert data.find_model("gpt-4o", provider="azure-openai").id == "gpt-4o"  # type: ignore[union-attr]

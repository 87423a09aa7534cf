"""API providers: host names, serving hardware, regions, facility factors.

idle_reserve_fraction is the share of provisioned capacity that sits idle.
Anchor: Google's measured split for a median Gemini prompt puts idle capacity
at 10% of energy against 83% for active accelerators and hosts. With idle
machines drawing roughly 40-50% of active power, 10/83 of active energy
corresponds to f/(1-f) x 0.45 = 0.12, i.e. about 20% of capacity idle
(f ~ 0.2; 0.1-0.3 across idle-power assumptions).
"""

from __future__ import annotations

from typing import Any

P = dict[str, Any]

IDLE_METHOD = (
    "idle_reserve_fraction ~0.2 of capacity: Google's Gemini split (idle 10% vs active 83% of energy) with idle machines at "
    "40-50% of active power gives f/(1-f) x 0.45 = 0.12, f ~ 0.2 (0.1-0.3)"
)

PROVIDERS: list[P] = [
    {
        "id": "openai",
        "name": "OpenAI API",
        "aliases": ["open-ai", "openai-api", "chatgpt"],
        "hosts": ["api.openai.com", "openai.com"],
        "hardware": ["h100-sxm", "h200", "gb200", "a100-80gb"],
        "region": "USA",
        "regions_alt": ["US-VA", "US-TX", "US-IA", "US-AZ", "US-WI", "US-WA", "US-NM", "US-OH"],
        "pue": (1.18, 1.10, 1.40),
        "wue_onsite_l_per_kwh": (0.35, 0.10, 0.60),
        "idle_reserve_fraction": (0.2, 0.1, 0.35),
        "sources": [
            "builtin-openai-cloud",
            "cloudnews-openai-multicloud",
            "stargate-explainer",
            "dcd-pue-2024",
            "ms-efficiency-page",
            "ms-wue-2024",
            "li-2023-thirsty",
            "ecologits-providers",
            "google-gemini-impact-2025",
        ],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction", "hardware"],
        "method": (
            "mostly Microsoft Azure (global PUE 1.16-1.18, newest 1.12; WUE 0.30 L/kWh FY2024) plus Oracle/Stargate, CoreWeave, "
            "Google and AWS capacity since 2025; high PUE bound 1.40 covers colocation sites, WUE range spans "
            "closed-loop to evaporative (EcoLogits uses 1.20 / 0.569; Li et al. 1.17 / 0.55); hardware mix assumed; "
            + IDLE_METHOD
        ),
    },
    {
        "id": "azure-openai",
        "name": "Azure OpenAI (Microsoft Foundry)",
        "aliases": [
            "azure",
            "azure_openai",
            "azureopenai",
            "microsoft",
            "azure-ai",
            "azure-ai-foundry",
        ],
        "hosts": [
            "openai.azure.com",
            "cognitiveservices.azure.com",
            "services.ai.azure.com",
            "models.ai.azure.com",
            "inference.ai.azure.com",
        ],
        "hardware": ["h100-sxm", "h200", "gb200", "a100-80gb", "mi300x"],
        "region": "USA",
        "regions_alt": [
            "azure:eastus",
            "azure:eastus2",
            "azure:southcentralus",
            "azure:westus3",
            "azure:swedencentral",
            "azure:westeurope",
            "azure:francecentral",
            "azure:japaneast",
        ],
        "pue": (1.16, 1.12, 1.30),
        "wue_onsite_l_per_kwh": (0.30, 0.10, 0.55),
        "idle_reserve_fraction": (0.2, 0.1, 0.35),
        "sources": [
            "azure-openai-docs",
            "ms-efficiency-page",
            "dcd-pue-2024",
            "ms-pue-design",
            "ms-wue-2024",
            "ms-wue-2025",
            "ecologits-providers",
            "google-gemini-impact-2025",
        ],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["wue_onsite_l_per_kwh", "idle_reserve_fraction", "hardware"],
        "method": (
            "PUE: Microsoft global average 1.16 (Oct 2025 page), newest designs 1.12, worst geography published 1.30 "
            "(Singapore); WUE 0.30 L/kWh FY2024 (0.27 in 2025; 0.49 in 2021) with a range for hot sites; "
            + IDLE_METHOD
        ),
        "notes": "The deployment's region is in the endpoint name only when the user says so; pass region= to wrap().",
    },
    {
        "id": "anthropic",
        "name": "Anthropic API",
        "aliases": ["claude", "anthropic-api"],
        "hosts": ["api.anthropic.com"],
        "hardware": ["trainium2", "tpu-v6e", "h100-sxm", "tpu-v7", "gb200"],
        "region": "USA",
        "regions_alt": ["US-IN", "US-MS", "US-PA", "US-VA", "US-OR", "US-OH", "US-IA"],
        "pue": (1.14, 1.08, 1.25),
        "wue_onsite_l_per_kwh": (0.20, 0.05, 1.1),
        "idle_reserve_fraction": (0.2, 0.1, 0.35),
        "sources": [
            "semafor-rainier",
            "anthropic-tpu-2025",
            "ms-nvidia-anthropic-2025",
            "aws-sustainability",
            "aws-wue-regions-2024",
            "google-pue-page",
            "google-wue-2025",
            "ecologits-providers",
            "google-gemini-impact-2025",
        ],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction", "hardware"],
        "method": (
            "serving split across AWS Trainium2 (Project Rainier: Indiana, Mississippi, Pennsylvania; majority of chips used "
            "for inference per Semafor), Google TPUs and NVIDIA GPUs; PUE between AWS 1.14-1.15 and Google 1.09 with room "
            "for newer sites; WUE between AWS 0.15 (2024) and Google 1.15 L/kWh; " + IDLE_METHOD
        ),
    },
    {
        "id": "google",
        "name": "Google Gemini API / Vertex AI",
        "aliases": [
            "gemini",
            "google-genai",
            "genai",
            "vertex",
            "vertexai",
            "vertex-ai",
            "google-ai-studio",
            "aistudio",
            "gcp",
        ],
        "hosts": [
            "generativelanguage.googleapis.com",
            "aiplatform.googleapis.com",
            "*-aiplatform.googleapis.com",
        ],
        "hardware": ["tpu-v6e", "tpu-v5e", "tpu-v7", "tpu-v5p"],
        "region": "USA",
        "regions_alt": [
            "gcp:us-central1",
            "gcp:us-east1",
            "gcp:us-east4",
            "gcp:us-west1",
            "gcp:europe-west4",
            "gcp:europe-west1",
            "gcp:asia-east1",
        ],
        "pue": (1.09, 1.06, 1.15),
        "wue_onsite_l_per_kwh": (1.08, 0.5, 1.5),
        "idle_reserve_fraction": (0.2, 0.1, 0.3),
        "sources": [
            "google-gemini-impact-2025",
            "google-pue-page",
            "google-env-report-2025",
            "google-wue-2025",
            "gcp-tpu-v6e",
            "ecologits-providers",
        ],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["idle_reserve_fraction", "hardware", "wue_onsite_l_per_kwh"],
        "method": (
            "PUE: fleet TTM 1.09 (2024 and 2025), campuses 1.04-1.15; WUE: 0.26 mL of on-site water per 0.24 Wh for the "
            "median Gemini prompt = 1.08 L/kWh of facility energy (Google 2025), fleet figure quoted as 1.15; lower bound "
            "for air-cooled or low-water sites; hardware order assumed; " + IDLE_METHOD
        ),
    },
    {
        "id": "mistral",
        "name": "Mistral AI (La Plateforme)",
        "aliases": ["mistralai", "mistral-ai", "la-plateforme"],
        "hosts": ["api.mistral.ai", "codestral.mistral.ai"],
        "hardware": ["h100-sxm", "h200", "gb200", "b200"],
        "region": "SWE",
        "regions_alt": ["FRA", "IRL", "NLD", "NOR"],
        "pue": (1.16, 1.10, 1.35),
        "wue_onsite_l_per_kwh": (0.10, 0.0, 0.5),
        "idle_reserve_fraction": (0.2, 0.1, 0.35),
        "sources": [
            "ecologits-providers",
            "ecologits-methodology",
            "mistral-compute-2025",
            "ms-efficiency-page",
        ],
        "year": 2025,
        "estimated": True,
        "estimated_fields": [
            "region",
            "pue",
            "wue_onsite_l_per_kwh",
            "idle_reserve_fraction",
            "hardware",
        ],
        "method": (
            "EcoLogits places Mistral on Azure in Sweden (PUE 1.16, on-site WUE 0.09); Mistral Compute (France, ~18,000 "
            "Blackwell GPUs, 2025) and a Swedish EcoDataCenter site (2027) are alternatives; "
            + IDLE_METHOD
        ),
    },
    {
        "id": "deepseek",
        "name": "DeepSeek API",
        "aliases": ["deepseek-api", "deepseek-ai"],
        "hosts": ["api.deepseek.com"],
        "hardware": ["h800", "h20", "h100-sxm"],
        "region": "CHN",
        "regions_alt": ["CN-NM", "CN-GZ", "CN-BJ", "CN-ZJ", "CN-NX"],
        "pue": (1.27, 1.15, 1.50),
        "wue_onsite_l_per_kwh": (1.20, 0.3, 2.0),
        "idle_reserve_fraction": (0.15, 0.05, 0.3),
        "sources": ["deepseek-infra-2025", "jegham-2025", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction"],
        "method": (
            "own cluster of 8x H800 nodes (DeepSeek, Feb 2025: avg 227 nodes serving V3/R1, released to training at night, "
            "hence a lower idle reserve); PUE 1.27 and on-site WUE 1.20 from Jegham et al.'s China multipliers, widened"
        ),
    },
    {
        "id": "groq",
        "name": "GroqCloud",
        "aliases": ["groqcloud", "groq-cloud"],
        "hosts": ["api.groq.com"],
        "hardware": ["groq-lpu"],
        "region": "USA",
        "regions_alt": ["US-TX", "FIN", "SAU", "CAN"],
        "pue": (1.3, 1.1, 1.6),
        "wue_onsite_l_per_kwh": (0.4, 0.0, 1.8),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["groq-docs", "groq-lpu", "groq-meta-2025", "uptime-2025", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["region", "pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction"],
        "method": (
            "colocation data centres (US, Helsinki, Saudi Arabia): PUE between hyperscale 1.1 and the Uptime 2025 industry "
            "average 1.54; WUE unknown, wide; " + IDLE_METHOD
        ),
    },
    {
        "id": "together",
        "name": "Together AI",
        "aliases": ["together-ai", "togetherai", "together.ai"],
        "hosts": ["api.together.xyz", "api.together.ai"],
        "hardware": ["h100-sxm", "h200", "b200", "gb200"],
        "region": "USA",
        "regions_alt": ["US-VA", "US-TX", "US-OR", "CAN", "NLD"],
        "pue": (1.3, 1.1, 1.6),
        "wue_onsite_l_per_kwh": (0.4, 0.0, 1.8),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["together-docs", "uptime-2025", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": [
            "region",
            "pue",
            "wue_onsite_l_per_kwh",
            "idle_reserve_fraction",
            "hardware",
        ],
        "method": "GPU cloud on colocation/neocloud capacity: PUE between hyperscale 1.1 and Uptime's 1.54 average; "
        + IDLE_METHOD,
    },
    {
        "id": "fireworks",
        "name": "Fireworks AI",
        "aliases": ["fireworks-ai", "fireworksai"],
        "hosts": ["api.fireworks.ai"],
        "hardware": ["h100-sxm", "h200", "b200", "mi300x"],
        "region": "USA",
        "regions_alt": ["US-VA", "US-OR", "US-TX", "NLD"],
        "pue": (1.25, 1.1, 1.6),
        "wue_onsite_l_per_kwh": (0.4, 0.0, 1.8),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["fireworks-docs", "uptime-2025", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": [
            "region",
            "pue",
            "wue_onsite_l_per_kwh",
            "idle_reserve_fraction",
            "hardware",
        ],
        "method": "GPU capacity on hyperscale and neocloud sites: PUE 1.1-1.6; " + IDLE_METHOD,
    },
    {
        "id": "openrouter",
        "name": "OpenRouter",
        "aliases": ["open-router"],
        "hosts": ["openrouter.ai"],
        "hardware": ["h100-sxm", "h200", "tpu-v6e", "trainium2"],
        "region": "USA",
        "regions_alt": ["US-VA", "US-OR", "US-IA", "SWE", "FRA"],
        "pue": (1.2, 1.08, 1.6),
        "wue_onsite_l_per_kwh": (0.4, 0.0, 1.8),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["openrouter-docs", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": [
            "region",
            "pue",
            "wue_onsite_l_per_kwh",
            "idle_reserve_fraction",
            "hardware",
        ],
        "method": (
            "a router: requests are served by an upstream provider (the model's developer or a GPU cloud); when the model is "
            "known, the estimator should prefer the model's own provider profile; these factors span the upstreams"
        ),
    },
    {
        "id": "xai",
        "name": "xAI API",
        "aliases": ["x-ai", "x.ai", "grok"],
        "hosts": ["api.x.ai"],
        "hardware": ["h100-sxm", "h200", "gb200"],
        "region": "US-TN",
        "regions_alt": ["USA", "US-GA"],
        "pue": (1.2, 1.1, 1.5),
        "wue_onsite_l_per_kwh": (0.5, 0.0, 1.8),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["xai-colossus", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction", "hardware"],
        "method": (
            "Colossus in Memphis, Tennessee (NVIDIA Hopper, later Blackwell), partly powered by on-site gas turbines, so the "
            "TVA grid figure may understate; facility figures not published; " + IDLE_METHOD
        ),
    },
    {
        "id": "local",
        "name": "Local / self-hosted inference (Ollama, vLLM, llama.cpp, LM Studio)",
        "aliases": [
            "localhost",
            "self-hosted",
            "selfhosted",
            "on-prem",
            "onprem",
            "ollama",
            "vllm",
            "llama-cpp",
            "llamacpp",
            "lmstudio",
            "lm-studio",
            "sglang",
            "tgi",
            "private",
        ],
        "hosts": [],
        "hardware": ["rtx-4090", "l40s", "a100-80gb", "h100-sxm", "rtx-5090"],
        "region": "WORLD",
        "regions_alt": [],
        "pue": (1.0, 1.0, 1.6),
        "wue_onsite_l_per_kwh": (0.0, 0.0, 1.8),
        "idle_reserve_fraction": (0.0, 0.0, 0.5),
        "sources": ["ollama-docs", "vllm-docs", "uptime-2025", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": [
            "hardware",
            "region",
            "pue",
            "wue_onsite_l_per_kwh",
            "idle_reserve_fraction",
        ],
        "method": (
            "a workstation or private server: PUE 1.0 (no facility) up to the Uptime 2025 industry average 1.54; no on-site "
            "water central; no idle reserve central, but a dedicated GPU that mostly waits can be half idle; region unknown "
            "until the user sets one (WORLD average)"
        ),
        "notes": "Recognised from the base_url host: localhost, loopback, private and link-local addresses, *.local, host.docker.internal.",
    },
    {
        "id": "cohere",
        "name": "Cohere API",
        "aliases": ["cohere-ai", "coral"],
        "hosts": ["api.cohere.ai", "api.cohere.com"],
        "hardware": ["h100-sxm", "tpu-v5e", "a100-80gb"],
        "region": "USA",
        "regions_alt": ["CAN", "gcp:us-central1", "GBR"],
        "pue": (1.12, 1.08, 1.3),
        "wue_onsite_l_per_kwh": (0.6, 0.1, 1.2),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["cohere-docs", "ecologits-providers", "google-pue-page", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction", "hardware"],
        "method": "EcoLogits places Cohere on Google Cloud (PUE 1.09, WUE ~1.0); Cohere also uses other GPU clouds, so widened; "
        + IDLE_METHOD,
    },
    {
        "id": "perplexity",
        "name": "Perplexity API (Sonar)",
        "aliases": ["pplx", "perplexity-ai", "sonar"],
        "hosts": ["api.perplexity.ai"],
        "hardware": ["h100-sxm", "h200", "b200"],
        "region": "USA",
        "regions_alt": ["US-VA", "US-OR"],
        "pue": (1.15, 1.08, 1.4),
        "wue_onsite_l_per_kwh": (0.2, 0.0, 1.0),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["perplexity-docs", "aws-sustainability", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction", "hardware"],
        "method": "GPU capacity mostly on AWS (PUE 1.14-1.15, WUE 0.15) per public statements; widened; "
        + IDLE_METHOD,
    },
    {
        "id": "cerebras",
        "name": "Cerebras Inference",
        "aliases": ["cerebras-ai", "cerebras-cloud"],
        "hosts": ["api.cerebras.ai"],
        "hardware": ["cerebras-wse-3"],
        "region": "USA",
        "regions_alt": ["US-OK", "US-CA", "CA-QC", "US-MN"],
        "pue": (1.3, 1.1, 1.6),
        "wue_onsite_l_per_kwh": (0.4, 0.0, 1.8),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["cerebras-docs", "cerebras-wse3", "uptime-2025", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["region", "pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction"],
        "method": "inference data centres in the US and Canada (Oklahoma City, Montreal, others); facility figures not published; "
        + IDLE_METHOD,
    },
    {
        "id": "bedrock",
        "name": "Amazon Bedrock",
        "aliases": ["aws", "amazon", "aws-bedrock", "amazon-bedrock", "bedrock-runtime"],
        "hosts": [
            "bedrock-runtime.*.amazonaws.com",
            "bedrock.*.amazonaws.com",
            "bedrock-runtime-fips.*.amazonaws.com",
        ],
        "hardware": ["trainium2", "h100-sxm", "inferentia2", "a100-80gb", "h200"],
        "region": "aws:us-east-1",
        "regions_alt": [
            "aws:us-east-2",
            "aws:us-west-2",
            "aws:eu-central-1",
            "aws:eu-west-1",
            "aws:ap-northeast-1",
            "USA",
        ],
        "pue": (1.14, 1.04, 1.25),
        "wue_onsite_l_per_kwh": (0.15, 0.01, 0.5),
        "idle_reserve_fraction": (0.2, 0.1, 0.35),
        "sources": [
            "bedrock-docs",
            "aws-sustainability",
            "aws-wue-regions-2024",
            "aws-wue-2021",
            "semafor-rainier",
        ],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["idle_reserve_fraction", "hardware"],
        "method": (
            "AWS global PUE 1.14 (2025), best site 1.04; WUE 0.15 L/kWh global (2024), regional 0.01-0.27 except APAC "
            "sites up to 2.75; the region is in the endpoint host (bedrock-runtime.<region>.amazonaws.com); "
            + IDLE_METHOD
        ),
    },
    {
        "id": "alibaba",
        "name": "Alibaba Cloud Model Studio (DashScope, Qwen API)",
        "aliases": ["dashscope", "qwen-api", "alibaba-cloud", "aliyun", "bailian", "model-studio"],
        "hosts": [
            "dashscope.aliyuncs.com",
            "dashscope-intl.aliyuncs.com",
            "dashscope-us.aliyuncs.com",
        ],
        "hardware": ["h20", "h800", "a100-80gb"],
        "region": "CHN",
        "regions_alt": ["SGP", "CN-ZJ", "CN-BJ", "USA"],
        "pue": (1.25, 1.12, 1.5),
        "wue_onsite_l_per_kwh": (1.0, 0.2, 2.0),
        "idle_reserve_fraction": (0.2, 0.1, 0.4),
        "sources": ["alibaba-model-studio", "jegham-2025", "otm-estimate"],
        "year": 2025,
        "estimated": True,
        "estimated_fields": ["pue", "wue_onsite_l_per_kwh", "idle_reserve_fraction", "hardware"],
        "method": "China mainland data centres by default (Singapore for the international endpoint); factors as DeepSeek's, widened; "
        + IDLE_METHOD,
    },
]

"""Identifier normalisation and the fallbacks tried when a name is not known as is.

Every table is indexed by ``normalise_id`` of its ids and aliases. A lookup
first tries the normalised name; if that misses, it tries a short sequence of
rewrites (strip a dated snapshot, a ``-latest`` or ``:free`` suffix, a vendor
prefix, a quantisation suffix...) and takes the first rewrite that hits. Each
rewrite is tried breadth-first, so the least altered form wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

__all__ = [
    "accelerator_candidates",
    "compact",
    "domain_variant",
    "model_candidates",
    "normalise_id",
    "provider_candidates",
    "region_candidates",
]

_SEP = re.compile(r"[\s_./\\]+")
_DASHES = re.compile(r"-{2,}")

_VENDOR_PREFIXES: dict[str, tuple[str, ...]] = {
    "accelerator": (
        "nvidia",
        "amd",
        "intel",
        "google",
        "gcp",
        "cloud",
        "aws",
        "amazon",
        "geforce",
        "tesla",
        "instinct",
        "habana",
    ),
    "model": (
        "models",
        "publishers",
        "openai",
        "anthropic",
        "google",
        "gemini",
        "meta-llama",
        "meta",
        "mistralai",
        "mistral",
        "deepseek-ai",
        "deepseek",
        "qwen",
        "alibaba",
        "x-ai",
        "xai",
        "cohere",
        "amazon",
        "ai21",
        "microsoft",
        "nvidia",
        "moonshotai",
        "moonshot",
        "zai-org",
        "z-ai",
        "thudm",
        "minimaxai",
        "minimax",
        "perplexity",
        "together",
        "togethercomputer",
        "fireworks",
        "openrouter",
        "groq",
        "nousresearch",
        "ibm-granite",
        "tiiuae",
        "databricks",
        "bigcode",
        "allenai",
        "huggingfacetb",
        "01-ai",
        "internlm",
        "baai",
        "sentence-transformers",
        "nomic-ai",
        "intfloat",
        "cerebras",
        "bedrock",
        "vertex-ai",
        "vertex",
        "azure",
        "azureai",
        "hf",
        "huggingface",
        "ollama",
    ),
}

_BEDROCK_GEO = ("us-gov", "us", "eu", "apac", "global", "jp", "au", "ca", "apne1")


def normalise_id(s: str, kind: str | None = None) -> str:
    """Lower-case ``s`` and turn ``_ . space / \\`` into ``-`` (``:`` and ``@`` are kept).

    With ``kind`` (``"model"``, ``"accelerator"``, ``"region"``, ``"provider"``)
    the table's path-like prefixes are also removed: for models the part up to
    the last ``/models/`` or ``/`` (``models/gemini-2.5-pro`` ->
    ``gemini-2-5-pro``); for accelerators a leading vendor word
    (``NVIDIA H100`` -> ``h100``); for regions a ``aws-``/``gcp-``/``azure-``
    prefix becomes ``aws:`` etc.
    """
    if not isinstance(s, str):
        raise TypeError(f"expected a str, got {type(s).__name__}")
    t = s.strip()
    if kind == "model":
        if "/models/" in t:
            t = t.rsplit("/models/", 1)[1]
        elif "/" in t:
            t = t.rsplit("/", 1)[1]
    t = _SEP.sub("-", t.lower())
    t = _DASHES.sub("-", t).strip("-")
    if kind == "accelerator":
        t = _strip_prefix_words(t, _VENDOR_PREFIXES["accelerator"])
    elif kind == "region":
        t = _cloud_prefix(t)
    return t


def compact(key: str) -> str:
    """The key with every ``-`` removed (a last-resort index: ``llama3-1-8b`` ~ ``llama-3-1-8b``)."""
    return key.replace("-", "")


def _strip_prefix_words(t: str, words: tuple[str, ...]) -> str:
    changed = True
    while changed:
        changed = False
        for w in words:
            if t.startswith(w + "-") and len(t) > len(w) + 1:
                t = t[len(w) + 1 :]
                changed = True
    return t


# --------------------------------------------------------------------------- models


def _strip_at(k: str) -> list[str]:
    return [k.split("@", 1)[0]] if "@" in k else []


def _strip_colon(k: str) -> list[str]:
    if ":" not in k:
        return []
    return [k.rsplit(":", 1)[0], k.replace(":", "-")]


_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{6}|\d{4}|\d{2}-\d{2}|\d{3})$")


def _strip_date(k: str) -> list[str]:
    m = _DATE.search(k)
    return [k[: m.start()]] if m and m.start() > 0 else []


_SIMPLE_SUFFIXES = (
    "-latest",
    "-preview",
    "-exp",
    "-experimental",
    "-default",
)


def _strip_simple(k: str) -> list[str]:
    return [k[: -len(s)] for s in _SIMPLE_SUFFIXES if k.endswith(s) and len(k) > len(s)]


_VERSION = re.compile(r"-v\d+(-\d+)*$")


def _strip_version(k: str) -> list[str]:
    m = _VERSION.search(k)
    return [k[: m.start()]] if m and m.start() > 0 else []


_SERVING = re.compile(
    r"-(fp8|fp16|bf16|fp4|nvfp4|mxfp4|int4|int8|awq|gptq|gguf|mlx|4bit|8bit|w4a16|w8a8|"
    r"dynamic|fp8-dynamic|quantized|versatile|instant|free|online|nitro|floor|"
    r"q\d(-k)?(-[msl])?|q\d-\d|it|instruct|chat|hf|base|thinking)$"
)


def _strip_serving(k: str) -> list[str]:
    m = _SERVING.search(k)
    return [k[: m.start()]] if m and m.start() > 0 else []


_TURBO = re.compile(r"(-instruct|\d+b)-turbo$")


def _strip_turbo(k: str) -> list[str]:
    m = _TURBO.search(k)
    return [k[: m.end() - len("-turbo")]] if m else []


def _strip_vendor(k: str) -> list[str]:
    out: list[str] = []
    for g in _BEDROCK_GEO:
        if k.startswith(g + "-"):
            rest = k[len(g) + 1 :]
            for w in _VENDOR_PREFIXES["model"]:
                if rest.startswith(w + "-"):
                    out.append(rest)
                    break
    for w in _VENDOR_PREFIXES["model"]:
        if k.startswith(w + "-") and len(k) > len(w) + 1:
            out.append(k[len(w) + 1 :])
    return out


_FW_VER = re.compile(r"v(\d+)p(\d+)")
_P_DEC = re.compile(r"(\d)p(\d)")


def _fireworks(k: str) -> list[str]:
    out = []
    a = _FW_VER.sub(r"\1-\2", k)
    if a != k:
        out.append(a)
    b = _P_DEC.sub(r"\1-\2", k)
    if b != k and b != a:
        out.append(b)
    return out


_MODEL_RULES: tuple[Callable[[str], list[str]], ...] = (
    _strip_at,
    _strip_colon,
    _strip_simple,
    _strip_date,
    _strip_version,
    _strip_vendor,
    _strip_turbo,
    _strip_serving,
    _fireworks,
)


def _bfs(
    start: list[str], rules: tuple[Callable[[str], list[str]], ...], limit: int
) -> Iterator[str]:
    seen: set[str] = set()
    frontier = [s for s in start if s]
    while frontier and len(seen) < limit:
        nxt: list[str] = []
        for k in frontier:
            if k in seen:
                continue
            seen.add(k)
            yield k
            for rule in rules:
                for c in rule(k):
                    c = c.strip("-")
                    if c and c not in seen:
                        nxt.append(c)
        frontier = nxt


def model_candidates(name: str, limit: int = 200) -> Iterator[str]:
    """Normalised keys to try for a model name, least altered first."""
    raw = name.strip()
    starts = [normalise_id(raw)]
    if "/models/" in raw:
        starts.append(normalise_id(raw.rsplit("/models/", 1)[1]))
    if "/" in raw:
        starts.append(normalise_id(raw.rsplit("/", 1)[1]))
    yield from _bfs(starts, _MODEL_RULES, limit)


# Domain-specialised variants of a general model (``gpt-6-astra-healthcare``,
# ``...-law``): providers publish them under new names faster than the data can
# follow, and nothing suggests a different size. The registry resolves them to
# the base model and flags the result as an estimate (see ``find_model``).
_DOMAIN = re.compile(
    r"-(healthcare|health|medical|clinical|med|law|legal|finance|financial|education|"
    r"science|scientific|government|gov|cyber|security)(?=-|$)"
)


def domain_variant(name: str) -> tuple[str, str] | None:
    """``(base name, domain)`` when ``name`` carries a domain word after its first part, else None.

    ``gpt-6-astra-healthcare`` -> ``("gpt-6-astra", "healthcare")``; a dated
    snapshot after the word is kept (``...-law-2026-01-01`` -> ``...-2026-01-01``).
    """
    key = normalise_id(name, kind="model")
    m = _DOMAIN.search(key)
    if m is None or m.start() == 0:
        return None
    return key[: m.start()] + key[m.end() :], m.group(1)


# ---------------------------------------------------------------------- accelerators

_ACC_NOISE = re.compile(
    r"-(sxm\d?|sxm\d-\d+gb|hbm\d?e?|\d+gb|oam|module|gpu|accelerator|tensor-core)(?=-|$)"
)


def _acc_strip_vendor(k: str) -> list[str]:
    s = _strip_prefix_words(k, _VENDOR_PREFIXES["accelerator"])
    return [s] if s != k else []


def _acc_noise(k: str) -> list[str]:
    s = _ACC_NOISE.sub("", k)
    return [s] if s and s != k else []


def accelerator_candidates(name: str) -> Iterator[str]:
    """Normalised keys to try for an accelerator name."""
    yield from _bfs([normalise_id(name)], (_acc_strip_vendor, _acc_noise), 50)


# --------------------------------------------------------------------------- regions

_CLOUD_PREFIX = {
    "aws": "aws",
    "amazon": "aws",
    "ec2": "aws",
    "gcp": "gcp",
    "google": "gcp",
    "gcloud": "gcp",
    "google-cloud": "gcp",
    "azure": "azure",
    "az": "azure",
    "microsoft": "azure",
}


def _cloud_prefix(t: str) -> str:
    if ":" in t:
        head, rest = t.split(":", 1)
        if head in _CLOUD_PREFIX:
            return f"{_CLOUD_PREFIX[head]}:{rest}"
        return t
    for head in sorted(_CLOUD_PREFIX, key=len, reverse=True):
        if t.startswith(head + "-") and len(t) > len(head) + 1:
            return f"{_CLOUD_PREFIX[head]}:{t[len(head) + 1 :]}"
    return t


def region_candidates(name: str) -> Iterator[str]:
    """Normalised keys to try for a region code or name."""
    base = normalise_id(name)
    out = [normalise_id(name, kind="region"), base]
    if ":" in base:
        out.append(base.replace(":", "-"))
    seen: set[str] = set()
    for k in out:
        if k and k not in seen:
            seen.add(k)
            yield k


def provider_candidates(name: str) -> Iterator[str]:
    """Normalised keys to try for a provider name."""
    k = normalise_id(name)
    yield k
    for suffix in ("-api", "-ai", "-cloud"):
        if k.endswith(suffix) and len(k) > len(suffix):
            yield k[: -len(suffix)]

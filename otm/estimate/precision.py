"""Serving precision: what a weight costs to store and read, and which kernels do the math.

A checkpoint's id usually says how it was quantised (``...-Instruct-FP8``,
``...-AWQ``, ``...-GPTQ-Int4``, ``...Q4_K_M.gguf``, ``...-bnb-4bit``,
``gpt-oss`` in MXFP4). That is a fact about the deployment, stronger than the
model row's default precision: weight bytes, memory fit and the compute path
all follow it (docs/methodology.md "Precision").

A :class:`Precision` has the bytes per weight (block scales included) and a
*path*: which tensor-core arithmetic decode uses and which engine kernels
stream the weights. The engine profile (:mod:`.engine`) carries the achieved
efficiency of each path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["PATHS", "Precision", "from_label", "from_name", "resolve"]

PATHS = ("bf16", "fp8", "int8", "w4a16", "mxfp4", "nvfp4")
"""Compute paths. ``w4a16``: 4-bit (or GGUF k-quant) weights dequantised to 16-bit
for the math (AWQ, GPTQ, bitsandbytes, llama.cpp); ``mxfp4``/``nvfp4``: 4-bit
floating point, native on Blackwell tensor cores, dequantised to 16-bit on older
GPUs."""


@dataclass(frozen=True)
class Precision:
    label: str
    """What the deployment serves: ``bf16``, ``fp8``, ``awq-int4``, ``gguf-q4_k_m``..."""
    bytes_per_param: float
    path: str
    """One of :data:`PATHS`."""
    source: str
    """``id`` (read from the model id), ``deployment``, ``data`` (the model row) or ``default``."""


# Bytes per weight of the plain labels (block scales included: MXFP4 carries one
# 8-bit scale per 32 weights, 4.25 bits; NVFP4 one FP8 scale per 16, 4.5 bits;
# AWQ/GPTQ group-128 scales and zeros add ~0.25 bit). Published formats
# (OCP MX spec v1.0, NVIDIA NVFP4 blog, AutoAWQ/GPTQ group size 128).
_LABELS: dict[str, tuple[float, str]] = {
    "fp32": (4.0, "bf16"),
    "bf16": (2.0, "bf16"),
    "fp16": (2.0, "bf16"),
    "fp8": (1.0, "fp8"),
    "int8": (1.0, "int8"),
    "fp6": (0.75, "w4a16"),
    "mxfp4": (4.25 / 8.0, "mxfp4"),
    "nvfp4": (4.5 / 8.0, "nvfp4"),
    "fp4": (4.5 / 8.0, "nvfp4"),
    "int4": (4.25 / 8.0, "w4a16"),
}

# llama.cpp GGUF quantisation types, bits per weight (llama.cpp `quantize --help`
# table, `llamacpp-quants` in data-sources.md): the k-quants mix block sizes.
_GGUF_BPW: dict[str, float] = {
    "q2_k": 3.35,
    "q3_k_s": 3.50,
    "q3_k_m": 3.91,
    "q3_k_l": 4.27,
    "iq4_xs": 4.25,
    "iq4_nl": 4.50,
    "q4_0": 4.55,
    "q4_1": 5.0,
    "q4_k_s": 4.58,
    "q4_k_m": 4.89,
    "q5_0": 5.54,
    "q5_1": 6.0,
    "q5_k_s": 5.54,
    "q5_k_m": 5.70,
    "q6_k": 6.56,
    "q8_0": 8.50,
    "f16": 16.0,
    "bf16": 16.0,
}

_GGUF = re.compile(r"(?<![a-z0-9])(i?q\d(?:_[a-z0-9]+)*)(?![a-z0-9])")
_BPW = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*bpw(?![a-z0-9])")

# (pattern, label, bytes per weight, path); first match wins, most specific first.
_RULES: tuple[tuple[re.Pattern[str], str, float, str], ...] = tuple(
    (re.compile(p), label, b, path)
    for p, label, b, path in (
        (r"mxfp4", "mxfp4", 4.25 / 8.0, "mxfp4"),
        (r"nvfp4|(?<![a-z0-9])fp4(?![a-z0-9])", "nvfp4", 4.5 / 8.0, "nvfp4"),
        (r"w4a8", "w4a8", 4.25 / 8.0, "fp8"),
        (r"fp8|float8|e4m3|w8a8[-_]?fp8", "fp8", 1.0, "fp8"),
        (r"w8a8|int8|8[-_]?bit|gptq[-_]?int8|(?<![a-z0-9])q8(?![a-z0-9])", "int8", 1.0, "int8"),
        (r"w8a16", "w8a16", 1.0, "w4a16"),
        (r"awq", "awq-int4", 4.25 / 8.0, "w4a16"),
        (r"gptq", "gptq-int4", 4.25 / 8.0, "w4a16"),
        (r"bnb[-_]?4bit|nf4|4[-_]?bit|int4|w4a16|(?<![a-z0-9])q4(?![a-z0-9])", "int4", 4.25 / 8.0, "w4a16"),
        (r"(?<![a-z0-9])(?:fp16|f16)(?![a-z0-9])", "fp16", 2.0, "bf16"),
        (r"(?<![a-z0-9])bf16(?![a-z0-9])", "bf16", 2.0, "bf16"),
    )
)


@lru_cache(maxsize=4096)
def from_name(name: str | None) -> Precision | None:
    """The precision a model id or file name states, or None when it states none.

    >>> from_name("Qwen/Qwen3-235B-A22B-Thinking-2507-FP8").label
    'fp8'
    >>> round(from_name("Llama-3.1-8B-Instruct-Q4_K_M.gguf").bytes_per_param, 3)
    0.611
    """
    if not name:
        return None
    s = name.lower()
    for m in _GGUF.finditer(s.replace("-", "_").replace(".", "_")):
        parts = m.group(1).split("_")
        # the longest known prefix (q4_k_m_instruct -> q4_k_m); q4_k means q4_k_m
        for end in range(len(parts), 0, -1):
            key = "_".join(parts[:end])
            bpw = _GGUF_BPW.get(key) or _GGUF_BPW.get(key + "_m")
            if bpw is not None:
                return Precision(f"gguf-{key}", bpw / 8.0, "w4a16" if bpw < 8 else "int8", "id")
    found = _BPW.search(s)
    if found is not None:
        bpw = float(found.group(1))
        if 1.0 <= bpw <= 16.0:
            return Precision(f"{bpw:g}bpw", bpw / 8.0, "bf16" if bpw >= 16 else "w4a16", "id")
    for pat, label, b, path in _RULES:
        if pat.search(s):
            return Precision(label, b, path, "id")
    return None


def from_label(label: str, source: str) -> Precision:
    """A precision named by a label (a model row's ``precision`` or ``Deployment(precision=)``).

    Labels otm does not know are read like ids (``awq``, ``q4_k_m``); anything
    else falls back to 16-bit.
    """
    key = label.strip().lower()
    if key in _LABELS:
        b, path = _LABELS[key]
        return Precision(key, b, path, source)
    named = from_name(key)
    if named is not None:
        return Precision(named.label, named.bytes_per_param, named.path, source)
    return Precision(key, 2.0, "bf16", source)


def resolve(name: str | None, row_precision: str, override: str | None) -> Precision:
    """The serving precision: the deployment's, else the id's, else the model row's."""
    if override:
        return from_label(override, "deployment")
    named = from_name(name)
    if named is not None:
        return named
    return from_label(row_precision, "data")

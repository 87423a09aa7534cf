"""Each request alone: otm's accelerator-only estimate against NVML, on Llama-3.1-8B's real shapes.

    python bench/table4.py              # one NVIDIA GPU; about 2 minutes on an H200
    python bench/table4.py --tiny       # a 2-layer toy on CPU (or CUDA): the whole path, no NVML

What it does, with torch only (no model download, no serving engine):

1. Builds a decoder with Llama-3.1-8B's shapes and random bf16 weights
   (32 layers, hidden 4096, 32 query / 8 KV heads of 128, SwiGLU MLP 14336,
   vocabulary 128256, RMSNorm, RoPE): 8.03 B parameters, 16 GB.
2. Serves requests the way an engine does at batch 1: a static KV cache,
   the whole prompt in one causal forward (prefill), then greedy decoding
   one token at a time, each step replayed from a CUDA graph captured per
   context bucket (``--bucket`` tokens), so a step reads only the filled part
   of the cache, rounded up to the bucket, and its cost grows with context.
   The next token is the argmax of the real logits.
3. Runs 100/300, 1000/1000 and 10000/1500 (input/output tokens), each alone,
   ``--repeats`` times, after an untimed warm-up, and meters each request's
   span with NVML (the board's energy counter; sampled power where the GPU
   has none), after measuring idle power.
4. Describes each request as the streaming client saw it (start, first
   token, last token, token counts) as an ``otm.Telemetry`` and asks
   ``otm.estimate`` for the accelerator-only energy on one H200.

Prints one JSON object on stdout (and writes it to ``$OUT/table4.json`` when
``OUT`` is set); progress goes to stderr. Without torch or a CUDA device it
prints ``{"skipped": reason}`` and exits 0. See docs/measurement.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run from a checkout without installing: the repository root holds the package.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "otm" / "__init__.py").exists() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

try:
    import torch  # type: ignore[import-not-found]
    import torch.nn.functional as F  # type: ignore[import-not-found]
except ImportError:  # the script then reports itself skipped
    torch = None
    F = None

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
REQUESTS = ((100, 300), (1000, 1000), (10000, 1500))
TINY_REQUESTS = ((10, 6), (40, 20), (100, 12))


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    mlp: int
    vocab: int
    rope_theta: float = 500000.0
    eps: float = 1e-5

    @property
    def params(self) -> int:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = self.hidden * (q + 2 * kv) + q * self.hidden + 3 * self.hidden * self.mlp
        return (
            self.layers * (per_layer + 2 * self.hidden) + 2 * self.vocab * self.hidden + self.hidden
        )


LLAMA_8B = Shape(
    layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, mlp=14336, vocab=128256
)
TINY = Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, mlp=128, vocab=512)


class Layer:
    def __init__(self, w: Callable[..., Any], ones: Callable[[int], Any], s: Shape) -> None:
        q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
        self.wqkv = w(q + 2 * kv, s.hidden)
        self.wo = w(s.hidden, q)
        self.wgu = w(2 * s.mlp, s.hidden)  # gate and up projections, one matrix
        self.wd = w(s.hidden, s.mlp)
        self.n1 = ones(s.hidden)
        self.n2 = ones(s.hidden)


def _rope(x: Any, cos: Any, sin: Any) -> Any:
    """Rotary embedding, rotate-half convention; cos/sin broadcast over heads."""
    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rot * sin


class Decoder:
    """A Llama-shaped decoder with random weights and a static KV cache of ``max_len`` tokens.

    State lives in fixed tensors (``token``, ``pos``, the cache) so that one
    decode step can be captured in a CUDA graph and replayed: ``prefill``
    fills the cache and samples the first token; each ``step(bucket)`` feeds
    ``token`` at position ``pos``, attends over the first ``bucket`` cache
    entries with everything past ``pos`` masked, samples the next token into
    ``token`` and advances ``pos``.
    """

    DECODE_ATTENTION = ("sdpa", "matmul")
    PREFILL_ATTENTION = ("sdpa_gqa", "sdpa_repeat")

    def __init__(self, shape: Shape, device: Any, dtype: Any, max_len: int, seed: int = 0) -> None:
        s = self.s = shape
        self.device, self.dtype, self.max_len = device, dtype, max_len
        gen = torch.Generator(device=device).manual_seed(seed)

        def w(*size: int) -> Any:
            # Small random weights keep activations finite through 32 layers; random
            # bits draw the power real weights do (zeros would draw less).
            return torch.randn(*size, generator=gen, device=device, dtype=dtype).mul_(0.02)

        def ones(n: int) -> Any:
            return torch.ones(n, device=device, dtype=dtype)

        self.embed = w(s.vocab, s.hidden)
        self.layers = [Layer(w, ones, s) for _ in range(s.layers)]
        self.norm = ones(s.hidden)
        self.lm_head = w(s.vocab, s.hidden)
        # (layer, K/V, KV head, position, dim); zeros, so masked-out slots are never NaN
        self.kv = torch.zeros(
            s.layers, 2, s.kv_heads, max_len, s.head_dim, device=device, dtype=dtype
        )
        inv = 1.0 / (
            s.rope_theta ** (torch.arange(0, s.head_dim, 2, device=device).float() / s.head_dim)
        )
        ang = torch.outer(torch.arange(max_len, device=device).float(), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.cos, self.sin = ang.cos().to(dtype), ang.sin().to(dtype)
        self.ar = torch.arange(max_len, device=device)
        self.token = torch.zeros(1, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.logits = torch.zeros(s.vocab, dtype=torch.float32, device=device)
        self.finite = torch.ones((), dtype=torch.bool, device=device)
        self.decode_attention = "sdpa"
        self.prefill_attention = "sdpa_gqa"

    def _norm(self, x: Any, weight: Any) -> Any:
        return F.rms_norm(x, (self.s.hidden,), weight, self.s.eps)

    def _mlp(self, x: Any, layer: Layer) -> Any:
        g, u = F.linear(self._norm(x, layer.n2), layer.wgu).chunk(2, dim=-1)
        return x + F.linear(F.silu(g) * u, layer.wd)

    def _sample(self, x: Any) -> None:
        """Greedy sampling from the last position's logits, into the fixed ``token``."""
        logits = F.linear(self._norm(x, self.norm), self.lm_head).view(-1)
        self.logits.copy_(logits)
        self.finite.logical_and_(torch.isfinite(logits).all())
        self.token.copy_(logits.argmax().view(1, 1))

    def prefill(self, ids: Any) -> None:
        """The whole prompt in one causal forward; writes its K/V and samples the first token."""
        s, n = self.s, ids.shape[1]
        q_dim, qk_heads = s.heads * s.head_dim, s.heads + s.kv_heads
        cos, sin = self.cos[:n, None, :], self.sin[:n, None, :]
        x = F.embedding(ids, self.embed)
        for i, layer in enumerate(self.layers):
            qkv = F.linear(self._norm(x, layer.n1), layer.wqkv)
            qk = _rope(qkv[..., : qk_heads * s.head_dim].view(1, n, qk_heads, s.head_dim), cos, sin)
            q = qk[:, :, : s.heads].transpose(1, 2)
            k = qk[:, :, s.heads :].transpose(1, 2)
            v = qkv[..., qk_heads * s.head_dim :].view(1, n, s.kv_heads, s.head_dim).transpose(1, 2)
            self.kv[i, 0, :, :n] = k[0]
            self.kv[i, 1, :, :n] = v[0]
            o = self._prefill_attend(q, k, v)
            x = x + F.linear(o.transpose(1, 2).reshape(1, n, q_dim), layer.wo)
            x = self._mlp(x, layer)
        self._sample(x[:, -1:])
        self.pos.fill_(n)

    def _prefill_attend(self, q: Any, k: Any, v: Any) -> Any:
        if self.prefill_attention == "sdpa_gqa":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        g = self.s.heads // self.s.kv_heads
        return F.scaled_dot_product_attention(
            q, k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1), is_causal=True
        )

    def step(self, bucket: int) -> None:
        """One decode step over the first ``bucket`` cache positions (``pos`` < ``bucket``)."""
        s = self.s
        q_dim, qk_heads, group = s.heads * s.head_dim, s.heads + s.kv_heads, s.heads // s.kv_heads
        pos = self.pos
        cos, sin = self.cos.index_select(0, pos), self.sin.index_select(0, pos)
        visible = self.ar[:bucket] <= pos  # the filled part of the bucket
        if self.decode_attention == "sdpa":
            mask: Any = visible.view(1, 1, 1, bucket)
        else:
            mask = torch.zeros(bucket, device=self.device).masked_fill_(~visible, -math.inf)
        x = F.embedding(self.token, self.embed)
        for i, layer in enumerate(self.layers):
            qkv = F.linear(self._norm(x, layer.n1), layer.wqkv).view(-1)
            qk = _rope(qkv[: qk_heads * s.head_dim].view(qk_heads, s.head_dim), cos, sin)
            new = torch.stack(
                (qk[s.heads :], qkv[qk_heads * s.head_dim :].view(s.kv_heads, s.head_dim))
            )
            self.kv[i].index_copy_(2, pos, new.unsqueeze(2))
            # The query heads that share a KV head stand in for the query-length axis:
            # each KV head's cache is read once, as a GQA decode kernel does.
            q = qk[: s.heads].view(1, s.kv_heads, group, s.head_dim)
            k = self.kv[i, 0, :, :bucket].unsqueeze(0)
            v = self.kv[i, 1, :, :bucket].unsqueeze(0)
            o = self._decode_attend(q, k, v, mask)
            x = x + F.linear(o.reshape(1, 1, q_dim), layer.wo)
            x = self._mlp(x, layer)
        self._sample(x)
        self.pos.add_(1)

    def _decode_attend(self, q: Any, k: Any, v: Any, mask: Any) -> Any:
        if self.decode_attention == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        scores = (q @ k.transpose(-1, -2)).float() * self.s.head_dim**-0.5 + mask
        return torch.softmax(scores, dim=-1).to(v.dtype) @ v


# --------------------------------------------------------------------------- serving


class Engine:
    """Runs prefill and decode on a :class:`Decoder`, replaying one CUDA graph per context bucket."""

    def __init__(self, dec: Decoder, bucket: int, graphs: bool) -> None:
        self.dec = dec
        self.bucket = bucket
        self.cuda = dec.device.type == "cuda"
        self.use_graphs = graphs and self.cuda
        self.graphs: dict[int, Any] = {}
        self.prefill_s: float | None = None
        self.notes: list[str] = []

    def bucket_for(self, context: int) -> int:
        return min(self.dec.max_len, -(-context // self.bucket) * self.bucket)

    def buckets(self) -> list[int]:
        return sorted({self.bucket_for(c) for c in range(1, self.dec.max_len + 1, self.bucket)})

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.dec.device)

    # --- setup ---

    def _eager_step(self, bucket: int) -> None:
        self.dec.pos.fill_(bucket - 1)  # a valid position inside the bucket
        self.dec.step(bucket)

    def _capture(self, bucket: int) -> Any:
        side = torch.cuda.Stream(self.dec.device)
        side.wait_stream(torch.cuda.current_stream(self.dec.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up on a side stream, as graph capture requires
                self._eager_step(bucket)
        torch.cuda.current_stream(self.dec.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.dec.step(bucket)
        return graph

    def _time(self, fn: Callable[[], None], reps: int) -> float:
        fn()
        self.sync()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        self.sync()
        return (time.perf_counter() - t) / reps

    def choose_attention(self, longest_prompt: int) -> dict[str, Any]:
        """Pick the faster working attention for decode (at the longest context) and for prefill.

        An engine ships tuned attention kernels; torch's SDPA backends differ by
        shape and build, so the faster of two equivalent formulations stands in.
        """
        dec, out = self.dec, {}
        top = self.buckets()[-1]
        timings = self._time_decode(top)
        if self.use_graphs and not any(isinstance(v, float) for v in timings.values()):
            self.use_graphs = False
            self.notes.append(f"no decode step could be captured in a CUDA graph: {timings}")
            log(self.notes[-1])
            timings = self._time_decode(top)
        dec.decode_attention = _fastest(timings, dec.DECODE_ATTENTION[0])
        out["decode"] = {"chosen": dec.decode_attention, "bucket": top, "step_s": timings}
        ids = torch.randint(0, dec.s.vocab, (1, longest_prompt), device=dec.device)
        timings = {}
        for mode in dec.PREFILL_ATTENTION:
            dec.prefill_attention = mode
            try:
                timings[mode] = self._time(lambda: dec.prefill(ids), 2)
            except Exception as exc:
                timings[mode] = f"{type(exc).__name__}: {exc}"
        dec.prefill_attention = _fastest(timings, dec.PREFILL_ATTENTION[0])
        out["prefill"] = {
            "chosen": dec.prefill_attention,
            "tokens": longest_prompt,
            "forward_s": timings,
        }
        return out

    def _time_decode(self, bucket: int) -> dict[str, Any]:
        """Seconds per decode step at ``bucket`` for each attention mode, or why it failed."""
        timings: dict[str, Any] = {}
        for mode in self.dec.DECODE_ATTENTION:
            self.dec.decode_attention = mode
            try:
                if self.use_graphs:
                    g = self._capture(bucket)
                    timings[mode] = self._time(lambda g=g: self._reset_and_replay(g, bucket), 10)
                else:
                    timings[mode] = self._time(lambda: self._eager_step(bucket), 3)
            except Exception as exc:
                timings[mode] = f"{type(exc).__name__}: {exc}"
        return timings

    def _reset_and_replay(self, graph: Any, bucket: int) -> None:
        self.dec.pos.fill_(bucket - 1)
        graph.replay()

    def capture_all(self) -> None:
        """One graph per bucket; on any capture failure, decode runs eagerly (and says so)."""
        if not self.use_graphs:
            return
        try:
            for b in self.buckets():
                self.graphs[b] = self._capture(b)
            for b, g in self.graphs.items():  # first replays upload the graphs
                self._reset_and_replay(g, b)
            self.sync()
        except Exception as exc:
            self.graphs.clear()
            self.use_graphs = False
            self.notes.append(
                f"CUDA graph capture failed, decoding eagerly: {type(exc).__name__}: {exc}"
            )
            log(self.notes[-1])

    # --- serving ---

    def decode(self, context: int) -> None:
        """One step whose context (cached tokens + the one fed) is ``context`` tokens."""
        b = self.bucket_for(context)
        if self.use_graphs:
            self.graphs[b].replay()
        else:
            self.dec.step(b)

    def prefill(self, ids: Any) -> None:
        if self.cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            self.dec.prefill(ids)
            e1.record()
            e1.synchronize()
            self.prefill_s = e0.elapsed_time(e1) / 1000.0
        else:
            t = time.perf_counter()
            self.dec.prefill(ids)
            self.prefill_s = time.perf_counter() - t


def _fastest(timings: dict[str, Any], default: str) -> str:
    ok = {k: v for k, v in timings.items() if isinstance(v, float)}
    return min(ok, key=ok.__getitem__) if ok else default


@dataclass
class Generation:
    """One request as a streaming client saw it: perf_counter times of the start and each token."""

    input_tokens: int
    start: float
    token_times: list[float]
    tokens: list[int]
    prefill_s: float | None
    finite: bool

    @property
    def first(self) -> float:
        return self.token_times[0]

    @property
    def last(self) -> float:
        return self.token_times[-1]

    def itls(self) -> list[float]:
        t = self.token_times
        return [b - a for a, b in zip(t, t[1:])]


def generate(engine: Engine, ids: Any, output_tokens: int) -> Generation:
    """Prefill, then greedy decode; every token is read back to the host, as a stream delivers it."""
    dec = engine.dec
    n = ids.shape[1]
    dec.finite.fill_(True)
    engine.sync()
    start = time.perf_counter()
    engine.prefill(ids)
    tokens = [int(dec.token.item())]
    times = [time.perf_counter()]
    for i in range(1, output_tokens):
        engine.decode(n + i)  # feeds the token at position n + i - 1
        tokens.append(int(dec.token.item()))
        times.append(time.perf_counter())
    return Generation(n, start, times, tokens, engine.prefill_s, bool(dec.finite.item()))


# --------------------------------------------------------------------------- metering and estimating


def _nvml_device(cuda_index: int | None, interval_s: float) -> tuple[Any, Any, list[str]]:
    """(GpuMeter, GpuInfo) for the CUDA device, or (None, None, [why])."""
    from otm.measure import GpuMeter, MeasurementUnavailable, list_devices

    try:
        devices = list_devices()
    except MeasurementUnavailable as exc:
        return None, None, [f"no NVML metering: {exc}"]
    if not devices:
        return None, None, ["no NVML metering: NVML sees no device"]
    info, notes = devices[0], []
    if cuda_index is not None and torch is not None and torch.cuda.is_available():
        try:
            uuid = str(torch.cuda.get_device_properties(cuda_index).uuid).removeprefix("GPU-")
        except Exception:  # an older torch without it: fall back on the index below
            uuid = "?"
        match = [d for d in devices if d.uuid and d.uuid.removeprefix("GPU-") == uuid]
        if match:
            info = match[0]
        elif len(devices) > 1:
            info = next((d for d in devices if d.index == cuda_index), devices[0])
            notes.append("could not match CUDA and NVML devices by UUID; assumed the same index")
    # not required: a reading that fails later costs that request's figure, not the run
    return GpuMeter(devices=[info.index], interval_s=interval_s, required=False), info, notes


def _range_j(r: Any) -> dict[str, float]:
    return {"value": r.value * 3600.0, "low": r.low * 3600.0, "high": r.high * 3600.0}


def _find(d: Any, word: str, path: str = "") -> dict[str, Any]:
    """Every entry of a nested dict whose key mentions ``word`` (the assumptions' layout may change)."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            p = f"{path}.{k}" if path else str(k)
            if word in str(k).lower():
                out[p] = v
            else:
                out.update(_find(v, word, p))
    return out


def assumed(impact: Any) -> dict[str, Any]:
    """What otm says it assumed, in brief: method, batch, engine, precision, observed speed, warnings."""
    a = impact.assumptions
    out = {k: a[k] for k in ("method", "effective_batch", "observed") if k in a}
    out["engine"] = _find(a, "engine")
    out["precision"] = _find(a, "precision")
    out["accelerator"] = (a.get("deployment") or {}).get("accelerator")
    out["warnings"] = list(impact.warnings)
    return out


def estimate(gen: Generation, output_tokens: int, accelerator: str, to_unix: float) -> Any:
    import otm

    first, last = gen.first + to_unix, gen.last + to_unix
    tel = otm.Telemetry(
        provider="local",
        model=MODEL,
        start_time=gen.start + to_unix,
        first_chunk_time=first,
        first_token_time=first,
        last_token_time=last,
        end_time=last,
        input_tokens=gen.input_tokens,
        output_tokens=output_tokens,
        streamed=True,
        chunk_count=output_tokens,
    )
    return otm.estimate(
        tel, deployment=otm.Deployment.accelerator_only(accelerator, 1, provider="local")
    )


def _pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def describe(
    gen: Generation, m: Any, to_unix: float, accelerators: Sequence[str]
) -> dict[str, Any]:
    """One run of one request: timings, the measured span energy, and otm's estimates."""
    itl = gen.itls()
    span = gen.last - gen.start
    row: dict[str, Any] = {
        "start_time": gen.start + to_unix,
        "ttft_s": gen.first - gen.start,
        "prefill_s": gen.prefill_s,
        "decode_s": gen.last - gen.first,
        "duration_s": span,
        "itl_ms": 1000.0 * statistics.fmean(itl) if itl else None,
        "itl_ms_median": 1000.0 * statistics.median(itl) if itl else None,
        "itl_ms_p90": 1000.0 * _pct(itl, 0.9) if itl else None,
        "activations_finite": gen.finite,
        "distinct_tokens": len(set(gen.tokens)),
        "measured_j": None,
    }
    if m is not None:
        span_j = m.energy_between(gen.start + to_unix, gen.last + to_unix)
        idle = m.idle_power_w
        row.update(
            measured_j=span_j,
            mean_power_w=span_j / span if span > 0 else None,
            dynamic_j=None if idle is None else max(0.0, span_j - idle * span),
            window_j=m.energy_j,
            window_s=m.duration_s,
            peak_power_w=m.peak_power_w,
            meter_method=m.method,
            meter_warnings=list(m.warnings),
        )
    estimates: dict[str, Any] = {}
    for name in accelerators:
        try:
            impact = estimate(gen, len(gen.tokens), name, to_unix)
        except Exception as exc:
            estimates[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        e = _range_j(impact.energy_wh)
        entry: dict[str, Any] = {"energy_j": e, "assumed": assumed(impact)}
        if row["measured_j"]:
            entry["ratio"] = e["value"] / row["measured_j"]
            entry["within_range"] = e["low"] <= row["measured_j"] <= e["high"]
        estimates[name] = entry
    row["estimates"] = estimates
    return row


def summarise(runs: list[dict[str, Any]], primary: str) -> dict[str, Any]:
    """Medians over the repeats of one request (each field on its own)."""

    def med(get: Callable[[dict[str, Any]], Any]) -> float | None:
        xs = []
        for r in runs:
            try:
                x = get(r)
            except (KeyError, TypeError):
                continue
            if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
                xs.append(float(x))
        return statistics.median(xs) if xs else None

    est = lambda k: lambda r: r["estimates"][primary]["energy_j"][k]
    out = {
        k: med(lambda r, k=k: r[k])
        for k in (
            "measured_j",
            "ttft_s",
            "prefill_s",
            "itl_ms",
            "mean_power_w",
            "dynamic_j",
            "duration_s",
        )
    }
    out["estimated_j"] = {k: med(est(k)) for k in ("value", "low", "high")}
    out["ratio"] = med(lambda r: r["estimates"][primary]["ratio"])
    within = [
        r["estimates"][primary].get("within_range") for r in runs if primary in r["estimates"]
    ]
    out["within_range"] = [w for w in within if w is not None]
    return out


# --------------------------------------------------------------------------- the run


def skipped(reason: str) -> dict[str, Any]:
    return {"skipped": reason}


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_begin = time.monotonic()
    if torch is None:
        return skipped("torch is not installed")
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if not args.tiny and not cuda:
        return skipped("torch sees no CUDA device")
    if args.device == "cuda" and not torch.cuda.is_available():
        return skipped("--device cuda, but torch sees no CUDA device")
    device = torch.device("cuda", args.cuda_index) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    shape = TINY if args.tiny else LLAMA_8B
    dtype = torch.float32 if (args.tiny and not cuda) else torch.bfloat16
    requests = (
        [tuple(int(x) for x in r.split(":")) for r in args.requests]
        if args.requests
        else (list(TINY_REQUESTS if args.tiny else REQUESTS))
    )
    bucket = args.bucket or (16 if args.tiny else 512)
    warnings: list[str] = []
    torch.manual_seed(args.seed)

    meter = info = None
    if args.meter:
        meter, info, notes = _nvml_device(args.cuda_index if cuda else None, args.interval)
        warnings += notes
    gpu_name = torch.cuda.get_device_name(device) if cuda else None
    log(f"device: {gpu_name or 'cpu'}; NVML: {info.name if info else 'off'}; shape: {shape}")

    longest = max(i + o for i, o in requests)
    max_len = -(-longest // bucket) * bucket
    t = time.monotonic()
    dec = Decoder(shape, device, dtype, max_len, seed=args.seed)
    engine = Engine(dec, bucket, graphs=not args.no_graphs)
    log(
        f"built {shape.params / 1e9:.2f} B params, KV cache {max_len} tokens, in {time.monotonic() - t:.1f} s"
    )

    t = time.monotonic()
    attention = engine.choose_attention(max(i for i, _ in requests))
    engine.capture_all()
    warnings += engine.notes
    log(
        f"attention {attention['decode']['chosen']} / {attention['prefill']['chosen']}; "
        f"{len(engine.graphs)} graphs; setup {time.monotonic() - t:.1f} s"
    )

    def prompt(n: int) -> Any:
        return torch.randint(0, shape.vocab, (1, n), device=device)

    generate(engine, prompt(min(512, max_len // 2)), min(32, max_len // 2))  # untimed warm-up
    for n, _ in requests:  # and each prompt length's prefill kernels
        engine.prefill(prompt(n))
    engine.sync()

    idle_w = None
    if meter is not None:
        time.sleep(args.settle)
        idle_w = meter.measure_idle(args.idle_seconds).get(info.index)
        log(f"idle: {idle_w:.1f} W" if idle_w is not None else "idle: unreadable")

    to_unix = time.time() - time.perf_counter()
    accelerators = [args.accelerator]
    if info is not None and info.name != args.accelerator:
        accelerators.append(info.name)
    gens: list[list[tuple[Generation, Any]]] = [[] for _ in requests]
    for rep in range(args.repeats):
        if rep and time.monotonic() - t_begin > args.budget:
            warnings.append(f"time budget of {args.budget:.0f} s spent after {rep} repeat(s)")
            break
        for k, (n_in, n_out) in enumerate(requests):
            ids = prompt(n_in)
            engine.sync()
            time.sleep(args.gap)  # each request alone, on a quiet board
            m = None
            if meter is not None:
                meter.start()
            try:
                g = generate(engine, ids, n_out)
            except Exception as exc:  # keep the other requests' figures
                warnings.append(f"repeat {rep + 1} {n_in}/{n_out}: {type(exc).__name__}: {exc}")
                log(warnings[-1])
                continue
            finally:
                if meter is not None:
                    m = meter.stop()
            gens[k].append((g, m))
            itl = g.itls()
            log(
                f"repeat {rep + 1} {n_in}/{n_out}: ttft {1000 * (g.first - g.start):.1f} ms, "
                f"itl {1000 * statistics.fmean(itl) if itl else float('nan'):.2f} ms, "
                f"{'n/a' if m is None else format(m.energy_between(g.start + to_unix, g.last + to_unix), '.1f')} J"
            )

    table = []
    for (n_in, n_out), runs in zip(requests, gens):
        rows = [describe(g, m, to_unix, accelerators) for g, m in runs]
        first_est = rows[0]["estimates"].get(accelerators[0], {}) if rows else {}
        table.append(
            {
                "request": f"{n_in}/{n_out}",
                "input_tokens": n_in,
                "output_tokens": n_out,
                **summarise(rows, accelerators[0]),
                "assumed": first_est.get("assumed"),
                "repeats": rows,
            }
        )
    ratios = [r["ratio"] for r in table if r.get("ratio")]
    driver = next((m.driver_version for runs in gens for _, m in runs if m is not None), None)
    result = {
        "what": "each request alone at batch 1: NVML-measured GPU board energy vs otm's accelerator-only estimate",
        "model": MODEL,
        "tiny": bool(args.tiny),
        "shape": {**dataclasses.asdict(shape), "params": shape.params},
        "device": {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "name": gpu_name or "cpu",
            "nvml": None
            if info is None
            else {
                "index": info.index,
                "name": info.name,
                "power_limit_w": info.power_limit_w,
                "energy_counter": info.energy_counter,
                "power_reading": info.power_reading,
                "driver": driver,
            },
        },
        "settings": {
            "dtype": str(dtype).removeprefix("torch."),
            "bucket": bucket,
            "cuda_graphs": engine.use_graphs,
            "graphs": len(engine.graphs),
            "attention": attention,
            "repeats": args.repeats,
            "gap_s": args.gap,
            "accelerators_asked": accelerators,
        },
        "idle_power_w": idle_w,
        "requests": table,
        "geomean_ratio": math.exp(statistics.fmean(math.log(r) for r in ratios))
        if ratios
        else None,
        "elapsed_s": time.monotonic() - t_begin,
        "warnings": warnings,
    }
    log(render(result))
    return result


def _f(x: Any, spec: str) -> str:
    return "n/a" if not isinstance(x, (int, float)) else format(x, spec)


def render(r: dict[str, Any]) -> str:
    """The result as a short text table (the figures docs/validation.md takes)."""
    if "skipped" in r or "error" in r:
        return f"table4: {'skipped' if 'skipped' in r else 'error'}: {r.get('skipped') or r.get('error')}"
    st = r["settings"]
    att = st["attention"]
    first = next((q["repeats"][0] for q in r["requests"] if q["repeats"]), {})
    lines = [
        f"table4: {r['device']['name']} ({st['dtype']}, CUDA graphs {st['cuda_graphs']}, attention "
        f"{att['decode']['chosen']}/{att['prefill']['chosen']}); energy {first.get('meter_method') or 'not metered'}, "
        f"idle {_f(r['idle_power_w'], '.0f')} W; "
        f"{st['repeats']} repeat(s); estimate for {st['accelerators_asked'][0]}",
        f"{'request':>11} {'measured J':>10} {'estimated J [low-high]':>27} {'est/meas':>8} "
        f"{'ITL ms':>7} {'TTFT s':>7} {'prefill s':>9} {'mean W':>7}",
    ]
    for q in r["requests"]:
        e = q["estimated_j"]
        est = f"{_f(e['value'], '.0f')} [{_f(e['low'], '.0f')}-{_f(e['high'], '.0f')}]"
        lines.append(
            f"{q['request']:>11} {_f(q['measured_j'], '.1f'):>10} {est:>27} {_f(q['ratio'], '.2f'):>8} "
            f"{_f(q['itl_ms'], '.2f'):>7} {_f(q['ttft_s'], '.3f'):>7} {_f(q['prefill_s'], '.3f'):>9} "
            f"{_f(q['mean_power_w'], '.0f'):>7}"
        )
    for q in r["requests"]:
        a = q.get("assumed") or {}
        b = a.get("effective_batch") or {}
        lines.append(
            f"  {q['request']}: otm assumed method {a.get('method')}, batch {_f(b.get('value'), '.3g')} "
            f"[{_f(b.get('low'), '.3g')}-{_f(b.get('high'), '.3g')}]; "
            + ("; ".join(w[:120] for w in a.get("warnings", [])) or "no warnings")
        )
    lines.append(
        f"geomean estimate/measured: {_f(r['geomean_ratio'], '.2f')}; {r['elapsed_s']:.0f} s"
    )
    lines += [f"warning: {w}" for w in r.get("warnings", [])]
    return "\n".join(lines)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--tiny", action="store_true", help="2-layer toy, short requests, no NVML")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--cuda-index", type=int, default=int(os.environ.get("OTM_BENCH_DEVICE", "0")))
    p.add_argument(
        "--requests", nargs="+", metavar="IN:OUT", help="default: 100:300 1000:1000 10000:1500"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--bucket", type=int, default=None, help="context bucket per CUDA graph (default 512)"
    )
    p.add_argument("--no-graphs", action="store_true", help="decode eagerly")
    p.add_argument("--accelerator", default="H200", help="accelerator named to the estimator")
    p.add_argument("--idle-seconds", type=float, default=5.0)
    p.add_argument("--settle", type=float, default=2.0, help="wait before measuring idle, s")
    p.add_argument("--interval", type=float, default=0.02, help="power sampling interval, s")
    p.add_argument(
        "--gap",
        type=float,
        default=None,
        help="pause before each request, s (default 1, 0 with --tiny)",
    )
    p.add_argument("--budget", type=float, default=240.0, help="start no repeat after this many s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show", metavar="JSON", help="print the table of a saved result and exit")
    meter = p.add_mutually_exclusive_group()
    meter.add_argument(
        "--meter",
        dest="meter",
        action="store_true",
        default=None,
        help="meter with NVML (default unless --tiny)",
    )
    meter.add_argument("--no-meter", dest="meter", action="store_false")
    args = p.parse_args(argv)
    if args.meter is None:
        args.meter = not args.tiny
    if args.gap is None:
        args.gap = 0.0 if args.tiny else 1.0
    if args.requests:
        for r in args.requests:
            parts = r.split(":")
            if (
                len(parts) != 2
                or not all(x.isdigit() for x in parts)
                or int(parts[0]) < 1
                or int(parts[1]) < 2
            ):
                p.error(f"--requests takes IN:OUT with IN >= 1 and OUT >= 2, not {r!r}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.show:
        try:
            print(render(json.loads(Path(args.show).read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"table4: no result to show in {args.show}: {type(exc).__name__}: {exc}")
            return 1
        return 0
    try:
        result = run(args)
    except (
        Exception
    ) as exc:  # one JSON object whatever happens, so a one-shot GPU run is never silent
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    text = json.dumps(result, indent=2, default=str)
    print(text, flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out, "table4.json").write_text(text + "\n")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())

"""Check otm's accelerator-only estimate against NVML on a real NVIDIA GPU.

    python bench/nvml_validate.py                 # about 2 minutes on one GPU
    python bench/nvml_validate.py --batches 1 64 --seconds 10

What it does, on one GPU, with torch only (no model download):

1. Builds a synthetic decoder the size of a known model (by default
   Llama-3.1-8B: 8.03 B parameters in bf16, 128 KiB of KV cache per token):
   a stack of square weight matrices holding the same number of bytes, and a
   KV tensor of the size a batch's cache would have. One decode step reads
   every weight once and every sequence's KV once, and does 2 x params x
   batch FLOPs: the roofline of a real decode step, without attention's
   arithmetic or the serving engine's overheads.
2. Measures the idle board power, then for each batch size runs "waves":
   a prefill of ``batch x input_tokens`` tokens, then ``output_tokens``
   decode steps, metered with ``otm.measure.GpuMeter``.
3. Describes every sequence of every wave as an otm ``Telemetry`` (start,
   first token, last token, tokens) and reconciles the measurement with the
   estimator's accelerator-only prediction (``otm.measure.reconcile``):
   once letting the estimator infer the batch from the observed speed, once
   telling it the batch.

Prints one JSON object on stdout (progress goes to stderr). Without an NVIDIA
GPU, NVML or torch it prints ``no NVIDIA GPU: skipped`` (with the reason) and
exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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


@dataclass(frozen=True)
class Preset:
    """A real model whose decode the synthetic workload imitates."""

    model: str
    params: float
    kv_bytes_per_token: int
    """2 (K and V) x layers x KV heads x head dim x 2 bytes (bf16)."""


PRESETS = {
    # 32 layers x 8 KV heads x 128 dims x 2 x 2 B = 131072 B per token
    "8b": Preset("meta-llama/Llama-3.1-8B-Instruct", 8.03e9, 131072),
    # 16 layers x 8 KV heads x 64 dims x 2 x 2 B = 32768 B per token
    "1b": Preset("meta-llama/Llama-3.2-1B-Instruct", 1.24e9, 32768),
}

HIDDEN = 8192  # square matrices this wide: large enough for full-bandwidth GEMMs


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def skipped(reason: str) -> dict[str, Any]:
    return {"skipped": f"no NVIDIA GPU: skipped ({reason})"}


# --------------------------------------------------------------------------- workload


class DecodeWorkload:
    """Synthetic prefill + decode of a dense decoder of ``params`` bf16 parameters on one CUDA device."""

    def __init__(self, torch: Any, device: int, params: float, kv_bytes_per_token: int) -> None:
        self.torch = torch
        self.dev = torch.device("cuda", device)
        self.layers = max(1, round(params / (HIDDEN * HIDDEN)))
        self.params = self.layers * HIDDEN * HIDDEN
        # Random weights scaled by 1/sqrt(width) keep activations O(1) through the stack:
        # bit patterns matter to power, and NaN/inf or all-zero data would draw less.
        w = torch.randn(self.layers, HIDDEN, HIDDEN, dtype=torch.bfloat16, device=self.dev)
        w.mul_(HIDDEN**-0.5)
        self.w = w
        self.kv_elems = kv_bytes_per_token // 2
        self.kv: Any = None
        self.q: Any = None
        self.x: Any = None
        self._scores: Any = None
        self._out: Any = None
        self._sink: Any = None

    def prepare(self, batch: int, context: int) -> None:
        """Allocate the batch's KV cache (``context`` tokens per sequence) and activations."""
        t = self.torch
        self.kv = None  # free the previous batch's cache before allocating this one
        self.kv = t.randn(batch, context, self.kv_elems, dtype=t.bfloat16, device=self.dev)
        self.q = t.randn(batch, 1, self.kv_elems, dtype=t.bfloat16, device=self.dev)
        self.x = t.randn(batch, HIDDEN, dtype=t.bfloat16, device=self.dev)

    def prefill(self, batch: int, tokens: int) -> None:
        t = self.torch
        x = t.randn(batch * tokens, HIDDEN, dtype=t.bfloat16, device=self.dev)
        for i in range(self.layers):
            x = x @ self.w[i]
        self._sink = x[:1]

    def decode_step(self) -> None:
        # Every step starts from the same random activations: chaining steps would let
        # their scale drift over hundreds of thousands of products.
        x = self.x
        for i in range(self.layers):
            x = x @ self.w[i]
        # Attention's memory traffic: every sequence's whole KV cache is read once per step.
        self._scores = self.torch.bmm(self.q, self.kv.transpose(1, 2))
        self._out = x

    def sync(self) -> None:
        self.torch.cuda.synchronize(self.dev)

    def release(self) -> None:
        self.kv = self.q = self.x = None
        self._scores = self._out = self._sink = None
        self.torch.cuda.empty_cache()


@dataclass
class Wave:
    start: float
    first_token: float
    last_token: float
    batch: int
    input_tokens: int
    output_tokens: int


def run_waves(
    work: Any, batch: int, input_tokens: int, output_tokens: int, seconds: float
) -> list[Wave]:
    """Prefill + decode waves until ``seconds`` have passed; times are unix seconds at device sync points."""
    waves: list[Wave] = []
    t_end = time.time() + seconds
    while not waves or time.time() < t_end:
        work.sync()
        start = time.time()
        work.prefill(batch, input_tokens)
        work.decode_step()  # the first token comes out of the first step after prefill
        work.sync()
        first = time.time()
        for _ in range(output_tokens - 1):
            work.decode_step()
        work.sync()
        waves.append(Wave(start, first, time.time(), batch, input_tokens, output_tokens))
    return waves


def telemetry_records(waves: Sequence[Wave], model: str, deployment: Any) -> list[Any]:
    """One otm Record per sequence of every wave, as a client of a local server would have seen it."""
    from otm.record import Record
    from otm.telemetry import Telemetry

    out = []
    for w in waves:
        for _ in range(w.batch):
            t = Telemetry(
                provider="local",
                model=model,
                start_time=w.start,
                first_chunk_time=w.first_token,
                first_token_time=w.first_token,
                last_token_time=w.last_token,
                end_time=w.last_token,
                input_tokens=w.input_tokens,
                output_tokens=w.output_tokens,
                streamed=True,
            )
            out.append(Record(t, deployment=deployment))
    return out


# --------------------------------------------------------------------------- the run


def _nvml_index_for(torch: Any, cuda_index: int, devices: Sequence[Any]) -> tuple[int, str | None]:
    """NVML's index of a CUDA device (their orders differ under CUDA_VISIBLE_DEVICES / FASTEST_FIRST)."""
    try:
        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
        for d in devices:
            if d.uuid and d.uuid.removeprefix("GPU-").removeprefix("MIG-") == uuid.removeprefix(
                "GPU-"
            ):
                return d.index, None
    except Exception:
        pass
    if len(devices) == 1:
        return devices[0].index, None
    return cuda_index, "could not match CUDA and NVML devices by UUID; assumed the same index"


def _reconcile_summary(rec: Any) -> dict[str, Any]:
    est = rec.estimated_wh
    ratios = rec.per_request_ratios
    return {
        "estimated_wh": None
        if est is None
        else {"value": est.value, "low": est.low, "high": est.high},
        "compared_wh": rec.compared_wh,
        "ratio": rec.ratio,
        "ratio_range": None if rec.ratio_range is None else list(rec.ratio_range),
        "within_range": rec.within_range,
        "median_request_ratio": None if not ratios else sorted(ratios)[len(ratios) // 2],
        "skipped": rec.skipped,
        "warnings": list(rec.warnings),
    }


def run(
    args: argparse.Namespace,
    *,
    workload: Any = None,
    estimator: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    from otm.measure import GpuMeter, MeasurementUnavailable, list_devices, reconcile

    t_begin = time.monotonic()
    try:
        devices = list_devices()
    except MeasurementUnavailable as exc:
        return skipped(str(exc))
    if not devices:
        return skipped("NVML sees no device")

    torch = None
    if workload is None:
        try:
            import torch as _torch  # type: ignore[import-not-found]
        except ImportError:
            return skipped("torch is not installed")
        if not _torch.cuda.is_available():
            return skipped("torch sees no CUDA device")
        torch = _torch

    warnings: list[str] = []
    if torch is not None:
        nvml_index, warn = _nvml_index_for(torch, args.device, devices)
        if warn:
            warnings.append(warn)
    else:
        nvml_index = args.device
    info = next((d for d in devices if d.index == nvml_index), devices[0])
    mem_gib = (info.memory_total_bytes or 0) / 2**30
    preset = (
        PRESETS[args.preset] if args.preset != "auto" else PRESETS["8b" if mem_gib >= 40 else "1b"]
    )
    model = args.model or preset.model
    log(
        f"GPU {info.index}: {info.name}, {mem_gib:.0f} GiB, limit {info.power_limit_w} W, "
        f"energy counter: {info.energy_counter}; imitating {preset.model}"
    )

    if workload is None:
        try:
            workload = DecodeWorkload(torch, args.device, preset.params, preset.kv_bytes_per_token)
        except Exception as exc:  # weights that do not fit: say so in the result, do not crash
            return {"error": f"could not build the workload: {type(exc).__name__}: {exc}"}
    meter = GpuMeter(devices=[info.index], interval_s=args.interval)
    workload.sync()
    if torch is not None:
        time.sleep(1.0)  # let clocks and power settle after filling the weights
    idle = meter.measure_idle(args.idle_seconds)
    log(f"idle: {idle.get(info.index, float('nan')):.1f} W")

    from otm.deployment import Deployment

    runs: list[dict[str, Any]] = []
    for batch in args.batches:
        if time.monotonic() - t_begin > args.budget:
            warnings.append(
                f"time budget of {args.budget:.0f} s spent: batches from {batch} on not run"
            )
            break
        entry: dict[str, Any] = {"batch": batch}
        try:
            context = args.input_tokens + args.output_tokens // 2  # mean KV length over decode
            workload.prepare(batch, context)
            run_waves(
                workload, batch, args.input_tokens, min(args.output_tokens, 16), 0.0
            )  # warm-up
            with meter:
                waves = run_waves(
                    workload, batch, args.input_tokens, args.output_tokens, args.seconds
                )
            m = meter.result
            assert m is not None
        except Exception as exc:  # out of memory at a large batch must not lose the others
            entry["error"] = f"{type(exc).__name__}: {exc}"
            log(f"batch {batch}: {entry['error']}")
            runs.append(entry)
            try:
                workload.release()
            except Exception:
                pass
            continue
        decode_s = sum(w.last_token - w.first_token for w in waves)
        steps = sum(w.output_tokens - 1 for w in waves)
        out_tokens = sum(w.batch * w.output_tokens for w in waves)
        entry.update(
            waves=len(waves),
            window_s=m.duration_s,
            measured={
                "method": m.method,
                "energy_wh": m.energy_wh,
                "mean_power_w": m.mean_power_w,
                "peak_power_w": m.peak_power_w,
                "idle_power_w": m.idle_power_w,
                "dynamic_energy_wh": m.dynamic_energy_wh,
                "samples": m.samples,
                "warnings": list(m.warnings),
            },
            step_ms=1000.0 * decode_s / steps if steps else None,
            output_tokens_per_s=out_tokens / m.duration_s if m.duration_s > 0 else None,
            measured_mj_per_output_token=1e6 * m.energy_wh * 3.6 / out_tokens
            if out_tokens
            else None,
        )
        for label, dep in (
            ("inferred_batch", Deployment.accelerator_only(info.name, 1)),
            ("known_batch", Deployment.accelerator_only(info.name, 1, batch=float(batch))),
        ):
            records = telemetry_records(waves, model, dep)
            try:
                rec = reconcile(records, m, accelerator=info.name, count=1, estimator=estimator)
                entry[label] = _reconcile_summary(rec)
                if label == "inferred_batch":
                    entry["measured_active_wh"] = rec.active_wh
                    entry["measured_gap_wh"] = rec.gap_wh
            except Exception as exc:
                entry[label] = {"error": f"{type(exc).__name__}: {exc}"}
        ratio = entry.get("inferred_batch", {}).get("ratio")
        log(
            f"batch {batch}: {len(waves)} waves, {m.mean_power_w:.0f} W mean, "
            f"step {entry['step_ms'] or float('nan'):.2f} ms, measured {m.energy_wh:.4f} Wh, "
            f"measured/estimated {'n/a' if ratio is None else format(ratio, '.2f')}"
        )
        runs.append(entry)
        workload.release()

    ratios = [
        r["inferred_batch"]["ratio"]
        for r in runs
        if isinstance(r.get("inferred_batch"), dict) and r["inferred_batch"].get("ratio")
    ]
    return {
        "device": {
            "nvml_index": info.index,
            "name": info.name,
            "uuid": info.uuid,
            "power_limit_w": info.power_limit_w,
            "memory_gib": round(mem_gib, 1),
            "energy_counter": info.energy_counter,
        },
        "imitates": {
            "model": model,
            "params": getattr(workload, "params", preset.params),
            "kv_bytes_per_token": preset.kv_bytes_per_token,
        },
        "idle_power_w": idle.get(info.index),
        "settings": {
            "batches": list(args.batches),
            "input_tokens": args.input_tokens,
            "output_tokens": args.output_tokens,
            "seconds": args.seconds,
            "interval_s": args.interval,
        },
        "runs": runs,
        "geomean_ratio": math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        if ratios
        else None,
        "elapsed_s": time.monotonic() - t_begin,
        "warnings": warnings,
    }


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--device",
        type=int,
        default=int(os.environ.get("OTM_BENCH_DEVICE", "0")),
        help="CUDA index",
    )
    p.add_argument("--preset", choices=["auto", *PRESETS], default="auto")
    p.add_argument(
        "--model", default=None, help="model name given to the estimator (default: the preset's)"
    )
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    p.add_argument("--input-tokens", type=int, default=512)
    p.add_argument("--output-tokens", type=int, default=256)
    p.add_argument("--seconds", type=float, default=15.0, help="metered time per batch size")
    p.add_argument("--idle-seconds", type=float, default=3.0)
    p.add_argument("--interval", type=float, default=0.05, help="power sampling interval, s")
    p.add_argument(
        "--budget", type=float, default=240.0, help="stop starting batches after this many s"
    )
    args = p.parse_args(argv)
    if args.output_tokens < 2 or args.input_tokens < 1:
        p.error("need --input-tokens >= 1 and --output-tokens >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    result = run(parse(argv))
    if "skipped" in result:
        print(result["skipped"], flush=True)
        return 0
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

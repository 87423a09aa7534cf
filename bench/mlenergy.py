"""The ML.ENERGY measurements otm is calibrated and validated on, as otm inputs.

Two engine generations (docs/validation.md):

* leaderboard v2 (``bench/calibration/mlenergy_v2/``): vLLM 0.4.2 on A100-40GB
  and H100, five models, chat prompts, mean time per output token;
* leaderboard v3, GPQA task (``bench/calibration/mlenergy_v3/gpqa.json``):
  vLLM 0.11.1 on H100 and B200, dense, MoE and hybrid models in bf16, FP8 and
  MXFP4, long reasoning outputs, median inter-token latency.

Each configuration becomes what a client of that server would see - one
streamed request of the configuration's mean output length at its
inter-token latency - plus the deployment a user would declare
(``Deployment.accelerator_only(gpu, count, engine=...)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
V2_DIR = ROOT / "bench" / "calibration" / "mlenergy_v2"
V3_FILE = ROOT / "bench" / "calibration" / "mlenergy_v3" / "gpqa.json"

V2_INPUT_TOKENS = 200
"""Mean prompt of v2's ShareGPT chat prompts: not published; ESTIMATE (docs/validation.md)."""
V3_INPUT_TOKENS = 350
"""Mean GPQA Diamond prompt with its chat template: not published per configuration
(the README says a few hundred tokens); ESTIMATE."""


@dataclass(frozen=True)
class Point:
    """One measured configuration."""

    dataset: str  # "v2" | "v3"
    model: str
    gpu: str
    count: int
    expert_parallel: bool
    engine: str
    precision: str | None
    itl_s: float
    """Observed step: v2 mean TPOT, v3 median ITL."""
    batch: float
    """Effective batch: throughput x step (the time-averaged sequences decoding)."""
    output_tokens: float
    input_tokens: float
    energy_j: float
    """GPU energy per request (all GPUs of the instance), measured."""
    power_w: float
    """Mean power per GPU, measured."""
    max_batch: float

    @property
    def key(self) -> str:
        return f"{self.dataset}:{self.gpu}:{self.model}:{self.count}:{self.max_batch:g}:{self.itl_s:.6g}"


def load_v2(directory: Path = V2_DIR) -> list[Point]:
    out = []
    for f in sorted(directory.glob("*.json")):
        r = json.loads(f.read_text(encoding="utf-8"))
        n = int(r["TP"]) * int(r["PP"])
        tpot = float(r["Avg TPOT (s)"])
        tput = float(r["Token tput (tok/s)"])
        out_tok = float(r["Avg Output Tokens"])
        e = float(r["Energy/req (J)"])
        out.append(
            Point(
                dataset="v2",
                model=r["Model"],
                gpu=r["GPU"],
                count=n,
                expert_parallel=False,
                engine="vllm-0.4",
                precision=None,
                itl_s=tpot,
                batch=tput * tpot,
                output_tokens=out_tok,
                input_tokens=V2_INPUT_TOKENS,
                energy_j=e,
                power_w=e * tput / out_tok / n,
                max_batch=float(r["Max BS (reqs)"]),
            )
        )
    return out


def load_v3(path: Path = V3_FILE) -> list[Point]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for r in data["configurations"]:
        n = int(r["num_gpus"])
        itl = float(r["median_itl_ms"]) / 1000.0
        tput = float(r["output_throughput_tokens_per_sec"])
        prec = str(r.get("weight_precision") or "").lower()
        out.append(
            Point(
                dataset="v3",
                model=r["model_id"],
                gpu=r["gpu_model"],
                count=n,
                expert_parallel=int(r.get("expert_parallel") or 1) > 1,
                engine="vllm",
                # the checkpoint's precision, as its id or card states it
                precision={"bfloat16": "bf16", "float8": "fp8"}.get(prec, prec or None),
                itl_s=itl,
                batch=tput * itl,
                output_tokens=float(r["avg_output_len"]),
                input_tokens=V3_INPUT_TOKENS,
                energy_j=float(r["energy_per_request_joules"]),
                power_w=float(r["avg_power_watts"]) / n,
                max_batch=float(r["max_num_seqs"]),
            )
        )
    return out


def load_points() -> list[Point]:
    """Every configuration of both generations (v2 then v3)."""
    return load_v2() + load_v3()


def model_family(p: Point) -> str:
    """The otm model id a configuration resolves to (one per model, across precisions)."""
    from otm.data import find_model

    spec = find_model(p.model)
    return spec.id if spec is not None else p.model


def gpu_type(p: Point) -> str:
    from otm.data import find_accelerator

    spec = find_accelerator(p.gpu)
    return spec.id if spec is not None else p.gpu

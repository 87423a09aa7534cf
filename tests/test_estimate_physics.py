"""The estimator's physics pieces on their own: precision from ids, engines, the step model.

Each test checks a property the estimate rests on (docs/methodology.md): the
precision a checkpoint's id states, which engine profile a name selects, that
inverting the step model gives back the batch it was evaluated at, that a
MoE step reads more experts as the batch grows, and that a hybrid model's
recurrent state costs per sequence what its size says.
"""

from __future__ import annotations

import numpy as np
import pytest

from otm import Deployment, Telemetry
from otm.estimate import estimate
from otm.estimate.decode import Instance, invert, step, step_time
from otm.estimate.engine import ENGINES, engine_for
from otm.estimate.precision import from_label, from_name, resolve


@pytest.mark.parametrize(
    ("name", "label", "bytes_", "path"),
    [
        ("Qwen/Qwen3-235B-A22B-Thinking-2507-FP8", "fp8", 1.0, "fp8"),
        ("meta-llama/Llama-3.1-405B-Instruct-FP8", "fp8", 1.0, "fp8"),
        ("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8-dynamic", "fp8", 1.0, "fp8"),
        ("TheBloke/Llama-2-7B-Chat-AWQ", "awq-int4", 4.25 / 8, "w4a16"),
        ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "gptq-int4", 4.25 / 8, "w4a16"),
        ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8", "int8", 1.0, "int8"),
        ("unsloth/llama-3-8b-Instruct-bnb-4bit", "int4", 4.25 / 8, "w4a16"),
        ("neuralmagic/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", "int4", 4.25 / 8, "w4a16"),
        ("neuralmagic/Meta-Llama-3.1-70B-Instruct-quantized.w8a8", "int8", 1.0, "int8"),
        ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "gguf-q4_k_m", 4.89 / 8, "w4a16"),
        ("llama3.1:8b-instruct-q8_0", "gguf-q8_0", 8.5 / 8, "int8"),
        ("nvidia/DeepSeek-R1-0528-NVFP4", "nvfp4", 4.5 / 8, "nvfp4"),
    ],
)
def test_precision_read_from_the_id(name: str, label: str, bytes_: float, path: str) -> None:
    p = from_name(name)
    assert p is not None
    assert (p.label, p.path, p.source) == (label, path, "id")
    assert p.bytes_per_param == pytest.approx(bytes_)


@pytest.mark.parametrize("name", ["gpt-4o", "Qwen/Qwen3-8B", "claude-sonnet-4-5", "qwen3:30b", "o3-mini"])
def test_ids_without_a_quantisation_tag_state_none(name: str) -> None:
    assert from_name(name) is None


def test_precision_precedence_deployment_then_id_then_data() -> None:
    assert resolve("Llama-3.1-8B-FP8", "bf16", "int4").source == "deployment"
    assert resolve("Llama-3.1-8B-FP8", "bf16", None).label == "fp8"
    assert resolve("Llama-3.1-8B", "mxfp4", None) == from_label("mxfp4", "data")


def test_fp8_checkpoint_fits_where_bf16_does_not() -> None:
    """405B in FP8 fits 8 x H100 (the id says so): no batch-1 fallback, a serving batch."""
    t = Telemetry(
        model="meta-llama/Llama-3.1-405B-Instruct-FP8",
        provider="local",
        start_time=0.0,
        first_token_time=0.5,
        last_token_time=0.5 + 0.05 * 499,
        input_tokens=500,
        output_tokens=500,
        streamed=True,
    )
    dep = Deployment.accelerator_only("H100", 8, provider="local", engine="vllm")
    fp8 = estimate(t, deployment=dep)
    assert fp8.assumptions["model"]["precision"] == "fp8"
    assert not any("do not fit" in w for w in fp8.warnings)
    bf16 = estimate(t.model_copy(update={"model": "meta-llama/Llama-3.1-405B-Instruct"}), deployment=dep)
    assert any("do not fit" in w for w in bf16.warnings)
    assert fp8.assumptions["effective_batch"]["value"] > 4.0


@pytest.mark.parametrize(
    ("name", "self_hosted", "expected", "alt"),
    [
        (None, False, "hosted", None),
        (None, True, "modern", "legacy"),
        ("vllm", True, "modern", None),
        ("sglang", True, "modern", None),
        ("TensorRT-LLM", True, "modern", None),
        ("vllm-0.4.2", True, "legacy", None),
        ("vllm-0.11.1", True, "modern", None),
        ("transformers", True, "eager", None),
        ("no-such-engine", True, "modern", "legacy"),
    ],
)
def test_engine_names(name: str | None, self_hosted: bool, expected: str, alt: str | None) -> None:
    eng, other = engine_for(name, self_hosted=self_hosted)
    assert eng.name == expected
    assert (other.name if other else None) == alt


def test_engine_central_values_lie_inside_their_ranges() -> None:
    for e in ENGINES.values():
        for tri in (e.t0_s, e.c_seq_s, e.a_coll_s, e.a_ep_s, e.b_ep_s):
            assert tri[1] <= tri[0] <= tri[2], (e.name, tri)
        for _, k in e.kernels:
            for tri in (k.bandwidth, k.compute):
                assert tri[1] <= tri[0] <= tri[2], (e.name, tri)


def _instances(moe: bool, seed: int) -> tuple[Instance, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = 300

    def r(lo: float, hi: float) -> np.ndarray:
        return np.exp(rng.uniform(np.log(lo), np.log(hi), s))

    inst = Instance(
        bw1=r(1e12, 8e12),
        bwk1=r(5e11, 8e12),
        f1=r(1e14, 2e15),
        m_half=r(1, 100),
        t0=r(1e-4, 1e-2),
        c_seq=r(1e-6, 1e-4),
        coll=r(1e-4, 5e-3),
        ep_fixed=r(1e-5, 1e-2) * moe,
        ep_tok=r(1e-7, 1e-4) * moe,
        w_dense=r(1e9, 5e10),
        w_routed=r(1e10, 7e11) * moe,
        flop_dense=r(1e9, 5e10),
        flop_routed=r(1e9, 5e10) * moe,
        p_route=r(0.01, 0.3) if moe else np.ones(s),
        moe=moe,
    )
    return inst, np.exp2(rng.integers(0, 4, s)).astype(float), r(1e5, 1e9)


@pytest.mark.parametrize("moe", [False, True])
def test_inverting_the_step_gives_back_the_batch(moe: bool) -> None:
    inst, n, seq = _instances(moe, seed=3)
    batch = np.exp(np.random.default_rng(4).uniform(0.0, np.log(8000.0), n.size))
    t, mem, cmp = step(inst, batch, n, seq)
    assert np.all(mem + cmp <= t)
    back = invert(inst, t, n, seq)
    np.testing.assert_allclose(back, batch, rtol=1e-8)


@pytest.mark.parametrize("moe", [False, True])
def test_step_time_rises_with_the_batch(moe: bool) -> None:
    inst, n, seq = _instances(moe, seed=5)
    b = np.geomspace(1.0, 4096.0, 64)[:, None]
    t, _, _ = step(inst, b, n, seq)
    assert np.all(np.diff(t, axis=0) > 0)


def test_a_moe_step_reads_more_experts_at_larger_batch() -> None:
    inst, n, seq = _instances(True, seed=6)
    # compute never binding: the memory-bound seconds are the weights (and KV) read
    fast = Instance(**{**inst.__dict__, "f1": inst.f1 * 1e9})
    _, mem1, _ = step(fast, np.ones_like(n), n, seq * 0.0)
    _, mem8, _ = step(fast, np.full_like(n, 8.0), n, seq * 0.0)
    _, mem4k, _ = step(fast, np.full_like(n, 4096.0), n, seq * 0.0)
    assert np.all(mem8 > mem1) and np.all(mem4k >= mem8)
    # at one sequence the step reads exactly the active weights: shared + k/E of the experts
    active = (inst.w_dense + inst.w_routed * inst.p_route) / (n * inst.bwk1)
    np.testing.assert_allclose(mem1, active, rtol=1e-9)
    # every expert once touched by thousands of tokens
    np.testing.assert_allclose(mem4k, (inst.w_dense + inst.w_routed) / (n * inst.bwk1), rtol=1e-3)


def _nemotron(itl_s: float) -> dict[str, float]:
    t = Telemetry(
        model="nvidia/NVIDIA-Nemotron-Nano-9B-v2",
        provider="local",
        start_time=0.0,
        first_token_time=0.2,
        last_token_time=0.2 + itl_s * 4999,
        input_tokens=300,
        output_tokens=5000,
        streamed=True,
    )
    im = estimate(t, deployment=Deployment.accelerator_only("H100", 1, provider="local", engine="vllm"))
    return {"batch": im.assumptions["effective_batch"]["value"], "j": im.energy_wh.value * 3600}


def test_hybrid_state_is_read_per_sequence() -> None:
    """A Mamba hybrid's step grows with the batch through its recurrent state, not its KV."""
    slow, fast = _nemotron(0.040), _nemotron(0.012)
    assert slow["batch"] > 4 * fast["batch"]
    # ML.ENERGY v3 (GPQA, H100): B=186 at 38.8 ms, B=15 at 10.6 ms; the state (27 layers x
    # 10240 x 128 x 4 bytes, read and written) makes the step rise ~0.15 ms per sequence
    assert 100 < slow["batch"] < 400


@pytest.mark.parametrize("moe", [False, True])
def test_the_step_time_alone_is_the_steps_time(moe: bool) -> None:
    """decode.step_time (what a fast stream's one-sequence step uses) is step()'s time,
    bit for bit, at one sequence and at serving batches."""
    inst, n, seq = _instances(moe, seed=7)
    for batch in (1.0, np.full(n.size, 37.0), np.geomspace(1.0, 4096.0, n.size)):
        t, _, _ = step(inst, batch, n, seq)
        assert np.array_equal(step_time(inst, batch, n, seq), t)

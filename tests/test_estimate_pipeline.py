"""Pipeline stages across scale-up domains, and the model-discrepancy term of the range.

docs/methodology.md "Pipeline parallelism" and "Ranges".
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from otm import Deployment, Telemetry
from otm.estimate import DEFAULT, estimate
from otm.estimate.assemble import build_group
from otm.estimate.decode import invert, micro_batch, rates, step
from otm.estimate.stamp import data_stamp


def _group(model: str, gpu: str, count: int, **kw: object):  # type: ignore[no-untyped-def]
    dep = Deployment.accelerator_only(gpu, count, provider="local", engine="vllm", **kw)  # type: ignore[arg-type]
    return build_group(model, "local", dep, None, DEFAULT, data_stamp())


def test_an_instance_larger_than_its_nvlink_node_runs_pipeline_stages() -> None:
    g16 = _group("meta-llama/Llama-3.1-405B-Instruct", "H100", 16)
    g8 = _group("meta-llama/Llama-3.1-405B-Instruct-FP8", "H100", 8)
    assert g16.inst.pp is not None and np.all(g16.inst.pp == 2.0)
    assert g8.inst.pp is None  # one node: tensor parallel only


def test_a_gb200_rack_and_an_expert_parallel_moe_stay_one_stage() -> None:
    assert _group("meta-llama/Llama-3.1-405B-Instruct", "GB200", 16).inst.pp is None  # NVL72 domain
    assert _group("deepseek-ai/DeepSeek-V3", "H100", 16).inst.pp is None  # EP spans nodes


def test_a_pipelined_step_is_one_stage_group_at_the_micro_batch_plus_every_micro_batch_host_work() -> None:
    g = _group("meta-llama/Llama-3.1-405B-Instruct", "H100", 16)
    inst = g.inst
    n = g.n[:1]
    seq = np.array([2e5])
    sub = replace(inst, pp=None)  # the same instance as one stage
    for b in (64.0, 300.0):
        t_pp = step(inst, np.array([b]), n, seq)[0][0]
        t_tp8 = step(sub, np.array([b / 2.0]), n / 2.0, seq)[0][0]
        extra = inst.t0[0] + inst.c_seq[0] * b / 2.0  # a second micro-batch's host work
        assert t_pp == pytest.approx(t_tp8 + extra, rel=1e-9)
        # and the inversion reads back the whole batch, not one micro-batch
        assert invert(inst, np.array([t_pp]), n, seq)[0] == pytest.approx(b, rel=1e-6)
    # up to one sequence per stage fills the pipeline without lengthening the step
    r = rates(inst, n)
    assert r.pp is not None
    assert micro_batch(np.array([1.0, 2.0, 4.0]), r.pp[:1]).tolist() == [1.0, 1.0, 2.0]
    t1, t2 = (step(inst, np.array([b]), n, seq)[0][0] for b in (1.0, 2.0))
    assert t1 == pytest.approx(t2)


def test_pipeline_stages_read_fewer_sequences_from_the_same_step() -> None:
    """The same observed step means fewer sequences on 2 x TP8 than on one 16-way group
    (each token waits for both stages), so each request holds a larger share."""
    tel = Telemetry(
        model="meta-llama/Llama-3.1-405B-Instruct", provider="local", start_time=0.0, first_token_time=0.3,
        last_token_time=0.3 + 0.2 * 499, end_time=0.3 + 0.2 * 499, input_tokens=200, output_tokens=500,
        streamed=True,
    )
    dep16 = Deployment.accelerator_only("H100", 16, provider="local", engine="vllm")
    r16 = estimate(tel, deployment=dep16)
    g = build_group(tel.model, "local", dep16, None, DEFAULT, data_stamp())
    assert g.inst.pp is not None
    b_pp = r16.assumptions["effective_batch"]["value"]
    sub = replace(g.inst, pp=None)
    seq = g.seq_bytes(np.array([200 + 250.0]) * DEFAULT.context_mix[0])
    b_tp16 = float(np.clip(invert(sub, np.array([0.2]), g.n[:1], seq[:1])[0], 1.0, None))
    assert b_pp < b_tp16  # the pipelined reading holds fewer sequences in the same step


def test_the_discrepancy_term_widens_the_range_not_the_central_value() -> None:
    tel = Telemetry(
        model="Qwen/Qwen3-8B", provider="local", start_time=0.0, first_token_time=0.1,
        last_token_time=0.1 + 0.02 * 999, end_time=0.1 + 0.02 * 999, input_tokens=300, output_tokens=1000,
        streamed=True,
    )
    dep = Deployment.accelerator_only("H100", 1, provider="local", engine="vllm")
    plain = estimate(tel, deployment=dep, calibration=DEFAULT.with_(model_discrepancy=(1.0, 1.0, 1.0)))
    with_d = estimate(tel, deployment=dep)
    assert DEFAULT.model_discrepancy[2] > 1.0 / DEFAULT.model_discrepancy[1] > 1.0  # errs low more than high
    assert with_d.energy_wh.value == pytest.approx(plain.energy_wh.value, rel=1e-12)
    up = with_d.energy_wh.high / plain.energy_wh.high
    down = plain.energy_wh.low / with_d.energy_wh.low
    assert up > 1.2 and down >= 1.0
    assert up > down

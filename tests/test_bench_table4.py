"""bench/table4.py (each request alone on Llama-3.1-8B shapes) and bench/device_check.sh, on CPU.

The GPU parts (CUDA graphs, real NVML) run only on a GPU machine; here the
same code runs on a 2-layer toy in float32, against a fake NVML.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
from test_measure import FakeGpu, make_fake_nvml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "table4.py"
RUNNER = ROOT / "bench" / "device_check.sh"


def _load(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("otm_bench_table4", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("decode", ["sdpa", "matmul"])
@pytest.mark.parametrize("prefill", ["sdpa_gqa", "sdpa_repeat"])
def test_cached_bucketed_decode_matches_a_full_forward(
    monkeypatch: pytest.MonkeyPatch, decode: str, prefill: str
) -> None:
    """Each decode step's logits equal a full causal forward over the sequence so far.

    The cache holds stale values from a longer prompt beyond every position the
    request fills, so a step that read past its position (a wrong mask, a wrong
    bucket) or a wrong K/V write would change the logits.
    """
    torch = pytest.importorskip("torch")
    t4 = _load(monkeypatch)
    dec = t4.Decoder(t4.TINY, torch.device("cpu"), torch.float32, max_len=64, seed=1)
    dec.decode_attention, dec.prefill_attention = decode, prefill
    engine = t4.Engine(dec, bucket=8, graphs=True)  # graphs are CUDA-only: eager on CPU
    gen = torch.Generator().manual_seed(2)
    vocab = t4.TINY.vocab

    def stale() -> None:
        dec.prefill(torch.randint(0, vocab, (1, 60), generator=gen))

    prompt = torch.randint(0, vocab, (1, 5), generator=gen)
    n, steps = prompt.shape[1], 20  # contexts 6..24 cross the buckets 8, 16 and 24
    stale()
    engine.prefill(prompt)
    logits, tokens = [dec.logits.clone()], [int(dec.token.item())]
    for i in range(1, steps):
        engine.decode(n + i)
        logits.append(dec.logits.clone())
        tokens.append(int(dec.token.item()))
    assert tokens == [int(x.argmax()) for x in logits]
    assert int(dec.pos.item()) == n + steps - 1

    seq = torch.cat((prompt, torch.tensor([tokens])), dim=1)
    for j in range(steps):
        dec.prefill(seq[:, : n + j])
        torch.testing.assert_close(dec.logits, logits[j], rtol=1e-4, atol=1e-5)

    # generate() streams the same greedy tokens, one timestamp per token
    stale()
    g = t4.generate(engine, prompt, steps)
    assert g.tokens == tokens and g.finite
    assert len(g.token_times) == steps and g.start < g.first <= g.last
    assert g.token_times == sorted(g.token_times)
    assert g.prefill_s is not None and 0 < g.prefill_s <= g.first - g.start


def test_llama_8b_shape_has_the_published_parameter_count(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    t4 = _load(monkeypatch)
    assert t4.LLAMA_8B.params == pytest.approx(8.03e9, rel=0.001)
    engine = t4.Engine(
        types.SimpleNamespace(max_len=11776, device=types.SimpleNamespace(type="cpu")), 512, True
    )
    assert engine.buckets() == list(range(512, 11777, 512))
    assert [engine.bucket_for(c) for c in (1, 512, 513, 11500)] == [512, 512, 1024, 11776]


# --------------------------------------------------------------------------- the script


def test_without_torch_it_reports_itself_skipped(tmp_path: Path) -> None:
    code = (
        "import sys, runpy; sys.modules['torch'] = None; "
        f"sys.argv = ['table4.py']; runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "OUT": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"skipped": "torch is not installed"}
    assert json.loads((tmp_path / "table4.json").read_text()) == {
        "skipped": "torch is not installed"
    }


def test_without_a_gpu_the_full_run_is_skipped() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the full run would start")
    out = _run()
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"skipped": "torch sees no CUDA device"}


def test_tiny_run_end_to_end_on_cpu(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = _run("--tiny", "--device", "cpu", "--repeats", "2", env={"OUT": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert json.loads((tmp_path / "table4.json").read_text()) == result
    assert result["tiny"] and result["device"]["nvml"] is None and result["idle_power_w"] is None
    assert result["settings"]["cuda_graphs"] is False
    assert [(r["input_tokens"], r["output_tokens"]) for r in result["requests"]] == [
        (10, 6),
        (40, 20),
        (100, 12),
    ]
    for req in result["requests"]:
        assert len(req["repeats"]) == 2
        assert req["measured_j"] is None and req["ratio"] is None
        e = req["estimated_j"]
        assert 0 < e["low"] <= e["value"] <= e["high"]
        assert req["assumed"]["method"] and req["assumed"]["warnings"] is not None
        for row in req["repeats"]:
            assert row["activations_finite"]
            assert 0 < row["prefill_s"] <= row["ttft_s"] < row["duration_s"]
            assert row["itl_ms"] > 0
            assert row["decode_s"] == pytest.approx(
                row["itl_ms"] / 1000 * (req["output_tokens"] - 1), rel=1e-6
            )
            assert row["estimates"]["H200"]["energy_j"]["value"] > 0
    # the summary table is the last thing on stderr, and --show prints it again
    assert "estimated J [low-high]" in out.stderr
    shown = _run("--show", str(tmp_path / "table4.json"))
    assert shown.returncode == 0 and "100/12" in shown.stdout and "n/a" in shown.stdout


def test_metered_request_energy_is_the_span_not_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fake board at 400 W while a request generates, 100 W otherwise: the span gets 400 W.

    The meter's window opens 0.1 s before the request and closes 0.1 s after
    it, at 100 W: the request's figure must leave those out. (The span's edges
    are read off the energy trace, interpolated between power samples: with a
    step in power inside a sampling interval the error is at most a quarter
    of step x interval, here 0.4 J, on a span of tens of joules.)
    """
    pytest.importorskip("torch")
    t4 = _load(monkeypatch)
    gpu = FakeGpu(name="NVIDIA H200", watts=100.0)
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml([gpu]))
    generate = t4.generate

    def busy(*a: Any, **kw: Any) -> Any:
        time.sleep(0.1)
        gpu.set_watts(400.0)
        try:
            return generate(*a, **kw)
        finally:
            gpu.set_watts(100.0)
            time.sleep(0.1)

    monkeypatch.setattr(t4, "generate", busy)
    args = t4.parse(
        ["--tiny", "--device", "cpu", "--meter", "--requests", "200:200", "--repeats", "2"]
        + ["--idle-seconds", "0.2", "--settle", "0", "--gap", "0.05", "--interval", "0.005"]
    )
    result = t4.run(args)
    assert result["idle_power_w"] == pytest.approx(100.0, rel=0.02)
    assert result["settings"]["accelerators_asked"] == ["H200", "NVIDIA H200"]
    assert result["device"]["nvml"]["energy_counter"] is True
    (req,) = result["requests"]
    for row in req["repeats"]:
        span = row["duration_s"]
        assert row["meter_method"] == "counter"
        assert row["measured_j"] == pytest.approx(400.0 * span, rel=0.08)
        assert row["mean_power_w"] == pytest.approx(400.0, rel=0.08)
        assert row["dynamic_j"] == pytest.approx(300.0 * span, rel=0.1)
        assert row["window_s"] >= span + 0.2
        assert row["window_j"] == pytest.approx(
            row["measured_j"] + 100.0 * (row["window_s"] - span), rel=0.05
        )
        for name in ("H200", "NVIDIA H200"):
            est = row["estimates"][name]
            assert est["ratio"] == pytest.approx(est["energy_j"]["value"] / row["measured_j"])
            assert est["within_range"] == (
                est["energy_j"]["low"] <= row["measured_j"] <= est["energy_j"]["high"]
            )
    assert req["ratio"] == pytest.approx(
        sorted(r["estimates"]["H200"]["ratio"] for r in req["repeats"])[0] / 2
        + sorted(r["estimates"]["H200"]["ratio"] for r in req["repeats"])[1] / 2
    )
    assert result["geomean_ratio"] == pytest.approx(req["ratio"])
    assert not [t for t in threading.enumerate() if t.name == "otm-gpu-sampler"]


def test_bad_arguments_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    t4 = _load(monkeypatch)
    for bad in (["--requests", "100"], ["--requests", "100:1"], ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            t4.parse(bad)


# --------------------------------------------------------------------------- the device runner


def _runner(tmp_path: Path, **env: str) -> tuple[Any, Path]:
    out = tmp_path / "out"
    wheels = tmp_path / "no-wheels"
    wheels.mkdir()
    proc = subprocess.run(
        ["bash", str(RUNNER)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env={
            **os.environ,
            "OUT": str(out),
            "PYTHON": sys.executable,
            "WHEELS": str(wheels),
            "NVML_VALIDATE_ARGS": "--batches 1 --seconds 0.1 --idle-seconds 0.1",
            **env,
        },
    )
    return proc, out


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash"
)
def test_device_runner_runs_every_step_and_leaves_its_files(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    proc, out = _runner(tmp_path, TABLE4_ARGS="--tiny --device cpu --repeats 1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {"setup.log", "table4.json", "table4.log", "nvml_validate.json", "summary.txt"} <= {
        p.name for p in out.iterdir()
    }
    assert "otm 0.1.0" in (out / "setup.log").read_text()
    assert len(json.loads((out / "table4.json").read_text())["requests"]) == 3
    summary = (out / "summary.txt").read_text()
    assert "estimated J [low-high]" in summary and "nvml_validate:" in summary
    assert "all steps ran" in summary
    assert proc.stdout.rstrip().endswith(
        f"files in {out}: " + " ".join(sorted(p.name for p in out.iterdir()))
    )


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash"
)
def test_device_runner_goes_on_after_a_failing_step(tmp_path: Path) -> None:
    proc, out = _runner(tmp_path, TABLE4_ARGS="--requests bogus")
    assert proc.returncode != 0
    assert "FAILED: table4 (exit 2)" in proc.stdout
    assert "--requests takes IN:OUT" in (out / "table4.log").read_text()
    assert (out / "nvml_validate.json").read_text().strip()  # the next step still ran
    assert "nvml_validate:" in (out / "summary.txt").read_text()

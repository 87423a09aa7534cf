"""GpuMeter and the NVML layer against a fake ``pynvml`` with known power traces."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otm.measure import GpuMeter, MeasurementUnavailable, is_available, list_devices
from otm.measure.nvml import NvmlSession, PowerSampler, trapezoid_j

NOT_SUPPORTED = 3
LIBRARY_NOT_FOUND = 12
GPU_IS_LOST = 15


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"fake NVML error {self.value}"


class FakeGpu:
    """A board with a power trace in watts over seconds since its creation (perf_counter clock).

    ``energy`` is the trace's exact integral (J), which the counter reports in
    mJ on top of an arbitrary offset, as a driver that has been up a while would.
    """

    def __init__(
        self,
        name: str = "NVIDIA H200",
        *,
        power: Callable[[float], float] | None = None,
        energy: Callable[[float], float] | None = None,
        watts: float = 300.0,
        counter: bool = True,
        power_reading: bool = True,
        uuid: str | None = None,
        processes: tuple[int, ...] = (4242,),
    ) -> None:
        self.name = name
        self.uuid = uuid or f"GPU-{id(self):x}"
        self.t0 = time.perf_counter()
        self._power = power
        self._energy = energy
        self._watts = watts
        self._acc_j = 0.0
        self._acc_t = self.t0
        self.counter = counter
        self.power_reading = power_reading
        self.processes = processes
        self.fail_power: Callable[[int], bool] = lambda n: False
        self.fail_counter: Callable[[int], bool] = lambda n: False
        self.counter_offset_mj = 987_654_321
        self.power_calls = 0
        self.counter_calls = 0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def set_watts(self, w: float) -> None:
        with self._lock:
            t = time.perf_counter()
            self._acc_j += self._watts * (t - self._acc_t)
            self._acc_t, self._watts = t, w

    def power_w(self) -> float:
        return self._power(self.now()) if self._power is not None else self._watts

    def energy_j(self) -> float:
        if self._energy is not None:
            return self._energy(self.now())
        with self._lock:
            return self._acc_j + self._watts * (time.perf_counter() - self._acc_t)


def make_fake_nvml(gpus: list[FakeGpu], *, init_error: int | None = None) -> types.ModuleType:
    nv = types.ModuleType("pynvml")
    nv.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    nv.NVML_ERROR_NOT_SUPPORTED = NOT_SUPPORTED  # type: ignore[attr-defined]
    state = {"inits": 0}
    nv.state = state  # type: ignore[attr-defined]

    def init() -> None:
        if init_error is not None:
            raise FakeNVMLError(init_error)
        state["inits"] += 1

    def shutdown() -> None:
        state["inits"] -= 1

    def by_index(i: int) -> FakeGpu:
        if not 0 <= i < len(gpus):
            raise FakeNVMLError(2)
        return gpus[i]

    def by_uuid(u: str) -> FakeGpu:
        for g in gpus:
            if g.uuid == u:
                return g
        raise FakeNVMLError(2)

    def energy(g: FakeGpu) -> int:
        g.counter_calls += 1
        if not g.counter:
            raise FakeNVMLError(NOT_SUPPORTED)
        if g.fail_counter(g.counter_calls):
            raise FakeNVMLError(GPU_IS_LOST)
        return round(g.counter_offset_mj + g.energy_j() * 1000.0)

    def power(g: FakeGpu) -> int:
        g.power_calls += 1
        if not g.power_reading:
            raise FakeNVMLError(NOT_SUPPORTED)
        if g.fail_power(g.power_calls):
            raise FakeNVMLError(GPU_IS_LOST)
        return round(g.power_w() * 1000.0)

    nv.nvmlInit = init  # type: ignore[attr-defined]
    nv.nvmlShutdown = shutdown  # type: ignore[attr-defined]
    nv.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    nv.nvmlDeviceGetHandleByIndex = by_index  # type: ignore[attr-defined]
    nv.nvmlDeviceGetHandleByUUID = by_uuid  # type: ignore[attr-defined]
    nv.nvmlDeviceGetIndex = lambda g: gpus.index(g)  # type: ignore[attr-defined]
    # bytes, as older bindings return
    nv.nvmlDeviceGetName = lambda g: g.name.encode()  # type: ignore[attr-defined]
    nv.nvmlDeviceGetUUID = lambda g: g.uuid  # type: ignore[attr-defined]
    nv.nvmlDeviceGetEnforcedPowerLimit = lambda g: 700_000  # type: ignore[attr-defined]
    nv.nvmlDeviceGetPowerManagementLimit = lambda g: 700_000  # type: ignore[attr-defined]
    nv.nvmlDeviceGetMemoryInfo = lambda g: types.SimpleNamespace(  # type: ignore[attr-defined]
        total=141 * 2**30, used=2**30, free=140 * 2**30
    )
    nv.nvmlDeviceGetTotalEnergyConsumption = energy  # type: ignore[attr-defined]
    nv.nvmlDeviceGetPowerUsage = power  # type: ignore[attr-defined]
    nv.nvmlDeviceGetComputeRunningProcesses = lambda g: [  # type: ignore[attr-defined]
        types.SimpleNamespace(pid=p, usedGpuMemory=2**30) for p in g.processes
    ]
    nv.nvmlSystemGetDriverVersion = lambda: "550.54.15"  # type: ignore[attr-defined]
    return nv


@pytest.fixture()
def install(monkeypatch: pytest.MonkeyPatch) -> Callable[..., types.ModuleType]:
    def _install(gpus: list[FakeGpu], **kw: Any) -> types.ModuleType:
        nv = make_fake_nvml(gpus, **kw)
        monkeypatch.setitem(sys.modules, "pynvml", nv)
        return nv

    return _install


def run_window(meter: GpuMeter, seconds: float) -> Any:
    with meter:
        time.sleep(seconds)
    assert meter.result is not None
    return meter.result


def ramp_power(t: float) -> float:
    return 100.0 + 1000.0 * t


def ramp_energy(t: float) -> float:
    return 100.0 * t + 500.0 * t * t


# --------------------------------------------------------------------------- counter and sampled paths


def test_counter_path_integrates_constant_power(install: Callable[..., Any]) -> None:
    nv = install([FakeGpu(watts=300.0)])
    m = run_window(GpuMeter(interval_s=0.02), 0.3)
    assert m.method == "counter"
    assert m.devices[0].method == "counter"
    assert m.duration_s == pytest.approx(0.3, abs=0.05)
    assert m.energy_j == pytest.approx(300.0 * m.duration_s, rel=0.03)
    assert m.energy_wh == pytest.approx(m.energy_j / 3600.0)
    assert m.mean_power_w == pytest.approx(300.0, rel=0.03)
    assert m.peak_power_w == pytest.approx(300.0)
    assert m.samples >= 5
    assert m.devices[0].name == "NVIDIA H200"  # bytes decoded
    assert m.driver_version == "550.54.15"
    assert nv.state["inits"] == 0  # every nvmlInit paired with a shutdown


def test_sampled_path_integrates_a_ramp(install: Callable[..., Any]) -> None:
    gpu = FakeGpu(power=ramp_power, counter=False)
    install([gpu])
    meter = GpuMeter(interval_s=0.01)
    m = run_window(meter, 0.3)
    assert m.method == "sampled"
    a = meter._t0 - gpu.t0
    expected = ramp_energy(a + m.duration_s) - ramp_energy(a)
    assert m.energy_j == pytest.approx(expected, rel=0.02)
    assert m.peak_power_w == pytest.approx(ramp_power(a + m.duration_s), rel=0.02)
    assert m.devices[0].samples >= 10


def test_counter_and_sampled_agree_on_the_same_ramp(install: Callable[..., Any]) -> None:
    gpu = FakeGpu(power=ramp_power, energy=ramp_energy)
    install([gpu])
    by_counter = GpuMeter(interval_s=0.01)
    mc = run_window(by_counter, 0.2)
    by_samples = GpuMeter(interval_s=0.01, method="sampled")
    ms = run_window(by_samples, 0.2)
    assert mc.method == "counter" and ms.method == "sampled"
    for meter, m in ((by_counter, mc), (by_samples, ms)):
        a = meter._t0 - gpu.t0
        assert m.energy_j == pytest.approx(ramp_energy(a + m.duration_s) - ramp_energy(a), rel=0.02)


def test_method_counter_is_refused_without_a_counter(install: Callable[..., Any]) -> None:
    install([FakeGpu(counter=False)])
    with pytest.raises(MeasurementUnavailable, match="energy counter"):
        GpuMeter(method="counter").start()


def test_several_devices_and_device_selection(install: Callable[..., Any]) -> None:
    a, b = FakeGpu(watts=300.0), FakeGpu("NVIDIA H100 80GB HBM3", watts=150.0, uuid="GPU-b")
    install([a, b])
    m = run_window(GpuMeter(interval_s=0.02), 0.25)
    assert [d.index for d in m.devices] == [0, 1]
    assert m.devices[0].energy_j == pytest.approx(300.0 * m.duration_s, rel=0.03)
    assert m.devices[1].energy_j == pytest.approx(150.0 * m.duration_s, rel=0.03)
    assert m.energy_j == pytest.approx(450.0 * m.duration_s, rel=0.03)
    assert m.peak_power_w == pytest.approx(450.0)
    only_b = run_window(GpuMeter(devices=[1], interval_s=0.02), 0.1)
    assert [d.index for d in only_b.devices] == [1]
    assert only_b.mean_power_w == pytest.approx(150.0, rel=0.03)
    by_uuid = run_window(GpuMeter(devices=["GPU-b"], interval_s=0.02), 0.1)
    assert by_uuid.devices[0].index == 1 and by_uuid.devices[0].uuid == "GPU-b"


def test_list_devices_reports_capabilities(install: Callable[..., Any]) -> None:
    install([FakeGpu(), FakeGpu("Tesla P100", counter=False)])
    devs = list_devices()
    assert [d.name for d in devs] == ["NVIDIA H200", "Tesla P100"]
    assert devs[0].energy_counter and not devs[1].energy_counter
    assert devs[0].power_limit_w == 700.0
    assert devs[0].memory_total_bytes == 141 * 2**30
    assert is_available()


# --------------------------------------------------------------------------- errors


def test_init_failure_is_measurement_unavailable(install: Callable[..., Any]) -> None:
    install([FakeGpu()], init_error=LIBRARY_NOT_FOUND)
    with pytest.raises(MeasurementUnavailable, match="NVML could not start"):
        GpuMeter().start()
    with pytest.raises(MeasurementUnavailable):
        list_devices()
    assert not is_available()
    assert not GpuMeter.available()


def test_not_required_gives_none_and_logs_once(
    install: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    install([FakeGpu()], init_error=LIBRARY_NOT_FOUND)
    caplog.set_level(logging.WARNING, logger="otm")
    for _ in range(3):
        with GpuMeter(required=False) as meter:
            pass
        assert meter.result is None
        assert isinstance(meter.unavailable, MeasurementUnavailable)
    assert sum("GPU metering unavailable" in r.getMessage() for r in caplog.records) == 1


def test_missing_binding_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(MeasurementUnavailable, match=r"otm\[nvml\]"):
        GpuMeter().start()


def test_no_device_and_no_readings(install: Callable[..., Any]) -> None:
    install([])
    with pytest.raises(MeasurementUnavailable, match="no NVIDIA device"):
        GpuMeter().start()
    install([FakeGpu(counter=False, power_reading=False)])
    with pytest.raises(MeasurementUnavailable, match="neither|MIG"):
        GpuMeter().start()
    install([FakeGpu(watts=200.0), FakeGpu(counter=False, power_reading=False)])
    m = run_window(GpuMeter(interval_s=0.02), 0.1)
    assert [d.index for d in m.devices] == [0]
    assert any("neither energy nor power" in w for w in m.warnings)
    with pytest.raises(MeasurementUnavailable):
        GpuMeter(devices=[5]).start()


def test_failing_readings_never_crash_and_sampled_survives_gaps(
    install: Callable[..., Any],
) -> None:
    gpu = FakeGpu(watts=250.0, counter=False)
    gpu.fail_power = lambda n: n > 2 and n % 3 == 0  # every third reading after start fails
    install([gpu])
    m = run_window(GpuMeter(interval_s=0.01), 0.25)
    assert m.method == "sampled"
    assert m.energy_j == pytest.approx(250.0 * m.duration_s, rel=0.02)


def test_final_counter_read_failure_falls_back_to_samples(install: Callable[..., Any]) -> None:
    gpu = FakeGpu(watts=300.0)
    install([gpu])
    meter = GpuMeter(interval_s=0.02).start()
    time.sleep(0.15)
    gpu.fail_counter = lambda n: True  # GPU falls off the bus
    time.sleep(0.1)
    m = meter.stop()
    assert m is not None
    assert m.devices[0].method == "sampled"
    assert m.energy_j == pytest.approx(300.0 * m.duration_s, rel=0.02)
    assert any("final energy-counter read failed" in w for w in m.warnings)
    assert m.trace_j[-1] == pytest.approx(m.energy_j)


def test_counter_going_backwards_falls_back(install: Callable[..., Any]) -> None:
    gpu = FakeGpu(watts=300.0)
    install([gpu])
    meter = GpuMeter(interval_s=0.02).start()
    time.sleep(0.1)
    gpu.counter_offset_mj = 0  # driver reloaded
    time.sleep(0.1)
    m = meter.stop()
    assert m is not None and m.devices[0].method == "sampled"
    assert m.energy_j == pytest.approx(300.0 * m.duration_s, rel=0.02)
    assert any("went backwards" in w for w in m.warnings)


def test_other_processes_and_short_window_are_flagged(install: Callable[..., Any]) -> None:
    install([FakeGpu(processes=(11, 22))])
    m = run_window(GpuMeter(interval_s=0.02), 0.05)
    text = " ".join(m.warnings)
    assert "2 processes" in text and "[11, 22]" in text
    assert "under ~1 s" in text
    assert m.devices[0].processes == (11, 22)


def test_sampler_tick_errors_are_counted_not_raised() -> None:
    calls: list[float] = []

    def tick(t: float) -> None:
        calls.append(t)
        raise RuntimeError("boom")

    s: PowerSampler[None] = PowerSampler(tick, 0.01)
    s.start()
    time.sleep(0.08)
    s.stop()
    assert s.errors == len(calls) >= 3
    assert isinstance(s.last_error, RuntimeError)
    with pytest.raises(ValueError):
        PowerSampler(tick, 0.0)


def test_session_refcount_and_bad_arguments(install: Callable[..., Any]) -> None:
    nv = install([FakeGpu()])
    with NvmlSession() as a, NvmlSession() as b:
        assert nv.state["inits"] == 2
        assert a.count() == b.count() == 1
    assert nv.state["inits"] == 0
    with pytest.raises(ValueError):
        GpuMeter(interval_s=0)
    with pytest.raises(ValueError):
        GpuMeter(method="guess")  # type: ignore[arg-type]
    meter = GpuMeter(interval_s=0.02).start()
    with pytest.raises(RuntimeError):
        meter.start()
    with pytest.raises(RuntimeError):
        meter.measure_idle(0.1)
    meter.stop()
    assert meter.stop() is meter.result  # stopping twice is harmless


# --------------------------------------------------------------------------- idle baseline


def test_idle_baseline_then_workload(install: Callable[..., Any]) -> None:
    gpu = FakeGpu(watts=60.0)
    install([gpu])
    meter = GpuMeter(interval_s=0.02)
    idle = meter.measure_idle(0.2)
    assert idle[0] == pytest.approx(60.0, rel=0.02)
    gpu.set_watts(300.0)
    m = run_window(meter, 0.3)
    assert m.idle_power_w == pytest.approx(60.0, rel=0.02)
    assert m.energy_j == pytest.approx(300.0 * m.duration_s, rel=0.02)
    assert m.dynamic_energy_j == pytest.approx(240.0 * m.duration_s, rel=0.03)
    assert m.dynamic_energy_wh == pytest.approx(m.dynamic_energy_j / 3600.0)
    assert "idle" in m.summary()


def test_idle_s_measures_before_the_window(install: Callable[..., Any]) -> None:
    install([FakeGpu(watts=80.0)])
    meter = GpuMeter(interval_s=0.02, idle_s=0.15)
    t = time.perf_counter()
    m = run_window(meter, 0.15)
    assert time.perf_counter() - t >= 0.3  # idle window, then the metered one
    assert m.duration_s < 0.25  # the idle window is not part of the measurement
    assert m.idle_power_w == pytest.approx(80.0, rel=0.02)
    assert m.dynamic_energy_j == pytest.approx(0.0, abs=0.02 * m.energy_j)


def test_idle_power_given(install: Callable[..., Any]) -> None:
    install([FakeGpu(watts=300.0), FakeGpu(watts=300.0)])
    m = run_window(GpuMeter(interval_s=0.02, idle_power_w=100.0), 0.1)
    assert m.idle_power_w == pytest.approx(100.0)  # split evenly, summed back
    assert m.dynamic_energy_j == pytest.approx(500.0 * m.duration_s, rel=0.02)
    m2 = run_window(GpuMeter(interval_s=0.02, idle_power_w={0: 50.0, 1: 70.0}), 0.1)
    assert [d.idle_power_w for d in m2.devices] == [50.0, 70.0]
    assert run_window(GpuMeter(interval_s=0.02), 0.05).dynamic_energy_j is None


# --------------------------------------------------------------------------- energy over time


def test_trace_follows_a_power_step(install: Callable[..., Any]) -> None:
    gpu = FakeGpu(watts=100.0)
    install([gpu])
    meter = GpuMeter(interval_s=0.01).start()
    time.sleep(0.15)
    t_switch = time.time()
    gpu.set_watts(400.0)
    time.sleep(0.15)
    m = meter.stop()
    assert m is not None
    assert list(m.trace_t) == sorted(m.trace_t) and list(m.trace_j) == sorted(m.trace_j)
    assert m.trace_t[0] == pytest.approx(m.start_time) and m.trace_t[-1] == pytest.approx(
        m.end_time
    )
    assert m.energy_between(m.start_time, m.end_time) == pytest.approx(m.energy_j, rel=1e-9)
    after = m.energy_between(t_switch + 0.03, m.end_time)
    assert after / (m.end_time - t_switch - 0.03) == pytest.approx(400.0, rel=0.1)
    before = m.energy_between(m.start_time, t_switch - 0.03)
    assert before / (t_switch - 0.03 - m.start_time) == pytest.approx(100.0, rel=0.1)
    d = m.to_dict(with_trace=True)
    assert d["energy_wh"] == pytest.approx(m.energy_wh) and len(d["trace"]["t"]) == len(m.trace_t)


def test_trapezoid_is_exact_on_linear_power() -> None:
    assert trapezoid_j([0.0, 1.0, 3.0], [100.0, 200.0, 400.0]) == pytest.approx(150.0 + 600.0)
    assert trapezoid_j([0.0], [5.0]) == 0.0


# --------------------------------------------------------------------------- metered(): meter + records


def test_metered_run_collects_local_records_and_reconciles(install: Callable[..., Any]) -> None:
    from otm.deployment import Deployment
    from otm.events import emit
    from otm.impact import Impact, Range
    from otm.measure import metered
    from otm.record import Record
    from otm.telemetry import Telemetry

    install([FakeGpu(watts=360.0)])

    def record(provider: str, dep: Deployment | None, start: float, end: float) -> Record:
        t = Telemetry(
            provider=provider,
            model="llama-3.1-8b",
            start_time=start,
            first_token_time=start,
            last_token_time=end,
            end_time=end,
            input_tokens=100,
            output_tokens=50,
        )
        r = Record(t, deployment=dep)
        e = Range(value=0.01, low=0.005, high=0.02)
        r._impact = Impact(
            energy_wh=e,
            carbon_g=e,
            water_ml=e,
            breakdown_wh={},
            carbon_breakdown_g={},
            water_breakdown_ml={},
        )
        return r

    with metered(interval_s=0.01) as run:
        t0 = time.time()
        time.sleep(0.2)
        emit(record("local", Deployment.accelerator_only("NVIDIA H200", 1), t0 + 0.02, time.time()))
        emit(record("openai", None, t0, time.time()))  # not on these GPUs
    emit(
        record("local", Deployment.accelerator_only("NVIDIA H200", 1), t0, time.time())
    )  # after the run
    assert len(run.records) == 1 and run.ignored == 1
    rec = run.reconciliation
    assert rec is not None
    assert rec.estimated_wh is not None and rec.estimated_wh.value == pytest.approx(0.01)
    m = run.measurement
    assert m is not None
    span = run.records[0].telemetry.duration_s
    assert span is not None
    assert rec.active_wh == pytest.approx(360.0 * span / 3600.0, rel=0.05)
    assert rec.ratio == pytest.approx(rec.active_wh / 0.01)
    assert "ignored" in run.summary()


def test_metered_run_without_gpu_is_quiet(install: Callable[..., Any]) -> None:
    from otm.measure import MeteredRun

    install([], init_error=LIBRARY_NOT_FOUND)
    run = MeteredRun(meter=GpuMeter(required=False))
    with run:
        pass
    assert run.measurement is None and run.reconciliation is None
    assert "no GPU measurement" in run.summary()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    yield
    assert not [t for t in threading.enumerate() if t.name == "otm-gpu-sampler"]


# --------------------------------------------------------------------------- bench/nvml_validate.py


def _load_bench(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "nvml_validate.py"
    spec = importlib.util.spec_from_file_location("otm_bench_nvml_validate", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(
        sys.modules, spec.name, mod
    )  # dataclasses look their module up while defining
    spec.loader.exec_module(mod)
    return mod


def test_bench_without_gpu_skips_cleanly() -> None:
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "nvml_validate.py"
    # pynvml unimportable stands for "no driver" on any machine, GPU or not.
    code = f"import sys, runpy; sys.modules['pynvml'] = None; sys.argv = ['x']; runpy.run_path({str(script)!r}, run_name='__main__')"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("no NVIDIA GPU: skipped")


def test_bench_pipeline_with_fake_gpu_and_workload(
    install: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from otm.impact import Impact, Range

    bench = _load_bench(monkeypatch)
    gpu = FakeGpu(watts=80.0)
    install([gpu])

    class FakeWork:
        params = 8.0e9

        def prepare(self, batch: int, context: int) -> None:
            gpu.set_watts(300.0)

        def prefill(self, batch: int, tokens: int) -> None:
            time.sleep(0.005)

        def decode_step(self) -> None:
            time.sleep(0.002)

        def sync(self) -> None:
            pass

        def release(self) -> None:
            gpu.set_watts(80.0)

    seen: list[Any] = []

    def estimator(telemetry: Any, *, deployment: Any, region: Any = None) -> Impact:
        seen.append(deployment)
        e = Range(value=1e-6, low=5e-7, high=2e-6)
        return Impact(
            energy_wh=e,
            carbon_g=e,
            water_ml=e,
            breakdown_wh={},
            carbon_breakdown_g={},
            water_breakdown_ml={},
        )

    args = bench.parse(
        [
            "--batches",
            "1",
            "4",
            "--seconds",
            "0.15",
            "--idle-seconds",
            "0.1",
            "--input-tokens",
            "3",
            "--output-tokens",
            "5",
            "--interval",
            "0.01",
        ]
    )
    result = bench.run(args, workload=FakeWork(), estimator=estimator)
    assert result["idle_power_w"] == pytest.approx(80.0, rel=0.03)
    assert [r["batch"] for r in result["runs"]] == [1, 4]
    for r in result["runs"]:
        assert "error" not in r, r
        assert r["measured"]["mean_power_w"] == pytest.approx(300.0, rel=0.03)
        assert r["measured"]["dynamic_energy_wh"] == pytest.approx(
            r["measured"]["energy_wh"] * 220 / 300, rel=0.05
        )
        n_req = r["waves"] * r["batch"]
        assert r["inferred_batch"]["estimated_wh"]["value"] == pytest.approx(n_req * 1e-6)
        assert (
            r["inferred_batch"]["ratio"] > 0
            and r["known_batch"]["ratio"] == r["inferred_batch"]["ratio"]
        )
        assert r["step_ms"] == pytest.approx(2.0, abs=1.5)
    batches = {d.batch for d in seen}
    assert batches == {None, 1.0, 4.0}  # inferred, then told
    assert all(d.pue == 1.0 and not d.include_host for d in seen)
    assert result["geomean_ratio"] > 0
    json.dumps(result, default=str)
    # the time budget stops further batch sizes
    args.budget = 0.0
    short = bench.run(args, workload=FakeWork(), estimator=estimator)
    assert short["runs"] == [] and "budget" in short["warnings"][0]


class _Tensor:
    """Just enough of a torch tensor, on numpy, to run the bench's workload code."""

    def __init__(self, a: Any) -> None:
        self.a = a
        self.shape = a.shape

    def __matmul__(self, other: _Tensor) -> _Tensor:
        return _Tensor(self.a @ other.a)

    def __getitem__(self, i: Any) -> _Tensor:
        return _Tensor(self.a[i])

    def mul_(self, k: float) -> _Tensor:
        self.a *= k
        return self

    def transpose(self, i: int, j: int) -> _Tensor:
        return _Tensor(self.a.swapaxes(i, j))


def _fake_torch(uuid: str, calls: list[str]) -> types.ModuleType:
    import numpy as np

    torch = types.ModuleType("torch")
    torch.bfloat16 = np.float32  # type: ignore[attr-defined]
    torch.device = lambda kind, index: (kind, index)  # type: ignore[attr-defined]

    def randn(*shape: int, dtype: Any, device: Any) -> _Tensor:
        assert device == ("cuda", 0)
        return _Tensor(np.random.default_rng(0).standard_normal(shape).astype(dtype))

    def bmm(a: _Tensor, b: _Tensor) -> _Tensor:
        assert a.shape[0] == b.shape[0] and a.shape[2] == b.shape[1]
        calls.append("bmm")
        return _Tensor(np.matmul(a.a, b.a))

    torch.randn = randn  # type: ignore[attr-defined]
    torch.bmm = bmm  # type: ignore[attr-defined]
    torch.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: True,
        synchronize=lambda dev: calls.append("sync"),
        empty_cache=lambda: calls.append("empty_cache"),
        get_device_properties=lambda i: types.SimpleNamespace(uuid=uuid),
    )
    return torch


def test_bench_torch_workload_code_runs_on_a_numpy_stand_in(
    install: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from otm.impact import Impact, Range

    bench = _load_bench(monkeypatch)
    monkeypatch.setattr(bench, "HIDDEN", 16)
    monkeypatch.setitem(bench.PRESETS, "1b", bench.Preset("tiny", 16 * 16 * 3, 64))
    other, target = FakeGpu(uuid="GPU-aaaa"), FakeGpu(uuid="GPU-bbbb", watts=200.0)
    install([other, target])  # CUDA device 0 is NVML device 1: matched by UUID
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "torch", _fake_torch("bbbb", calls))

    def estimator(telemetry: Any, **kw: Any) -> Impact:
        e = Range(value=1e-6, low=5e-7, high=2e-6)
        return Impact(
            energy_wh=e,
            carbon_g=e,
            water_ml=e,
            breakdown_wh={},
            carbon_breakdown_g={},
            water_breakdown_ml={},
        )

    args = bench.parse(
        [
            "--batches",
            "2",
            "--seconds",
            "0.05",
            "--idle-seconds",
            "0.05",
            "--preset",
            "1b",
            "--input-tokens",
            "4",
            "--output-tokens",
            "3",
            "--interval",
            "0.01",
        ]
    )
    result = bench.run(args, estimator=estimator)
    assert result["device"]["nvml_index"] == 1 and result["warnings"] == []
    assert result["imitates"] == {"model": "tiny", "params": 16 * 16 * 3, "kv_bytes_per_token": 64}
    (r,) = result["runs"]
    assert "error" not in r, r
    assert r["measured"]["mean_power_w"] == pytest.approx(200.0, rel=0.03)
    assert (
        calls.count("bmm") == r["waves"] * 3 + 3
    )  # a KV read per decode step (+ the warm-up wave)
    assert "empty_cache" in calls


def test_counter_reset_without_power_readings_keeps_counting(install: Callable[..., Any]) -> None:
    gpu = FakeGpu(watts=300.0, power_reading=False)
    install([gpu])
    meter = GpuMeter(interval_s=0.02).start()
    time.sleep(0.1)
    gpu.counter_offset_mj = 0
    time.sleep(0.1)
    m = meter.stop()
    assert m is not None and m.devices[0].method == "counter"
    # one tick's worth of energy is lost at the reset, not the whole window
    assert m.energy_j == pytest.approx(300.0 * m.duration_s, rel=0.15)
    assert any("no power samples to fall back on" in w for w in m.warnings)

"""A thin, typed layer over NVML (the ``pynvml`` module of ``nvidia-ml-py``).

Everything that can go wrong with NVML — the binding not installed, no driver,
no GPU, a reading the GPU does not support, a GPU that falls off the bus — ends
here as :class:`MeasurementUnavailable` (for what the caller asked for and
cannot have) or ``None`` (for one reading that failed). Nothing in this module
imports ``pynvml`` until a session is opened.

Units at this boundary: NVML speaks milliwatts and millijoules; we speak watts
and joules from here up.
"""

from __future__ import annotations

import importlib
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

__all__ = [
    "GpuInfo",
    "MeasurementUnavailable",
    "NvmlSession",
    "PowerSampler",
    "import_pynvml",
    "is_available",
    "list_devices",
    "trapezoid_j",
]


class MeasurementUnavailable(RuntimeError):
    """Direct measurement is not possible here: no NVML binding, driver, GPU, or support."""


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA device as NVML sees it (NVML order, which may differ from CUDA's)."""

    index: int
    name: str
    uuid: str | None
    power_limit_w: float | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    energy_counter: bool
    """The board's total-energy counter is readable (Volta and newer, not on vGPU/MIG handles)."""
    power_reading: bool
    """Instantaneous (or driver-averaged) board power is readable."""


def import_pynvml() -> ModuleType:
    """The NVML binding, imported on demand."""
    try:
        with warnings.catch_warnings():
            # The legacy ``pynvml`` distribution wraps nvidia-ml-py and warns on
            # import; that is packaging noise, not something our users can act on.
            warnings.simplefilter("ignore", FutureWarning)
            return importlib.import_module("pynvml")
    except ImportError as exc:
        raise MeasurementUnavailable(
            "NVML binding not installed: pip install 'otm[nvml]' (nvidia-ml-py)"
        ) from exc


def _describe(exc: BaseException) -> str:
    # str() of an NVMLError calls back into the library, which may be the thing that is broken.
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text or type(exc).__name__


class NvmlSession:
    """An initialised NVML library: pairs ``nvmlInit`` with ``nvmlShutdown``.

    NVML reference-counts init/shutdown, so independent sessions (two meters,
    a meter and the user's own code) do not disturb each other.
    """

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self.nv = nvml if nvml is not None else import_pynvml()
        self._error: type[BaseException] = getattr(self.nv, "NVMLError", Exception)
        try:
            self.nv.nvmlInit()
        except self._error as exc:
            raise MeasurementUnavailable(
                f"NVML could not start (no NVIDIA driver or GPU?): {_describe(exc)}"
            ) from exc
        except OSError as exc:  # a broken libnvidia-ml on the loader path
            raise MeasurementUnavailable(f"NVML could not be loaded: {exc}") from exc
        self._open = True
        self._lock = threading.Lock()

    # --- lifecycle ---

    def close(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        try:
            self.nv.nvmlShutdown()
        except Exception:  # shutting down must not fail the caller
            pass

    def __enter__(self) -> NvmlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- devices ---

    def count(self) -> int:
        try:
            return int(self.nv.nvmlDeviceGetCount())
        except self._error as exc:
            raise MeasurementUnavailable(f"NVML could not count devices: {_describe(exc)}") from exc

    def handle(self, device: int | str) -> Any:
        """A device handle by NVML index or by UUID (``GPU-...``), which is unambiguous."""
        try:
            if isinstance(device, str):
                return self.nv.nvmlDeviceGetHandleByUUID(device)
            return self.nv.nvmlDeviceGetHandleByIndex(int(device))
        except self._error as exc:
            raise MeasurementUnavailable(f"no NVIDIA device {device!r}: {_describe(exc)}") from exc

    def _try(self, fn: Callable[..., Any], *args: Any) -> Any:
        # One reading failing (not supported, GPU busy resetting, a binding
        # quirk) must cost that reading only.
        try:
            return fn(*args)
        except Exception:
            return None

    def info(self, index: int, handle: Any | None = None) -> GpuInfo:
        h = handle if handle is not None else self.handle(index)
        nv = self.nv
        name = self._try(nv.nvmlDeviceGetName, h)
        uuid = self._try(nv.nvmlDeviceGetUUID, h)
        limit = None
        for fname in ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"):
            fn = getattr(nv, fname, None)
            limit = None if fn is None else self._try(fn, h)
            if limit is not None:
                break
        mem = self._try(nv.nvmlDeviceGetMemoryInfo, h)
        return GpuInfo(
            index=index,
            name=_text(name) or f"GPU {index}",
            uuid=_text(uuid),
            power_limit_w=None if limit is None else float(limit) / 1000.0,
            memory_total_bytes=None if mem is None else int(mem.total),
            memory_used_bytes=None if mem is None else int(mem.used),
            energy_counter=self.energy_mj(h) is not None,
            power_reading=self.power_w(h) is not None,
        )

    def devices(self) -> list[GpuInfo]:
        return [self.info(i) for i in range(self.count())]

    # --- readings: None when this reading is not supported or failed this time ---

    def energy_mj(self, handle: Any) -> int | None:
        """Total energy since the driver loaded, millijoules (Volta and newer)."""
        v = self._try(self.nv.nvmlDeviceGetTotalEnergyConsumption, handle)
        return None if v is None else int(v)

    def power_w(self, handle: Any) -> float | None:
        """Board power, watts (on Ampere and newer NVML averages it over about 1 s)."""
        v = self._try(self.nv.nvmlDeviceGetPowerUsage, handle)
        return None if v is None else float(v) / 1000.0

    def processes(self, handle: Any) -> list[int] | None:
        """PIDs of the compute processes on the device (None when NVML will not say)."""
        fn = getattr(self.nv, "nvmlDeviceGetComputeRunningProcesses", None)
        if fn is None:
            return None
        procs = self._try(fn, handle)
        if procs is None:
            return None
        return sorted({int(p.pid) for p in procs if getattr(p, "pid", None) is not None})

    def driver_version(self) -> str | None:
        fn = getattr(self.nv, "nvmlSystemGetDriverVersion", None)
        return None if fn is None else _text(self._try(fn))


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):  # older bindings return bytes
        return v.decode("utf-8", "replace")
    return str(v)


def list_devices() -> list[GpuInfo]:
    """Every NVIDIA device NVML can see; raises :class:`MeasurementUnavailable` when none can be."""
    with NvmlSession() as s:
        return s.devices()


def is_available() -> bool:
    """True when NVML starts and sees at least one device."""
    try:
        with NvmlSession() as s:
            return s.count() > 0
    except MeasurementUnavailable:
        return False


# --------------------------------------------------------------------------- sampling


def trapezoid_j(times_s: Sequence[float], watts: Sequence[float]) -> float:
    """Energy of a power trace by the trapezoidal rule, joules (exact for piecewise-linear power)."""
    e = 0.0
    for i in range(1, min(len(times_s), len(watts))):
        e += 0.5 * (watts[i] + watts[i - 1]) * (times_s[i] - times_s[i - 1])
    return e


T = TypeVar("T")


class PowerSampler(Generic[T]):
    """Calls ``tick(t)`` every ``interval_s`` on a daemon thread until stopped.

    Ticks are scheduled on a fixed grid from the start (no drift from the
    time a tick itself takes). The caller takes the first and last readings
    itself, synchronously, so a window begins and ends exactly at start and
    stop whatever the grid. A failing tick is counted, never raised: the
    user's program must not die because a GPU reading failed.
    """

    def __init__(
        self,
        tick: Callable[[float], T],
        interval_s: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not interval_s > 0:
            raise ValueError("interval_s must be > 0")
        self._tick = tick
        self.interval_s = float(interval_s)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="otm-gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        t0 = self._clock()
        k = 1
        while True:
            delay = t0 + k * self.interval_s - self._clock()
            if delay > 0 and self._stop.wait(delay):
                return
            if self._stop.is_set():
                return
            now = self._clock()
            # A stalled thread (GIL held by the workload) skips missed ticks rather than bursting.
            k = max(k + 1, int((now - t0) / self.interval_s) + 1)
            try:
                self._tick(now)
            except Exception as exc:
                self.errors += 1
                self.last_error = exc

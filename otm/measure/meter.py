"""GpuMeter: how much energy the GPUs drew over a window of time.

    from otm.measure import GpuMeter

    with GpuMeter(devices=[0], idle_s=2.0) as meter:
        run_the_workload()
    m = meter.result
    m.energy_wh, m.dynamic_energy_wh, m.mean_power_w, m.method

Two ways to get energy, chosen per device:

* ``counter`` — NVML's total-energy counter (millijoules since the driver
  loaded, Volta and newer): read at start and stop, the difference is the
  energy. Exact up to the counter's own update period.
* ``sampled`` — board power read every ``interval_s`` on a background thread
  and integrated with the trapezoidal rule. The fallback where the counter is
  not supported.

Power is sampled in both modes (for peak power and the energy-over-time trace
that :mod:`otm.measure.reconcile` uses to attribute energy to requests).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from otm._log import log_once
from otm.measure.nvml import GpuInfo, MeasurementUnavailable, NvmlSession, PowerSampler
from otm.units import fmt, fmt_seconds, sig

__all__ = ["DeviceEnergy", "GpuMeasurement", "GpuMeter"]

Method = Literal["counter", "sampled"]
MethodChoice = Literal["auto", "counter", "sampled"]

# Longest trace kept in memory; beyond it every other point is dropped. The
# trace is cumulative energy, so thinning it costs time resolution only, never
# the total (20 points/s keeps ~2.8 h at full resolution).
_MAX_TRACE_POINTS = 200_000


@dataclass(frozen=True)
class DeviceEnergy:
    """Energy one device drew over the metered window."""

    index: int
    name: str
    uuid: str | None
    method: Method
    energy_j: float
    duration_s: float
    peak_power_w: float | None
    samples: int
    """Power readings taken (both methods sample power)."""
    idle_power_w: float | None = None
    processes: tuple[int, ...] | None = None
    """PIDs of compute processes seen on the device during the window (None: NVML would not say)."""

    @property
    def energy_wh(self) -> float:
        return self.energy_j / 3600.0

    @property
    def mean_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def dynamic_energy_j(self) -> float | None:
        """Energy above the idle baseline (None without one); floored at 0."""
        if self.idle_power_w is None:
            return None
        return max(0.0, self.energy_j - self.idle_power_w * self.duration_s)

    @property
    def dynamic_energy_wh(self) -> float | None:
        d = self.dynamic_energy_j
        return None if d is None else d / 3600.0


@dataclass(frozen=True)
class GpuMeasurement:
    """The result of one metered window, over every metered device."""

    devices: tuple[DeviceEnergy, ...]
    start_time: float
    """Unix seconds, same clock as :class:`otm.Telemetry` times."""
    end_time: float
    duration_s: float
    interval_s: float
    peak_power_w: float | None
    """Highest total board power seen in one sampling tick, all devices together."""
    trace_t: tuple[float, ...] = ()
    """Unix seconds of each tick (first = start, last = stop)."""
    trace_j: tuple[float, ...] = ()
    """Cumulative energy since start at each tick, joules, all devices together."""
    warnings: tuple[str, ...] = ()
    driver_version: str | None = None
    ticks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    # --- totals ---

    @property
    def energy_j(self) -> float:
        return sum(d.energy_j for d in self.devices)

    @property
    def energy_wh(self) -> float:
        return self.energy_j / 3600.0

    @property
    def mean_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def samples(self) -> int:
        return sum(d.samples for d in self.devices)

    @property
    def method(self) -> str:
        """``counter``, ``sampled`` or ``mixed`` (devices measured differently)."""
        methods = {d.method for d in self.devices}
        return methods.pop() if len(methods) == 1 else "mixed"

    @property
    def idle_power_w(self) -> float | None:
        """Idle baseline of all devices together (None unless every device has one)."""
        idle = [d.idle_power_w for d in self.devices]
        if not idle or any(p is None for p in idle):
            return None
        return float(sum(p for p in idle if p is not None))

    @property
    def dynamic_energy_j(self) -> float | None:
        """Total minus idle baseline x duration, per device, floored at 0 (None without a baseline)."""
        parts = [d.dynamic_energy_j for d in self.devices]
        if not parts or any(p is None for p in parts):
            return None
        return float(sum(p for p in parts if p is not None))

    @property
    def dynamic_energy_wh(self) -> float | None:
        d = self.dynamic_energy_j
        return None if d is None else d / 3600.0

    # --- energy over time ---

    def energy_at(self, times: Any) -> Any:
        """Cumulative energy (J) at unix time(s), interpolated on the trace; clipped to the window.

        Without a trace the power is taken as constant over the window.
        """
        import numpy as np

        t = np.clip(np.asarray(times, dtype=float), self.start_time, self.end_time)
        if len(self.trace_t) >= 2:
            out = np.interp(t, np.asarray(self.trace_t), np.asarray(self.trace_j))
        elif self.duration_s > 0:
            out = (t - self.start_time) / self.duration_s * self.energy_j
        else:
            out = np.zeros_like(t)
        return float(out) if np.ndim(out) == 0 else out

    def energy_between(self, t0: float, t1: float) -> float:
        """Energy drawn between two unix times inside the window, joules."""
        return float(self.energy_at(t1) - self.energy_at(t0))

    # --- presentation ---

    def to_dict(self, *, with_trace: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration_s": self.duration_s,
            "method": self.method,
            "energy_j": self.energy_j,
            "energy_wh": self.energy_wh,
            "mean_power_w": self.mean_power_w,
            "peak_power_w": self.peak_power_w,
            "idle_power_w": self.idle_power_w,
            "dynamic_energy_wh": self.dynamic_energy_wh,
            "interval_s": self.interval_s,
            "samples": self.samples,
            "driver_version": self.driver_version,
            "devices": [
                {
                    "index": d.index,
                    "name": d.name,
                    "uuid": d.uuid,
                    "method": d.method,
                    "energy_j": d.energy_j,
                    "energy_wh": d.energy_wh,
                    "mean_power_w": d.mean_power_w,
                    "peak_power_w": d.peak_power_w,
                    "idle_power_w": d.idle_power_w,
                    "dynamic_energy_wh": d.dynamic_energy_wh,
                    "samples": d.samples,
                    "processes": None if d.processes is None else list(d.processes),
                }
                for d in self.devices
            ],
            "warnings": list(self.warnings),
        }
        if with_trace:
            out["trace"] = {"t": list(self.trace_t), "j": list(self.trace_j)}
        return out

    def summary(self) -> str:
        names = ", ".join(f"{d.index}:{d.name}" for d in self.devices)
        lines = [
            f"GPU energy ({self.method}, {len(self.devices)} device(s): {names})",
            f"  window   {self.duration_s:.3f} s",
            f"  energy   {fmt('energy', self.energy_wh, 5)} ({sig(self.energy_j, 5)} J)",
            f"  power    mean {self.mean_power_w:.1f} W"
            + ("" if self.peak_power_w is None else f", peak {self.peak_power_w:.1f} W"),
        ]
        if self.idle_power_w is not None and self.dynamic_energy_wh is not None:
            lines.append(
                f"  idle     {self.idle_power_w:.1f} W -> dynamic energy {fmt('energy', self.dynamic_energy_wh, 5)}"
            )
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"GpuMeasurement({fmt('energy', self.energy_wh, 4)} over {fmt_seconds(self.duration_s)}, "
            f"{self.method}, {len(self.devices)} device(s))"
        )


# --------------------------------------------------------------------------- the meter


class _Dev:
    """Running state of one device inside a window."""

    __slots__ = (
        "counter0",
        "counter_last",
        "counter_t",
        "handle",
        "index",
        "info",
        "method",
        "n",
        "p_last",
        "peak",
        "sampled_j",
        "t_last",
    )

    def __init__(self, index: int, handle: Any, info: GpuInfo, method: Method) -> None:
        self.index = index
        self.handle = handle
        self.info = info
        self.method: Method = method
        self.counter0: int | None = None
        self.counter_last: int | None = None
        self.counter_t: float | None = None
        self.t_last: float | None = None
        self.p_last: float | None = None
        self.sampled_j = 0.0
        self.peak: float | None = None
        self.n = 0

    def energy_j(self) -> float:
        if self.method == "counter" and self.counter0 is not None and self.counter_last is not None:
            return (self.counter_last - self.counter0) / 1000.0
        return self.sampled_j


class _Window:
    """One metered window: readings on every tick, integrated online (O(1) memory but the trace)."""

    def __init__(self, session: NvmlSession, devs: list[_Dev], keep_trace: bool) -> None:
        self.s = session
        self.devs = devs
        self.keep_trace = keep_trace
        self.trace_t: list[float] = []
        self.trace_j: list[float] = []
        self.peak_total: float | None = None
        self.ticks = 0
        self.warnings: list[str] = []
        self.switched = False
        self.t_begin: float | None = None

    def end(self, t: float) -> None:
        """The last tick; a device whose last readings failed holds its last good power to the end."""
        self.tick(t)
        for d in self.devs:
            if d.t_last is not None and d.p_last is not None and d.t_last < t:
                d.sampled_j += d.p_last * (t - d.t_last)
                d.t_last = t
        if self.keep_trace and self.trace_j:
            self.trace_j[-1] = sum(d.energy_j() for d in self.devs)

    def begin(self, t: float) -> None:
        """The first tick: fixes each counter's zero."""
        self.t_begin = t
        self.tick(t)
        for d in self.devs:
            if d.method == "counter" and d.counter0 is None:
                self._fallback(d, "its energy counter could not be read at start")

    def tick(self, t: float) -> None:
        total_p = 0.0
        any_p = False
        first = self.ticks == 0
        for d in self.devs:
            if d.method == "counter":
                c = self.s.energy_mj(d.handle)
                if c is not None and (first or d.counter0 is not None):
                    if first:
                        d.counter0 = c
                    elif (
                        d.counter_last is not None and d.counter0 is not None and c < d.counter_last
                    ):
                        # The counter restarts when the driver reloads: keep the energy
                        # integrated from power instead, or, without power readings, carry
                        # on counting from the new zero.
                        self._fallback(d, "its energy counter went backwards (driver reload?)")
                        d.counter0 = c - (d.counter_last - d.counter0)
                    d.counter_last = c
                    d.counter_t = t
            p = self.s.power_w(d.handle) if d.info.power_reading else None
            if p is not None:
                if d.t_last is not None and d.p_last is not None:
                    d.sampled_j += 0.5 * (p + d.p_last) * (t - d.t_last)
                elif self.t_begin is not None:
                    # The first readings failed: hold the first good one back to the start.
                    d.sampled_j += p * (t - self.t_begin)
                d.t_last, d.p_last = t, p
                d.n += 1
                d.peak = p if d.peak is None else max(d.peak, p)
                total_p += p
                any_p = True
        if any_p:
            self.peak_total = total_p if self.peak_total is None else max(self.peak_total, total_p)
        self.ticks += 1
        if self.keep_trace:
            self.trace_t.append(t)
            self.trace_j.append(sum(d.energy_j() for d in self.devs))
            if len(self.trace_t) > _MAX_TRACE_POINTS:
                self.trace_t = self.trace_t[::2]
                self.trace_j = self.trace_j[::2]

    def _fallback(self, d: _Dev, why: str) -> None:
        if d.method != "counter":
            return
        if d.n > 0:
            d.method = "sampled"
            self.switched = True
            self.warnings.append(f"GPU {d.index}: {why}; used sampled power instead")
        else:
            self.warnings.append(f"GPU {d.index}: {why}; no power samples to fall back on")


class GpuMeter:
    """Meter the energy of NVIDIA GPUs over a window (context manager or start()/stop()).

    ``devices``: NVML indices (or UUIDs) to meter; None meters every device.
    ``interval_s``: power sampling period (the energy itself comes from the
    counter where the GPU has one). ``method``: ``auto`` (counter where
    supported, else sampled), or force ``counter`` / ``sampled``.
    ``idle_s``: first measure the idle baseline for this many seconds (the
    GPUs should be quiet then); or give ``idle_power_w`` (watts, for all
    devices together split evenly, or a mapping index -> watts).
    ``required``: when False, a machine without NVML/GPU gives ``result is
    None`` (logged once) instead of raising :class:`MeasurementUnavailable`.
    """

    def __init__(
        self,
        devices: Sequence[int | str] | None = None,
        interval_s: float = 0.05,
        *,
        method: MethodChoice = "auto",
        idle_s: float = 0.0,
        idle_power_w: float | Mapping[int, float] | None = None,
        keep_trace: bool = True,
        required: bool = True,
    ) -> None:
        if not (interval_s > 0 and math.isfinite(interval_s)):
            raise ValueError("interval_s must be a positive number of seconds")
        if method not in ("auto", "counter", "sampled"):
            raise ValueError("method must be 'auto', 'counter' or 'sampled'")
        if idle_s < 0:
            raise ValueError("idle_s must be >= 0")
        self.devices_requested = None if devices is None else list(devices)
        self.interval_s = float(interval_s)
        self.method: MethodChoice = method
        self.idle_s = float(idle_s)
        self._idle_given = idle_power_w
        self.keep_trace = keep_trace
        self.required = required
        self._clock = time.perf_counter
        self._session: NvmlSession | None = None
        self._devs: list[_Dev] = []
        self._window: _Window | None = None
        self._sampler: PowerSampler[None] | None = None
        self._t0 = 0.0
        self._wall0 = 0.0
        self._idle: dict[int, float] = {}
        self._procs: dict[int, set[int] | None] = {}
        self._warnings: list[str] = []
        self.result: GpuMeasurement | None = None
        self.unavailable: MeasurementUnavailable | None = None

    @staticmethod
    def available() -> bool:
        """True when NVML starts here and sees a device."""
        from otm.measure.nvml import is_available

        return is_available()

    @property
    def running(self) -> bool:
        return self._window is not None

    @property
    def devices(self) -> list[GpuInfo]:
        """The devices being (or last) metered."""
        return [d.info for d in self._devs]

    # --- setup ---

    def _open(self) -> None:
        if self._session is not None:
            return
        session = NvmlSession()
        try:
            wanted: list[int | str] = (
                list(range(session.count()))
                if self.devices_requested is None
                else list(self.devices_requested)
            )
            if not wanted:
                raise MeasurementUnavailable("NVML sees no NVIDIA device")
            devs: list[_Dev] = []
            for want in wanted:
                handle = session.handle(want)
                index = want if isinstance(want, int) else _index_of(session, handle)
                info = session.info(index, handle)
                m = self._choose(info)
                if m is None:
                    continue
                devs.append(_Dev(index, handle, info, m))
            if not devs:
                raise MeasurementUnavailable(
                    "none of the requested GPUs reports energy or power through NVML "
                    "(vGPU or MIG instance? meter the physical GPU)"
                )
        except BaseException:
            session.close()
            raise
        self._session = session
        self._devs = devs

    def _choose(self, info: GpuInfo) -> Method | None:
        if self.method == "counter":
            if not info.energy_counter:
                raise MeasurementUnavailable(
                    f"GPU {info.index} ({info.name}) has no readable energy counter"
                )
            return "counter"
        if self.method == "sampled":
            if not info.power_reading:
                raise MeasurementUnavailable(
                    f"GPU {info.index} ({info.name}) has no readable power"
                )
            return "sampled"
        if info.energy_counter:
            return "counter"
        if info.power_reading:
            return "sampled"
        self._warnings.append(
            f"GPU {info.index} ({info.name}) reports neither energy nor power: not metered"
        )
        return None

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _fail(self, exc: MeasurementUnavailable) -> None:
        self.unavailable = exc
        if self.required:
            raise exc
        log_once(
            "measure.GpuMeter", None, f"otm: GPU metering unavailable, result will be None: {exc}"
        )

    # --- idle baseline ---

    def measure_idle(self, seconds: float = 2.0) -> dict[int, float]:
        """Measure each device's idle power (W) for ``seconds``, blocking; used by later windows."""
        if self.running:
            raise RuntimeError(
                "measure_idle() while the meter runs would meter the workload as idle"
            )
        opened_here = self._session is None
        try:
            self._open()
        except MeasurementUnavailable as exc:
            self._fail(exc)
            return {}
        assert self._session is not None
        try:
            self._idle = self._idle_window(self._session, seconds)
        finally:
            if opened_here:
                self._close()
        return dict(self._idle)

    def _idle_window(self, session: NvmlSession, seconds: float) -> dict[int, float]:
        devs = [_Dev(d.index, d.handle, d.info, d.method) for d in self._devs]
        w = _Window(session, devs, keep_trace=False)
        t0 = self._clock()
        w.begin(t0)
        end = t0 + max(seconds, self.interval_s)
        while True:
            now = self._clock()
            if now >= end:
                break
            time.sleep(min(self.interval_s, end - now))
            w.tick(self._clock())
        t1 = self._clock()
        w.end(t1)
        dt = t1 - t0
        return {d.index: d.energy_j() / dt for d in devs} if dt > 0 else {}

    def _idle_for(self, index: int) -> float | None:
        given = self._idle_given
        if given is not None:
            if isinstance(given, Mapping):
                v = given.get(index)
                return None if v is None else float(v)
            return float(given) / max(1, len(self._devs))
        return self._idle.get(index)

    # --- the window ---

    def start(self) -> GpuMeter:
        if self.running:
            raise RuntimeError("GpuMeter already running")
        self.result = None
        self._warnings = []
        try:
            self._open()
            if self.idle_s > 0:
                self.measure_idle(self.idle_s)
        except MeasurementUnavailable as exc:
            self._close()
            self._fail(exc)
            return self
        assert self._session is not None
        self._procs = {d.index: _as_set(self._session.processes(d.handle)) for d in self._devs}
        self._window = _Window(self._session, self._devs, self.keep_trace)
        self._wall0 = time.time()
        self._t0 = self._clock()
        self._window.begin(self._t0)
        self._sampler = PowerSampler(self._window.tick, self.interval_s, self._clock)
        self._sampler.start()
        return self

    def stop(self) -> GpuMeasurement | None:
        """End the window and return its measurement (None if metering was unavailable)."""
        window, sampler, session = self._window, self._sampler, self._session
        if window is None or session is None:
            return self.result
        try:
            if sampler is not None:
                sampler.stop()
            t1 = self._clock()
            window.end(t1)
            for d in self._devs:
                p = session.processes(d.handle)
                if p is not None:
                    self._procs[d.index] = (self._procs.get(d.index) or set()) | set(p)
            self.result = self._build(window, t1, sampler, session)
        finally:
            self._window = None
            self._sampler = None
            self._close()
        return self.result

    def _build(
        self, w: _Window, t1: float, sampler: PowerSampler[None] | None, session: NvmlSession
    ) -> GpuMeasurement:
        dur = t1 - self._t0
        for d in self._devs:
            if d.method == "counter" and d.counter_t is not None and d.counter_t < t1:
                # The last counter read failed: what it missed is better taken from power samples.
                w._fallback(d, "the final energy-counter read failed")
        warnings = list(self._warnings) + list(w.warnings)
        if sampler is not None and sampler.errors:
            warnings.append(f"{sampler.errors} sampling tick(s) failed ({sampler.last_error!r})")
        if any(d.method == "counter" for d in self._devs) and dur < 1.0:
            warnings.append(
                f"window of {dur:.2f} s: the energy counter updates on the driver's own period, "
                "so windows under ~1 s are imprecise"
            )
        if (
            any(d.method == "sampled" for d in self._devs)
            and max((d.n for d in self._devs), default=0) < 10
        ):
            warnings.append(
                "fewer than 10 power samples: sampled energy is coarse (lengthen the window or shorten interval_s)"
            )
        devices = []
        for d in self._devs:
            procs = self._procs.get(d.index)
            if procs is not None and len(procs) > 1:
                warnings.append(
                    f"GPU {d.index}: {len(procs)} processes used it during the window (pids {sorted(procs)}); "
                    "NVML meters the whole board, their energy is included"
                )
            devices.append(
                DeviceEnergy(
                    index=d.index,
                    name=d.info.name,
                    uuid=d.info.uuid,
                    method=d.method,
                    energy_j=max(0.0, d.energy_j()),
                    duration_s=dur,
                    peak_power_w=d.peak,
                    samples=d.n,
                    idle_power_w=self._idle_for(d.index),
                    processes=None if procs is None else tuple(sorted(procs)),
                )
            )
        to_unix = self._wall0 - self._t0
        trace_t = tuple(t + to_unix for t in w.trace_t)
        trace_j = tuple(w.trace_j)
        if w.switched:
            # A device changed method mid-window, so the cumulative trace mixes the
            # two; rescale it so it still ends at the reported total.
            total = sum(x.energy_j for x in devices)
            if trace_j and trace_j[-1] > 0:
                k = total / trace_j[-1]
                trace_j = tuple(j * k for j in trace_j)
        # The window's edges are the trace's first and last points exactly, so that
        # interpolating at the edges never falls a rounding error short of the total.
        start, end = (
            (trace_t[0], trace_t[-1]) if len(trace_t) >= 2 else (self._wall0, self._wall0 + dur)
        )
        return GpuMeasurement(
            devices=tuple(devices),
            start_time=start,
            end_time=end,
            duration_s=dur,
            interval_s=self.interval_s,
            peak_power_w=w.peak_total,
            trace_t=trace_t,
            trace_j=trace_j,
            warnings=tuple(dict.fromkeys(warnings)),
            driver_version=session.driver_version(),
            ticks=w.ticks,
        )

    def __enter__(self) -> GpuMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else ("done" if self.result is not None else "idle")
        return f"<GpuMeter {state} devices={self.devices_requested or 'all'} interval={self.interval_s}s>"


def _as_set(pids: list[int] | None) -> set[int] | None:
    return None if pids is None else set(pids)


def _index_of(session: NvmlSession, handle: Any) -> int:
    fn = getattr(session.nv, "nvmlDeviceGetIndex", None)
    try:
        return int(fn(handle)) if fn is not None else -1
    except Exception:
        return -1

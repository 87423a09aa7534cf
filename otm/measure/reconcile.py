"""Reconcile a GPU measurement with the estimates of the calls made during it.

    from otm.measure import GpuMeter, reconcile

    with GpuMeter() as meter:
        ...calls to a local server, through otm.wrap(client, deployment=...)...
    rec = reconcile(records, meter)
    print(rec.summary())
    rec.ratio, rec.within_range, rec.requests[0].measured_wh

or, collecting the records and metering in one go:

    with otm.measure.metered() as run:
        ...
    print(run.reconciliation.summary())

The comparison is made at the boundary NVML measures: the GPU boards only.
Each record is re-estimated with ``Deployment.accelerator_only(acc, count)``
(no host, no idle reserve, PUE 1). Measured energy is attributed to requests
over time: the window is cut at every request's start and end; each slice's
energy goes to the requests in flight during it (equally by default, or by
token or estimate density); slices with nothing in flight are "gap" energy,
reported on its own, because an estimate never covers a GPU idling between
calls.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from otm._log import log_once
from otm.impact import Range
from otm.measure.meter import GpuMeasurement, GpuMeter
from otm.units import fmt, fmt_range, sig

if TYPE_CHECKING:
    from otm.deployment import Deployment
    from otm.impact import Impact
    from otm.record import Record
    from otm.telemetry import Telemetry

__all__ = ["MeteredRun", "Reconciliation", "RequestShare", "metered", "reconcile"]

Attribution = Literal["time", "tokens", "estimate"]
Estimator = Callable[..., "Impact"]


@dataclass(frozen=True)
class RequestShare:
    """One request's part of the measured energy, next to its accelerator-only estimate."""

    record: Record
    start_time: float
    end_time: float
    overlap: float
    """Fraction of the request's duration inside the metered window (its estimate is scaled by it)."""
    measured_wh: float
    """Measured energy attributed to this request."""
    estimated_wh: Range | None
    """Accelerator-only estimate for the part inside the window; None if the estimator failed."""

    @property
    def ratio(self) -> float | None:
        """measured / estimated (central)."""
        est = self.estimated_wh
        if est is None or est.value <= 0:
            return None
        return self.measured_wh / est.value

    @property
    def within_range(self) -> bool | None:
        est = self.estimated_wh
        return None if est is None else est.low <= self.measured_wh <= est.high


@dataclass(frozen=True)
class Reconciliation:
    """Measured GPU energy against the sum of accelerator-only estimates."""

    measurement: GpuMeasurement
    requests: tuple[RequestShare, ...]
    attribution: Attribution
    window_wh: float
    """Everything the metered GPUs drew over the window (minus idle if ``subtract_idle``)."""
    active_wh: float
    """The part drawn while at least one request was in flight: what the estimates cover."""
    gap_wh: float
    """The part drawn while no request was in flight (idle between calls, warm-up...)."""
    estimated_wh: Range | None
    """Sum of the estimates (lows and highs summed too: the uncertainty is shared, not independent)."""
    compared_wh: float
    """Measured energy of the requests that have an estimate (the numerator of :attr:`ratio`)."""
    boundary: str = "accelerator-only"
    subtract_idle: bool = False
    skipped: dict[str, int] = field(default_factory=dict)
    """Records left out, by reason."""
    warnings: tuple[str, ...] = ()

    @property
    def ratio(self) -> float | None:
        """measured / estimated, central; 1.0 is a perfect estimate."""
        est = self.estimated_wh
        if est is None or est.value <= 0:
            return None
        return self.compared_wh / est.value

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        """measured / estimate-high .. measured / estimate-low: the ratios the range allows."""
        est = self.estimated_wh
        if est is None or est.low <= 0 or est.high <= 0:
            return None
        return (self.compared_wh / est.high, self.compared_wh / est.low)

    @property
    def within_range(self) -> bool | None:
        """Whether the measured energy lies inside the estimate's low..high range."""
        est = self.estimated_wh
        return None if est is None else est.low <= self.compared_wh <= est.high

    @property
    def per_request_ratios(self) -> list[float]:
        return [r for r in (s.ratio for s in self.requests) if r is not None]

    def to_dict(self) -> dict[str, Any]:
        est = self.estimated_wh
        return {
            "boundary": self.boundary,
            "attribution": self.attribution,
            "subtract_idle": self.subtract_idle,
            "window_wh": self.window_wh,
            "active_wh": self.active_wh,
            "gap_wh": self.gap_wh,
            "compared_wh": self.compared_wh,
            "estimated_wh": None
            if est is None
            else {"value": est.value, "low": est.low, "high": est.high},
            "ratio": self.ratio,
            "ratio_range": None if self.ratio_range is None else list(self.ratio_range),
            "within_range": self.within_range,
            "requests": [
                {
                    "request_id": s.record.telemetry.request_id,
                    "model": s.record.telemetry.model,
                    "start_time": s.start_time,
                    "end_time": s.end_time,
                    "overlap": s.overlap,
                    "input_tokens": s.record.telemetry.input_tokens,
                    "output_tokens": s.record.telemetry.output_tokens,
                    "measured_wh": s.measured_wh,
                    "estimated_wh": None
                    if s.estimated_wh is None
                    else {
                        "value": s.estimated_wh.value,
                        "low": s.estimated_wh.low,
                        "high": s.estimated_wh.high,
                    },
                    "ratio": s.ratio,
                }
                for s in self.requests
            ],
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
            "measurement": self.measurement.to_dict(),
        }

    def summary(self) -> str:
        m = self.measurement
        devs = {d.name for d in m.devices}
        hw = f"{len(m.devices)}x {', '.join(sorted(devs))}" if devs else "no device"
        lines = [
            f"otm reconciliation: measured GPU energy vs estimate ({self.boundary} boundary)",
            f"  hardware     {hw}, NVML {m.method}",
            f"  window       {m.duration_s:.2f} s, {_wh(self.window_wh)}"
            + (" above idle" if self.subtract_idle else "")
            + f", mean {m.mean_power_w:.0f} W"
            + ("" if m.peak_power_w is None else f", peak {m.peak_power_w:.0f} W"),
            f"  requests     {len(self.requests)} in window"
            + (
                f", {sum(self.skipped.values())} left out ({_reasons(self.skipped)})"
                if self.skipped
                else ""
            ),
            (
                f"  measured     {_wh(self.active_wh)} while requests were in flight, "
                f"{_wh(self.gap_wh)} in gaps (not compared)"
            ),
        ]
        est = self.estimated_wh
        if est is None:
            lines.append("  estimated    none (no request could be estimated)")
        else:
            lines.append(f"  estimated    {fmt_range('energy', est, 4)}")
            ratio, rr = self.ratio, self.ratio_range
            if ratio is not None:
                verdict = (
                    "within the estimate's range"
                    if self.within_range
                    else (
                        "ABOVE the estimate's range"
                        if self.compared_wh > est.high
                        else "BELOW the estimate's range"
                    )
                )
                span = "" if rr is None else f" (range allows {rr[0]:.2f} - {rr[1]:.2f})"
                lines.append(f"  measured/est {ratio:.2f}{span}: {verdict}")
        ratios = self.per_request_ratios
        if len(ratios) >= 2:
            q = _quantiles(ratios)
            lines.append(
                f"  per request  median ratio {q[1]:.2f} (p10 {q[0]:.2f}, p90 {q[2]:.2f}), "
                f"attribution by {self.attribution}"
            )
        for w in (*m.warnings, *self.warnings):
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        r = self.ratio
        return (
            f"Reconciliation(measured={_wh(self.compared_wh)}, "
            f"estimated={'n/a' if self.estimated_wh is None else _wh(self.estimated_wh.value)}, "
            f"ratio={'n/a' if r is None else sig(r)}, requests={len(self.requests)})"
        )


def _wh(x: float) -> str:
    return fmt("energy", x, 4)


def _reasons(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n} {why}" for why, n in skipped.items())


def _quantiles(xs: Sequence[float]) -> tuple[float, float, float]:
    s = sorted(xs)
    if len(s) < 3:
        return (s[0], statistics.median(s), s[-1])
    q = statistics.quantiles(s, n=10, method="inclusive")
    return (q[0], statistics.median(s), q[-1])


# --------------------------------------------------------------------------- estimation


def _is_accelerator_only(dep: Deployment | None) -> bool:
    return (
        dep is not None
        and dep.pue == 1.0
        and not dep.include_host
        and dep.idle_reserve == 0.0
        and dep.accelerator is not None
    )


def _boundary(
    record: Record,
    accelerator: str | None,
    count: int | None,
    measurement: GpuMeasurement,
) -> Deployment | Range:
    """The accelerator-only deployment to estimate ``record`` with, or its energy if already known there."""
    from otm.deployment import Deployment

    dep = record.deployment
    acc = accelerator or (dep.accelerator if dep is not None else None)
    if acc is None:
        acc = measurement.devices[0].name if measurement.devices else None
    if acc is None:
        raise ValueError("no accelerator: pass accelerator= or meter a device")
    n = count or (dep.count if dep is not None else None) or max(1, len(measurement.devices))
    # A record already estimated at this very boundary (logged, or made by hand) is reused as is.
    if (
        _is_accelerator_only(dep)
        and record._impact is not None
        and dep is not None
        and dep.accelerator == acc
        and (dep.count or 1) == n
    ):
        return record._impact.energy_wh
    keep: dict[str, Any] = {}
    if dep is not None:
        # What shapes the work (precision, a known batch, whose profile) carries over;
        # what draws the boundary (host, idle, PUE) does not.
        for name in ("provider", "precision", "batch", "region"):
            v = getattr(dep, name)
            if v is not None:
                keep[name] = v
    return Deployment.accelerator_only(acc, n, **keep)


def _estimate_all(
    records: Sequence[Record],
    accelerator: str | None,
    count: int | None,
    measurement: GpuMeasurement,
    estimator: Estimator | None,
) -> list[Range | None]:
    """Accelerator-only energy of every record (None where estimation failed, logged once)."""
    out: list[Range | None] = [None] * len(records)
    todo: dict[tuple[Any, str | None], list[int]] = {}
    for i, rec in enumerate(records):
        try:
            b = _boundary(rec, accelerator, count, measurement)
        except Exception as exc:
            log_once("measure.reconcile.boundary", exc)
            continue
        if isinstance(b, Range):
            out[i] = b
        else:
            todo.setdefault((b, rec.region), []).append(i)
    many: Callable[..., Any] | None = None
    if estimator is None:
        # The packaged estimator works on arrays: one call per (boundary, region) group
        # instead of one per record keeps thousands of requests fast.
        try:
            from otm.estimate import estimate_many

            many = estimate_many
        except ImportError:
            many = None
    for (dep, region), idx in todo.items():
        if many is not None:
            try:
                batch = many([records[i].telemetry for i in idx], deployment=dep, region=region)
                for j, i in enumerate(idx):
                    out[i] = batch[j].energy_wh
                continue
            except Exception as exc:
                log_once("measure.reconcile.estimate_many", exc)
        est = estimator if estimator is not None else _default_estimator()
        for i in idx:
            try:
                out[i] = est(records[i].telemetry, deployment=dep, region=region).energy_wh
            except Exception as exc:
                log_once("measure.reconcile.estimate", exc)
    return out


def _default_estimator() -> Estimator:
    from otm.estimate import estimate

    return estimate


# --------------------------------------------------------------------------- attribution


def _interval(t: Telemetry) -> tuple[float, float] | None:
    """When the server was busy with the request, as the client saw it: start to last token."""
    if t.start_time is None:
        return None
    end = t.last_token_time if t.last_token_time is not None else t.end_time
    if end is None:
        return None
    return (t.start_time, end)


def _as_records(source: Any) -> list[Record]:
    recs = getattr(source, "records", source)
    if callable(recs):
        recs = recs()
    return list(recs)


def _as_measurement(source: GpuMeasurement | GpuMeter) -> GpuMeasurement:
    if isinstance(source, GpuMeasurement):
        return source
    if isinstance(source, GpuMeter):
        if source.running:
            raise RuntimeError("the meter is still running: reconcile after it stops")
        if source.result is None:
            raise ValueError(
                "the meter has no measurement (never run, or metering was unavailable)"
            )
        return source.result
    raise TypeError(f"expected a GpuMeasurement or GpuMeter, got {type(source).__name__}")


def reconcile(
    records: Iterable[Record] | Any,
    measurement: GpuMeasurement | GpuMeter,
    *,
    accelerator: str | None = None,
    count: int | None = None,
    attribution: Attribution = "time",
    subtract_idle: bool = False,
    estimator: Estimator | None = None,
) -> Reconciliation:
    """Compare measured GPU energy with the accelerator-only estimates of ``records``.

    ``records``: the records of the calls made to the metered GPUs during the
    window — a list, or anything with ``.records`` (an experiment, a run).
    ``measurement``: a finished :class:`GpuMeter` or its :class:`GpuMeasurement`.
    ``accelerator``/``count``: the estimate's hardware; default: each
    record's deployment, else the metered devices' NVML name and number.
    ``attribution``: how a slice of time shared by several requests is split:
    ``time`` (equally: each request in flight holds the GPU as much as the
    others), ``tokens`` (by each request's tokens per second of its
    lifetime), ``estimate`` (by each request's estimated energy per second;
    calibrates per-request figures but cannot test their relative sizes).
    ``subtract_idle``: compare energy above the meter's idle baseline (the
    estimate counts the board's whole draw, so leave it False to validate).
    ``estimator``: ``f(telemetry, deployment=, region=) -> Impact``; defaults
    to :func:`otm.estimate.estimate`.
    """
    import numpy as np

    if attribution not in ("time", "tokens", "estimate"):
        raise ValueError("attribution must be 'time', 'tokens' or 'estimate'")
    m = _as_measurement(measurement)
    idle_w = 0.0
    if subtract_idle:
        if m.idle_power_w is None:
            raise ValueError(
                "subtract_idle needs an idle baseline: GpuMeter(idle_s=...) or idle_power_w="
            )
        idle_w = m.idle_power_w

    skipped: dict[str, int] = {}
    warnings: list[str] = []

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    w0, w1 = m.start_time, m.end_time
    # (record, start, end, start clipped to the window, end clipped to the window)
    kept: list[tuple[Record, float, float, float, float]] = []
    for rec in _as_records(records):
        iv = _interval(rec.telemetry)
        if iv is None:
            skip("without start/end times")
            continue
        s, e = iv
        cs, ce = max(s, w0), min(e, w1)
        if ce <= cs:
            skip("outside the window" if (e <= w0 or s >= w1) else "of zero duration")
            continue
        kept.append((rec, s, e, cs, ce))

    # Estimates first: the "estimate" attribution needs them, the comparison always does.
    raw = _estimate_all([k[0] for k in kept], accelerator, count, m, estimator)
    estimates: list[Range | None] = []
    for est, (_, s, e, cs, ce) in zip(raw, kept):
        frac = (ce - cs) / (e - s)
        estimates.append(None if est is None else (est.scale(frac) if frac < 1.0 else est))
    failed = sum(1 for x in estimates if x is None)
    if failed:
        warnings.append(
            f"{failed} request(s) could not be estimated; the ratio compares only the requests that were"
        )
    if any((ce - cs) < (e - s) for _, s, e, cs, ce in kept):
        warnings.append(
            "some requests straddle the window's edges: their estimates are scaled to the part inside"
        )

    n = len(kept)
    starts = np.array([k[3] for k in kept], dtype=float)
    ends = np.array([k[4] for k in kept], dtype=float)
    durs = np.array([k[2] - k[1] for k in kept], dtype=float)
    if attribution == "time":
        weight = np.ones(n)
    elif attribution == "tokens":
        tok = np.array(
            [k[0].telemetry.input_tokens + k[0].telemetry.output_tokens for k in kept], dtype=float
        )
        weight = tok / durs
    else:
        est_c = np.array([0.0 if x is None else x.value for x in estimates], dtype=float)
        weight = est_c / durs

    # Cut the window at every request edge; each slice's energy goes to the requests in
    # flight over it in proportion to their weight. The sums run as prefix sums so the
    # cost is O(n log n), not n x slices.
    edges = np.unique(np.concatenate([[w0, w1], starts, ends]))
    seg_j = np.diff(m.energy_at(edges)) - idle_w * np.diff(edges)
    seg_j = np.maximum(seg_j, 0.0)
    i0 = np.searchsorted(edges, starts)
    i1 = np.searchsorted(edges, ends)
    k = len(edges) - 1
    delta_n = np.zeros(k + 1)
    delta_w = np.zeros(k + 1)
    np.add.at(delta_n, i0, 1.0)
    np.add.at(delta_n, i1, -1.0)
    np.add.at(delta_w, i0, weight)
    np.add.at(delta_w, i1, -weight)
    active_n = np.rint(np.cumsum(delta_n)[:k])
    active_w = np.cumsum(delta_w)[:k]
    busy = active_n > 0
    weighted = busy & (active_w > 1e-12 * max(1.0, float(weight.max(initial=0.0))))
    degenerate = busy & ~weighted  # everyone in flight has zero weight: split equally
    per_w = np.where(weighted, seg_j / np.where(weighted, active_w, 1.0), 0.0)
    per_n = np.where(degenerate, seg_j / np.where(degenerate, active_n, 1.0), 0.0)
    cum_w = np.concatenate([[0.0], np.cumsum(per_w)])
    cum_n = np.concatenate([[0.0], np.cumsum(per_n)])
    share_j = weight * (cum_w[i1] - cum_w[i0]) + np.where(weight == 0, cum_n[i1] - cum_n[i0], 0.0)

    window_j = float(seg_j.sum())
    active_j = float(seg_j[busy].sum())
    shares = tuple(
        RequestShare(
            record=rec,
            start_time=s,
            end_time=e,
            overlap=float((ce - cs) / (e - s)),
            measured_wh=float(share_j[i]) / 3600.0,
            estimated_wh=estimates[i],
        )
        for i, (rec, s, e, cs, ce) in enumerate(kept)
    )
    have = [i for i, x in enumerate(estimates) if x is not None]
    known = [x for x in estimates if x is not None]
    total: Range | None = None
    if known:
        total = Range(
            value=sum(x.value for x in known),
            low=sum(x.low for x in known),
            high=sum(x.high for x in known),
        )
    compared_j = float(sum(float(share_j[i]) for i in have))
    if n == 0:
        warnings.append("no request fell inside the metered window: nothing to compare")
    elif window_j > 0 and (window_j - active_j) / window_j > 0.5:
        warnings.append(
            f"{(window_j - active_j) / window_j:.0%} of the window's energy was drawn with no request in flight"
        )
    return Reconciliation(
        measurement=m,
        requests=shares,
        attribution=attribution,
        window_wh=window_j / 3600.0,
        active_wh=active_j / 3600.0,
        gap_wh=(window_j - active_j) / 3600.0,
        estimated_wh=total,
        compared_wh=compared_j / 3600.0,
        subtract_idle=subtract_idle,
        skipped=skipped,
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------- meter + collect


def _on_local_gpu(record: Record) -> bool:
    dep = record.deployment
    return (dep is not None and dep.accelerator is not None) or (
        record.telemetry.provider or ""
    ).lower() == "local"


class MeteredRun:
    """Meters GPUs and collects the records finished meanwhile; reconciles on demand.

    Records are taken from :func:`otm.on_record` (every thread), filtered by
    ``where`` — by default, calls with a known accelerator in their
    deployment or provider ``local``: a remote API call made meanwhile did not
    run on these GPUs.
    """

    def __init__(
        self,
        devices: Sequence[int | str] | None = None,
        interval_s: float = 0.05,
        *,
        idle_s: float = 0.0,
        accelerator: str | None = None,
        count: int | None = None,
        attribution: Attribution = "time",
        where: Callable[[Record], bool] | None = _on_local_gpu,
        meter: GpuMeter | None = None,
    ) -> None:
        self.meter = meter if meter is not None else GpuMeter(devices, interval_s, idle_s=idle_s)
        self.accelerator = accelerator
        self.count = count
        self.attribution: Attribution = attribution
        self.where = where
        self.records: list[Record] = []
        self.ignored = 0
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._reconciliation: Reconciliation | None = None

    def _collect(self, record: Record) -> None:
        if self.where is not None and not self.where(record):
            with self._lock:
                self.ignored += 1
            return
        with self._lock:
            self.records.append(record)

    def start(self) -> MeteredRun:
        from otm.events import on_record

        self._reconciliation = None
        self.meter.start()
        self._unsubscribe = on_record(self._collect)
        return self

    def stop(self) -> GpuMeasurement | None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        return self.meter.stop()

    @property
    def measurement(self) -> GpuMeasurement | None:
        return self.meter.result

    @property
    def reconciliation(self) -> Reconciliation | None:
        """The reconciliation (computed once, after the run); None without a measurement."""
        if (
            self._reconciliation is None
            and self.meter.result is not None
            and not self.meter.running
        ):
            with self._lock:
                records = list(self.records)
            self._reconciliation = reconcile(
                records,
                self.meter.result,
                accelerator=self.accelerator,
                count=self.count,
                attribution=self.attribution,
            )
        return self._reconciliation

    def summary(self) -> str:
        rec = self.reconciliation
        if rec is None:
            return "otm: no GPU measurement (NVML unavailable or the run has not finished)"
        text = rec.summary()
        if self.ignored:
            text += f"\n  note: {self.ignored} call(s) not on the metered GPUs were ignored"
        return text

    def __enter__(self) -> MeteredRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def metered(
    devices: Sequence[int | str] | None = None,
    interval_s: float = 0.05,
    *,
    idle_s: float = 0.0,
    accelerator: str | None = None,
    count: int | None = None,
    attribution: Attribution = "time",
    where: Callable[[Record], bool] | None = _on_local_gpu,
) -> MeteredRun:
    """Meter the GPUs and collect the calls made meanwhile: ``with otm.measure.metered() as run:``."""
    return MeteredRun(
        devices,
        interval_s,
        idle_s=idle_s,
        accelerator=accelerator,
        count=count,
        attribution=attribution,
        where=where,
    )

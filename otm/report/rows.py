"""Row: the flat view of one request that every report is built from.

Reports read records from two places: live :class:`~otm.record.Record`
objects (runs, experiments) and JSON lines of a log. Both become a ``Row``,
a small slotted object holding only what the reports use, so a log of a
million lines streams through without building pydantic models for lines that
already carry their impact.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from otm._log import log_once
from otm.deployment import Deployment
from otm.telemetry import Telemetry

if TYPE_CHECKING:
    from otm.impact import Impact
    from otm.record import Record

Triple = tuple[float, float, float]

LOG_SCHEMA = "otm.record/1"
"""Value of the ``schema`` field of every line an experiment writes."""


class Row:
    """One request, flattened for reporting."""

    __slots__ = (
        "seq",
        "request_id",
        "time",
        "end_time",
        "provider",
        "model",
        "status",
        "region",
        "deployment_key",
        "tags",
        "experiment",
        "runs",
        "energy",
        "carbon",
        "water",
        "breakdown_wh",
        "carbon_breakdown_g",
        "water_breakdown_ml",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "latency_s",
        "ttft_s",
        "prompt",
        "warnings",
    )

    def __init__(self) -> None:
        self.seq: int | None = None
        self.request_id: str | None = None
        self.time: float | None = None
        self.end_time: float | None = None
        self.provider = "unknown"
        self.model = "unknown"
        self.status = "ok"
        self.region: str | None = None
        self.deployment_key = ""
        self.tags: dict[str, str] = {}
        self.experiment: str | None = None
        self.runs: tuple[str, ...] = ()
        self.energy: Triple | None = None
        self.carbon: Triple | None = None
        self.water: Triple | None = None
        self.breakdown_wh: dict[str, float] = {}
        self.carbon_breakdown_g: dict[str, float] = {}
        self.water_breakdown_ml: dict[str, float] = {}
        self.cost_usd: float | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.reasoning_tokens = 0
        self.latency_s: float | None = None
        self.ttft_s: float | None = None
        self.prompt: str | None = None
        self.warnings: tuple[str, ...] = ()

    # ------------------------------------------------------------------ derived

    @property
    def estimated(self) -> bool:
        return self.energy is not None

    @property
    def group(self) -> tuple[str, str, str, str]:
        """The correlation group of this request's errors (see ``ranges``)."""
        return (self.provider, self.model, self.deployment_key, self.region or "")

    @property
    def label(self) -> str:
        """A short identifier for tables: the request id, else the sequence number."""
        if self.request_id:
            return self.request_id
        return f"#{self.seq}" if self.seq is not None else "-"

    # ------------------------------------------------------------------ builders

    @classmethod
    def from_record(cls, record: Record, *, experiment: str | None = None) -> Row:
        """From a live record (computes its impact if not done yet)."""
        row = cls()
        t = record.telemetry
        row.seq = record.seq
        row.request_id = t.request_id
        row.time = t.start_time
        row.end_time = t.end_time if t.end_time is not None else t.last_token_time
        row.provider = t.provider or "unknown"
        row.model = t.model or "unknown"
        row.status = t.status
        row.region = record.region
        row.deployment_key = deployment_key(
            None if record.deployment is None else record.deployment.model_dump(exclude_none=True)
        )
        row.tags = effective_tags(record)
        row.experiment = experiment
        row.runs = run_names(record.scope)
        row.input_tokens = t.input_tokens
        row.output_tokens = t.output_tokens
        row.cached_input_tokens = t.cached_input_tokens
        row.reasoning_tokens = t.reasoning_tokens
        row.latency_s = t.duration_s
        row.ttft_s = t.ttft_s
        row.prompt = t.prompt
        impact = record.impact
        if impact is not None:
            row._set_impact(impact)
        return row

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        region: str | None = None,
        reestimate: bool = True,
    ) -> Row:
        """From one log line: an otm record line, or a bare (camelCase) telemetry object.

        ``region`` is the default for lines without one; such lines are
        re-estimated with it. Lines without an impact are estimated when
        ``reestimate`` (a failure leaves the row without figures, logged once).
        Many lines at once: :class:`~otm.report.reader.LogReader` estimates
        them in vectorised chunks instead.
        """
        row, telemetry, deployment = cls.parse(data, region=region)
        if telemetry is not None and reestimate:
            est = _estimate(telemetry, deployment, row.region)
            if est is not None:
                row._set_impact(est)
        return row

    @classmethod
    def parse(
        cls, data: Mapping[str, Any], *, region: str | None = None
    ) -> tuple[Row, Any, Deployment | None]:
        """``(row, telemetry, deployment)`` of one log line, without estimating.

        ``telemetry`` (a validated :class:`~otm.telemetry.Telemetry`) is None
        when the line carries its impact (already set on the row); otherwise
        the row still needs an estimate for that telemetry and ``deployment``
        (the line's :class:`~otm.deployment.Deployment`, or None). Raises
        ``ValueError`` (or ``KeyError``/``TypeError``) for a line that is no
        record, or whose telemetry or deployment is invalid.
        """
        row = cls()
        nested = data.get("telemetry")
        if nested is not None and (type(nested) is dict or isinstance(nested, Mapping)):
            tel: Mapping[str, Any] = nested
            line_region = data.get("region")
            dep = data.get("deployment") or None
            tags = data.get("tags") or {}
            impact = data.get("impact") or None
            row.seq = _int_or_none(data.get("seq"))
            experiment = data.get("experiment")
            row.experiment = experiment if isinstance(experiment, str) else None
            row.runs = tuple(str(r) for r in data.get("runs") or ())
            camel = False
        else:  # a bare telemetry object, as OTM-style collectors write it
            tel = data
            line_region = data.get("region")
            dep = None
            tags = data.get("tags") or {}
            impact = None
            camel = True
        deployment = None
        if dep is not None:
            if not isinstance(dep, Mapping):
                raise ValueError("deployment is not an object")
            row.deployment_key = deployment_key(dep)
            deployment = _deployment(row.deployment_key, dep)

        if line_region and isinstance(line_region, str):
            row.region = line_region
        elif region:
            row.region = region
            impact = None  # the line's figures assumed another region: estimate again
        if tags and isinstance(tags, Mapping):
            row.tags = {str(k): str(v) for k, v in tags.items()}

        if camel or impact is None:
            telemetry = _telemetry(tel)
            _fill_from_telemetry(row, telemetry)
            return row, telemetry, deployment

        _fill_from_snake(row, tel)
        try:
            row._set_impact_dict(impact)
        except (KeyError, TypeError, ValueError) as exc:
            log_once(
                "report.reader: malformed impact",
                message=f"otm: skipped a malformed impact in a log line ({exc})",
            )
        return row, None, deployment

    # ------------------------------------------------------------------ impact

    def _set_impact(self, impact: Impact) -> None:
        self.energy = (impact.energy_wh.value, impact.energy_wh.low, impact.energy_wh.high)
        self.carbon = (impact.carbon_g.value, impact.carbon_g.low, impact.carbon_g.high)
        self.water = (impact.water_ml.value, impact.water_ml.low, impact.water_ml.high)
        self.breakdown_wh = dict(impact.breakdown_wh)
        self.carbon_breakdown_g = dict(impact.carbon_breakdown_g)
        self.water_breakdown_ml = dict(impact.water_breakdown_ml)
        self.cost_usd = impact.cost_usd
        self.warnings = tuple(str(w) for w in impact.assumptions.get("warnings", ()) or ())
        if self.region is None:
            self.region = region_from_assumptions(impact.assumptions)

    def _set_impact_dict(self, impact: Mapping[str, Any]) -> None:
        self.energy = _triple(impact["energy_wh"])
        self.carbon = _triple(impact["carbon_g"])
        self.water = _triple(impact["water_ml"])
        self.breakdown_wh = _floats(impact.get("breakdown_wh"))
        self.carbon_breakdown_g = _floats(impact.get("carbon_breakdown_g"))
        self.water_breakdown_ml = _floats(impact.get("water_breakdown_ml"))
        cost = impact.get("cost_usd")
        self.cost_usd = float(cost) if cost is not None else None
        assumptions = impact.get("assumptions") or {}
        self.warnings = tuple(str(w) for w in assumptions.get("warnings", ()) or ())
        if self.region is None:
            self.region = region_from_assumptions(assumptions)


# ---------------------------------------------------------------------- helpers


def deployment_key(dep: Mapping[str, Any] | None) -> str:
    if not dep:
        return ""
    return json.dumps(dep, sort_keys=True, separators=(",", ":"), default=str)


def run_names(scope: tuple[Any, ...]) -> tuple[str, ...]:
    """Names of the tracked runs in a record's scope, outermost first."""
    from otm.report.track import Run

    return tuple(c.name for c in scope if isinstance(c, Run))


def effective_tags(record: Record) -> dict[str, str]:
    """The record's tags over those of the tracked runs it was made in (inner runs win)."""
    from otm.report.track import Run

    tags: dict[str, str] = {}
    for c in record.scope:
        if isinstance(c, Run) and c.tags:
            tags.update(c.tags)
    tags.update(record.tags)
    return tags


def region_from_assumptions(assumptions: Mapping[str, Any]) -> str | None:
    """The region the estimator resolved (``assumptions["site"]["region"]``), tolerantly."""
    site = assumptions.get("site")
    value = site.get("region") if isinstance(site, Mapping) else None
    if value is None:
        value = assumptions.get("region")
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        for key in ("code", "id", "key", "name"):
            v = value.get(key)
            if isinstance(v, str) and v:
                return v
    return None


def _triple(r: Mapping[str, Any]) -> Triple:
    v = float(r["value"])
    return (v, float(r.get("low", v)), float(r.get("high", v)))


def _floats(d: Any) -> dict[str, float]:
    if not isinstance(d, Mapping):
        return {}
    out: dict[str, float] = {}
    for k, v in d.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f / 1000.0 if f > 1e11 else f  # milliseconds, as Telemetry reads them


def _fill_from_snake(row: Row, tel: Mapping[str, Any]) -> None:
    """Read a ``Telemetry.model_dump`` dict without validating it (the fast path)."""
    row.request_id = tel.get("request_id")
    row.provider = tel.get("provider") or "unknown"
    row.model = tel.get("model") or "unknown"
    row.status = tel.get("status") or "ok"
    start = _num(tel.get("start_time"))
    first = _num(tel.get("first_token_time"))
    last = _num(tel.get("last_token_time"))
    end = _num(tel.get("end_time"))
    row.time = start
    row.end_time = end if end is not None else last
    finish = last if last is not None else end
    row.latency_s = None if start is None or finish is None else finish - start
    row.ttft_s = None if start is None or first is None else first - start
    row.input_tokens = int(tel.get("input_tokens") or 0)
    row.output_tokens = int(tel.get("output_tokens") or 0)
    row.cached_input_tokens = int(tel.get("cached_input_tokens") or 0)
    row.reasoning_tokens = int(tel.get("reasoning_tokens") or 0)
    prompt = tel.get("prompt")
    row.prompt = prompt if isinstance(prompt, str) else None


def _fill_from_telemetry(row: Row, t: Any) -> None:
    row.request_id = t.request_id
    row.provider = t.provider or "unknown"
    row.model = t.model or "unknown"
    row.status = t.status
    start, last, end = t.start_time, t.last_token_time, t.end_time
    row.time = start
    row.end_time = end if end is not None else last
    # Telemetry.duration_s and .ttft_s, read once (this runs per line of large logs)
    finish = last if last is not None else end
    row.latency_s = None if start is None or finish is None else finish - start
    first = t.first_token_time
    row.ttft_s = None if start is None or first is None else first - start
    row.input_tokens = t.input_tokens
    row.output_tokens = t.output_tokens
    row.cached_input_tokens = t.cached_input_tokens
    row.reasoning_tokens = t.reasoning_tokens
    row.prompt = t.prompt


def _telemetry(tel: Mapping[str, Any]) -> Telemetry:
    try:
        return Telemetry.model_validate(tel)
    except ValidationError as exc:
        raise ValueError(f"invalid telemetry: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(x) for x in first.get("loc", ()))
    msg = str(first.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


_DEPLOYMENTS: dict[str, Deployment] = {}


def _deployment(key: str, dep: Mapping[str, Any]) -> Deployment:
    """The line's deployment, validated once per distinct one (a log repeats a few)."""
    found = _DEPLOYMENTS.get(key)
    if found is None:
        try:
            found = Deployment.model_validate(dict(dep))
        except ValidationError as exc:
            raise ValueError(f"invalid deployment: {_first_error(exc)}") from None
        if len(_DEPLOYMENTS) > 1024:
            _DEPLOYMENTS.clear()
        _DEPLOYMENTS[key] = found
    return found


def _estimate(telemetry: Any, deployment: Deployment | None, region: str | None) -> Impact | None:
    try:
        from otm.estimate import estimate

        return estimate(telemetry, deployment=deployment, region=region)
    except Exception as exc:
        log_once("report.reader: estimate", exc)
        return None

"""Summaries of many requests, built in one streaming pass.

:class:`Aggregator` takes rows one at a time and keeps only sums, a few
bounded samples (for percentiles and charts) and top-k lists, so its memory
does not grow with the number of requests. :meth:`Aggregator.summary` turns
that state into a :class:`Summary`: totals with ranges (see ``ranges`` for how
they combine), splits by model, provider, status and tag, latency percentiles,
SCI-for-AI intensities and a sentence ready for a paper.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otm.impact import Range
from otm.report.ranges import RangeSum
from otm.report.rows import Row
from otm.report.units import fmt, fmt_int, fmt_range, fmt_seconds, plural, scale_for, sig

PERCENTILES = (50, 90, 99)
LATENCY_SAMPLE = 20_000
"""Latencies kept for percentiles: exact below this many requests, a uniform sample above."""
POINT_SAMPLE = 2_000
"""Requests kept as points for the charts."""
TOP_K = 10
MAX_TAG_VALUES = 200
"""Distinct ``key=value`` tags tracked; rarer ones are pooled as ``(other)``."""
MAX_MODELS = 500
MAX_CELLS = 4_096
"""(model, provider, status) combinations summed apart before being merged (memory bound)."""

BOUNDARY = (
    "operational (location-based grid intensity) + embodied hardware emissions; "
    "facility boundary: accelerators, host, idle reserve and PUE overhead"
)
"""What the carbon figures include; stated wherever an intensity is given."""

STATUSES = ("ok", "error", "cancelled", "abandoned")


# ---------------------------------------------------------------------- small state


class Reservoir:
    """A uniform sample of at most ``size`` items of a stream, deterministic.

    Li's Algorithm L: once the sample is full, the number of items to skip
    before the next replacement is drawn directly, so most items cost one
    comparison (no random number per item on a long stream).
    """

    __slots__ = ("size", "items", "seen", "_rng", "_w", "_next")

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.items: list[Any] = []
        self.seen = 0
        self._rng = random.Random(seed)
        self._w = 1.0
        self._next = size  # index of the next item to take once full

    def add(self, item: Any) -> None:
        i = self.seen
        self.seen = i + 1
        if i < self.size:
            self.items.append(item)
            if self.seen == self.size:
                self._draw()
        elif i == self._next:
            self.items[self._rng.randrange(self.size)] = item
            self._draw()

    def _draw(self) -> None:
        rng = self._rng
        self._w *= math.exp(math.log(1.0 - rng.random()) / self.size)
        gap = math.floor(math.log(1.0 - rng.random()) / math.log1p(-self._w)) if self._w < 1.0 else 0
        self._next = self.seen + gap

    @property
    def sampled(self) -> bool:
        return self.seen > len(self.items)


class TopK:
    """The ``k`` items with the largest keys seen so far."""

    __slots__ = ("k", "_heap", "_tie")

    def __init__(self, k: int = TOP_K) -> None:
        self.k = k
        self._heap: list[tuple[float, int, Any]] = []
        self._tie = itertools.count()

    def add(self, key: float, item: Any) -> None:
        entry = (key, -next(self._tie), item)  # earlier items win ties
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[Any]:
        return [item for _, _, item in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99 and mean of ``values`` (None when empty), and their count ``n``."""
    out: dict[str, float | None] = {f"p{p}": None for p in PERCENTILES}
    out["mean"] = None
    out["n"] = len(values)
    if values:
        import numpy as np

        arr = np.asarray(values, dtype=float)
        for p in PERCENTILES:
            out[f"p{p}"] = float(np.percentile(arr, p))
        out["mean"] = float(arr.mean())
    return out


# ---------------------------------------------------------------------- totals


@dataclass(frozen=True)
class Totals:
    """What a set of requests cost, in sum."""

    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    estimated: int = 0
    """Requests with figures (the estimator may fail on a malformed record)."""
    energy_wh: Range = field(default_factory=lambda: Range.point(0.0))
    carbon_g: Range = field(default_factory=lambda: Range.point(0.0))
    water_ml: Range = field(default_factory=lambda: Range.point(0.0))
    cost_usd: float | None = None
    """Sum of known prices; None when no request had one."""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "estimated": self.estimated,
            "energy_wh": _range_dict(self.energy_wh),
            "carbon_g": _range_dict(self.carbon_g),
            "water_ml": _range_dict(self.water_ml),
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


class Bucket:
    """Running sums for one slice of the requests (all, a model, a tag...)."""

    __slots__ = (
        "requests",
        "status",
        "estimated",
        "sums",
        "cost",
        "priced",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "providers",
        "latency",
    )

    def __init__(self, latency_sample: int = 0) -> None:
        self.requests = 0
        self.status: Counter[str] = Counter()
        self.estimated = 0
        self.sums: dict[Any, list[float]] = {}
        """Per correlation group: energy, carbon and water as value, low, high (nine sums)."""
        self.cost = 0.0
        self.priced = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.reasoning_tokens = 0
        self.providers: set[str] = set()
        self.latency = Reservoir(latency_sample) if latency_sample else None

    def add(self, row: Row, group: Any = None) -> None:
        """Count ``row`` in; ``group`` is its correlation group (``row.group``, passed when known).

        Runs once per row per slice of a large log: plain operations, no helpers.
        """
        self.requests += 1
        status = self.status
        status[row.status] = status.get(row.status, 0) + 1
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cached_input_tokens += row.cached_input_tokens
        self.reasoning_tokens += row.reasoning_tokens
        providers = self.providers
        if row.provider not in providers and len(providers) < 20:
            providers.add(row.provider)
        if row.cost_usd is not None:
            self.cost += row.cost_usd
            self.priced += 1
        if self.latency is not None and row.latency_s is not None:
            self.latency.add(row.latency_s)
        e, c, w = row.energy, row.carbon, row.water
        if e is not None and c is not None and w is not None:
            self.estimated += 1
            g = row.group if group is None else group
            acc = self.sums.get(g)
            if acc is None:
                self.sums[g] = [*e, *c, *w]
            else:
                acc[0] += e[0]
                acc[1] += e[1]
                acc[2] += e[2]
                acc[3] += c[0]
                acc[4] += c[1]
                acc[5] += c[2]
                acc[6] += w[0]
                acc[7] += w[1]
                acc[8] += w[2]

    def merge(self, other: Bucket) -> None:
        """Add ``other``'s sums (not its latency sample) to this bucket's."""
        self.requests += other.requests
        self.status.update(other.status)
        self.estimated += other.estimated
        self.cost += other.cost
        self.priced += other.priced
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.reasoning_tokens += other.reasoning_tokens
        for p in other.providers:
            if len(self.providers) >= 20:
                break
            self.providers.add(p)
        for g, acc in other.sums.items():
            mine = self.sums.get(g)
            if mine is None:
                self.sums[g] = list(acc)
            else:
                for j, x in enumerate(acc):
                    mine[j] += x

    def totals(self) -> Totals:
        energy, carbon, water = RangeSum(), RangeSum(), RangeSum()
        for g, acc in self.sums.items():
            energy.add(g, acc[0], acc[1], acc[2])
            carbon.add(g, acc[3], acc[4], acc[5])
            water.add(g, acc[6], acc[7], acc[8])
        return Totals(
            requests=self.requests,
            by_status=dict(self.status),
            estimated=self.estimated,
            energy_wh=energy.total(),
            carbon_g=carbon.total(),
            water_ml=water.total(),
            cost_usd=self.cost if self.priced else None,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )


# ---------------------------------------------------------------------- per-model view


@dataclass(frozen=True)
class ModelStats:
    """One model's figures, for benchmarking models against each other."""

    model: str
    providers: tuple[str, ...]
    totals: Totals
    energy_per_request_wh: Range | None
    energy_per_1k_output_wh: Range | None
    carbon_per_request_g: Range | None
    water_per_request_ml: Range | None
    latency_s: dict[str, float | None]

    def table_row(self, cell: Callable[[Range | None], str]) -> list[str]:
        """The model's row of the per-model tables (Markdown, HTML), ranges drawn by ``cell``."""
        return [
            self.model,
            ", ".join(self.providers),
            fmt_int(self.totals.requests),
            fmt_int(self.totals.output_tokens),
            cell(self.totals.energy_wh),
            cell(self.energy_per_request_wh),
            cell(self.energy_per_1k_output_wh),
            cell(self.totals.carbon_g),
            cell(self.totals.water_ml),
            fmt_seconds(self.latency_s.get("p50")),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "providers": list(self.providers),
            **self.totals.to_dict(),
            "energy_per_request_wh": _range_dict(self.energy_per_request_wh),
            "energy_per_1k_output_tokens_wh": _range_dict(self.energy_per_1k_output_wh),
            "carbon_per_request_g": _range_dict(self.carbon_per_request_g),
            "water_per_request_ml": _range_dict(self.water_per_request_ml),
            "latency_s": self.latency_s,
        }


def _per(r: Range, n: float) -> Range | None:
    return None if n <= 0 else r.scale(1.0 / n)


def _model_stats(name: str, b: Bucket) -> ModelStats:
    t = b.totals()
    return ModelStats(
        model=name,
        providers=tuple(sorted(b.providers)),
        totals=t,
        energy_per_request_wh=_per(t.energy_wh, t.estimated),
        energy_per_1k_output_wh=_per(t.energy_wh, _estimated_output(b) / 1000.0),
        carbon_per_request_g=_per(t.carbon_g, t.estimated),
        water_per_request_ml=_per(t.water_ml, t.estimated),
        latency_s=percentiles(b.latency.items if b.latency is not None else []),
    )


def _estimated_output(b: Bucket) -> float:
    # Per-token intensities only make sense over requests that have figures;
    # when every request does (the usual case) this is just the output count.
    if b.requests == 0:
        return 0.0
    return b.output_tokens * (b.estimated / b.requests)


# ---------------------------------------------------------------------- the summary


@dataclass(repr=False)
class Summary:
    """Everything the reports show, computed from one pass over the requests."""

    name: str | None
    tags: dict[str, str]
    totals: Totals
    started: float | None
    ended: float | None
    breakdown_wh: dict[str, float]
    carbon_breakdown_g: dict[str, float]
    water_breakdown_ml: dict[str, float]
    by_model: list[ModelStats]
    by_provider: dict[str, Totals]
    by_status: dict[str, Totals]
    by_tag: dict[str, Totals]
    by_run: dict[str, Totals]
    latency_s: dict[str, float | None]
    ttft_s: dict[str, float | None]
    sci: dict[str, Any]
    efficiency: dict[str, Any]
    points: list[dict[str, Any]]
    points_sampled: bool
    warnings: list[tuple[str, int]]
    skipped_lines: int = 0
    otm_version: str = ""
    generated_at: float = field(default_factory=time.time)

    # shortcuts, so ``exp.summary().energy_wh`` reads naturally
    @property
    def energy_wh(self) -> Range:
        return self.totals.energy_wh

    @property
    def carbon_g(self) -> Range:
        return self.totals.carbon_g

    @property
    def water_ml(self) -> Range:
        return self.totals.water_ml

    @property
    def cost_usd(self) -> float | None:
        return self.totals.cost_usd

    @property
    def requests(self) -> int:
        return self.totals.requests

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def sentence(self) -> str:
        return methods_sentence(self)

    # How it shows itself (otm.report.display): totals with ranges, models, the sentence.
    def __repr__(self) -> str:
        from otm.report.display import summary_repr

        return summary_repr(self)

    def __str__(self) -> str:
        from otm.report.formats import render_text

        return render_text(self)

    def _repr_html_(self) -> str:
        from otm.report.display import summary_html

        return summary_html(self)

    def __rich__(self) -> Any:
        from otm.report.display import summary_rich

        return summary_rich(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "otm.summary/1",
            "name": self.name,
            "tags": self.tags,
            "otm_version": self.otm_version,
            "generated_at": self.generated_at,
            "started": self.started,
            "ended": self.ended,
            "totals": self.totals.to_dict(),
            "breakdown_wh": self.breakdown_wh,
            "carbon_breakdown_g": self.carbon_breakdown_g,
            "water_breakdown_ml": self.water_breakdown_ml,
            "by_model": [m.to_dict() for m in self.by_model],
            "by_provider": {k: v.to_dict() for k, v in self.by_provider.items()},
            "by_status": {k: v.to_dict() for k, v in self.by_status.items()},
            "by_tag": {k: v.to_dict() for k, v in self.by_tag.items()},
            "by_run": {k: v.to_dict() for k, v in self.by_run.items()},
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "sci": {
                k: (_range_dict(v) if isinstance(v, Range) else v) for k, v in self.sci.items()
            },
            "efficiency": self.efficiency,
            "warnings": [{"warning": w, "requests": n} for w, n in self.warnings],
            "skipped_lines": self.skipped_lines,
            "range_method": (
                "sum of central values; lows/highs summed within groups sharing "
                "(provider, model, deployment, region), groups combined in quadrature"
            ),
            "sentence": self.sentence,
        }


def _range_dict(r: Range | None) -> dict[str, float] | None:
    return None if r is None else {"value": r.value, "low": r.low, "high": r.high}


class Aggregator:
    """Consumes rows one at a time; memory stays bounded whatever their number."""

    def __init__(self, *, name: str | None = None, tags: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.tags = dict(tags or {})
        self.all = Bucket()
        # Rows of one (model, provider, status) are summed in a cell first and
        # the cells merged into those four slices when read: one bucket update
        # per row instead of four (see _flush).
        self._cells: dict[tuple[Bucket, Bucket, Bucket], Bucket] = {}
        self.models: dict[str, Bucket] = {}
        self.providers: dict[str, Bucket] = {}
        self.statuses: dict[str, Bucket] = {}
        self.tag_buckets: dict[str, Bucket] = {}
        self.run_buckets: dict[str, Bucket] = {}
        self.breakdown_wh: dict[str, float] = {}
        self.carbon_breakdown_g: dict[str, float] = {}
        self.water_breakdown_ml: dict[str, float] = {}
        self.latency = Reservoir(LATENCY_SAMPLE, seed=1)
        self.ttft = Reservoir(LATENCY_SAMPLE, seed=2)
        self.points = Reservoir(POINT_SAMPLE, seed=3)
        self.most_output_per_input = TopK()
        self.most_energy_per_useful_token = TopK()
        self.no_output_requests = 0
        self.no_output_energy_wh = 0.0
        self.warnings: Counter[str] = Counter()
        self.started: float | None = None
        self.ended: float | None = None
        self.skipped_lines = 0

    def add(self, row: Row) -> None:
        g = row.group
        model = _bucket(self.models, row.model, MAX_MODELS, latency_sample=2_000)
        key = (
            model,
            _bucket(self.providers, row.provider, MAX_MODELS),
            _bucket(self.statuses, row.status, 50),
        )
        cell = self._cells.get(key)
        if cell is None:
            if len(self._cells) >= MAX_CELLS:
                self._flush()
            cell = self._cells[key] = Bucket()
        cell.add(row, g)
        if model.latency is not None and row.latency_s is not None:
            model.latency.add(row.latency_s)
        for k, v in row.tags.items():
            _bucket(self.tag_buckets, f"{k}={v}", MAX_TAG_VALUES).add(row, g)
        for name in set(row.runs):
            _bucket(self.run_buckets, name, MAX_TAG_VALUES).add(row, g)

        if row.time is not None:
            if self.started is None or row.time < self.started:
                self.started = row.time
            end = row.end_time if row.end_time is not None else row.time
            if self.ended is None or end > self.ended:
                self.ended = end
        if row.latency_s is not None:
            self.latency.add(row.latency_s)
        if row.ttft_s is not None:
            self.ttft.add(row.ttft_s)
        for w in row.warnings:
            if w in self.warnings or len(self.warnings) < 200:
                self.warnings[w] += 1

        if row.energy is None:
            return
        for total, parts in (
            (self.breakdown_wh, row.breakdown_wh),
            (self.carbon_breakdown_g, row.carbon_breakdown_g),
            (self.water_breakdown_ml, row.water_breakdown_ml),
        ):
            for part, amount in parts.items():
                total[part] = total.get(part, 0.0) + amount
        energy = row.energy[0]
        carbon = row.carbon[0] if row.carbon is not None else 0.0
        self.points.add(
            (row.time, energy, carbon, row.input_tokens, row.output_tokens, row.model, row.status)
        )

        useful = row.output_tokens - row.reasoning_tokens
        if row.status == "ok" and row.input_tokens > 0:
            self.most_output_per_input.add(row.output_tokens / row.input_tokens, (row, energy))
        if useful > 0:
            self.most_energy_per_useful_token.add(energy / useful, (row, energy))
        else:
            self.no_output_requests += 1
            self.no_output_energy_wh += energy

    def add_all(self, rows: Iterable[Row]) -> Aggregator:
        for row in rows:
            self.add(row)
        return self

    def _flush(self) -> None:
        """Merge the cells into the slices they belong to."""
        for (model, provider, status), cell in self._cells.items():
            for bucket in (self.all, model, provider, status):
                bucket.merge(cell)
        self._cells.clear()

    def totals(self) -> Totals:
        self._flush()
        return self.all.totals()

    def summary(self) -> Summary:
        from otm import __version__

        self._flush()
        totals = self.all.totals()
        by_model = sorted(
            (_model_stats(name, b) for name, b in self.models.items()),
            key=lambda m: (-m.totals.energy_wh.value, -m.totals.requests, m.model),
        )
        return Summary(
            name=self.name,
            tags=self.tags,
            totals=totals,
            started=self.started,
            ended=self.ended,
            breakdown_wh=_ordered(self.breakdown_wh, ("accelerator", "host", "idle", "facility")),
            carbon_breakdown_g=_ordered(self.carbon_breakdown_g, ("operational", "embodied")),
            water_breakdown_ml=_ordered(self.water_breakdown_ml, ("onsite", "offsite")),
            by_model=by_model,
            by_provider=_totals_of(self.providers),
            by_status={k: self.statuses[k].totals() for k in _status_order(self.statuses)},
            by_tag=_totals_of(self.tag_buckets),
            by_run=_totals_of(self.run_buckets),
            latency_s=percentiles(self.latency.items),
            ttft_s=percentiles(self.ttft.items),
            sci=sci_figures(totals),
            efficiency=self._efficiency(totals),
            points=[
                {
                    "time": t,
                    "energy_wh": e,
                    "carbon_g": c,
                    "input_tokens": i,
                    "output_tokens": o,
                    "model": m,
                    "status": s,
                }
                for t, e, c, i, o, m, s in sorted(
                    self.points.items, key=lambda p: (p[0] is None, p[0] or 0.0)
                )
            ],
            points_sampled=self.points.sampled,
            warnings=self.warnings.most_common(20),
            skipped_lines=self.skipped_lines,
            otm_version=__version__,
        )

    def _efficiency(self, totals: Totals) -> dict[str, Any]:
        def entry(row: Row, energy: float) -> dict[str, Any]:
            useful = row.output_tokens - row.reasoning_tokens
            return {
                "request": row.label,
                "time": row.time,
                "model": row.model,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "reasoning_tokens": row.reasoning_tokens,
                "output_per_input": row.output_tokens / row.input_tokens
                if row.input_tokens
                else None,
                "energy_wh": energy,
                "energy_per_useful_token_wh": energy / useful if useful > 0 else None,
                "prompt": None if row.prompt is None else row.prompt[:120],
            }

        total = totals.energy_wh.value
        return {
            "most_output_per_input": [entry(r, e) for r, e in self.most_output_per_input.items()],
            "most_energy_per_useful_token": [
                entry(r, e) for r, e in self.most_energy_per_useful_token.items()
            ],
            "no_useful_output_requests": self.no_output_requests,
            "no_useful_output_energy_wh": self.no_output_energy_wh,
            "no_useful_output_share": self.no_output_energy_wh / total if total > 0 else 0.0,
        }


def _bucket(buckets: dict[str, Bucket], key: str, cap: int, latency_sample: int = 0) -> Bucket:
    b = buckets.get(key)
    if b is None:
        if len(buckets) >= cap:
            key = "(other)"
            b = buckets.get(key)
        if b is None:
            b = buckets[key] = Bucket(latency_sample)
    return b


def _totals_of(buckets: dict[str, Bucket]) -> dict[str, Totals]:
    items = sorted(buckets.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    return {k: b.totals() for k, b in items}


def _status_order(buckets: Mapping[str, Bucket]) -> list[str]:
    known = [s for s in STATUSES if s in buckets]
    return known + sorted(k for k in buckets if k not in STATUSES)


def _ordered(c: Mapping[str, float], order: tuple[str, ...]) -> dict[str, float]:
    out = {k: float(c[k]) for k in order if k in c}
    out.update({k: float(v) for k, v in sorted(c.items()) if k not in out})
    return out


# ---------------------------------------------------------------------- SCI and prose


def sci_figures(t: Totals) -> dict[str, Any]:
    """Software Carbon Intensity for AI: carbon per functional unit, with its boundary.

    The functional units are a request and 1 000 tokens (input + output, and
    output alone); only requests with figures count in the denominators.
    """
    share = t.estimated / t.requests if t.requests else 0.0
    tokens = t.tokens * share
    out_tokens = t.output_tokens * share
    return {
        "gco2e_per_request": _per(t.carbon_g, t.estimated),
        "gco2e_per_1k_tokens": _per(t.carbon_g, tokens / 1000.0),
        "gco2e_per_1k_output_tokens": _per(t.carbon_g, out_tokens / 1000.0),
        "wh_per_1k_tokens": _per(t.energy_wh, tokens / 1000.0),
        "boundary": BOUNDARY,
        "functional_units": "one API request; 1 000 tokens (input + output); 1 000 output tokens",
    }


def _join(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def methods_sentence(s: Summary) -> str:
    """A sentence for the methods or results section of a paper."""
    t = s.totals
    if t.requests == 0:
        return "No LLM API calls were recorded in this experiment."
    models = [m.model for m in sorted(s.by_model, key=lambda m: -m.totals.requests)]
    if len(models) > 4:
        models = models[:3] + [f"{len(models) - 3} others"]
    calls = "call" if t.requests == 1 else "calls"
    lead = f"The {fmt_int(t.requests)} LLM API {calls} in this experiment"
    detail = (
        f"{fmt_int(t.input_tokens)} input and {plural(t.output_tokens, 'output token')}; "
        f"{'model' if len(s.by_model) == 1 else 'models'} {_join(models)}"
    )
    failed = t.requests - t.by_status.get("ok", 0)
    if failed:
        detail += f"; {fmt_int(failed)} failed, cancelled or abandoned"
    missing = t.requests - t.estimated
    scope = ""
    if missing:
        scope = f" (figures cover the {plural(t.estimated, 'call')} that could be estimated)"

    def rng(kind: str, r: Range) -> str:
        factor, unit = scale_for(kind, r.value)
        return f"{sig(r.value / factor)} {unit} (range {sig(r.low / factor)}–{sig(r.high / factor)} {unit})"

    from otm import __version__

    return (
        f"{lead} ({detail}) used an estimated {rng('energy', t.energy_wh)} of electricity, "
        f"emitting {rng('carbon', t.carbon_g)} and consuming {rng('water', t.water_ml)} of water{scope}, "
        f"estimated with otm v{__version__} from client-side timings and token counts "
        "(location-based grid carbon intensity, embodied hardware emissions included, "
        "facility boundary including PUE; ranges sum within each model and deployment "
        "and combine in quadrature across them)."
    )


def describe_totals(t: Totals) -> str:
    """One line for logs and reprs."""
    return (
        f"{plural(t.requests, 'request')}, energy {fmt_range('energy', t.energy_wh)}, "
        f"carbon {fmt('carbon', t.carbon_g.value)}, water {fmt('water', t.water_ml.value)}"
    )


def summarize(
    source: Any,
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    region: str | None = None,
) -> Summary:
    """Summarise records, rows, or a JSONL log (path), streaming.

    ``region`` is the default region for log lines without one (they are
    re-estimated with it).
    """
    import os

    agg = Aggregator(name=name, tags=tags)
    if isinstance(source, (str, os.PathLike)):
        from otm.report.reader import LogReader

        reader = LogReader(source, region=region)
        agg.add_all(reader.rows())
        agg.skipped_lines = reader.skipped
        if agg.name is None:
            agg.name = reader.experiment
        return agg.summary()
    for item in source:
        agg.add(item if isinstance(item, Row) else Row.from_record(item))
    return agg.summary()


def totals_of(records: Iterable[Any]) -> Totals:
    """Totals of live records (what ``Run.totals`` shows)."""
    b = Bucket()
    for r in records:
        b.add(Row.from_record(r))
    return b.totals()

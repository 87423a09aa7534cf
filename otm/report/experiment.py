"""``otm.experiment``: collect every LLM call made inside a block, log it, report it.

    with otm.experiment("ablation-3", output_dir="otm-runs") as exp:
        run_my_pipeline()
    print(exp.summary().sentence)

The experiment is a collector pushed onto the context's scope, so calls made
in threads started with a copied context and in asyncio tasks started inside
the block are attributed to it, and two experiments running side by side in
different tasks never mix. Each record is appended to
``<output_dir>/<name>-<timestamp>/records.jsonl`` as it finishes, before the
call returns to the user (see ``sink``); on exit the reports are written next
to it, estimated from the log.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from otm._log import log_once, logger
from otm.events import close_experiment, open_experiment, pop_scope, push_scope
from otm.report.reader import LOG_NAME
from otm.report.rows import LOG_SCHEMA, effective_tags, run_names
from otm.report.sink import JsonlSink

if TYPE_CHECKING:
    from contextvars import Token

    from otm.record import Record
    from otm.report.summary import Summary
    from otm.report.track import Run

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_REPORTS = ("html", "md", "json", "csv")
"""Reports written on exit; ``latex`` can be added, ``()`` writes none (the log is always kept)."""

REPORT_FILES = {
    "html": "report.html",
    "md": "report.md",
    "json": "summary.json",
    "csv": "requests.csv",
    "latex": "table.tex",
}


def _default_output_dir() -> Path:
    """The configured output directory (argument > env > config file > "otm-runs")."""
    try:
        from otm.config import settings

        return Path(settings().output_dir)
    except Exception as exc:  # an invalid setting must not break the user's experiment
        log_once("experiment.output_dir", exc)
        return Path("otm-runs")


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return s[:80] or "experiment"


class Experiment:
    """Every LLM call made inside a ``with`` block (or a decorated function)."""

    def __init__(
        self,
        name: str = "experiment",
        output_dir: str | Path | None = None,
        tags: Mapping[str, str] | None = None,
        region: str | None = None,
        *,
        reports: Iterable[str] = DEFAULT_REPORTS,
        keep_records: bool = True,
    ) -> None:
        self.name = name
        self.output_dir = Path(output_dir) if output_dir is not None else _default_output_dir()
        self.tags: dict[str, str] = {str(k): str(v) for k, v in (tags or {}).items()}
        self.region = region
        """Default region for calls that have none (their impact is estimated with it)."""
        self.reports = tuple(reports)
        unknown = set(self.reports) - set(REPORT_FILES)
        if unknown:
            raise ValueError(
                f"unknown report formats {sorted(unknown)}; choose from {sorted(REPORT_FILES)}"
            )
        self.keep_records = keep_records
        self.path: Path | None = None
        """The experiment's directory (set on entry)."""
        self.started: float | None = None
        self.ended: float | None = None
        self.requests = 0
        self._records: list[Record] = []
        self._runs: list[Run] = []
        self._lock = threading.Lock()
        self._sink: JsonlSink | None = None
        self._token: Token[Any] | None = None
        self._entered = False

    # ------------------------------------------------------------------ paths

    @property
    def log_path(self) -> Path | None:
        return None if self.path is None else self.path / LOG_NAME

    @property
    def report_path(self) -> Path | None:
        """The HTML report (written on exit when ``"html"`` is among the reports)."""
        return None if self.path is None else self.path / REPORT_FILES["html"]

    # ------------------------------------------------------------------ collector

    def collect(self, record: Record) -> None:
        """Called once per finished call of this experiment, on the caller's thread: stay cheap."""
        _apply_default_region(record)
        with self._lock:
            self.requests += 1
            if self.keep_records:
                self._records.append(record)
        sink = self._sink
        if sink is not None:
            sink.put(record)

    def _add_run(self, run: Run) -> None:
        with self._lock:
            self._runs.append(run)

    @property
    def records(self) -> list[Record]:
        """The calls collected so far (read back from the log when ``keep_records=False``)."""
        if self.keep_records:
            with self._lock:
                return list(self._records)
        from otm.report.reader import read_log

        return (
            []
            if self.log_path is None or not self.log_path.exists()
            else list(read_log(self.log_path))
        )

    @property
    def runs(self) -> list[Run]:
        """The tracked runs that finished inside the experiment."""
        with self._lock:
            return list(self._runs)

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else time.time()) - self.started

    def summary(self) -> Summary:
        """Totals with ranges, splits, percentiles, SCI figures and the methods sentence."""
        from otm.report.rows import Row
        from otm.report.summary import Aggregator

        agg = Aggregator(name=self.name, tags=self.tags)
        if self.keep_records:
            for rec in self.records:
                agg.add(Row.from_record(rec, experiment=self.name))
        elif self.log_path is not None and self.log_path.exists():
            from otm.report.reader import LogReader

            agg.add_all(LogReader(self.log_path).rows())
        return agg.summary()

    # ------------------------------------------------------------------ lifecycle

    def _line(self, record: Record) -> dict[str, Any]:
        """One log line, written on the caller's thread before its call returns: no estimate.

        Reports estimate the lines without one when they read the log (in
        vectorised chunks); an impact already computed (or given) goes along.
        """
        data = record.to_dict(with_impact=False)
        if record._impact is not None:
            data["impact"] = record._impact.model_dump(mode="json")
        data["tags"] = effective_tags(record)
        return {
            "schema": LOG_SCHEMA,
            "seq": record.seq,
            "experiment": self.name,
            "runs": list(run_names(record.scope)),
            **data,
        }

    def _open(self) -> None:
        if self._entered:
            raise RuntimeError(
                "an otm.experiment can be entered once; create a new one for each run"
            )
        self._entered = True
        self.started = time.time()
        try:
            self.path = self._make_directory()
            self._sink = JsonlSink(self.path / LOG_NAME, self._line)
        except Exception as exc:
            # An unwritable output directory must not stop the user's block:
            # the experiment goes on in memory, without a log or reports.
            self.path, self._sink = None, None
            self.keep_records = True
            logger.error(
                "otm: experiment %r cannot write to %s (%s); its records are kept in memory "
                "only (exp.records, exp.summary()), with no log and no reports",
                self.name,
                self.output_dir,
                exc,
            )

    def _make_directory(self) -> Path:
        assert self.started is not None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.started))
        base = f"{_slug(self.name)}-{stamp}"
        for i in range(1, 1000):
            candidate = self.output_dir / (base if i == 1 else f"{base}-{i}")
            try:
                candidate.mkdir(mode=0o700)
            except FileExistsError:
                continue
            return candidate
        raise FileExistsError(f"no free directory name for {base} in {self.output_dir}")

    def _close(self) -> None:
        """Close the log, then write the reports. Never raises into the user's code."""
        close_experiment(self)
        self.ended = time.time()
        sink = self._sink
        if sink is None:
            return
        try:
            sink.close()
        except Exception as exc:
            log_once("report.experiment close log", exc)
        if not self.reports:
            logger.info(
                "otm: experiment %r: %d calls logged to %s", self.name, self.requests, sink.path
            )
            return
        try:
            from otm.report.formats import write_reports

            assert self.path is not None
            outputs = {fmt: self.path / REPORT_FILES[fmt] for fmt in self.reports}
            summary = write_reports(
                sink.path,
                name=self.name,
                tags=self.tags,
                region=self.region,
                **outputs,  # type: ignore[arg-type]
            )
            shown = outputs.get("html") or next(iter(outputs.values()))
            logger.info(
                "otm: experiment %r: %d calls, %s of energy; report written to %s",
                self.name,
                summary.requests,
                _energy(summary),
                shown,
            )
        except Exception as exc:
            log_once(
                "report.experiment reports",
                exc,
                f"otm: could not write the reports of {self.name!r}",
            )

    def __enter__(self) -> Experiment:
        self._open()
        self._token = push_scope(self)
        # Calls from threads that do not carry this context (plain threads,
        # thread pools) come here too while it is the only open experiment.
        open_experiment(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            pop_scope(self._token)
            self._token = None
        self._close()

    async def __aenter__(self) -> Experiment:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._token is not None:
            pop_scope(self._token)
            self._token = None
        # Closing the log and writing reports is file I/O: keep it off the event loop.
        await asyncio.to_thread(self._close)

    # ------------------------------------------------------------------ decorator

    def _fresh(self) -> Experiment:
        return Experiment(
            self.name,
            self.output_dir,
            self.tags,
            self.region,
            reports=self.reports,
            keep_records=self.keep_records,
        )

    def _start_fresh(self) -> Experiment:
        exp = self._fresh()
        exp._open()
        self.latest = exp
        return exp

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call of ``fn`` runs in a fresh experiment with these settings.

        Generator functions get theirs from the first item to the last, the
        experiment in scope only while the generator's body runs.
        """
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            from otm.report.track import _wrap_async_generator, _wrap_generator

            wrap = _wrap_async_generator if inspect.isasyncgenfunction(fn) else _wrap_generator
            return wrap(fn, self._start_fresh, lambda exp, _error: exp._close())  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh() as exp:
                    self.latest = exp
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh() as exp:
                self.latest = exp
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    latest: Experiment | None = None
    """When used as a decorator: the experiment of the most recent call."""

    # Data frames, one row per call (otm.report.frames; extras pandas, arrow, polars).
    def _frame(self, backend: str) -> Any:
        from otm.report.frames import records_frame

        if self.keep_records or self.log_path is None:
            return records_frame(self.records, backend, experiment=self.name)
        if self._sink is not None:
            self._sink.flush()
        return records_frame(self.log_path, backend, region=self.region)

    def to_pandas(self) -> Any:
        """The calls as a pandas ``DataFrame``: telemetry, impact (value/low/high), breakdown, tags, runs."""
        return self._frame("pandas")

    def to_arrow(self) -> Any:
        """The calls as a pyarrow ``Table`` (columns as :meth:`to_pandas`)."""
        return self._frame("arrow")

    def to_polars(self) -> Any:
        """The calls as a polars ``DataFrame`` (columns as :meth:`to_pandas`)."""
        return self._frame("polars")

    def _repr_html_(self) -> str:
        from otm.report.display import experiment_html

        return experiment_html(self)

    def __rich__(self) -> Any:
        from otm.report.display import experiment_rich

        return experiment_rich(self)

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path is not None else ""
        from otm.units import plural

        return f"<otm.Experiment {self.name!r} {plural(self.requests, 'call')}{where}>"


def experiment(
    name: str = "experiment",
    output_dir: str | Path | None = None,
    tags: Mapping[str, str] | None = None,
    region: str | None = None,
    *,
    reports: Iterable[str] = DEFAULT_REPORTS,
    keep_records: bool = True,
) -> Experiment:
    """Collect, log and report every LLM call made inside the block.

    ``output_dir`` defaults to the ``output_dir`` setting (``OTM_OUTPUT_DIR``,
    ``[tool.otm]``; ``otm-runs`` otherwise). ``region`` is the default serving region for calls that carry none
    (``otm.wrap(client, region=...)`` and ``otm.configure`` take precedence):
    their impact is estimated with it. ``reports`` picks the files written on
    exit (``html``, ``md``, ``json``, ``csv``, ``latex``). With
    ``keep_records=False`` records are not held in memory (for very long
    experiments); ``exp.records`` then reads them back from the log.
    """
    return Experiment(name, output_dir, tags, region, reports=reports, keep_records=keep_records)


def _apply_default_region(record: Record) -> None:
    """Give a region-less record the region of the innermost experiment that sets one.

    Every experiment in the record's scope runs this; all find the same
    innermost experiment, so the outcome does not depend on delivery order.
    """
    if record.region is not None:
        return
    for collector in reversed(record.scope):
        if isinstance(collector, Experiment) and collector.region:
            record.region = collector.region
            record._impact = None  # estimated without the region (if at all): do it again
            return


def _energy(summary: Summary) -> str:
    from otm.report.units import fmt_range

    return fmt_range("energy", summary.energy_wh)

"""Reports with live grid intensity: a log read in chunks, each re-estimated with the
hourly intensity of its records' grid zones (``otm report --live-grid``).

Memory stays bounded (``chunk`` records at a time); each chunk asks the
source once per (zone, hour) it has not cached. Rows keep everything the log
says (experiment, runs, tags); only their figures change, and a row whose
live figure could not be had keeps the static one with the reason among its
warnings. ``result`` counts what happened.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from otm._log import log_once
from otm.report.reader import LogReader
from otm.report.rows import Row

__all__ = ["LiveGridReader"]


class LiveGridReader(LogReader):
    """A :class:`LogReader` whose rows carry live-grid impacts."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        region: str | None = None,
        source: Any = None,
        zones: Mapping[str, str] | None = None,
        chunk: int = 5_000,
        **kw: Any,
    ) -> None:
        from otm.grid import LiveGridResult

        super().__init__(path, region=region, **kw)
        self.source = source
        self.zones = zones
        self.chunk = max(1, chunk)
        self.result = LiveGridResult()

    def rows(self) -> Iterator[Row]:
        buf: list[tuple[Any, Row]] = []
        for obj in self.dicts():
            try:
                pair = self._record_and_row(obj)
            except Exception as exc:
                self.skipped += 1
                log_once(
                    f"report.reader[{self.path}] line",
                    exc,
                    f"otm: skipped unreadable lines in {self.path}",
                )
                continue
            buf.append(pair)
            if len(buf) >= self.chunk:
                yield from self._live(buf)
                buf = []
        if buf:
            yield from self._live(buf)

    def _record_and_row(self, obj: dict[str, Any]) -> tuple[Any, Row]:
        from otm.record import Record
        from otm.telemetry import Telemetry

        row = Row.from_dict(obj, region=self.region, reestimate=False)
        if isinstance(obj.get("telemetry"), dict):
            rec = Record.from_dict(obj)
        else:
            region = obj.get("region")
            rec = Record(
                Telemetry.model_validate(obj), region=region if isinstance(region, str) else None
            )
        if rec.region is None and self.region:
            rec.region = self.region
            rec._impact = None  # the logged figures assumed another region
        return rec, row

    def _live(self, buf: list[tuple[Any, Row]]) -> Iterator[Row]:
        from otm.grid import Intensity, live_impacts

        pairs = live_impacts([rec for rec, _ in buf], source=self.source, zones=self.zones)
        for (_rec, row), (impact, lookup) in zip(buf, pairs):
            if isinstance(lookup, Intensity):
                self.result.live += 1
                self.result.zones[lookup.zone] += 1
            else:
                self.result.fallbacks[lookup.reason] += 1
            if impact is not None:
                row._set_impact(impact)
            yield row

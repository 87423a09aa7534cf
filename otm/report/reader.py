"""Streaming reader of JSONL logs: one request per line, never all in memory.

It reads what experiments write (``schema: otm.record/1`` lines) and also bare
telemetry objects, including the camelCase lines OTM-style collectors emit
(``startTime``, ``inputTokens``...), which it estimates on the fly.

A log cut short by a killed process ends in a partial line: that last line is
skipped quietly (``truncated`` says so). A malformed line elsewhere is skipped,
counted in ``skipped`` and logged once.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from otm._log import log_once, logger
from otm.report.rows import Row

LOG_NAME = "records.jsonl"
"""File name of an experiment's log inside its directory."""


def resolve_log(path: str | os.PathLike[str]) -> Path:
    """A log file, or an experiment directory holding one."""
    p = Path(path)
    if p.is_dir():
        return p / LOG_NAME
    return p


class LogReader:
    """Iterate a JSONL log as dicts, rows or records, streaming.

    ``on_progress(bytes_read)`` is called every ``progress_every`` lines (for
    progress bars); ``size`` is the file size in bytes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        region: str | None = None,
        reestimate: bool = True,
        on_progress: Callable[[int], None] | None = None,
        progress_every: int = 2_000,
    ) -> None:
        self.path = resolve_log(path)
        self.region = region
        self.reestimate = reestimate
        self.on_progress = on_progress
        self.progress_every = progress_every
        self.size = self.path.stat().st_size
        self.lines = 0
        self.skipped = 0
        self.truncated = False
        self.experiment: str | None = None

    def _open(self) -> IO[bytes]:
        if self.path.suffix == ".gz":
            return cast(IO[bytes], gzip.open(self.path, "rb"))
        return open(self.path, "rb")

    def dicts(self) -> Iterator[dict[str, Any]]:
        """Each line's JSON object, in order."""
        self.lines = self.skipped = 0
        self.truncated = False
        done = 0
        with self._open() as f:
            pending: bytes | None = None
            for raw in f:
                done += len(raw)
                if pending is not None:
                    obj = self._parse(pending, last=False)
                    if obj is not None:
                        yield obj
                pending = raw
                self.lines += 1
                if self.on_progress is not None and self.lines % self.progress_every == 0:
                    self.on_progress(done)
            if pending is not None:
                # The last line: a crash mid-write leaves it partial, which is expected.
                obj = self._parse(pending, last=True)
                if obj is not None:
                    yield obj
        if self.on_progress is not None:
            self.on_progress(done)

    def _parse(self, raw: bytes, *, last: bool) -> dict[str, Any] | None:
        text = raw.strip()
        if not text:
            return None
        try:
            obj = json.loads(text)
        except ValueError:
            if last:
                self.truncated = True
                logger.info(
                    "otm: %s ends in a partial line (an interrupted write); skipped it", self.path
                )
            else:
                self.skipped += 1
                log_once(
                    f"report.reader[{self.path}]",
                    message=f"otm: skipped malformed lines in {self.path}",
                )
            return None
        if not isinstance(obj, dict):
            self.skipped += 1
            return None
        if self.experiment is None and isinstance(obj.get("experiment"), str):
            self.experiment = obj["experiment"]
        return obj

    def rows(self) -> Iterator[Row]:
        """Each line as a :class:`Row` (estimated on the fly when it carries no impact)."""
        for obj in self.dicts():
            try:
                yield Row.from_dict(obj, region=self.region, reestimate=self.reestimate)
            except (KeyError, TypeError, ValueError) as exc:
                self.skipped += 1
                log_once(
                    f"report.reader[{self.path}] line",
                    exc,
                    f"otm: skipped unreadable lines in {self.path}",
                )

    def records(self) -> Iterator[Any]:
        """Each otm record line as a :class:`~otm.record.Record` (bare telemetry lines too)."""
        from otm.record import Record
        from otm.telemetry import Telemetry

        for obj in self.dicts():
            try:
                if isinstance(obj.get("telemetry"), dict):
                    rec = Record.from_dict(obj)
                else:
                    rec = Record(Telemetry.model_validate(obj), region=obj.get("region"))
            except Exception as exc:
                self.skipped += 1
                log_once(
                    f"report.reader[{self.path}] record",
                    exc,
                    f"otm: skipped unreadable lines in {self.path}",
                )
                continue
            if rec.region is None and self.region:
                rec.region = self.region
                rec._impact = None
            yield rec


def read_log(path: str | os.PathLike[str], *, region: str | None = None) -> Iterator[Any]:
    """The records of a JSONL log, one at a time (a truncated last line is skipped)."""
    return LogReader(path, region=region).records()

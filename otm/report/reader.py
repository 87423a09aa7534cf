"""Streaming reader of JSONL logs: one request per line, never all in memory.

It reads what experiments write (``schema: otm.record/1`` lines, telemetry
only since the line is written before the call returns; older logs carry an
``impact`` too) and bare telemetry objects, including the camelCase lines
OTM-style collectors emit (``startTime``, ``inputTokens``...). Lines without
figures are estimated a chunk at a time (``estimate_rows``).

A log cut short by a killed process ends in a partial line: that last line is
skipped quietly (``truncated`` says so). A malformed line elsewhere is skipped,
counted in ``skipped``, and the first reason is logged once per pass.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from otm._log import logger
from otm.report.rows import Row

_decode = json.JSONDecoder().decode  # on text: skips json.loads' encoding detection per line

LOG_NAME = "records.jsonl"
"""File name of an experiment's log inside its directory."""


def resolve_log(path: str | os.PathLike[str]) -> Path:
    """A log file, or an experiment directory holding one."""
    p = Path(path)
    if p.is_dir():
        return p / LOG_NAME
    return p


CHUNK_ROWS = 4_096
"""Lines estimated together (one vectorised call per deployment and region among them)."""


class LogReader:
    """Iterate a JSONL log as dicts, rows or records, streaming.

    ``on_progress(bytes_read)`` is called every ``progress_every`` lines (for
    progress bars; ``lines`` counts them); ``size`` is the file size in bytes
    (compressed, for ``.gz``). A ``.gz`` that ends early (a truncated download, a killed
    ``gzip``) is read up to the damage: ``truncated`` is set and
    ``ended_early`` says why.
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
        self.ended_early: str | None = None
        self.experiment: str | None = None

    def _open(self) -> IO[bytes]:
        if self.path.suffix == ".gz":
            with open(self.path, "rb") as probe:
                gzipped = probe.read(2) == b"\x1f\x8b"
            if gzipped:  # a plain log merely named .gz is read as it is
                return cast(IO[bytes], gzip.open(self.path, "rb"))
        return open(self.path, "rb")

    def _raw_lines(self, f: IO[bytes]) -> Iterator[bytes]:
        """The file's lines; a compressed stream that breaks off ends them, said once."""
        lines = iter(f)
        while True:
            try:
                yield next(lines)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as exc:  # truncated or damaged .gz
                self.truncated = True
                self.ended_early = str(exc) or type(exc).__name__
                logger.warning(
                    "otm: %s ends early (%s); read the %d lines before the damage",
                    self.path,
                    self.ended_early,
                    self.lines,
                )
                return

    def dicts(self) -> Iterator[dict[str, Any]]:
        """Each line's JSON object, in order."""
        self.lines = self.skipped = 0
        self.truncated = False
        self.ended_early = None
        done = 0
        with self._open() as f:
            pending: bytes | None = None
            for raw in self._raw_lines(f):
                done += len(raw)
                if pending is not None:
                    obj = self._parse(pending, last=False)
                    if obj is not None:
                        yield obj
                pending = raw
                self.lines += 1
                if self.on_progress is not None and self.lines % self.progress_every == 0:
                    self.on_progress(self._position(f, done))
            if pending is not None:
                # The last line: a crash mid-write leaves it partial, which is expected.
                obj = self._parse(pending, last=True)
                if obj is not None:
                    yield obj
        if self.on_progress is not None:
            self.on_progress(self.size)

    def _position(self, f: IO[bytes], done: int) -> int:
        """Bytes of the file read so far (of the compressed file for ``.gz``)."""
        raw = getattr(f, "fileobj", None)  # gzip's underlying file
        if raw is not None:
            try:
                return int(raw.tell())
            except (OSError, ValueError):
                pass
        return done

    def _parse(self, raw: bytes, *, last: bool) -> dict[str, Any] | None:
        text = raw.strip()
        if not text:
            return None
        try:
            obj = _decode(text.decode("utf-8"))
        except RecursionError:  # nested deeper than any record: not one
            obj = None
        except ValueError:
            if last:
                self.truncated = True
                logger.info(
                    "otm: %s ends in a partial line (an interrupted write); skipped it", self.path
                )
                return None
            obj = None
        if not isinstance(obj, dict):
            self._skip("not a JSON object")
            return None
        if self.experiment is None and isinstance(obj.get("experiment"), str):
            self.experiment = obj["experiment"]
        return obj

    def _skip(self, reason: str) -> None:
        """Count a line that is no readable record; say so once per pass, with the first reason."""
        self.skipped += 1
        if self.skipped == 1:
            logger.warning(
                "otm: skipping unreadable lines in %s (the first, line %d: %s)",
                self.path,
                self.lines,
                reason,
            )

    def rows(self) -> Iterator[Row]:
        """Each line as a :class:`Row`; lines without an impact are estimated, a chunk at a time."""
        from otm.report.estimate_rows import Pending, estimate_rows

        chunk: list[Row] = []
        pending: list[Pending] = []
        for obj in self.dicts():
            try:
                row, telemetry, dep = Row.parse(obj, region=self.region)
            except (KeyError, TypeError, ValueError) as exc:
                self._skip(str(exc))
                continue
            chunk.append(row)
            if telemetry is not None and self.reestimate:
                pending.append((row, telemetry, dep))
            if len(chunk) >= CHUNK_ROWS:
                estimate_rows(pending)
                yield from chunk
                chunk, pending = [], []
        estimate_rows(pending)
        yield from chunk

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
                self._skip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                continue
            if rec.region is None and self.region:
                rec.region = self.region
                rec._impact = None
            yield rec


def read_log(path: str | os.PathLike[str], *, region: str | None = None) -> Iterator[Any]:
    """The records of a JSONL log, one at a time (a truncated last line is skipped)."""
    return LogReader(path, region=region).records()

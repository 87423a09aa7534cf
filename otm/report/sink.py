"""The durable log of an experiment: an append-only JSONL file, one line per record.

``put`` runs on the thread that finished the LLM call (the user's thread),
before the call returns to the user: it serialises the record's telemetry
(no estimate: reports estimate at read time, in vectorised chunks) and hands
the line to the kernel with one ``os.write`` on a file opened ``O_APPEND`` with
mode 0600. Once a call has returned, its line is in the operating system's
page cache, so a process killed at any later moment (SIGKILL included) leaves
it on disk; no fsync is needed for that, only for surviving a power loss
(``close`` fsyncs). A kill in the middle of a write leaves at worst a partial
last line, which readers skip.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otm._log import log_once

FILE_MODE = 0o600
"""Logs can hold prompts (when capture of them is on) and usage patterns: owner only."""


def open_private(path: Path, *, append: bool = True) -> int:
    """Open ``path`` for writing; a file it creates is owner-read/write only (0600).

    An existing file keeps its mode: it may be a device (``/dev/null``) or a
    file whose permissions the user chose.
    """
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | (os.O_APPEND if append else os.O_TRUNC)
        | getattr(os, "O_CLOEXEC", 0)
    )
    return os.open(path, flags, FILE_MODE)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def encode_line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str) + "\n").encode(
        "utf-8"
    )


class JsonlSink:
    """Append records to a JSONL file, each written before :meth:`put` returns."""

    def __init__(
        self, path: str | os.PathLike[str], line_for: Callable[[Any], dict[str, Any]]
    ) -> None:
        self.path = Path(path)
        self._line_for = line_for
        self._fd: int | None = open_private(self.path)
        # Re-entrant: a garbage-collector pass during a write may finalise an
        # abandoned stream, whose record comes back here on the same thread.
        self._lock = threading.RLock()
        self.written = 0
        self.failed = 0
        # A process that exits without leaving the experiment still gets its log fsynced.
        atexit.register(self.close)

    def put(self, record: Any) -> None:
        """Write one record's line now (to the OS); never raises (failures are logged once)."""
        try:
            data = encode_line(self._line_for(record))
            with self._lock:
                fd = self._fd
                if fd is not None:
                    _write_all(fd, data)
                else:  # a stream finalised after the experiment ended: reopen for its line
                    fd = open_private(self.path)
                    try:
                        _write_all(fd, data)
                    finally:
                        os.close(fd)
                self.written += 1
        except Exception as exc:
            self.failed += 1
            log_once("report.sink write", exc, f"otm: could not write a record to {self.path}")

    def flush(self, timeout: float | None = None) -> bool:
        """Every line is written when :meth:`put` returns: nothing to wait for (kept for callers)."""
        return True

    def close(self) -> None:
        """Fsync and close. Idempotent; later :meth:`put` calls still append."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.fsync(fd)
            except OSError:
                pass
            os.close(fd)
        try:
            atexit.unregister(self.close)
        except Exception:  # pragma: no cover
            pass

    @property
    def closed(self) -> bool:
        return self._fd is None

"""The durable log of an experiment: an append-only JSONL file, one line per record.

``collect`` runs on the thread that finished the LLM call (the user's thread),
so it only puts the record on a queue. A background thread estimates the
record, serialises it and writes the line with a single ``os.write`` on a file
opened ``O_APPEND`` with mode 0600. Each line reaches the kernel as soon as it
is written, so a process killed at any moment leaves a file whose lines all
parse except, at worst, a partial last one (readers skip it); only records
still waiting in the queue are lost. ``close`` drains the queue and fsyncs.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otm._log import log_once

_STOP = object()

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
    """Append records to a JSONL file from a background thread."""

    def __init__(
        self, path: str | os.PathLike[str], line_for: Callable[[Any], dict[str, Any]]
    ) -> None:
        self.path = Path(path)
        self._line_for = line_for
        self._fd: int | None = open_private(self.path)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._late_lock = threading.RLock()  # late inline writes, one line at a time
        self._closed = False
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(
            target=self._run, name=f"otm-log-{self.path.parent.name}", daemon=True
        )
        self._thread.start()
        # A process that exits without leaving the experiment still gets its log drained.
        atexit.register(self.close)

    # -- producer side (user threads) -------------------------------------------

    def put(self, record: Any) -> None:
        """Queue a record for writing; cheap. After close, writes it synchronously."""
        with self._lock:  # so no record slips onto the queue after close() drained it
            if not self._closed:
                self._queue.put(record)
                return
        # A stream finalised after the experiment ended: rare, write it inline.
        # Estimating it allocates, so a garbage-collector pass may finalise
        # another abandoned stream and re-enter put() on this very thread:
        # nothing here may hold a non-reentrant lock.
        try:
            line = encode_line(self._line_for(record))
            with self._late_lock:
                fd = open_private(self.path)
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self.written += 1
        except Exception as exc:
            self.failed += 1
            log_once("report.sink late write", exc)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every record queued so far is written; False on timeout."""
        if self._closed:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        """Drain the queue, fsync and close. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
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
        return self._closed

    # -- consumer side (the writer thread) --------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            self._write(item)

    def _write(self, record: Any) -> None:
        try:
            data = encode_line(self._line_for(record))
            assert self._fd is not None
            _write_all(self._fd, data)
            self.written += 1
        except Exception as exc:
            self.failed += 1
            log_once("report.sink write", exc)

"""The state of one request: created when the call starts, finished exactly once.

The hot path (a streamed chunk) only reads the clock and sets a few
attributes; :meth:`Call.finish` builds the record (:mod:`.records`), attaches
``.otm`` to every holder and emits it, exactly once, whichever of the end of
the stream, an error, a close or a garbage-collector pass comes first.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from otm import events
from otm._log import log_once
from otm.capture.attach import attach
from otm.capture.clients import ClientSettings
from otm.capture.hosts import HostName
from otm.capture.settings import snapshot

if TYPE_CHECKING:
    from otm.capture.hosts import Host
    from otm.data.attribution import HostKind
    from otm.record import Record

_perf = time.perf_counter
_wall = time.time

_NOT_FINISHED = "pending"


class Call:
    """One request in flight. Created when the call starts, finished exactly once."""

    __slots__ = (
        "_finalizer",
        "_lock",
        "cache_write_tokens",
        "cached_input_tokens",
        "chunks",
        "chunks_counted",
        "content_chunks",
        "completion",
        "config",
        "error_type",
        "extra",
        "finish_reasons",
        "holders",
        "host",
        "host_kind",
        "http_status",
        "input_text_length",
        "input_tokens",
        "model",
        "notes",
        "operation",
        "outcome",
        "output_text_length",
        "output_tokens",
        "prepare",
        "prompt",
        "provider",
        "reasoning_streamed",
        "reasoning_tokens",
        "record",
        "request_id",
        "response_id",
        "scope",
        "served_model",
        "server_address",
        "server_port",
        "settings",
        "start_wall",
        "status",
        "streamed",
        "t0",
        "t_end",
        "t_first_chunk",
        "t_first_token",
        "t_headers",
        "t_last",
        "t_last_chunk",
        "text_parts",
        "input_estimated",
        "output_estimated",
        "response_id",
    )

    def __init__(
        self,
        provider: str,
        operation: str,
        model: str | None,
        settings: ClientSettings | None = None,
        *,
        streamed: bool = False,
        host_kind: HostKind = "api",
        host: Host | HostName | None = None,
    ) -> None:
        """``host``: what the client's host says (:func:`.hosts.host_of`), instead of
        ``provider`` and ``host_kind``."""
        self.start_wall = _wall()
        self.t0 = _perf()
        # The client's host name, when it is looked up in otm's provider table with
        # the record (attribution.attribution_of) instead of naming provider/host_kind.
        self.host: HostName | None = None
        if isinstance(host, HostName):
            provider = host.vendor  # until the record looks the name up
            self.host = host
        elif host is not None:
            provider, host_kind = host
        self.provider = (
            settings.provider if settings is not None and settings.provider else provider
        )
        self.host_kind = host_kind
        """What the client's host is (``provider`` is what it names): the provider is
        settled with the model when the call finishes (``attribution.attribution_of``)."""
        self.operation = operation
        self.model = model
        self.served_model: str | None = None
        self.request_id: str | None = None
        self.settings = settings
        self.scope = events.current_scope()
        self.config = snapshot()
        """The settings the call started under (capture_prompts, defaults for the record)."""
        self.t_first_chunk: float | None = None
        self.t_first_token: float | None = None
        self.t_last: float | None = None
        self.t_end: float | None = None
        self.chunks = 0
        self.content_chunks = 0
        """Chunks that carried output (text, tool arguments, reasoning): the
        count behind the inter-chunk latency, exact even when tokens are not."""
        self.chunks_counted = True
        """False when the chunks were not seen one by one (LiteLLM's callbacks)."""
        self.input_tokens: int | None = None
        self.cached_input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        # Set by adapters whose streams carry reasoning as visible deltas
        # (anthropic thinking); hidden reasoning happens before the first token.
        self.reasoning_streamed = False
        # Token counts the integration itself reports as estimated (LiteLLM
        # counts a stream's tokens when the provider sent no usage).
        self.input_estimated = False
        self.output_estimated = False
        self.response_id: str | None = None
        """The provider's id of the completion (``chatcmpl-...``, ``msg_...``), when known."""
        self.input_text_length: int | None = None
        self.output_text_length = 0
        self.prompt: str | None = None
        self.completion: str | None = None
        # Text pieces are kept only when needed: to count tokens when usage is
        # missing, or when the user opted in to prompt capture.
        self.text_parts: list[str] | None = None
        self.streamed = streamed
        self.status = _NOT_FINISHED
        self.http_status: int | None = None
        self.error_type: str | None = None
        self.holders: list[Any] = []
        self.record: Record | None = None
        # Reentrant: a garbage-collector pass inside a locked section may run
        # this very call's finaliser on the same thread.
        self._lock = threading.RLock()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.extra: dict[str, Any] | None = None
        self.notes: list[str] = []
        """What was repaired in what the server sent (see :mod:`.sanitize`)."""
        self.t_last_chunk: float | None = None
        self.t_headers: float | None = None
        """When the response headers arrived (a streamed call returned)."""
        self.outcome: str | None = None
        """Set by an observer that saw an in-band failure (e.g. a ``response.failed``
        event): a normal end of the stream then finishes with this status."""
        self.prepare: Callable[[Call], None] | None = None
        """Deferred work run once when the call finishes, before the record is
        built (e.g. measuring the request's text only when it is needed)."""
        # What the API named (for export under the OpenTelemetry GenAI conventions).
        self.finish_reasons: list[str] | None = None
        self.server_address: str | None = None
        self.server_port: int | None = None
        self.cache_write_tokens: int | None = None
        """Input tokens written to the provider's prompt cache (part of ``input_tokens``)."""

    def finish_reason(self, reason: Any) -> None:
        """A choice (candidate) ended for ``reason`` (an enum or a string; None is ignored)."""
        if reason is None:
            return
        value = getattr(reason, "value", reason)
        if isinstance(value, str) and value:
            if self.finish_reasons is None:
                self.finish_reasons = [value]
            else:
                self.finish_reasons.append(value)

    def server(self, address_port: tuple[str | None, int | None]) -> None:
        self.server_address, self.server_port = address_port

    # -- hot path ---------------------------------------------------------------

    def chunk(self, has_content: bool) -> None:
        """A chunk arrived; ``has_content`` when it carries output (text, tool args, thinking)."""
        t = _perf()
        self.chunks += 1
        self.t_last_chunk = t
        if has_content:
            self.t_last = t
            self.content_chunks += 1
            if self.t_first_token is None:
                self.t_first_token = t
        if self.t_first_chunk is None:
            self.t_first_chunk = t

    def text(self, piece: str | None) -> None:
        """Count streamed output text (and keep it when it will be needed at the end)."""
        if piece:
            self.output_text_length += len(piece)
            parts = self.text_parts
            if parts is not None:
                parts.append(piece)

    # -- holders ----------------------------------------------------------------

    def hold(self, obj: Any) -> None:
        """``obj`` (a stream, a helper, a wrapper) receives ``.otm`` when the call finishes.

        Kept by weak reference where possible so an abandoned stream can still
        be collected (and finalised as ``abandoned``). Safe against a finish
        running in another thread (a garbage-collector pass, another task).
        """
        ref: Callable[[], Any]
        try:
            ref = weakref.ref(obj)
        except TypeError:  # not weak-referenceable: keep it

            def ref() -> Any:
                return obj

        with self._lock:  # nothing that allocates (and so may run the gc) in here
            record = self.record
            if record is None:
                self.holders.append(ref)
                return
        attach(obj, record)

    def finalise_on_gc(self, obj: Any) -> None:
        """Finish as ``abandoned`` if ``obj`` is garbage collected before the call ends.

        One object is watched at a time: watching a new one (the stream a raw
        response parses into) stops watching the previous one, which the user
        may drop while still reading the new one.
        """
        if self.status != _NOT_FINISHED:
            return
        previous = self._finalizer
        try:
            finalizer = weakref.finalize(obj, self._collected)
        except TypeError:
            return
        finalizer.atexit = False
        self._finalizer = finalizer
        if previous is not None:
            previous.detach()

    def _collected(self) -> None:
        # The object was dropped unfinished: the call ended with the last thing
        # seen of it (a chunk, or the headers), not at this garbage-collector pass.
        self._finalizer = None
        last = self.t_last_chunk if self.t_last_chunk is not None else self.t_headers
        end(self, "abandoned", at=last)

    # -- the end ----------------------------------------------------------------

    def fail(self, exc: BaseException) -> Record | None:
        """Finish from an exception: cancelled for cancellation/KeyboardInterrupt, else error."""
        if self.status != _NOT_FINISHED:
            return self.record
        name = type(exc).__name__
        status = "cancelled" if name in _CANCELLED else "error"
        try:
            self.error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
            code = getattr(exc, "status_code", None)
            if not isinstance(code, int):
                code = getattr(exc, "code", None)
            if not isinstance(code, int):
                response = getattr(exc, "response", None)
                code = getattr(response, "status_code", None)
            if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
                self.http_status = code
            rid = getattr(exc, "request_id", None)
            if isinstance(rid, str) and self.request_id is None:
                self.request_id = rid
        except Exception as e:  # pragma: no cover - defensive
            log_once("capture.fail", e)
        return self.finish(status)

    def finish(
        self, status: str = "ok", holder: Any = None, *, at: float | None = None
    ) -> Record | None:
        """Build the record, attach it, emit it. Idempotent: only the first call counts.

        ``holder`` also receives ``.otm`` (now, or when a finish already in
        progress elsewhere completes). ``at`` backdates the end (a perf_counter
        reading), e.g. to the last chunk of a stream collected later.
        """
        if self.status != _NOT_FINISHED:
            if holder is not None:
                self.hold(holder)
            return self.record
        with self._lock:
            if self.status != _NOT_FINISHED:
                finished = True
            else:
                finished = False
                if status == "ok" and self.outcome is not None:
                    status = self.outcome
                self.status = status
                self.t_end = _perf() if at is None else at
        if finished:
            if holder is not None:
                self.hold(holder)
            return self.record
        # From here on every step is guarded on its own: a failure in one (a
        # listener, an attach) never reaches the user and never stops the others.
        finalizer = self._finalizer
        if finalizer is not None:
            self._finalizer = None
            try:
                finalizer.detach()
            except Exception as exc:  # pragma: no cover - defensive
                log_once("capture.finish.detach", exc)
        try:
            record = build_record(self)
        except Exception as exc:
            log_once(f"capture.finish[{self.provider}]", exc)
            return None
        fresh: list[Any] = []
        with self._lock:
            self.record = record
            holders, self.holders = self.holders, fresh
        try:
            if holder is not None:
                attach(holder, record)
            for ref in holders:
                obj = ref()
                if obj is not None:
                    attach(obj, record)
        except Exception as exc:
            log_once("capture.finish.attach", exc)
        try:
            events.emit(record)
        except Exception as exc:
            log_once("capture.finish.emit", exc)
        return record


def _first_record(call: Call) -> Record:
    """Load the record machinery (Telemetry, Record, otm's data) with the first record,
    not at start-up; later records go straight to it."""
    global build_record
    from otm.capture import records

    build_record = records.build_record
    return build_record(call)


build_record: Callable[[Call], Record] = _first_record
""":func:`.records.build_record`, once the first record has loaded it."""


def end(call: Call, status: str, *, at: float | None = None) -> None:
    """``call.finish(status)`` on the user's path (a loop's end, a close): never raises."""
    try:
        call.finish(status, at=at)
    except Exception as exc:
        log_once(f"capture.end[{status}]", exc)


_CANCELLED = frozenset({"CancelledError", "Cancelled", "KeyboardInterrupt"})
"""Exception names that mean the caller stopped the call (asyncio/anyio, trio, Ctrl-C)."""

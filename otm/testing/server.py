"""An embedded fake of the OpenAI, Anthropic and Gemini HTTP APIs.

It speaks the wire formats the official SDKs parse (plain JSON and SSE), with
scripted timing, token counts and failures, so capture tests, the overhead
benchmark and ``otm demo`` can drive the real clients offline::

    from otm.testing.server import FakeProviderServer, Scenario

    with FakeProviderServer(Scenario(ttfb_s=0.2, gap_s=0.01, output_tokens=20)) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")
        ...

A request can override the default scenario with an ``X-Fake-Scenario``
header holding JSON of :class:`Scenario` fields (see :func:`scenario_headers`).

Stdlib only: ``http.server.ThreadingHTTPServer`` on 127.0.0.1, one thread per
connection, HTTP/1.1 keep-alive. Plain responses carry Content-Length; streams
use chunked transfer encoding, so an abrupt close (``drop_after``) is a
protocol error for the client rather than a clean end of body.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _anthropic, _gemini, _openai
from ._common import Call, JsonReply, Reply, StreamPlan, chunked, json_reply, new_id

if TYPE_CHECKING:
    from typing_extensions import Self  # typing-only: the module stays stdlib at runtime

__all__ = [
    "SCENARIO_HEADER",
    "FakeProviderServer",
    "RecordedRequest",
    "Scenario",
    "running_server",
    "scenario_headers",
]

SCENARIO_HEADER = "X-Fake-Scenario"


@dataclass
class Scenario:
    """What the fake provider does for a request.

    Token semantics: ``output_tokens`` is the visible output (one content
    delta each). ``reasoning_tokens`` is hidden reasoning, reported the way
    each provider does: inside openai ``completion_tokens``/``output_tokens``
    and anthropic ``output_tokens`` (plus ``thinking_tokens``), beside Gemini
    ``candidatesTokenCount`` as ``thoughtsTokenCount``. ``input_tokens`` is
    the whole prompt; ``cached_input_tokens`` (cache reads) and
    ``cache_write_tokens`` are parts of it (anthropic's ``input_tokens`` is
    therefore ``input - cached - cache_write``). So, for every provider, the
    normalised input is ``input_tokens`` and the normalised output is
    ``output_tokens + reasoning_tokens``.
    """

    ttfb_s: float = 0.0
    """Delay before the body (plain) or the first SSE frame (streams; headers go out at once)."""
    gap_s: float = 0.0
    """Delay between content frames of a stream. Ignored for plain responses."""
    output_tokens: int = 8
    input_tokens: int = 12
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    model: str | None = None
    """Model reported as served; None echoes the requested model."""
    status: int = 200
    """Non-200: the provider's real error body with this status, after ``ttfb_s``."""
    error_after: int | None = None
    """Send the provider's mid-stream error frame after N content frames, then end the stream."""
    drop_after: int | None = None
    """Close the connection abruptly after N content frames (no terminating chunk)."""
    include_usage: bool | None = None
    """None follows the request (openai chat streams: ``stream_options.include_usage``; others: always).
    False omits usage where the provider's schema allows it (not anthropic)."""
    request_id: str | None = None
    """Request id header (openai ``x-request-id``, anthropic ``request-id``) / Gemini ``responseId``."""
    text: str | None = None
    """Fixed reply text, split into ``output_tokens`` deltas; default ``tok0 tok1 ...``."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the cache (anthropic ``cache_creation_input_tokens``, openai ``cache_write_tokens``)."""

    def __post_init__(self) -> None:
        # Validated here because header overrides arrive as untyped JSON.
        for name in ("ttfb_s", "gap_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Scenario.{name} must be a non-negative number, got {value!r}")
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Scenario.{name} must be a non-negative int, got {value!r}")
        for name in ("error_after", "drop_after"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(
                    f"Scenario.{name} must be None or a non-negative int, got {value!r}"
                )
        if (
            isinstance(self.status, bool)
            or not isinstance(self.status, int)
            or not 100 <= self.status <= 599
        ):
            raise ValueError(f"Scenario.status must be an HTTP status code, got {self.status!r}")
        for name in ("model", "request_id", "text"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"Scenario.{name} must be None or a str, got {value!r}")
        if self.include_usage is not None and not isinstance(self.include_usage, bool):
            raise ValueError(
                f"Scenario.include_usage must be None or a bool, got {self.include_usage!r}"
            )


_COUNT_FIELDS = (
    "output_tokens",
    "input_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
)
_SCENARIO_FIELDS = frozenset(f.name for f in dataclasses.fields(Scenario))


def scenario_headers(**overrides: Any) -> dict[str, str]:
    """Headers that override the server's scenario for one request.

    ``client.chat.completions.create(..., extra_headers=scenario_headers(ttfb_s=0.1))``;
    google-genai: ``config={"http_options": {"headers": scenario_headers(...)}}``.
    """
    unknown = set(overrides) - _SCENARIO_FIELDS
    if unknown:
        raise TypeError(f"unknown Scenario fields: {sorted(unknown)}")
    return {SCENARIO_HEADER: json.dumps(overrides)}


class RecordedRequest(NamedTuple):
    """A request as received. ``headers`` keys are lower-cased; ``body`` is the parsed JSON (or text)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


# --- routing ----------------------------------------------------------------------

_GEMINI_PATH = re.compile(
    r"^/(?:v1|v1beta|v1alpha)/(?P<model>.+?):"
    r"(?P<method>generateContent|streamGenerateContent|embedContent|batchEmbedContents)$"
)

# Azure OpenAI names the deployment in the path: /openai/deployments/{name}/chat/completions.
_AZURE_PATH = re.compile(r"^(?:/v1)?/openai/deployments/(?P<deployment>[^/]+)(?P<rest>/.+)$")

_OPENAI_ROUTES: dict[str, Callable[[Call], Reply]] = {
    "/v1/chat/completions": _openai.chat_completions,
    "/v1/responses": _openai.responses,
    "/v1/embeddings": _openai.embeddings,
}


class _Route(NamedTuple):
    provider: Any  # the provider module, for error_reply(status, request_id, message)
    build: Callable[[Call], Reply]
    model: str
    stream: bool
    request_id: str


def _route(
    method: str, path: str, body: dict[str, Any] | None, scenario_id: str | None
) -> _Route | None:
    if method != "POST":
        return None
    # OpenAI clients pointed at the bare URL (no /v1) still work.
    key = path if path.startswith("/v1/") else "/v1" + path
    model = body.get("model") if isinstance(body, dict) else None
    azure = _AZURE_PATH.match(path)
    if azure is not None:
        key = "/v1" + azure.group("rest")
        if not isinstance(model, str):
            model = azure.group("deployment")
    model = model if isinstance(model, str) else "unknown-model"
    stream = bool(body.get("stream")) if isinstance(body, dict) else False
    build = _OPENAI_ROUTES.get(key)
    if build is not None:
        return _Route(
            _openai,
            build,
            model,
            stream and build is not _openai.embeddings,
            scenario_id or new_id("req_"),
        )
    if key == "/v1/messages":
        return _Route(_anthropic, _anthropic.messages, model, stream, scenario_id or new_id("req_"))
    m = _GEMINI_PATH.match(path)
    if m is not None:
        gm = m.group("model")
        gm = gm.removeprefix("models/")
        op = m.group("method")
        rid = scenario_id or new_id("", 10)
        if op == "embedContent":
            return _Route(_gemini, lambda c: _gemini.embed_content(c, batch=False), gm, False, rid)
        if op == "batchEmbedContents":
            return _Route(_gemini, lambda c: _gemini.embed_content(c, batch=True), gm, False, rid)
        return _Route(_gemini, _gemini.generate_content, gm, op == "streamGenerateContent", rid)
    return None


def _not_found(method: str, path: str) -> JsonReply:
    # One body every SDK can read: openai/anthropic read error.message, Google error.code/status.
    message = f"fake server: no route for {method} {path}"
    return json_reply(
        {
            "error": {
                "code": 404,
                "message": message,
                "status": "NOT_FOUND",
                "type": "not_found_error",
            }
        },
        [],
        404,
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


# --- HTTP plumbing ------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; Content-Length or chunked on every response
    disable_nagle_algorithm = True  # small SSE writes must not wait for delayed ACKs
    server_version = "otm-fake-provider"
    server: _HTTPServer
    response_started = False  # set once a status line is on the wire

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._track(self, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # per-request logging would dominate benchmark time

    def _dispatch(self) -> None:
        self.server.owner._handle(self)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _dispatch


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # server_close() never joins daemon threads; stop() cuts connections and joins them itself.
    block_on_close = False
    request_queue_size = 512  # the default backlog of 5 drops SYNs under 50 concurrent connects

    def __init__(self, address: tuple[str, int], owner: FakeProviderServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client disconnects are routine (abandoned streams); anything else is a bug worth seeing.
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handle_error(request, client_address)


class _Dropped(Exception):
    """The response was cut off (scenario drop, stop(), or the client went away)."""


class FakeProviderServer:
    """Local fake of the three providers' HTTP APIs. Thread-safe; a context manager."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_recorded: int = 1000,
    ) -> None:
        self._scenario = scenario if scenario is not None else Scenario()
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._recorded: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._request_count = 0
        self._connection_count = 0
        self._handlers: dict[_Handler, threading.Thread] = {}
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> Self:
        """Bind and serve in a daemon thread; idempotent while running."""
        with self._lock:
            if self._httpd is not None:
                return self
            if self._stop_event.is_set():
                raise RuntimeError(
                    "a stopped FakeProviderServer cannot be restarted; create a new one"
                )
            self._httpd = _HTTPServer((self._host, self._port), self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="otm-fake-provider",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving, cut open connections and join the threads (bounded by ``timeout``)."""
        with self._lock:
            httpd, thread = self._httpd, self._thread
            if httpd is None or self._stop_event.is_set():
                return
            self._stop_event.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            handlers = dict(self._handlers)
        for handler in handlers:
            _shutdown_socket(handler.connection)
        deadline = time.monotonic() + timeout
        for t in [thread, *handlers.values()]:
            if t is not None and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses ---

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def gemini_base_url(self) -> str:
        return self.url

    # --- scenario and records ---

    @property
    def scenario(self) -> Scenario:
        with self._lock:
            return self._scenario

    @scenario.setter
    def scenario(self, value: Scenario) -> None:
        if not isinstance(value, Scenario):
            raise TypeError("scenario must be a Scenario")
        with self._lock:
            self._scenario = value

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the last ``max_recorded`` requests, oldest first."""
        with self._lock:
            return list(self._recorded)

    @property
    def request_count(self) -> int:
        """Requests received since start (not bounded like ``requests``)."""
        with self._lock:
            return self._request_count

    @property
    def connection_count(self) -> int:
        """TCP connections accepted since start (shows whether clients reuse keep-alive connections)."""
        with self._lock:
            return self._connection_count

    def clear_requests(self) -> None:
        with self._lock:
            self._recorded.clear()

    # --- internals ---

    def _track(self, handler: _Handler, *, add: bool) -> None:
        with self._lock:
            if add:
                self._handlers[handler] = threading.current_thread()
                self._connection_count += 1
            else:
                self._handlers.pop(handler, None)
        if add and self._stop_event.is_set():
            _shutdown_socket(handler.connection)

    def _scenario_for(self, raw: str | None) -> Scenario:
        base = self.scenario
        if not raw:
            return base
        fields = json.loads(raw)
        if not isinstance(fields, dict):
            raise TypeError(f"{SCENARIO_HEADER} must be a JSON object")
        unknown = set(fields) - _SCENARIO_FIELDS
        if unknown:
            raise ValueError(f"{SCENARIO_HEADER}: unknown Scenario fields {sorted(unknown)}")
        return dataclasses.replace(base, **fields)

    def _handle(self, h: _Handler) -> None:
        try:
            self._serve(h)
        except _Dropped:
            h.close_connection = True
        except OSError:
            h.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: tell the client and stderr
            traceback.print_exc()
            h.close_connection = True
            if h.response_started:  # mid-body: a JSON error would corrupt the framing
                _shutdown_socket(h.connection)
                return
            body = {
                "error": {
                    "code": 500,
                    "message": f"fake server bug: {exc!r}",
                    "status": "INTERNAL",
                    "type": "fake_server_error",
                }
            }
            try:
                self._send_json(h, json_reply(body, [], 500))
            except OSError:
                pass

    def _serve(self, h: _Handler) -> None:
        h.response_started = False
        path, _, _query = h.path.partition("?")
        raw = _read_body(h)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self._recorded.append(RecordedRequest(h.command, h.path, headers, body))
            self._request_count += 1

        try:
            scenario = self._scenario_for(headers.get("x-fake-scenario"))
            bad_scenario = None
        except (ValueError, TypeError) as exc:
            scenario, bad_scenario = self.scenario, str(exc)

        route = _route(
            h.command, path, body if isinstance(body, dict) else None, scenario.request_id
        )
        if route is None:
            self._send_json(h, _not_found(h.command, path))
            return
        if bad_scenario is not None:
            self._send_json(h, route.provider.error_reply(400, route.request_id, bad_scenario))
            return
        if not isinstance(body, dict):
            self._send_json(
                h,
                route.provider.error_reply(
                    400, route.request_id, "fake server: request body must be a JSON object"
                ),
            )
            return

        if scenario.status != 200:
            self._wait(scenario.ttfb_s)
            self._send_json(h, route.provider.error_reply(scenario.status, route.request_id))
            return
        call = Call(
            scenario=scenario,
            body=body,
            requested_model=route.model,
            request_id=route.request_id,
            stream=route.stream,
        )
        reply = route.build(call)
        if isinstance(reply, StreamPlan):
            self._send_stream(h, reply, scenario)
            return
        self._wait(scenario.ttfb_s)
        if scenario.drop_after is not None:  # plain response: hang up without answering
            _shutdown_socket(h.connection)
            raise _Dropped
        self._send_json(h, reply)

    def _wait(self, seconds: float) -> None:
        # Event.wait is a real sleep that stop() can cut short.
        if seconds > 0 and self._stop_event.wait(seconds):
            raise _Dropped

    def _send_json(self, h: _Handler, reply: JsonReply) -> None:
        lines = [
            f"HTTP/1.1 {reply.status} {_reason(reply.status)}",
            f"Content-Length: {len(reply.body)}",
        ]
        lines += [f"{k}: {v}" for k, v in reply.headers]
        if h.close_connection:
            lines.append("Connection: close")
        h.response_started = True
        h.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)

    def _send_stream(self, h: _Handler, plan: StreamPlan, s: Scenario) -> None:
        lines = [
            "HTTP/1.1 200 OK",
            "Content-Type: text/event-stream; charset=utf-8",
            "Cache-Control: no-cache",
            "Transfer-Encoding: chunked",
        ]
        lines += [f"{k}: {v}" for k, v in plan.headers]
        if h.close_connection:
            lines.append("Connection: close")
        write = h.wfile.write
        h.response_started = True
        write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self._wait(s.ttfb_s)

        pending = list(plan.preamble)
        sent = 0
        content: Iterator[bytes] = iter(plan.content)
        while True:
            frame = next(content, None)
            # error_after / drop_after beyond the last frame apply after the last frame.
            if s.drop_after is not None and (sent >= s.drop_after or frame is None):
                write(chunked(pending))
                _shutdown_socket(h.connection)
                raise _Dropped
            if s.error_after is not None and (sent >= s.error_after or frame is None):
                write(chunked([*pending, plan.error(sent)]) + b"0\r\n\r\n")
                return
            if frame is None:
                break
            if sent and s.gap_s > 0:
                self._wait(s.gap_s)
            pending.append(frame)
            write(chunked(pending))
            pending = []
            sent += 1
        write(chunked([*pending, *plan.postamble]) + b"0\r\n\r\n")


def _read_body(h: _Handler) -> bytes:
    length = h.headers.get("Content-Length")
    if length:
        return h.rfile.read(int(length))
    if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
        parts: list[bytes] = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(h.rfile.read(size))
            h.rfile.readline()
    return b""


def _shutdown_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@contextmanager
def running_server(scenario: Scenario | None = None, **kwargs: Any) -> Iterator[FakeProviderServer]:
    """``with running_server(Scenario(...)) as server:`` — started, and stopped on exit."""
    server = FakeProviderServer(scenario, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve from the command line until interrupted, e.g. to point a script or curl at it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m otm.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttfb", type=float, default=0.0, help="seconds before the first frame")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between content frames")
    parser.add_argument("--tokens", type=int, default=8, help="output tokens per reply")
    args = parser.parse_args(argv)
    scenario = Scenario(ttfb_s=args.ttfb, gap_s=args.gap, output_tokens=args.tokens)
    with FakeProviderServer(scenario, port=args.port) as server:
        print(
            f"fake provider on {server.url} (openai base_url {server.openai_base_url})", flush=True
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass

"""The shared core of capture: patch registry, per-call state, stream wrapping.

Every SDK module (``openai_sdk``, ``anthropic_sdk``, ``google_sdk``) builds on
three pieces defined here:

* :class:`PatchRegistry` — class-level patches with wrapt, idempotent,
  reversible, kept in our own registry (never inferred from wrapt types, so
  other instrumentors stacked on the same methods are left alone).
* :class:`Call` — the state of one request. The hot path (a streamed chunk)
  only reads the clock and a few attributes; ``finish`` builds the Telemetry
  and the Record exactly once, attaches ``.otm`` to every holder with
  ``object.__setattr__`` (so it never leaks into ``model_dump()``, JSON or
  ``==``) and emits the record.
* stream instrumentation — :func:`instrument_stream` swaps the class of an SDK
  ``Stream``/``AsyncStream`` for a cached subclass (same object, same
  ``isinstance``), and :class:`SyncStreamProxy` / :class:`AsyncStreamProxy`
  wrap bare generators (google-genai) in generator-like objects that can carry
  ``.otm``.

Nothing here knows about energy: capture produces Telemetry.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from otm import events
from otm._log import log_once
from otm.capture import handoff
from otm.record import Record
from otm.telemetry import Telemetry

ATTR = "otm"
"""Name of the attribute carrying the record on responses, streams and helpers."""

_perf = time.perf_counter
_wall = time.time


# --------------------------------------------------------------------------- options


@dataclass
class CaptureOptions:
    """Process-wide capture switches (``otm.configure`` sets them)."""

    enabled: bool = True
    capture_prompts: bool = False
    """Store prompt and completion text on the telemetry (off: privacy by default)."""
    request_usage: bool = False
    """Ask openai chat streams for usage (``stream_options.include_usage``); opt-in
    because the extra usage chunk has empty ``choices`` and breaks common code."""
    default_region: str | None = None
    default_tags: dict[str, str] = field(default_factory=dict)


options = CaptureOptions()


# --------------------------------------------------------------------------- per-client settings


@dataclass(frozen=True)
class ClientSettings:
    """What ``otm.wrap(client, ...)`` fixed for the calls made through one client."""

    deployment: Any = None
    region: str | None = None
    tags: dict[str, str] | None = None
    provider: str | None = None


_client_settings: weakref.WeakKeyDictionary[Any, ClientSettings] = weakref.WeakKeyDictionary()
_client_settings_by_id: dict[int, ClientSettings] = {}


def set_client_settings(client: Any, settings: ClientSettings) -> None:
    try:
        _client_settings[client] = settings
    except TypeError:  # not weak-referenceable: keep by id (lives as long as the process)
        _client_settings_by_id[id(client)] = settings


def _lookup_settings(key: Any) -> ClientSettings | None:
    try:
        found = _client_settings.get(key)
    except TypeError:
        found = None
    if found is None and _client_settings_by_id:
        found = _client_settings_by_id.get(id(key))
    return found


def settings_keys_of(client: Any, inner: str = "_client") -> list[object]:
    """What ``wrap()`` keys a client's settings on: the client, and the inner
    object its resources reach it through or its copies share (``inner``)."""
    keys: list[object] = [client]
    obj = getattr(client, inner, None)
    if obj is not None:
        keys.append(obj)
    return keys


def get_client_settings(client: Any) -> ClientSettings | None:
    """The settings ``wrap()`` fixed for ``client``, or for the HTTP client it shares
    with its ``with_options()``/``copy()`` copies (openai, anthropic: ``_client``)."""
    if client is None:
        return None
    found = _lookup_settings(client)
    if found is None:
        http = getattr(client, "_client", None)
        if http is not None:
            found = _lookup_settings(http)
    return found


# --------------------------------------------------------------------------- the call


_NOT_FINISHED = "pending"


class Call:
    """One request in flight. Created when the call starts, finished exactly once."""

    __slots__ = (
        "_finalizer",
        "_lock",
        "cached_input_tokens",
        "chunks",
        "completion",
        "error_type",
        "extra",
        "holders",
        "http_status",
        "input_text_length",
        "input_tokens",
        "model",
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
        "scope",
        "served_model",
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
        "tokens_estimated",
    )

    def __init__(
        self,
        provider: str,
        operation: str,
        model: str | None,
        settings: ClientSettings | None = None,
        *,
        streamed: bool = False,
    ) -> None:
        self.start_wall = _wall()
        self.t0 = _perf()
        self.provider = (
            settings.provider if settings is not None and settings.provider else provider
        )
        self.operation = operation
        self.model = model
        self.served_model: str | None = None
        self.request_id: str | None = None
        self.settings = settings
        self.scope = events.current_scope()
        self.t_first_chunk: float | None = None
        self.t_first_token: float | None = None
        self.t_last: float | None = None
        self.t_end: float | None = None
        self.chunks = 0
        self.input_tokens: int | None = None
        self.cached_input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        # Set by adapters whose streams carry reasoning as visible deltas
        # (anthropic thinking); hidden reasoning happens before the first token.
        self.reasoning_streamed = False
        self.tokens_estimated = False
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
        self.t_last_chunk: float | None = None
        self.t_headers: float | None = None
        """When the response headers arrived (a streamed call returned)."""
        self.outcome: str | None = None
        """Set by an observer that saw an in-band failure (e.g. a ``response.failed``
        event): a normal end of the stream then finishes with this status."""
        self.prepare: Callable[[Call], None] | None = None
        """Deferred work run once when the call finishes, before the record is
        built (e.g. measuring the request's text only when it is needed)."""

    # -- hot path ---------------------------------------------------------------

    def chunk(self, has_content: bool) -> None:
        """A chunk arrived; ``has_content`` when it carries output (text, tool args, thinking)."""
        t = _perf()
        self.chunks += 1
        self.t_last_chunk = t
        if has_content:
            self.t_last = t
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
        self.finish("abandoned", at=last)

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
        finalizer = self._finalizer
        if finalizer is not None:
            self._finalizer = None
            finalizer.detach()
        try:
            record = self._build()
        except Exception as exc:
            log_once(f"capture.finish[{self.provider}]", exc)
            return None
        fresh: list[Any] = []
        with self._lock:
            self.record = record
            holders, self.holders = self.holders, fresh
        if holder is not None:
            attach(holder, record)
        for ref in holders:
            obj = ref()
            if obj is not None:
                attach(obj, record)
        events.emit(record)
        return record

    def _build(self) -> Record:
        prepare = self.prepare
        if prepare is not None:
            self.prepare = None
            try:
                prepare(self)
            except Exception as exc:
                log_once(f"capture.prepare[{self.provider}]", exc)
        w0, t0 = self.start_wall, self.t0
        t_end = self.t_end if self.t_end is not None else _perf()
        if self.streamed:
            first_chunk = self.t_first_chunk
            first_token = self.t_first_token
            last = self.t_last
        else:
            # A non-streamed response arrives whole: first and last token = return.
            first_chunk = first_token = last = t_end if self.status == "ok" else None

        out_tokens = self.output_tokens
        in_tokens = self.input_tokens
        estimated = self.tokens_estimated
        text = "".join(self.text_parts) if self.text_parts else None
        if out_tokens is None and (self.output_text_length or text):
            out_tokens = count_tokens(
                text, self.output_text_length, self.served_model or self.model
            )
            estimated = True
        if (
            in_tokens is None
            and self.input_text_length
            and (self.status == "ok" or self.t_headers is not None or self.chunks)
        ):
            # Only when the server answered: a request refused or cancelled
            # before its response began was (as far as we know) not processed.
            in_tokens = count_tokens(
                self.prompt, self.input_text_length, self.served_model or self.model
            )
            estimated = True
        in_tokens = in_tokens or 0
        cached = min(self.cached_input_tokens or 0, in_tokens)
        out_tokens = out_tokens or 0
        reasoning = min(self.reasoning_tokens or 0, out_tokens)

        settings = self.settings
        capture = options.capture_prompts
        telemetry = _make_telemetry(
            {
                "provider": self.provider,
                "model": self.served_model or self.model,
                "request_id": self.request_id,
                "operation": self.operation,
                "start_time": w0,
                "first_chunk_time": None if first_chunk is None else w0 + (first_chunk - t0),
                "first_token_time": None if first_token is None else w0 + (first_token - t0),
                "last_token_time": None if last is None else w0 + (last - t0),
                "end_time": w0 + (t_end - t0),
                "input_tokens": in_tokens,
                "cached_input_tokens": cached,
                "output_tokens": out_tokens,
                "reasoning_tokens": reasoning,
                "reasoning_streamed": self.reasoning_streamed,
                "tokens_estimated": estimated,
                "input_text_length": self.input_text_length,
                "output_text_length": self.output_text_length or None,
                "streamed": self.streamed,
                "chunk_count": self.chunks if self.streamed else None,
                "status": self.status,
                "http_status": self.http_status,
                "error_type": self.error_type,
                "prompt": self.prompt if capture else None,
                "completion": (self.completion or text) if capture else None,
            }
        )
        region = (
            settings.region if settings is not None and settings.region else options.default_region
        )
        # Precedence: configured defaults < the runs the call was made in
        # (outer to inner; a collector offering ``record_tags``) < the client's.
        tags = options.default_tags
        for collector in self.scope:
            run_tags = getattr(collector, "record_tags", None)
            if run_tags:
                tags = {**tags, **run_tags}
        if settings is not None and settings.tags:
            tags = {**tags, **settings.tags}
        return Record(
            telemetry,
            deployment=None if settings is None else settings.deployment,
            region=region,
            tags=tags,
            scope=self.scope,
        )


_CANCELLED = frozenset({"CancelledError", "Cancelled", "KeyboardInterrupt"})
"""Exception names that mean the caller stopped the call (asyncio/anyio, trio, Ctrl-C)."""

_TELEMETRY_FIELDS = frozenset(Telemetry.model_fields)
_telemetry_new = Telemetry.__new__
_set = object.__setattr__
_fast_telemetry: bool | None = None
"""Whether the fast construction applies (decided on the first record: no
private attributes, and the values name exactly the model's fields)."""


def _make_telemetry(values: dict[str, Any]) -> Telemetry:
    """Telemetry from trusted values, skipping validation (the hot end of every call).

    Equivalent to ``Telemetry.model_construct(**values)`` when ``values`` names
    every field (several times faster); falls back to it otherwise.
    """
    global _fast_telemetry
    fast = _fast_telemetry
    if fast is None:
        fast = _fast_telemetry = (
            not Telemetry.__private_attributes__ and values.keys() == _TELEMETRY_FIELDS
        )
    if fast:
        obj = _telemetry_new(Telemetry)
        _set(obj, "__dict__", values)
        _set(obj, "__pydantic_fields_set__", set(values))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj
    return Telemetry.model_construct(**values)


def provider_from_host(host: str | None, default: str) -> str:
    """The provider behind an API host, from otm.data's table of known API hosts
    (``"local"`` for this machine and private networks); ``default`` otherwise."""
    if host:
        try:
            from otm.data import provider_for_host

            found = provider_for_host(host.lower().rstrip("."))
            if found:
                return found
        except Exception as exc:
            log_once("capture.provider_from_host", exc)
    return default


def attach(obj: Any, record: Record) -> None:
    """Put ``record`` on ``obj`` as ``.otm`` without touching its fields or equality."""
    try:
        object.__setattr__(obj, ATTR, record)
    except Exception as exc:  # frozen or slotted objects: nothing to attach to
        log_once(f"attach to {type(obj).__name__}", exc)


# --------------------------------------------------------------------------- token counting


_CHARS_PER_TOKEN = 4.0
"""Fallback when no tokenizer is available: ~4 characters of English text per
token (OpenAI's published rule of thumb; see docs/methodology.md)."""

_TIKTOKEN_WAIT_S = 0.25
"""How long a call may wait, once per process, for tiktoken's encoding to load."""

_encoders: dict[str, Any] = {}
"""Encoding name -> loaded tiktoken Encoding, or None when it could not be loaded."""
_encoder_loading: dict[str, tuple[threading.Event, float]] = {}
_encoder_lock = threading.Lock()
_model_encoding: dict[str, str] = {}
_tiktoken_failed = os.environ.get("OTM_TIKTOKEN", "").strip().lower() in ("0", "false", "no", "off")


def _encoding_name(model: str | None) -> str | None:
    global _tiktoken_failed
    key = model or ""
    name = _model_encoding.get(key)
    if name is None:
        try:
            import tiktoken
        except Exception:
            _tiktoken_failed = True
            return None
        try:
            name = tiktoken.encoding_name_for_model(model or "gpt-4o")
        except Exception:
            name = "o200k_base"
        _model_encoding[key] = name
    return name


def _load_encoder(name: str, done: threading.Event) -> None:
    try:
        import tiktoken

        enc: Any = tiktoken.get_encoding(name)
    except BaseException:
        # Not installed, or its vocabulary file is neither cached nor downloadable (offline).
        enc = None
    _encoders[name] = enc
    done.set()


def _start_loading(name: str) -> tuple[threading.Event, float]:
    """Start loading encoding ``name`` on a daemon thread (once); returns (done, start time)."""
    with _encoder_lock:
        entry = _encoder_loading.get(name)
        if entry is None:
            entry = _encoder_loading[name] = (threading.Event(), _perf())
            threading.Thread(
                target=_load_encoder, args=(name, entry[0]), name="otm-tiktoken", daemon=True
            ).start()
    return entry


def _encoder(model: str | None) -> Any:
    """The tiktoken encoder for ``model`` if it is (or quickly becomes) available, else None.

    tiktoken reads its vocabulary from a local cache and otherwise downloads
    it; that can hang without network, so the load runs on a daemon thread
    (started when a call first may need it) and a call waits for it at most
    ``_TIKTOKEN_WAIT_S`` after that start: usually not at all.
    """
    name = _encoding_name(model)
    if name is None:
        return None
    if name in _encoders:
        return _encoders[name]
    done, started = _start_loading(name)
    left = _TIKTOKEN_WAIT_S - (_perf() - started)
    if left > 0:
        done.wait(left)
    return _encoders.get(name)


def count_tokens(text: str | None, length: int, model: str | None) -> int:
    """Tokens in a text: tiktoken when installed and its encoding loads, else chars/4."""
    if text and not _tiktoken_failed:
        try:
            enc = _encoder(model)
            if enc is not None:
                return len(enc.encode(text, disallowed_special=()))
        except Exception as exc:
            log_once("count_tokens", exc)
    if length <= 0:
        length = len(text) if text else 0
        if length <= 0:
            return 0
    return max(1, round(length / _CHARS_PER_TOKEN))


def tokenizer_available(model: str | None = None) -> bool:
    """Whether :func:`count_tokens` may use tiktoken (so keeping the text is worth it).

    Starts loading the encoding in the background when it was never tried, so
    it is usually ready by the time the call ends.
    """
    if _tiktoken_failed:
        return False
    name = _encoding_name(model)
    if name is None:
        return False
    if name in _encoders:
        return _encoders[name] is not None
    _start_loading(name)
    return True  # still loading: it may become available


# --------------------------------------------------------------------------- patch registry


@dataclass
class _Patch:
    provider: str
    owner: type
    name: str
    original: Any
    installed: Any
    wrapper: Any


class PatchRegistry:
    """What otm patched, so it can be undone; idempotent and thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._patches: dict[tuple[type, str], _Patch] = {}
        self._providers: set[str] = set()

    def is_installed(self, provider: str) -> bool:
        return provider in self._providers

    def installed(self) -> set[str]:
        return set(self._providers)

    def install(self, provider: str, targets: list[tuple[type, str, Callable[..., Any]]]) -> int:
        """Wrap each ``owner.name`` with wrapt; returns how many were patched."""
        import wrapt

        with self._lock:
            if provider in self._providers:
                return 0
            n = 0
            for owner, name, wrapper in targets:
                key = (owner, name)
                if key in self._patches or name not in owner.__dict__:
                    continue
                original = owner.__dict__[name]
                try:
                    wrapt.wrap_function_wrapper(owner, name, wrapper)
                except Exception as exc:
                    log_once(f"patch {owner.__qualname__}.{name}", exc)
                    continue
                _inert.discard(id(wrapper))
                self._patches[key] = _Patch(
                    provider, owner, name, original, owner.__dict__[name], wrapper
                )
                n += 1
            self._providers.add(provider)
            return n

    def uninstall(self, provider: str | None = None) -> None:
        """Restore originals; a patch that someone else wrapped afterwards stays but goes inert."""
        with self._lock:
            for key, patch in list(self._patches.items()):
                if provider is not None and patch.provider != provider:
                    continue
                if patch.owner.__dict__.get(patch.name) is patch.installed:
                    setattr(patch.owner, patch.name, patch.original)
                else:
                    _inert.add(id(patch.wrapper))
                del self._patches[key]
            if provider is None:
                self._providers.clear()
            else:
                self._providers.discard(provider)


_inert: set[int] = set()
registry = PatchRegistry()


def active() -> bool:
    return options.enabled


# --------------------------------------------------------------------------- streams

Observer = Callable[[Call, Any], None]
"""Reads one chunk into the call: ``call.chunk(has_content)`` plus usage fields."""


_stream_classes: dict[tuple[type, Any], type] = {}
_stream_classes_lock = threading.Lock()


def instrument_stream(stream: Any, call: Call, observe: Observer, *, is_async: bool) -> Any:
    """Make an SDK Stream/AsyncStream report to ``call``; returns the same object.

    The class is swapped for a cached subclass that overrides iteration and
    close only, so ``type(stream).__name__``, ``isinstance`` and every other
    attribute are unchanged. State lives in the instance ``__dict__``.
    """
    if "_otm_call" in stream.__dict__:  # already instrumented (e.g. a cached raw-response parse)
        return stream
    cls = type(stream)
    key = (cls, observe)
    sub = _stream_classes.get(key)
    if sub is None:
        with _stream_classes_lock:
            sub = _stream_classes.get(key)
            if sub is None:
                sub = (
                    _make_async_stream_class(cls, observe)
                    if is_async
                    else _make_stream_class(cls, observe)
                )
                _stream_classes[key] = sub
    d = stream.__dict__
    d["_otm_call"] = call
    d.setdefault(ATTR, None)
    stream.__class__ = sub
    call.streamed = True
    if call.t_headers is None:
        call.t_headers = _perf()
    call.hold(stream)
    call.finalise_on_gc(stream)
    return stream


def stream_call(stream: Any) -> Call | None:
    """The Call an instrumented SDK stream reports to (None if it is not instrumented)."""
    try:
        return stream.__dict__.get("_otm_call")
    except AttributeError:
        return None


def _finish_from(call: Call, exc: BaseException) -> None:
    try:
        if isinstance(exc, GeneratorExit):
            # The consumer stopped reading after the last chunk it saw; an async
            # generator is closed only later, when the event loop gets to it.
            last = call.t_last_chunk if call.t_last_chunk is not None else call.t_headers
            call.finish("abandoned", at=last)
        else:
            call.fail(exc)
    except Exception as e:  # pragma: no cover - defensive
        log_once("capture.stream", e)


def _make_stream_class(base: Any, observe: Observer) -> type:
    def __iter__(self: Any) -> Iterator[Any]:
        call: Call = self.__dict__["_otm_call"]
        try:
            for item in base.__iter__(self):
                try:
                    observe(call, item)
                except Exception as exc:
                    log_once(f"observe {base.__name__}", exc)
                yield item
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        call.finish("ok")

    def __next__(self: Any) -> Any:
        call: Call = self.__dict__["_otm_call"]
        try:
            item = base.__next__(self)
        except StopIteration:
            call.finish("ok")
            raise
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        try:
            observe(call, item)
        except Exception as exc:
            log_once(f"observe {base.__name__}", exc)
        return item

    def close(self: Any) -> Any:
        try:
            return base.close(self)
        finally:
            self.__dict__["_otm_call"].finish("abandoned")

    ns: dict[str, Any] = {"__iter__": __iter__, "__next__": __next__, "__module__": base.__module__}
    if hasattr(base, "close"):
        ns["close"] = close
    return type(base.__name__, (base,), ns)


def _make_async_stream_class(base: Any, observe: Observer) -> type:
    async def __aiter__(self: Any) -> AsyncIterator[Any]:
        call: Call = self.__dict__["_otm_call"]
        try:
            async for item in base.__aiter__(self):
                try:
                    observe(call, item)
                except Exception as exc:
                    log_once(f"observe {base.__name__}", exc)
                yield item
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        call.finish("ok")

    async def __anext__(self: Any) -> Any:
        call: Call = self.__dict__["_otm_call"]
        try:
            item = await base.__anext__(self)
        except StopAsyncIteration:
            call.finish("ok")
            raise
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        try:
            observe(call, item)
        except Exception as exc:
            log_once(f"observe {base.__name__}", exc)
        return item

    async def close(self: Any) -> Any:
        try:
            return await base.close(self)
        finally:
            self.__dict__["_otm_call"].finish("abandoned")

    ns: dict[str, Any] = {
        "__aiter__": __aiter__,
        "__anext__": __anext__,
        "__module__": base.__module__,
    }
    if hasattr(base, "close"):
        ns["close"] = close
    if hasattr(base, "aclose"):

        async def aclose(self: Any) -> Any:
            try:
                return await base.aclose(self)
            finally:
                self.__dict__["_otm_call"].finish("abandoned")

        ns["aclose"] = aclose
    return type(base.__name__, (base,), ns)


class _StreamProxy:
    """What the generator-like wrappers share: state, the lazy start, the end on close.

    SDKs that return bare generators (google-genai) send no request before the
    generator is first advanced, so the clock starts at the first ``next()``
    and a wrapper dropped or closed before that records nothing.
    """

    __slots__ = ("__weakref__", "_call", "_gen", "_observe", "_started", "otm")

    def __init__(self, gen: Any, call: Call, observe: Observer) -> None:
        self._gen = gen
        self._call = call
        self._observe = observe
        self._started = False
        self.otm: Record | None = None
        call.streamed = True
        call.hold(self)
        # The GC finaliser is registered at the first next(): see _start.

    def _start(self) -> None:
        self._started = True
        call = self._call
        call.start_wall = _wall()
        call.t0 = _perf()
        call.finalise_on_gc(self)

    def _closed(self) -> None:
        if self._started:
            self._call.finish("abandoned")
        else:
            # Never advanced: no request was sent, so there is nothing to record.
            self._call.status = "never-started"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gen, name)

    def __repr__(self) -> str:
        return f"<otm {type(self).__name__} of {self._gen!r}>"


class SyncStreamProxy(_StreamProxy):
    """A generator-like wrapper for bare generators: iteration, ``next``, ``send``,
    ``throw``, ``close``; carries ``.otm`` once the stream ends."""

    __slots__ = ()

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        if not self._started:
            self._start()
        call = self._call
        try:
            item = next(self._gen)
        except StopIteration:
            call.finish("ok")
            raise
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        try:
            self._observe(call, item)
        except Exception as exc:
            log_once("observe generator", exc)
        return item

    def send(self, value: Any) -> Any:
        if value is None:
            return self.__next__()
        return self._gen.send(value)

    def throw(self, *args: Any) -> Any:
        return self._gen.throw(*args)

    def close(self) -> None:
        try:
            close = getattr(self._gen, "close", None)
            if close is not None:
                close()
        finally:
            self._closed()


class AsyncStreamProxy(_StreamProxy):
    """The async twin of :class:`SyncStreamProxy` (``async for``, ``__anext__``, ``aclose``)."""

    __slots__ = ()

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        if not self._started:
            self._start()
        call = self._call
        try:
            item = await self._gen.__anext__()
        except StopAsyncIteration:
            call.finish("ok")
            raise
        except BaseException as exc:
            _finish_from(call, exc)
            raise
        try:
            self._observe(call, item)
        except Exception as exc:
            log_once("observe async generator", exc)
        return item

    async def asend(self, value: Any) -> Any:
        if value is None:
            return await self.__anext__()
        return await self._gen.asend(value)

    async def athrow(self, *args: Any) -> Any:
        return await self._gen.athrow(*args)

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._gen, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._closed()


# --------------------------------------------------------------------------- call wrappers


def guarded(where: str, fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    """Run otm-side code; on failure log once and return ``default``."""
    try:
        return fn(*args)
    except Exception as exc:
        log_once(where, exc)
        return default


def _salvage(where: str, call: Call, result: Any) -> None:
    """``complete`` failed: still record a non-streamed call with what is known."""
    if call.status == _NOT_FINISHED and not call.streamed:
        guarded(f"{where}.salvage", call.finish, "ok", result)


def make_sync_wrapper(
    where: str,
    begin: Callable[[Any, tuple[Any, ...], dict[str, Any]], Call | None],
    complete: Callable[[Call, Any], Any],
) -> Callable[..., Any]:
    """A wrapt wrapper for a sync SDK method.

    ``begin(instance, args, kwargs)`` starts a Call (or returns None to pass
    through); ``complete(call, result)`` attaches figures or instruments the
    returned stream and returns what the user receives (normally ``result``
    itself). Failures inside otm never change the user's result or exception.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not options.enabled or id(wrapper) in _inert or handoff.owned():
            return wrapped(*args, **kwargs)
        try:
            call = begin(instance, args, kwargs)
        except Exception as exc:
            log_once(f"{where}.begin", exc)
            call = None
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            guarded(f"{where}.fail", call.fail, exc)
            raise
        try:
            return complete(call, result)
        except Exception as exc:
            log_once(f"{where}.complete", exc)
            _salvage(where, call, result)
            return result

    return wrapper


def make_async_wrapper(
    where: str,
    begin: Callable[[Any, tuple[Any, ...], dict[str, Any]], Call | None],
    complete: Callable[[Call, Any], Any],
) -> Callable[..., Any]:
    """The async twin of :func:`make_sync_wrapper` for ``async def`` SDK methods."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not options.enabled or id(wrapper) in _inert or handoff.owned():
            return wrapped(*args, **kwargs)

        async def run() -> Any:
            try:
                call = begin(instance, args, kwargs)
            except Exception as exc:
                log_once(f"{where}.begin", exc)
                call = None
            if call is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                guarded(f"{where}.fail", call.fail, exc)
                raise
            try:
                return complete(call, result)
            except Exception as exc:
                log_once(f"{where}.complete", exc)
                _salvage(where, call, result)
                return result

        return run()

    return wrapper


def make_passthrough_wrapper(where: str, after: Callable[[Any], Any]) -> Callable[..., Any]:
    """A wrapt wrapper that calls the SDK method, then ``after(result)``.

    For methods that start no request themselves (openai's ``.stream()``
    helpers return a context manager; the request starts in its
    ``__enter__``). ``after`` returns what the user receives (normally
    ``result`` itself); if it fails, the result passes through unchanged.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        result = wrapped(*args, **kwargs)
        if not options.enabled or id(wrapper) in _inert:
            return result
        try:
            return after(result)
        except Exception as exc:
            log_once(f"{where}.after", exc)
            return result

    return wrapper

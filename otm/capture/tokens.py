"""Counting tokens when a response carries no usage: tiktoken when it loads, else chars/4.

tiktoken reads its vocabulary from a local cache and otherwise downloads it,
which can hang without network; so the encoding loads on a daemon thread and a
call waits for it at most ``_TIKTOKEN_WAIT_S``, once per process.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from otm._log import log_once

_perf = time.perf_counter

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

"""Capture for LiteLLM, through its own callback interface (``CustomLogger``).

LiteLLM reaches most providers with its own HTTP code, so there is no SDK
method to patch; instead otm registers one ``CustomLogger`` in
``litellm.callbacks`` (``otm.instrument()`` when litellm is installed, or
``otm.instrument(["litellm"])``), and ``otm.uninstrument()`` removes it from
every list LiteLLM copied it into. What LiteLLM tells the logger:

* ``log_pre_api_call`` / ``log_post_api_call``, in the caller's thread or task,
  right around the provider request: the request starts (otm's clock starts
  here, after LiteLLM's own pre-processing) and LiteLLM has the provider's
  response (a non-streamed call ends here; a stream's headers arrived). Between
  the two the context is *claimed* (``otm.capture.handoff``) so that the
  official SDK wrappers stand aside when LiteLLM sends the request through an
  SDK client otm patches (Azure, embeddings): one user call, one record, made here.
* ``log_success_event`` / ``async_log_success_event``: completion start (the
  first chunk of a stream), end, usage, the served model, the provider
  (``custom_llm_provider``), the response id and the response headers (the
  request id). For a stream this comes once, when the stream has ended.
* ``log_failure_event`` / ``async_log_failure_event``: the exception.

LiteLLM runs the sync success hooks on a worker thread and the async ones in a
task, a few milliseconds after the call returned; the record keeps the scope
(tracked run, experiment) of the context that made the request. What the
caller holds carries ``.otm`` at once all the same (:mod:`.litellm_attach`):
a first read finishes the call if LiteLLM has not logged it yet, and
:mod:`.litellm_calls` makes sure each call is recorded once.

Token counts: LiteLLM fills usage itself when a stream carried none (it counts
the text); an OpenAI-style stream carries usage only when it was asked for
(``stream_options={"include_usage": True}``), so such counts are flagged as
estimated. Cache hits made no provider request and make no record.
"""

from __future__ import annotations

import threading
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from otm.capture import litellm_attach, litellm_calls
from otm.capture.hosts import Host
from otm.capture.litellm_read import PROVIDER, provider_for
from otm.capture.patching import Target
from otm.capture.sites import Site
from otm.capture.wrappers import guarded


class OtmLogger(CustomLogger):  # type: ignore[misc]
    """otm's LiteLLM logger: one record per LiteLLM call. Never raises into LiteLLM.

    Inert once removed (``otm.uninstrument()``): LiteLLM may still call a logger
    it had copied for a call already under way.
    """

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        if self is _logger:
            guarded("litellm.pre_api_call", litellm_calls.begin, kwargs)

    def log_post_api_call(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        if self is _logger:
            guarded("litellm.post_api_call", litellm_calls.responded, kwargs)

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        if self is _logger:
            guarded("litellm.success", litellm_calls.success, kwargs, response_obj, start_time, end_time)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        if self is _logger:
            guarded("litellm.failure", litellm_calls.failure, kwargs, start_time, end_time)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.log_success_event(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.log_failure_event(kwargs, response_obj, start_time, end_time)


# --------------------------------------------------------------------------- install

_logger: OtmLogger | None = None
_install_lock = threading.Lock()


def install() -> int:
    """Register otm's logger in ``litellm.callbacks`` (once); returns 1 if it was added."""
    import litellm

    global _logger
    with _install_lock:
        if _logger is not None and _logger in litellm.callbacks:
            return 0
        guarded("litellm.attach", litellm_attach.install)  # .otm on what LiteLLM returns
        _logger = OtmLogger()
        manager = getattr(litellm, "logging_callback_manager", None)
        if manager is not None and hasattr(manager, "add_litellm_callback"):
            manager.add_litellm_callback(_logger)
        else:  # older LiteLLM: the documented list
            litellm.callbacks.append(_logger)
        return 1


def uninstall() -> None:
    """Remove otm's logger from every callback list LiteLLM copied it into."""
    import litellm

    global _logger
    with _install_lock:
        logger, _logger = _logger, None
        if logger is None:
            return
        lists = (
            "callbacks",
            "input_callback",
            "success_callback",
            "failure_callback",
            "_async_input_callback",
            "_async_success_callback",
            "_async_failure_callback",
        )
        for name in lists:
            callbacks = getattr(litellm, name, None)
            if isinstance(callbacks, list):
                callbacks[:] = [cb for cb in callbacks if cb is not logger]
    litellm_calls.forget()


def owns(client: Any) -> bool:
    """LiteLLM has no client object to ``otm.wrap()``."""
    return False


def detect_host(client: Any) -> Host:
    """Per call instead (:func:`provider_for`); there is no client to look at."""
    return Host(PROVIDER, "api")


def model_bases() -> tuple[type, ...]:
    """None here: LiteLLM's responses get a lazy ``.otm`` of their own (:mod:`.litellm_attach`)."""
    return ()


def settings_keys(client: Any) -> list[object]:
    return []


def sites() -> list[Site]:
    """LiteLLM is captured through its callbacks; one thin layer sees its streams end."""
    return litellm_attach.sites()


def targets() -> list[Target]:
    """The stream-end layer's (class, method, wrapper), importing what is not loaded yet."""
    return litellm_attach.targets()


__all__ = [
    "OtmLogger",
    "detect_host",
    "model_bases",
    "install",
    "owns",
    "provider_for",
    "settings_keys",
    "sites",
    "targets",
    "uninstall",
]

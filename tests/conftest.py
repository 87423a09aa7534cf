"""Shared fixtures: a local fake provider server and a clean otm state per test."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator

import pytest

# LiteLLM fetches its price list at import unless told to use the bundled one;
# the tests never reach the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The learned deployment histories persist in the user's cache directory: never
# the real one from a test run (the persistence tests point it elsewhere themselves).
os.environ.setdefault("OTM_CACHE_DIR", tempfile.mkdtemp(prefix="otm-test-cache-"))
os.environ.setdefault("OTM_PERSIST_PROFILES", "0")


@pytest.fixture(scope="session")
def fake_server() -> Iterator[object]:
    """One stdlib HTTP server on 127.0.0.1 speaking openai, anthropic and gemini (real SSE)."""
    from otm.testing.server import FakeProviderServer, Scenario

    server = FakeProviderServer(scenario=Scenario())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def server(fake_server: object) -> Iterator[object]:
    """The session server with its default scenario restored after the test."""
    from otm.testing.server import Scenario

    fake_server.scenario = Scenario()  # type: ignore[attr-defined]
    yield fake_server
    fake_server.scenario = Scenario()  # type: ignore[attr-defined]


@pytest.fixture()
def records() -> Iterator[list[object]]:
    """Every record emitted during the test, in order."""
    import otm

    got: list[object] = []
    unsubscribe = otm.on_record(got.append)
    yield got
    unsubscribe()


@pytest.fixture()
def instrumented() -> Iterator[None]:
    """otm.instrument() for the test, undone afterwards."""
    import otm

    otm.instrument()
    yield
    otm.uninstrument()


@pytest.fixture(autouse=True)
def _otm_logs_once_per_test() -> Iterator[None]:
    from otm._log import reset_log_once

    reset_log_once()
    logging.getLogger("otm").setLevel(logging.INFO)
    yield


@pytest.fixture()
def configure() -> Iterator[object]:
    """``otm.configure`` for one test (what capture reads); forgotten afterwards."""
    from otm import config

    config.reset()
    yield config.configure
    config.reset()

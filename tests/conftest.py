"""Shared fixtures: a local fake provider server and a clean otm state per test.

Also what keeps a new SDK release from turning CI red on its own: tests that
read an SDK's model list are strict only when that SDK is the version pinned in
constraints.txt (:func:`sdk_is_locked`); with a newer one they add lines to the
"SDK drift" report printed at the end of the run (:func:`sdk_drift`), and
wire-fault tests compare otm's outcome with the bare SDK's (:func:`bare_outcome`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# LiteLLM fetches its price list at import unless told to use the bundled one;
# the tests never reach the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The learned deployment histories persist in the user's cache directory: never
# the real one from a test run (the persistence tests point it elsewhere themselves).
os.environ.setdefault("OTM_CACHE_DIR", tempfile.mkdtemp(prefix="otm-test-cache-"))
os.environ.setdefault("OTM_PERSIST_PROFILES", "0")

ROOT = Path(__file__).resolve().parent.parent
_DRIFT: list[str] = []


@functools.cache
def locked_version(dist: str) -> str | None:
    """The version constraints.txt pins for ``dist``, or None (no such file or pin)."""
    path = ROOT / "constraints.txt"
    if not path.is_file():
        return None
    want = re.sub(r"[-_.]+", "-", dist).lower()
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.partition("==")
        if sep and re.sub(r"[-_.]+", "-", name.strip()).lower() == want:
            return version.strip()
    return None


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def sdk_is_locked(dist: str) -> bool:
    """Whether the installed ``dist`` is the version constraints.txt pins."""
    have = installed_version(dist)
    return have is not None and have == locked_version(dist)


def sdk_drift(dist: str, what: str, names: list[str]) -> None:
    """Note, for the end-of-run report, what a newer ``dist`` has that otm does not cover."""
    if names:
        _DRIFT.append(
            f"{dist} {installed_version(dist)} (locked {locked_version(dist)}): "
            f"{what} ({len(names)}): {', '.join(names)}"
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _DRIFT:
        terminalreporter.section("SDK drift: installed SDKs differ from constraints.txt")
        for line in _DRIFT:
            terminalreporter.write_line(line)


def exception_chain(exc: BaseException | None) -> tuple[str, ...]:
    """Qualified type names of ``exc`` and the exceptions it was raised from or during."""
    out: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(f"{type(exc).__module__}.{type(exc).__qualname__}")
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return tuple(out)


def outcome(call: Callable[[], Any]) -> tuple[str, ...]:
    """What ``call`` raised, as :func:`exception_chain` (empty if it returned)."""
    try:
        call()
    except Exception as exc:
        return exception_chain(exc)
    return ()


def bare_outcome(provider: str, call: Callable[[], Any]) -> tuple[str, ...]:
    """:func:`outcome` of ``call`` with otm's patches for ``provider`` removed meanwhile."""
    import otm

    otm.uninstrument(provider)
    try:
        return outcome(call)
    finally:
        otm.instrument(provider)


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


# --- `otm demo` as a user runs it. Each run spends most of its ~10 s waiting on
# the embedded server's real token delays, so the runs the tests need start
# together, once per session, and each test reads its own.

_DEMO_RUNS = {
    "text": ["--output-dir", "{tmp}/runs"],
    "json": ["--json", "--output-dir", "{tmp}/runs"],
    "unwritable": ["--output-dir", "/proc/otm-demo-x"],
}


class DemoRun:
    def __init__(self, proc: Any, cwd: Path) -> None:
        self._proc, self.cwd = proc, cwd
        self._out: tuple[str, str] | None = None

    def _wait(self) -> tuple[str, str]:
        if self._out is None:
            self._out = self._proc.communicate(timeout=240)
        return self._out

    @property
    def stdout(self) -> str:
        return self._wait()[0]

    @property
    def stderr(self) -> str:
        return self._wait()[1]

    @property
    def returncode(self) -> int:
        self._wait()
        return int(self._proc.returncode)


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DemoRun]]:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env["OTM_CONFIG_FILE"] = "none"
    runs: dict[str, DemoRun] = {}
    for name, args in _DEMO_RUNS.items():
        cwd = tmp_path_factory.mktemp(f"demo-{name}")
        argv = [a.replace("{tmp}", str(cwd)) for a in args]
        # a fresh user's cache: no learned history from other runs
        run_env = {**env, "OTM_CACHE_DIR": str(cwd / "cache")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "otm.cli", "demo", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=run_env,
        )
        runs[name] = DemoRun(proc, cwd)
    yield runs
    for run in runs.values():
        if run._proc.poll() is None:
            run._proc.kill()
        run._proc.communicate()


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the session: the second check of otm reads the first's analysis."""
    return tmp_path_factory.mktemp("mypy-cache")

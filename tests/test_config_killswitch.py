"""The kill switch: OTM_DISABLED=1 leaves every SDK method untouched, without code changes."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otm
from otm import config
from otm.capture import ADAPTERS
from otm.capture.patching import registry
from otm.capture.settings import snapshot

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("OTM_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    otm.uninstrument()
    level = logging.getLogger("otm").level
    config.reset()
    yield
    otm.uninstrument()
    config.reset()
    logging.getLogger("otm").setLevel(level)


def _targets() -> dict[str, list[tuple[type, str]]]:
    """(owner, method name) that each available capture adapter patches."""
    out: dict[str, list[tuple[type, str]]] = {}
    for name, (module_name, sdk) in ADAPTERS.items():
        try:
            importlib.import_module(sdk)
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        out[name] = [(owner, attr) for owner, attr, _ in module.targets()]
    return out


def _methods(targets: dict[str, list[tuple[type, str]]]) -> dict[tuple[type, str], Any]:
    return {(o, a): o.__dict__.get(a) for pairs in targets.values() for o, a in pairs}


@pytest.fixture()
def targets() -> dict[str, list[tuple[type, str]]]:
    found = _targets()
    if not found:
        pytest.skip("no capture adapter importable yet")
    return found


def test_enabled_instrument_replaces_methods(targets: dict[str, list[tuple[type, str]]]) -> None:
    # The counterpart of the kill switch: without it, methods are replaced.
    before = _methods(targets)
    installed = otm.instrument()
    assert set(installed) >= set(targets)
    after = _methods(targets)
    assert any(after[k] is not before[k] for k in before)
    otm.uninstrument()
    assert _methods(targets) == before


def test_env_kill_switch_installs_no_patch(
    monkeypatch: pytest.MonkeyPatch, targets: dict[str, list[tuple[type, str]]]
) -> None:
    before = _methods(targets)
    monkeypatch.setenv("OTM_DISABLED", "1")
    assert otm.instrument() == []
    assert otm.instrument(list(targets)) == []
    assert registry.installed() == set()
    after = _methods(targets)
    assert all(after[k] is before[k] for k in before)
    assert snapshot().disabled is True
    assert otm.settings().source("disabled") == "env:OTM_DISABLED"


def test_kill_switch_holds_even_when_other_settings_are_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTM_DISABLED", "true")
    monkeypatch.setenv("OTM_LOG_LEVEL", "nonsense")
    assert otm.instrument() == []
    assert registry.installed() == set()
    assert otm.settings().disabled is True


def test_kill_switch_holds_with_a_region_or_data_file_that_fail_later_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Values that parse but fail when applied (unknown region, broken data file).
    monkeypatch.setenv("OTM_DISABLED", "1")
    monkeypatch.setenv("OTM_REGION", "NOWHERE")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[models]]\nid = 'x'\ntotal_params_b = 'lots'\n")
    monkeypatch.setenv("OTM_DATA_FILE", str(bad))
    assert otm.instrument() == []
    assert registry.installed() == set()
    assert snapshot().disabled is True


def test_invalid_env_without_kill_switch_is_logged_and_ignored_at_instrument(
    monkeypatch: pytest.MonkeyPatch,
    targets: dict[str, list[tuple[type, str]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTM_PROVIDERS", "openai,bard")
    assert otm.instrument() == sorted(targets)  # the setting is ignored: every SDK
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "'providers' (from env:OTM_PROVIDERS)" in errors[0]
    assert "'bard'" in errors[0]


def test_configure_disabled_removes_installed_patches(
    targets: dict[str, list[tuple[type, str]]],
) -> None:
    before = _methods(targets)
    otm.instrument()
    assert registry.installed()
    otm.configure(disabled=True)
    assert registry.installed() == set()
    assert _methods(targets) == before
    assert otm.instrument() == []
    otm.configure(disabled=False)
    assert set(otm.instrument()) >= set(targets)


def test_providers_setting_limits_what_instrument_patches(
    monkeypatch: pytest.MonkeyPatch, targets: dict[str, list[tuple[type, str]]]
) -> None:
    chosen = min(targets)
    monkeypatch.setenv("OTM_PROVIDERS", chosen)
    assert otm.instrument() == [chosen]


def test_auto_instrument_patches_at_configure(targets: dict[str, list[tuple[type, str]]]) -> None:
    chosen = min(targets)
    otm.configure(auto_instrument=True, providers=[chosen])
    assert registry.installed() == {chosen}


def test_auto_instrument_keeps_configure_arguments_over_env(
    monkeypatch: pytest.MonkeyPatch, targets: dict[str, list[tuple[type, str]]]
) -> None:
    monkeypatch.setenv("OTM_CAPTURE_PROMPTS", "1")
    otm.configure(capture_prompts=False, auto_instrument=True)
    assert registry.installed() >= set(targets)
    assert snapshot().capture_prompts is False
    assert otm.settings().source("capture_prompts") == "argument"


def test_wrap_under_kill_switch_returns_the_client_and_records_nothing(
    monkeypatch: pytest.MonkeyPatch, server: Any, records: list[Any]
) -> None:
    openai = pytest.importorskip("openai")
    monkeypatch.setenv("OTM_DISABLED", "1")
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    create = type(client.chat.completions).__dict__["create"]
    assert otm.wrap(client) is client
    assert registry.installed() == set()
    assert type(client.chat.completions).__dict__["create"] is create
    r = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content
    assert not hasattr(r, "otm")
    assert records == []


def test_kill_switch_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """The production path: the environment variable alone, no configure() call."""
    pytest.importorskip("openai")
    code = textwrap.dedent(
        """
        import openai, otm
        from openai.resources.chat import completions as m
        original = m.Completions.__dict__["create"]
        assert otm.instrument() == []
        client = otm.wrap(openai.OpenAI(api_key="x"))
        assert m.Completions.__dict__["create"] is original
        from otm.capture.patching import registry
        assert registry.installed() == set()
        print("untouched")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env["OTM_DISABLED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "untouched"


def test_broken_configuration_in_a_fresh_interpreter_fails_open(tmp_path: Path) -> None:
    """The production path with everything wrong at once: otm logs, instruments, and
    `otm settings` (the strict checker) exits 2."""
    pytest.importorskip("openai")
    (tmp_path / "pyproject.toml").write_bytes(b'[project]\nname = "caf\xe9"\n')  # Latin-1
    work = tmp_path / "app"
    work.mkdir()
    (work / "otm.toml").write_text('regoin = "FRA"\ncapture_prompts = "sometimes"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env.update(OTM_REGION="atlantis", OTM_TAGS="team", OTM_LOG_LEVEL="chatty")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # instrument() patches each SDK when it is imported; settings resolve then (or at first use)
    code = "import otm, openai; print(otm.instrument()); otm.wrap(openai.OpenAI(api_key='x')); otm.settings()"
    run = lambda *argv: subprocess.run(
        [sys.executable, *argv], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    assert "openai" in out.stdout
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("otm setting")]
    assert len(errors) == 5, out.stderr  # one line per ignored setting, naming its source
    for needle in ("'regoin' (from file:", "'capture_prompts' (from file:",
                   "'region' (from env:OTM_REGION)", "'tags' (from env:OTM_TAGS)",
                   "'log_level' (from env:OTM_LOG_LEVEL)"):
        assert any(needle in ln for ln in errors), (needle, errors)
    assert "Traceback" not in out.stderr
    strict = run("-m", "otm.cli", "settings")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr, strict.stderr

"""otm.instrument() imports no SDK: each SDK is patched when the program imports it.

The import-state checks run in fresh interpreters (this test process has
every SDK imported already); the calls go to the embedded fake server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from otm.capture import imports

ROOT = Path(__file__).resolve().parents[1]
SDKS = ("openai", "anthropic", "google.genai", "litellm")


def run(code: str, tmp_path: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    clean["PYTHONPATH"] = str(ROOT) + os.pathsep + clean.get("PYTHONPATH", "")
    clean.update(env)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_instrument_imports_no_sdk_and_no_settings_machinery(tmp_path: Path) -> None:
    out = run(
        """
        import sys, otm
        names = otm.instrument()
        heavy = ("openai", "anthropic", "google.genai", "litellm", "pydantic", "wrapt", "numpy")
        print(sorted(names), [m for m in heavy if m in sys.modules])
        """,
        tmp_path,
    )
    names, loaded = out.rsplit("] [", 1)
    assert loaded == "]"  # nothing heavy imported
    for sdk in ("openai", "anthropic"):
        assert sdk in names  # installed here: listed, to be patched on import


def test_instrument_before_the_sdk_is_imported_still_captures(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    out = run(
        """
        import otm
        otm.instrument()
        from otm.testing.server import FakeProviderServer, Scenario
        with FakeProviderServer(Scenario(input_tokens=21, output_tokens=4)) as s:
            import openai, anthropic
            o = openai.OpenAI(base_url=s.openai_base_url, api_key="t", max_retries=0)
            r = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            stream = o.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                stream=True, stream_options={"include_usage": True})
            for _ in stream:
                pass
            a = anthropic.Anthropic(base_url=s.anthropic_base_url, api_key="t", max_retries=0)
            m = a.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                                  messages=[{"role": "user", "content": "hi"}])
        print(r.otm.telemetry.input_tokens, stream.otm.telemetry.output_tokens,
              m.otm.telemetry.input_tokens)
        """,
        tmp_path,
    )
    assert out == "21 4 21"


def test_uninstrument_removes_pending_hooks(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    out = run(
        """
        import sys, otm
        from otm.capture import imports
        otm.instrument()
        assert imports.pending()
        otm.uninstrument()
        print(sorted(imports.pending()), any(type(f).__name__ == "_Finder" for f in sys.meta_path))
        import openai
        create = openai.resources.chat.Completions.__dict__["create"]
        print(type(create).__name__)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["[] False", "function"]


def test_config_file_kill_switch_is_read_when_the_sdk_is_imported(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    (tmp_path / "otm.toml").write_text("disabled = true\n")
    out = run(
        """
        import otm
        otm.instrument()
        import openai
        print(type(openai.resources.chat.Completions.__dict__["create"]).__name__)
        """,
        tmp_path,
    )
    assert out == "function"


def test_env_kill_switch_registers_no_hook(tmp_path: Path) -> None:
    out = run(
        """
        import otm
        from otm.capture import imports
        print(otm.instrument(), sorted(imports.pending()))
        """,
        tmp_path,
        OTM_DISABLED="1",
    )
    assert out == "[] []"


def test_providers_setting_is_honoured_on_import(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    out = run(
        """
        import otm
        otm.instrument()
        import openai, anthropic
        print(sorted(otm.capture.patching.registry.installed()))
        """,
        tmp_path,
        OTM_PROVIDERS="anthropic",
    )
    assert out == "['anthropic']"


# --------------------------------------------------------------------------- the hook machinery


@pytest.fixture()
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    imports.cancel()
    for name in [m for m in sys.modules if m.startswith("otm_probe_")]:
        del sys.modules[name]


def test_hook_runs_after_the_module_executed_and_leaves_its_real_loader(module_dir: Path) -> None:
    (module_dir / "otm_probe_a.py").write_text("VALUE = 42\n")
    seen: list[types.ModuleType] = []
    assert imports.when_imported("otm_probe_a", seen.append) is False
    import otm_probe_a  # type: ignore[import-not-found]

    assert seen == [otm_probe_a] and otm_probe_a.VALUE == 42
    assert type(otm_probe_a.__spec__.loader).__name__ == "SourceFileLoader"
    assert otm_probe_a.__loader__ is otm_probe_a.__spec__.loader
    assert "otm_probe_a" not in imports.pending()
    assert imports._finder not in sys.meta_path  # nothing left to watch


def test_hook_on_an_imported_module_runs_at_once(module_dir: Path) -> None:
    seen: list[str] = []
    assert imports.when_imported("json", lambda m: seen.append(m.__name__)) is True
    assert seen == ["json"]


def test_a_failing_hook_never_breaks_the_import(module_dir: Path, caplog) -> None:
    (module_dir / "otm_probe_b.py").write_text("VALUE = 7\n")

    def boom(module: types.ModuleType) -> None:
        raise RuntimeError("otm bug")

    imports.when_imported("otm_probe_b", boom)
    import otm_probe_b  # type: ignore[import-not-found]

    assert otm_probe_b.VALUE == 7
    assert "post-import hook for otm_probe_b" in caplog.text


def test_cancelled_hook_does_not_run(module_dir: Path) -> None:
    (module_dir / "otm_probe_c.py").write_text("VALUE = 1\n")
    seen: list[object] = []
    imports.when_imported("otm_probe_c", seen.append)
    imports.cancel("otm_probe_c")
    import otm_probe_c  # type: ignore[import-not-found]  # noqa: F401

    assert seen == []

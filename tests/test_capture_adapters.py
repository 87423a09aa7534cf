"""The adapter contract: every SDK adapter module meets ``SdkAdapter`` (checked at run time
here, and by mypy through the assignments in ``otm/capture/adapter.py``)."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otm.capture import ADAPTERS
from otm.capture.adapter import SdkAdapter

ROOT = Path(__file__).resolve().parent.parent


def _members() -> dict[str, Any]:
    names = {n for n in dir(SdkAdapter) if not n.startswith("_")}
    names |= set(SdkAdapter.__annotations__)
    return {n: getattr(SdkAdapter, n, None) for n in sorted(names)}


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_adapter_module_meets_the_protocol(provider: str) -> None:
    module_name, sdk = ADAPTERS[provider]
    pytest.importorskip(sdk)
    module = importlib.import_module(module_name)
    for name, member in _members().items():
        assert hasattr(module, name), f"{module_name} lacks {name}"
        if callable(member):
            want = list(inspect.signature(member).parameters)[1:]  # without self
            got = list(inspect.signature(getattr(module, name)).parameters)
            assert len(got) == len(want), f"{module_name}.{name}{got} vs {want}"
    assert isinstance(module.PROVIDER, str) and module.PROVIDER
    targets = module.targets()
    if hasattr(module, "install"):  # integrates through the library's own hooks (LiteLLM)
        assert callable(module.install) and callable(module.uninstall)
    else:
        assert targets
    assert all(
        isinstance(cls, type) and name in cls.__dict__ and callable(w) for cls, name, w in targets
    )


def test_mypy_rejects_an_adapter_that_breaks_the_protocol(tmp_path: Path, mypy_cache: Path) -> None:
    pytest.importorskip("mypy")
    (tmp_path / "bad_adapter.py").write_text(
        "PROVIDER = 'x'\n"
        "def targets() -> list: return []\n"
        "def detect_host(client: object) -> tuple: return ('x', 'api')\n"
        "def model_bases() -> tuple: return ()\n"
        "def settings_keys(client: object) -> list: return []\n"
    )  # no owns()
    (tmp_path / "check.py").write_text(
        "import bad_adapter\nfrom otm.capture.adapter import SdkAdapter\n"
        "a: SdkAdapter = bad_adapter\n"
    )
    # run from the project with its mypy settings, so the analysis of otm is
    # shared with tests/test_lint.py's check through the session's cache
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(mypy_cache), str(tmp_path / "check.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "MYPYPATH": str(tmp_path), "PATH": ""},
    )
    assert out.returncode == 1 and "owns" in out.stdout, out.stdout + out.stderr

"""The package stays typed (py.typed ships) and lint-clean: ruff and mypy as tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> list[str]:
    pytest.importorskip(name)
    return [sys.executable, "-m", name]


def test_ruff_is_clean() -> None:
    out = subprocess.run(
        [*_tool("ruff"), "check", "--no-cache", "otm", "tests", "bench", "examples", "tools"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_mypy_is_clean(mypy_cache: Path) -> None:
    out = subprocess.run(
        [*_tool("mypy"), "--cache-dir", str(mypy_cache), "otm"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout[-4000:]


def test_py_typed_marker_ships() -> None:
    assert (ROOT / "otm" / "py.typed").is_file()
    # and is packaged with the wheel
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()

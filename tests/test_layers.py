"""The architecture of DESIGN.md, enforced: data flows top to bottom, no import runs back up.

capture produces Telemetry and knows nothing about energy; estimate consumes
Telemetry and knows nothing about SDKs; report, measure and export consume
records. Checked on the source (every import statement, including the lazy
ones inside functions).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "otm"

# package -> otm packages it must never import
FORBIDDEN = {
    "otm.data": ("otm.capture", "otm.estimate", "otm.report", "otm.measure", "otm.export", "otm.cli", "otm.grid"),
    "otm.estimate": ("otm.capture", "otm.report", "otm.measure", "otm.export", "otm.cli", "otm.grid"),
    "otm.capture": ("otm.estimate", "otm.report", "otm.measure", "otm.export", "otm.cli", "otm.grid"),
    # live grid intensity: reads the data layer, re-estimates; reports and the CLI use it
    "otm.grid": ("otm.capture", "otm.report", "otm.measure", "otm.export", "otm.cli"),
    "otm.report": ("otm.capture", "otm.measure", "otm.export", "otm.cli"),
    "otm.measure": ("otm.capture", "otm.report", "otm.export", "otm.cli"),
    "otm.export": ("otm.capture", "otm.report", "otm.measure", "otm.cli"),
    "otm.testing": ("otm.capture", "otm.estimate", "otm.report", "otm.measure", "otm.export", "otm.cli"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    return _imports_of(path.read_text(encoding="utf-8"), package)


def _imports_of(source: str, package: str) -> list[str]:
    tree = ast.parse(source)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names]
    return out


def _files(package: str) -> list[Path]:
    folder = ROOT.joinpath(*package.split(".")[1:])
    return sorted(folder.rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_back_up(package: str) -> None:
    files = _files(package)
    assert files, package
    bad = []
    for f in files:
        for imp in _imports(f):
            for banned in FORBIDDEN[package]:
                if imp == banned or imp.startswith(banned + "."):
                    bad.append(f"{_module_name(f)} imports {imp}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_lazy_and_relative_imports() -> None:
    src = "def f():\n    from otm.capture import core\n    import otm.report.track\n    from ..report import rows\n"
    found = _imports_of(src, "otm.estimate")
    assert "otm.capture" in found and "otm.report.track" in found and "otm.report.rows" in found

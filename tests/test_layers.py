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

_USERS = ("otm.report", "otm.measure", "otm.export", "otm.cli")
"""The layers that consume records: nothing below them imports them."""
_TYPES = ("otm.capture", "otm.estimate", "otm.config", "otm.record", "otm.events", *_USERS)
"""Everything a plain data type (telemetry, impact, deployment) must stay free of."""

# package or module -> otm packages it must never import
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
    # Settings flow one way: capture and the estimator read otm.config, which
    # writes into neither (it only calls the public instrument(), see ALLOWED).
    "otm.config": ("otm.capture", "otm.estimate", "otm.record", "otm.events", *_USERS),
    # The record joins capture's telemetry to the estimator (lazily); it knows
    # nothing of SDKs, settings resolution or the layers that consume it.
    "otm.record": ("otm.capture", "otm.config", *_USERS),
    "otm.events": ("otm.capture", "otm.estimate", "otm.config", "otm.data", *_USERS),
    "otm.telemetry": _TYPES,
    "otm.impact": _TYPES,
    "otm.deployment": _TYPES,
    "otm._log": (*_TYPES, "otm.data", "otm.telemetry", "otm.impact", "otm.deployment"),
    # Presentation: number formatting is a leaf; display shows an Impact or a Record
    # (lazily) and knows nothing of how they were made or where they go.
    "otm.units": (*_TYPES, "otm.data", "otm.telemetry", "otm.impact", "otm.deployment", "otm.display"),
    "otm.display": ("otm.capture", "otm.estimate", "otm.config", "otm.events", "otm.grid", *_USERS),
}

# (importer, import) pairs that are deliberate exceptions, each with its reason.
ALLOWED = {
    # configure(auto_instrument=True) calls the public entry point, nothing below it.
    ("otm.config", "otm.capture"),
    ("otm.config", "otm.capture.instrument"),
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
    path = ROOT.joinpath(*package.split(".")[1:])
    module = path.with_suffix(".py")
    if module.is_file():
        return [module]
    return sorted(path.rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_back_up(package: str) -> None:
    files = _files(package)
    assert files, package
    bad = []
    for f in files:
        for imp in _imports(f):
            if (package, imp) in ALLOWED:
                continue
            for banned in FORBIDDEN[package]:
                if imp == banned or imp.startswith(banned + "."):
                    bad.append(f"{_module_name(f)} imports {imp}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_lazy_and_relative_imports() -> None:
    src = "def f():\n    from otm.capture import core\n    import otm.report.track\n    from ..report import rows\n"
    found = _imports_of(src, "otm.estimate")
    assert "otm.capture" in found and "otm.report.track" in found and "otm.report.rows" in found


def test_every_top_level_module_is_covered() -> None:
    """A new module under otm/ gets its own forbidden imports (or is knowingly the top)."""
    top = {"otm", "otm.cli"}  # the public face and the shell: they may import anything
    mine = {_module_name(p) for p in ROOT.glob("*.py")} | {
        _module_name(p.parent) for p in ROOT.glob("*/__init__.py")
    }
    missing = sorted(mine - set(FORBIDDEN) - top)
    assert not missing, f"add these to FORBIDDEN in tests/test_layers.py: {missing}"

"""The development set-up is reproducible: README and CI install from the committed lock."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_and_ci_install_with_the_lock() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = next(ln for ln in readme.splitlines() if ln.startswith("python3 -m venv .venv"))
    assert 'pip install -c constraints.txt -e ".[all,dev]"' in setup and "otm demo" in setup
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    installs = [ln for ln in ci.splitlines() if "pip install" in ln]
    assert installs and all("-c constraints.txt" in ln for ln in installs), installs


def test_lock_pins_every_sdk_exactly() -> None:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([a-z0-9][a-z0-9-]*)==([\w.+!-]+)", line)
        assert m, f"not a canonical exact pin: {line!r}"
        assert m.group(1) not in pins, f"pinned twice: {m.group(1)}"
        pins[m.group(1)] = m.group(2)
    for dist in ("openai", "anthropic", "google-genai", "httpx2", "pydantic", "numpy", "pip"):
        assert dist in pins, dist
    assert "otm" not in pins


def test_lock_covers_every_requirement_of_all_and_dev() -> None:
    """A dependency added to pyproject.toml without regenerating the lock fails here."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    pins = {
        ln.split("==")[0]
        for ln in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in ln
    }
    canon = lambda s: re.sub(r"[-_.]+", "-", s).lower()
    seen: set[str] = set()
    todo = ["all", "dev"]
    names = [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in project["dependencies"]]
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in extras[extra]:
            m = re.fullmatch(r"otm\[([\w,\s-]+)\]", req.strip())
            if m:
                todo += [e.strip() for e in m.group(1).split(",")]
            else:
                names.append(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0])
    missing = sorted(
        {canon(n) for n in names if "python_version < '3.11'" not in n} - pins - {"tomli"}
    )
    assert not missing, f"not in constraints.txt (run python3.11 tools/lock.py): {missing}"

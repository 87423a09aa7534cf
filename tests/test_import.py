"""`import otm` stays light: no LLM SDK, no data files, no numpy-heavy work."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = r"""
import json, sys, time
t0 = time.perf_counter()
import otm
dt = time.perf_counter() - t0
heavy = [m for m in ("openai", "anthropic", "google.genai", "httpx2", "wrapt", "numpy", "otm.estimate", "otm.data", "otm.capture") if m in sys.modules]
print(json.dumps({"seconds": dt, "heavy": heavy}))
"""


def _run() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_otm_imports_no_sdk_and_nothing_heavy() -> None:
    got = _run()
    assert got["heavy"] == [], got


def test_public_names_resolve_lazily() -> None:
    code = (
        "import otm, sys; otm.Telemetry; otm.Deployment; otm.Range;"
        "assert 'openai' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout

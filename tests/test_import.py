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


def test_estimate_stays_callable_after_its_subpackage_is_imported() -> None:
    # Importing otm.estimate (the package) sets the attribute otm.estimate to
    # the module; it must still be the estimator function for users.
    code = (
        "import otm, otm.estimate.driver;"
        "from otm import estimate;"
        "t = otm.Telemetry(model='gpt-4o', input_tokens=10, output_tokens=10);"
        "print(type(otm.estimate(t)).__name__, type(estimate(t)).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Impact", "Impact"]


def test_all_lists_every_public_name() -> None:
    import otm

    assert set(otm.__all__) == set(otm._EXPORTS) | {"__version__"}
    for name in otm.__all__:
        assert getattr(otm, name) is not None

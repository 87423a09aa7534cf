"""What otm adds to a program's start-up, in fresh interpreters.

1. `import otm` (goal: <= 150 ms): N fresh interpreters, alternating a bare
   `python -c pass` baseline with `python -c "import otm"`; the median of
   each, their difference, and what `import otm` pulled in.
2. `otm.instrument()` (goal: <= 20 ms and <= 5 MB beyond the SDKs the program
   imports itself): timed and its resident-memory growth read inside fresh
   interpreters, around the call alone, with no SDK imported, in a program
   that imported openai, anthropic or google-genai first, and in one that has
   already loaded the openai resources it calls; plus how many modules the
   call imported (the SDK's and otm's own).
3. The first call after `instrument()`: otm loads its record machinery
   (Telemetry, Record, its data tables) with the first record, not at
   start-up. Timed as one plain `chat.completions.create` against the
   embedded fake server, the first call of a fresh interpreter with and
   without `otm.instrument()`, and the difference of the medians.

otm's modules are compiled to bytecode first (as an installed package is),
so that no run pays for compiling them.

    python bench/import_time.py [-n 20]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = (
    "import sys, json; import otm; "
    "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
    "('otm', 'pydantic', 'numpy', 'openai', 'anthropic', 'google', 'httpx2', 'wrapt'))))"
)


INSTRUMENT = """
import json, sys, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * {page}
{before}
import otm
m0 = set(sys.modules)
r0, t0 = rss(), time.perf_counter()
otm.instrument()
t1, r1 = time.perf_counter(), rss()
new = set(sys.modules) - m0
sdks = [m for m in ("openai", "anthropic", "google.genai", "litellm") if m in sys.modules]
print(json.dumps({{"s": t1 - t0, "rss": r1 - r0, "sdks": sdks,
                   "otm": sum(m.startswith("otm") for m in new), "other": sum(not m.startswith("otm") for m in new)}}))
"""

FIRST_CALL = """
import json, sys, time
import openai
{instrument}
from otm.testing.server import FakeProviderServer, Scenario
with FakeProviderServer(Scenario(output_tokens=4)) as s:
    c = openai.OpenAI(base_url=s.openai_base_url, api_key="t", max_retries=0)
    t0 = time.perf_counter()
    c.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
    t1 = time.perf_counter()
print(json.dumps({{"s": t1 - t0}}))
"""

CASES = (
    ("no SDK imported", ""),
    ("openai imported", "import openai"),
    ("anthropic imported", "import anthropic"),
    ("google-genai imported", "import google.genai"),
    # a program that called the API has loaded the resource modules otm patches
    (
        "openai in use",
        "import openai, openai.resources.chat.completions.completions, "
        "openai.resources.responses.responses, openai.resources.embeddings",
    ),
)


def _runs(code: str, n: int) -> list[dict[str, object]]:
    return [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
            ).stdout
        )
        for _ in range(n)
    ]


def _instrument(before: str, n: int) -> dict[str, object]:
    code = INSTRUMENT.format(page=os.sysconf("SC_PAGE_SIZE"), before=before)
    runs = _runs(code, n)
    return {
        "ms": statistics.median(float(r["s"]) for r in runs) * 1000,  # type: ignore[arg-type]
        "mb": statistics.median(float(r["rss"]) for r in runs) / 2**20,  # type: ignore[arg-type]
        "sdks": runs[-1]["sdks"],
        "otm": runs[-1]["otm"],
        "other": runs[-1]["other"],
    }


def _first_call(n: int) -> tuple[float, float]:
    bare, instrumented = [], []
    for _ in range(n):  # alternated, so that a busy moment of the machine hits both
        bare += _runs(FIRST_CALL.format(instrument=""), 1)
        instrumented += _runs(FIRST_CALL.format(instrument="import otm; otm.instrument()"), 1)
    return (
        statistics.median(float(r["s"]) for r in bare) * 1000,  # type: ignore[arg-type]
        statistics.median(float(r["s"]) for r in instrumented) * 1000,  # type: ignore[arg-type]
    )


def _time(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    n = ap.parse_args().n
    compileall.compile_dir(ROOT / "otm", quiet=1)
    base, otm = [], []
    for _ in range(n):
        base.append(_time("pass"))
        otm.append(_time("import otm"))
    b, o = statistics.median(base), statistics.median(otm)
    modules = json.loads(
        subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    )
    print(f"python -c pass       median {b * 1000:7.1f} ms  (n={n})")
    print(f"python -c import otm median {o * 1000:7.1f} ms")
    print(f"import otm costs     {max(o - b, 0.0) * 1000:7.1f} ms   (goal <= 150 ms)")
    print(f"top-level packages loaded: {sorted({m.split('.')[0] for m in modules})}")
    print(f"otm.instrument(), median of {n} fresh interpreters (goal <= 20 ms, <= 5 MB):")
    for label, before in CASES:
        try:
            r = _instrument(before, n)
        except subprocess.CalledProcessError:
            print(f"  [{label:21}] skipped (SDK not installed)")
            continue
        print(
            f"  [{label:21}] {r['ms']:6.1f} ms  RSS +{r['mb']:4.1f} MB"
            f"  imported {r['other']} SDK/other + {r['otm']} otm modules;  SDKs loaded: {r['sdks']}"
        )
    try:
        bare, inst = _first_call(n)
    except subprocess.CalledProcessError:
        print("first call: skipped (openai not installed)")
        return
    print(
        f"first openai call of a process: {bare:6.1f} ms bare, {inst:6.1f} ms after instrument()"
        f"  (otm's first record: +{inst - bare:.1f} ms, once)"
    )


if __name__ == "__main__":
    main()

"""What otm adds to a program's start-up, in fresh interpreters.

1. `import otm` (goal: <= 150 ms): N fresh interpreters, alternating a bare
   `python -c pass` baseline with `python -c "import otm"`; the median of
   each, their difference, and what `import otm` pulled in.
2. `otm.instrument()` (goal: <= 20 ms and <= 5 MB beyond the SDKs the program
   imports itself): timed and its resident-memory growth read inside fresh
   interpreters, around the call alone, (a) with no SDK imported and (b) in a
   program that imported openai first; plus which SDKs it imported.

    python bench/import_time.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

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
r0, t0 = rss(), time.perf_counter()
otm.instrument()
t1, r1 = time.perf_counter(), rss()
sdks = [m for m in ("openai", "anthropic", "google.genai", "litellm") if m in sys.modules]
print(json.dumps({{"s": t1 - t0, "rss": r1 - r0, "sdks": sdks}}))
"""


def _instrument(before: str, n: int) -> tuple[float, float, list[str]]:
    import os

    code = INSTRUMENT.format(page=os.sysconf("SC_PAGE_SIZE"), before=before)
    runs = [
        json.loads(
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        )
        for _ in range(n)
    ]
    return (
        statistics.median(r["s"] for r in runs),
        statistics.median(r["rss"] for r in runs),
        runs[-1]["sdks"],
    )


def _time(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    n = ap.parse_args().n
    base, otm = [], []
    for _ in range(n):
        base.append(_time("pass"))
        otm.append(_time("import otm"))
    b, o = statistics.median(base), statistics.median(otm)
    modules = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout)
    print(f"python -c pass       median {b * 1000:7.1f} ms  (n={n})")
    print(f"python -c import otm median {o * 1000:7.1f} ms")
    print(f"import otm costs     {max(o - b, 0.0) * 1000:7.1f} ms   (goal <= 150 ms)")
    print(f"top-level packages loaded: {sorted({m.split('.')[0] for m in modules})}")
    used = (
        "import openai, openai.resources.chat.completions.completions, "
        "openai.resources.responses.responses, openai.resources.embeddings"
    )
    for label, before in (
        ("no SDK imported", ""),
        ("openai imported", "import openai"),
        # a program that called the API has loaded the resource modules otm patches
        ("openai in use", used),
    ):
        try:
            t, mem, sdks = _instrument(before, n)
        except subprocess.CalledProcessError:
            print(f"otm.instrument() [{label}]: skipped (SDK not installed)")
            continue
        print(
            f"otm.instrument() [{label:15}] median {t * 1000:7.1f} ms  RSS +{mem / 2**20:5.1f} MB"
            f"  SDKs imported after it: {sdks}   (goal <= 20 ms, <= 5 MB)"
        )


if __name__ == "__main__":
    main()

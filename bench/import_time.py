"""How long `import otm` takes in a fresh interpreter (goal: <= 150 ms).

Runs N fresh interpreters, alternating a bare `python -c pass` baseline with
`python -c "import otm"`, and prints the median of each and their difference
(the cost otm adds to a program's start-up), plus what `import otm` pulled in.

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


if __name__ == "__main__":
    main()

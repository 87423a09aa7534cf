"""Check otm against the newest openai / anthropic / google-genai releases.

Usage:
    python3 tools/sdk_latest.py           # SDK-dependent tests + `otm demo`
    python3 tools/sdk_latest.py --all     # the whole suite
    python3 tools/sdk_latest.py --keep    # keep the virtual environment (its path is printed)

README's set-up and CI install the versions pinned in constraints.txt, so a new
SDK release cannot turn CI red overnight. This is the other half: it installs
``.[all,dev]`` *without* the constraints, plus the newest releases of the three
SDKs, into a throwaway virtual environment, runs ``otm demo`` and the tests that
drive an SDK, and prints a report: which versions differ from the lock, what the
tests said, and the "SDK drift" lines the tests record (model names of a newer
SDK that lack an exact data row). Exit status: the tests' (0 when they pass).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDKS = ("openai", "anthropic", "google-genai")
# a test drives an SDK when it imports one (or skips without it), or the fake provider server
_USES_SDK = re.compile(
    r"^\s*(import (openai|anthropic)\b|from google import genai|from (openai|anthropic|google\.genai)\b)"
    r"|importorskip\(\"(openai|anthropic|google)|from otm\.testing\.server import",
    re.M,
)
# `otm demo` and the examples drive all three SDKs
ALWAYS = ("tests/test_cli_demo_whatif.py", "tests/test_examples.py")


def sdk_tests() -> list[str]:
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if _USES_SDK.search(p.read_text(encoding="utf-8"))
    )
    return sorted(set(files) | set(ALWAYS))


def locked() -> dict[str, str]:
    out: dict[str, str] = {}
    path = ROOT / "constraints.txt"
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else ():
        name, sep, version = line.partition("==")
        if sep:
            out[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return out


def installed(py: Path, names: tuple[str, ...]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, sys\n"
        "for n in sys.argv[1:]:\n"
        "    try: print(n, m.version(n))\n"
        "    except m.PackageNotFoundError: print(n, '-')\n"
    )
    out = subprocess.run(
        [py, "-c", code, *names], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="run the whole suite, not only SDK tests")
    ap.add_argument("--keep", action="store_true", help="keep the virtual environment")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="otm-sdk-latest-"))
    env_dir = tmp / "venv"
    py = env_dir / "bin" / "python"
    try:
        print(f"== throwaway environment: {env_dir}", flush=True)
        venv.create(env_dir, with_pip=True)
        pip = [py, "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, cwd=ROOT)
        print("== install .[all,dev] without constraints, newest SDKs", flush=True)
        subprocess.run([*pip, "-e", ".[all,dev]"], check=True, cwd=ROOT)
        subprocess.run([*pip, "--upgrade", *SDKS], check=True, cwd=ROOT)

        print("== otm demo", flush=True)
        demo = subprocess.run(
            [env_dir / "bin" / "otm", "demo", "--output-dir", str(tmp / "runs")], cwd=ROOT
        )

        tests = ["tests"] if args.all else sdk_tests()
        print(f"== pytest: {' '.join(tests)}", flush=True)
        run = subprocess.Popen(
            [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *tests],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert run.stdout is not None
        lines: list[str] = []
        for line in run.stdout:
            sys.stdout.write(line)
            lines.append(line.rstrip("\n"))
        rc = run.wait()

        lock = locked()
        have = installed(py, SDKS)
        print("\n== report: newest SDK releases")
        for name in SDKS:
            note = "same as the lock" if have[name] == lock.get(name) else "newer than the lock"
            print(f"  {name:<14} {have[name]:<12} locked {lock.get(name, '-'):<12} {note}")
        print(
            f"  otm demo       {'ok' if demo.returncode == 0 else f'FAILED (exit {demo.returncode})'}"
        )
        summary = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed)", ln)), "")
        print(f"  tests          {summary.strip('= ') or f'exit {rc}'}")
        drift = [
            ln for ln in lines if re.match(r"^(openai|anthropic|google-genai) \S+ \(locked", ln)
        ]
        failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
        for ln in failed:
            print(f"  {ln}")
        if drift:
            print("  data rows a newer SDK's model list lacks (reported, not failed):")
            for ln in drift:
                print(f"    {ln}")
        verdict = rc == 0 and demo.returncode == 0
        print(f"  verdict        {'PASS' if verdict else 'FAIL'}")
        return 0 if verdict else 1
    finally:
        if args.keep:
            print(f"(kept {env_dir})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

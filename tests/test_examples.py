"""Every script in examples/ runs offline, exits 0 and prints real figures.

Each example runs in its own interpreter (``sys.executable``) with a scratch
working directory, ``TMPDIR`` and ``OTM_OUTPUT_DIR`` under pytest's tmp dir,
so nothing is written into the repository. The test is parametrised over the
files found, so a new example is covered without touching this file. The
selected examples are started together (a small pool) because most of their
wall time is the fake server's scripted delays; each test then waits for its
own.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT_S = 90

# A figure as the examples print it: "0.00195 Wh", "4.38 mWh (1.2–9.8 mWh)", "843 µWh".
FIGURE_WH = re.compile(r"\d(?:[\d.,]*\d)?\s*(?:m|k|µ|M)?Wh\b")
NUMBER = r"\d[\d.,]*"
UNIT = r"\s*\S*"
EXPONENT = re.compile(r"\d\.?[eE][+-]?\d")

# Output each example must show beyond a figure in Wh (regexes, searched in stdout).
EXPECT: dict[str, list[str]] = {
    "01_instrument_openai.py": [
        rf"carbon +{NUMBER}{UNIT} \({NUMBER}–{NUMBER}",
        rf"water +{NUMBER}{UNIT} \({NUMBER}–{NUMBER}",
        r"cost +\$0\.0",
        r"TTFT \d",
        "accelerator",
        "facility",
        "method: itl",
    ],
    "02_wrap_local_vllm.py": [
        r"^local/meta-llama/Llama-3\.1-8B-Instruct",
        "H100",
        "France",
        "accelerator-only",
    ],
    "03_track_decorator.py": [r"run 'summarise' .*: 2 calls", r"run 'classify' .*: 3 calls"],
    "04_experiment_report.py": [
        r"^4 requests",
        "gpt-4o-mini",
        "SCI",
        "The 4 LLM API calls",
        r"report\.html",
    ],
    "05_anthropic.py": [r"create\s+claude-", r"stream\s+claude-", r"tokens/s"],
    "06_google_genai.py": [
        r"generate gemini-",
        r"\(\d+ thinking\)",
        r"stream\s+gemini-",
        r"chat\s+gemini-",
    ],
    "07_estimate_offline.py": [
        r"5000 logged requests",
        r"in FRA .*gCO2e",
        r"in POL .*gCO2e",
        "B200",
    ],
    "08_async_streams.py": [r"4 records via otm.on_record"],
    "09_custom_model.py": [
        r"^unregistered:",
        r"^registered:.*cost \$",
        r"registered acme-assist-v3",
    ],
    "10_opentelemetry.py": [r"span 'chat gpt-4o-mini'", r"metric otm\.energy"],
}
# What an example may print instead when an optional extra is missing (exit 0 still required).
SKIPPED_OUTPUT = re.compile(r"is not installed.*skipping", re.IGNORECASE)

SDK_IMPORTS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google.genai": "google.genai",
    "google": "google.genai",
}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    tmp: Path


def _missing_sdks(path: Path) -> list[str]:
    """The LLM SDKs the example imports that are not installed here."""
    wanted: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            for prefix, sdk in SDK_IMPORTS.items():
                if name == prefix or name.startswith(prefix + "."):
                    wanted.add(sdk)
    missing = []
    for sdk in sorted(wanted):
        try:
            found = importlib.util.find_spec(sdk) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(sdk)
    return missing


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env["OTM_OUTPUT_DIR"] = str(tmp / "otm-runs")
    env["OTM_CONFIG_FILE"] = "none"  # no otm.toml / pyproject.toml from around the tmp dir
    env["TMPDIR"] = str(tmp)  # tempfile.mkdtemp() in the examples lands here too
    # The examples import the otm of this checkout, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _run(path: Path, tmp: Path) -> Result:
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [sys.executable, str(path)],
            check=False,
            cwd=tmp,
            env=_env(tmp),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Result(-1, out, f"timed out after {TIMEOUT_S} s", tmp)
    return Result(proc.returncode, proc.stdout, proc.stderr, tmp)


@pytest.fixture(scope="module")
def started(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Start every selected, runnable example at once; map file name -> Future[Result]."""
    selected = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and item.module is request.module and "example" in callspec.params:
            path = callspec.params["example"]
            if path not in selected and not _missing_sdks(path):
                selected.append(path)
    base = tmp_path_factory.mktemp("examples")
    workers = max(2, min(len(selected), (os.cpu_count() or 2) * 2, 8))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="example")
    futures: dict[str, Future[Result]] = {
        p.name: pool.submit(_run, p, base / p.stem) for p in selected
    }
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def test_examples_found() -> None:
    assert len(EXAMPLES) >= 10, [p.name for p in EXAMPLES]
    names = {p.name for p in EXAMPLES}
    assert not (set(EXPECT) - names), (
        f"expectations for examples that no longer exist: {set(EXPECT) - names}"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example(example: Path, started: dict[str, Future[Result]]) -> None:
    missing = _missing_sdks(example)
    if missing:
        pytest.skip(f"{example.name} needs {', '.join(missing)}")
    result = started[example.name].result(timeout=TIMEOUT_S + 30)
    shown = f"\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"

    assert result.returncode == 0, f"{example.name} exited {result.returncode}{shown}"
    assert "Traceback" not in result.stderr, shown
    assert "internal error" not in result.stderr, f"otm logged an internal failure{shown}"
    if SKIPPED_OUTPUT.search(result.stdout):
        return  # an optional extra is missing; the example said so and exited cleanly
    assert result.stdout.count("\n") >= 2, f"{example.name} printed too little{shown}"
    assert FIGURE_WH.search(result.stdout), f"no energy figure in Wh{shown}"
    for pattern in EXPECT.get(example.name, []):
        assert re.search(pattern, result.stdout, re.MULTILINE), (
            f"{pattern!r} not in the output{shown}"
        )
    # file paths (temporary folders such as .../otm-example-h_ijo4e0/) are not figures
    figures = re.sub(r"\S*/\S*", "", result.stdout)
    assert not EXPONENT.search(figures), f"a figure in scientific notation{shown}"
    for bad in ("nan", "None Wh", "inf Wh"):
        assert not re.search(rf"\b{re.escape(bad)}\b", result.stdout), (
            f"{bad!r} in the output{shown}"
        )


def test_experiment_example_writes_its_report(started: dict[str, Future[Result]]) -> None:
    """04 says where the report went; the file is there, inside the scratch dir."""
    name = "04_experiment_report.py"
    if name not in started:
        pytest.skip(f"{name} is not selected or cannot run here")
    result = started[name].result(timeout=TIMEOUT_S + 30)
    assert result.returncode == 0, result.stderr
    match = re.search(r"^report:\s*(\S+)", result.stdout, re.MULTILINE)
    assert match, result.stdout
    report = Path(match.group(1))
    assert report.is_file() and report.stat().st_size > 1000
    assert report.resolve().is_relative_to(result.tmp.resolve()), (
        "the example wrote outside its tmp dir"
    )
    assert (report.parent / "records.jsonl").read_text(encoding="utf-8").count("\n") == 4

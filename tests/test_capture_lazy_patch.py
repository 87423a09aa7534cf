"""instrument() in a program that imported an SDK first costs what patching costs, no more.

openai loads its resource modules (and the hundreds of type modules behind
them) only when a client first uses them; otm patches each class right after
the SDK loads it, so ``instrument()`` imports none of them. otm's own record
machinery (Telemetry, Record, its data tables) loads with the first record,
not at ``instrument()`` nor when a call starts. The import-state checks run
in fresh interpreters (this test process has everything imported already),
on ``sys.modules``: deterministic, no timing. Calls go to the embedded fake
server.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from otm.capture import imports, sites
from otm.capture.patching import registry

ROOT = Path(__file__).resolve().parents[1]

RECORD_MACHINERY = (
    "otm.data",
    "otm.telemetry",
    "otm.capture.records",
    "otm.capture.attribution",
    "otm.estimate",
    "numpy",
)
"""What neither ``instrument()`` nor the start of a call may import."""


def run(code: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


PRELUDE = """
import json, sys
{imports}
import otm
before = set(sys.modules)
otm.instrument()
new = sorted(set(sys.modules) - before)
heavy = {heavy!r}
def loaded(names):
    return sorted(m for m in sys.modules if m in names or m.startswith(tuple(n + "." for n in names)))
at_instrument = loaded(heavy)
from otm.testing.server import FakeProviderServer, Scenario
"""


def _prelude(imports_: str) -> str:
    return PRELUDE.format(imports=imports_, heavy=RECORD_MACHINERY)


def test_openai_imported_first_instrument_loads_no_resource_and_captures_later(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    out = run(
        _prelude("import openai")
        + """
import wrapt
with FakeProviderServer(Scenario(input_tokens=21, output_tokens=4)) as s:
    c = openai.OpenAI(base_url=s.openai_base_url, api_key="t", max_retries=0)
    M = [{"role": "user", "content": "hi"}]
    stream = c.chat.completions.create(model="gpt-4o-mini", messages=M, stream=True,
                                       stream_options={"include_usage": True})
    at_call_start = loaded(heavy)  # the call has started (headers in), no record yet
    for _ in stream:
        pass
    r = c.chat.completions.create(model="gpt-4o-mini", messages=M)
    resp = c.responses.create(model="gpt-4o-mini", input="hi")
    emb = c.embeddings.create(model="text-embedding-3-small", input="hi")
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=M).parse()
print(json.dumps({
    "sdk_new": [m for m in new if m.startswith("openai")],
    "otm_new": [m for m in new if m.startswith("otm")],
    "at_instrument": at_instrument,
    "at_call_start": at_call_start,
    "after": loaded(heavy),
    "patched": isinstance(openai.resources.chat.Completions.__dict__["create"], wrapt.FunctionWrapper),
    "tokens": [x.otm.telemetry.input_tokens for x in (stream, r, resp, emb, raw)],
    "out": [stream.otm.telemetry.output_tokens, r.otm.telemetry.output_tokens],
}))
""",
        tmp_path,
    )
    # instrument() imported none of the SDK's modules, none of otm's record machinery
    assert out["sdk_new"] == [], out["sdk_new"][:10]
    assert out["at_instrument"] == []
    assert not any(m.startswith(("otm.data", "otm.estimate", "otm.report")) for m in out["otm_new"])
    # starting a call loads nothing heavy either; the first record does
    assert out["at_call_start"] == []
    assert "otm.data" in out["after"] and "otm.telemetry" in out["after"]
    # every path was captured, on classes loaded after instrument()
    assert out["patched"] is True
    assert out["tokens"] == [21] * 5 and out["out"] == [4, 4]


@pytest.mark.parametrize(
    ("sdk", "call"),
    [
        (
            "anthropic",
            """
    c = anthropic.Anthropic(base_url=s.anthropic_base_url, api_key="t", max_retries=0)
    r = c.messages.create(model="claude-sonnet-4-5", max_tokens=8,
                          messages=[{"role": "user", "content": "hi"}])
""",
        ),
        (
            "google.genai",
            """
    from google.genai import types
    c = google.genai.Client(api_key="x", http_options=types.HttpOptions(base_url=s.gemini_base_url))
    r = c.models.generate_content(model="gemini-2.5-flash", contents="hi")
""",
        ),
    ],
)
def test_sdk_imported_first_instrument_loads_no_record_machinery(
    sdk: str, call: str, tmp_path: Path
) -> None:
    pytest.importorskip(sdk)
    root = sdk.split(".")[0]
    out = run(
        _prelude(f"import {sdk}")
        + f"""
with FakeProviderServer(Scenario(input_tokens=21, output_tokens=4)) as s:
{call}
print(json.dumps({{
    "sdk_new": [m for m in new if m.startswith("{root}")],
    "at_instrument": at_instrument,
    "after": loaded(heavy),
    "tokens": r.otm.telemetry.input_tokens,
}}))
""",
        tmp_path,
    )
    assert out["sdk_new"] == [], out["sdk_new"][:10]
    assert out["at_instrument"] == []
    assert "otm.data" in out["after"]
    assert out["tokens"] == 21


def test_uninstrument_restores_lazily_patched_classes_and_stops_watching(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    out = run(
        """
        import json, sys
        import openai, otm
        from otm.capture import imports
        otm.instrument()
        watched = sorted(imports.watched())
        from openai.resources.chat.completions import completions as mod  # the SDK loads it
        patched = mod.Completions.__dict__["create"]
        original = patched.__wrapped__
        otm.uninstrument()
        restored = mod.Completions.__dict__["create"] is original
        # uninstrumented before the SDK loads a class: it stays the SDK's own
        otm.instrument(); otm.uninstrument()
        from openai.resources.responses import responses as rmod
        print(json.dumps({
            "watched": watched,
            "patched": type(patched).__name__,
            "restored": restored,
            "responses": type(rmod.Responses.__dict__["create"]).__name__,
            "left": sorted(imports.watched()),
            "finder": any(type(f).__name__ == "_Finder" for f in sys.meta_path),
        }))
        """,
        tmp_path,
    )
    assert "openai.resources.chat" in out["watched"]
    assert out["patched"] == "FunctionWrapper" and out["restored"] is True
    assert out["responses"] == "function"
    assert out["left"] == [] and out["finder"] is False


def test_kill_switch_leaves_classes_loaded_later_unpatched(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    out = run(
        """
        import json
        import openai, otm
        from otm.capture import imports
        otm.instrument()
        otm.configure(disabled=True)
        watched = sorted(imports.watched())
        from openai.resources.chat.completions import completions as mod
        print(json.dumps({"create": type(mod.Completions.__dict__["create"]).__name__,
                          "watched": watched}))
        """,
        tmp_path,
    )
    assert out == {"create": "function", "watched": []}


# --------------------------------------------------------------------------- the machinery


@pytest.fixture()
def probe_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sites.uninstall("otm_probe")
    registry.uninstall("otm_probe")
    imports.cancel()
    for name in [m for m in sys.modules if m.startswith("otm_probe")]:
        del sys.modules[name]


def _package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_watch_runs_for_the_package_and_every_module_under_it(probe_dir: Path) -> None:
    _package(
        probe_dir,
        {
            "otm_probe_pkg/__init__.py": "",
            "otm_probe_pkg/a.py": "A = 1\n",
            "otm_probe_pkg/sub/__init__.py": "from . import b\n",
            "otm_probe_pkg/sub/b.py": "B = 2\n",
            "otm_probe_pkgx.py": "X = 3\n",
        },
    )
    seen: list[str] = []
    imports.watch("otm_probe_pkg", lambda m: seen.append(m.__name__))
    import otm_probe_pkg.a  # type: ignore[import-not-found]
    import otm_probe_pkg.sub  # type: ignore[import-not-found]  # noqa: F401
    import otm_probe_pkgx  # type: ignore[import-not-found]  # noqa: F401

    # each module once, after it executed (a package's own body runs its imports first)
    assert seen == ["otm_probe_pkg", "otm_probe_pkg.a", "otm_probe_pkg.sub.b", "otm_probe_pkg.sub"]
    assert otm_probe_pkg.a.A == 1
    assert type(otm_probe_pkg.a.__spec__.loader).__name__ == "SourceFileLoader"
    imports.unwatch("otm_probe_pkg")
    assert imports.watched() == set() and imports._finder not in sys.meta_path


def test_a_failing_watch_never_breaks_the_import(probe_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    _package(probe_dir, {"otm_probe_boom.py": "V = 7\n"})

    def boom(module: types.ModuleType) -> None:
        raise RuntimeError("otm bug")

    imports.watch("otm_probe_boom", boom)
    with caplog.at_level(logging.WARNING, logger="otm"):
        import otm_probe_boom  # type: ignore[import-not-found]

    assert otm_probe_boom.V == 7
    assert "post-import hook for otm_probe_boom" in caplog.text


RESOURCE = """
class Base:
    def __init__(self):
        pass

class Completions(Base):
    def create(self, x):
        return ("create", x)

class Other:
    def create(self, x):
        return ("other", x)
"""


def _wrapper(tag: str, calls: list[str]):  # type: ignore[no-untyped-def]
    def wrapper(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
        calls.append(tag)
        return wrapped(*args, **kwargs)

    return wrapper


def _sites(calls: list[str]) -> list[sites.Site]:
    return [
        sites.Site("otm_probe_sdk.res", "Completions", lambda cls: [(cls, "create", _wrapper("c", calls))]),
        sites.Site("otm_probe_sdk.core", "Base", lambda cls: [(cls, "__init__", _wrapper("init", calls))]),
    ]


def test_sites_patch_loaded_classes_at_once_and_the_others_when_loaded(probe_dir: Path) -> None:
    _package(
        probe_dir,
        {
            "otm_probe_sdk/__init__.py": "from . import core\n",
            "otm_probe_sdk/core.py": "class Base:\n    def __init__(self):\n        pass\n",
            # the re-export package imports nothing until asked (like openai's)
            "otm_probe_sdk/res/__init__.py": "",
            "otm_probe_sdk/res/impl/__init__.py": "",
            "otm_probe_sdk/res/impl/completions.py": RESOURCE.replace(
                "class Base:\n    def __init__(self):\n        pass\n", "from otm_probe_sdk.core import Base\n"
            ),
        },
    )
    import otm_probe_sdk  # type: ignore[import-not-found]

    calls: list[str] = []
    n = sites.install("otm_probe", _sites(calls))
    assert n == 1  # Base is loaded: patched now; Completions is not loaded yet
    assert "otm_probe_sdk.res.impl.completions" not in sys.modules
    assert imports.watched() == {"otm_probe_sdk.res"}

    from otm_probe_sdk.res.impl.completions import Completions, Other  # type: ignore[import-not-found]

    assert Completions().create(5) == ("create", 5)
    assert Other().create(1) == ("other", 1)  # another class of the module: untouched
    assert calls == ["init", "c"]
    assert imports.watched() == set()  # every site found: nothing left to watch

    original = Completions.__dict__["create"].__wrapped__
    registry.uninstall("otm_probe")
    assert Completions.__dict__["create"] is original
    assert "__wrapped__" not in vars(otm_probe_sdk.core.Base.__init__)


def test_a_class_is_taken_where_it_is_defined_not_where_it_is_imported(probe_dir: Path) -> None:
    _package(
        probe_dir,
        {
            "otm_probe_sdk/__init__.py": "",
            "otm_probe_sdk/core.py": RESOURCE,
            # re-exports Completions from elsewhere, and defines no class of that name
            "otm_probe_sdk/res/__init__.py": "from otm_probe_sdk.core import Completions\n",
        },
    )
    calls: list[str] = []
    sites.install("otm_probe", _sites(calls)[:1])
    import otm_probe_sdk.res  # type: ignore[import-not-found]

    assert "create" in vars(otm_probe_sdk.res.Completions)
    assert not hasattr(otm_probe_sdk.res.Completions.__dict__["create"], "__wrapped__")
    assert imports.watched() == {"otm_probe_sdk.res"}  # still waiting for its own definition


def test_a_missing_package_is_reported_once(probe_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    _package(probe_dir, {"otm_probe_sdk/__init__.py": ""})
    import otm_probe_sdk  # type: ignore[import-not-found]  # noqa: F401

    gone = sites.Site("otm_probe_sdk.gone", "Completions", lambda cls: [])
    optional = sites.Site("otm_probe_sdk.maybe", "Completions", lambda cls: [], optional=True)
    with caplog.at_level(logging.INFO, logger="otm"):
        sites.install("otm_probe", [gone, optional])
    assert "otm_probe_sdk.gone not found" in caplog.text
    assert "otm_probe_sdk.maybe" not in caplog.text

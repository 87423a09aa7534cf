"""Settings: resolution order, provenance, bad values, application, the CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import otm
from otm import config
from otm.capture.settings import snapshot
from otm.config import ConfigError, configure, find_config_file, resolve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No OTM_* variables, a working directory without config files, state restored after."""
    for key in list(os.environ):
        if key.startswith("OTM_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    logger = logging.getLogger("otm")
    saved_level = logger.level
    config.reset()
    yield work
    config.reset()
    logger.setLevel(saved_level)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- resolution order


def test_defaults_when_nothing_is_set() -> None:
    s = otm.settings()
    assert s.disabled is False
    assert s.providers is None
    assert s.region is None
    assert s.capture_prompts is False
    assert s.request_usage is False
    assert s.tags == {}
    assert s.output_dir == Path("otm-runs")
    assert s.data_file is None
    assert s.log_level is None
    assert s.auto_instrument is False
    assert set(s.sources.values()) == {"default"}
    assert s.config_file is None


@pytest.mark.parametrize(
    ("arg", "env", "file", "value", "source"),
    [
        (None, None, None, None, "default"),
        (None, None, "INFO", "INFO", "file"),
        (None, "ERROR", "INFO", "ERROR", "env:OTM_LOG_LEVEL"),
        ("DEBUG", "ERROR", "INFO", "DEBUG", "argument"),
        ("DEBUG", None, "INFO", "DEBUG", "argument"),
        ("DEBUG", "ERROR", None, "DEBUG", "argument"),
        (None, "ERROR", None, "ERROR", "env:OTM_LOG_LEVEL"),
    ],
)
def test_arguments_beat_env_beat_file_beat_defaults(
    monkeypatch: pytest.MonkeyPatch,
    clean_config: Path,
    arg: str | None,
    env: str | None,
    file: str | None,
    value: str | None,
    source: str,
) -> None:
    if file is not None:
        write(clean_config / "otm.toml", f'log_level = "{file}"\n')
    if env is not None:
        monkeypatch.setenv("OTM_LOG_LEVEL", env)
    s = configure(log_level=arg) if arg is not None else otm.settings()
    assert s.log_level == value
    if source == "file":
        assert s.source("log_level") == f"file:{clean_config / 'otm.toml'}"
    else:
        assert s.source("log_level") == source


def test_each_setting_from_env(monkeypatch: pytest.MonkeyPatch, clean_config: Path) -> None:
    data = write(clean_config / "mine.json", "{}")
    env = {
        "OTM_DISABLED": "0",
        "OTM_PROVIDERS": "openai, gemini",
        "OTM_AUTO_INSTRUMENT": "no",
        "OTM_CAPTURE_PROMPTS": "true",
        "OTM_REQUEST_USAGE": "on",
        "OTM_TAGS": "team=ml, env = prod",
        "OTM_OUTPUT_DIR": "runs/here",
        "OTM_DATA_FILE": str(data),
        "OTM_LOG_LEVEL": "warn",
        "OTM_ELECTRICITYMAPS_TOKEN": " em-secret ",
        "OTM_ELECTRICITYMAPS_URL": "https://em.example/v3/",
        "OTM_LIVE_GRID": "yes",
        "OTM_LIVE_GRID_TIMEOUT_S": "2.5",
        "OTM_GRID_CACHE_DIR": "grid-cache",
        "OTM_GRID_ZONES": "US-WA=US-NW-BPAT, aws:us-west-2 = US-NW-PACW",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = resolve()
    assert s.electricitymaps_token is not None
    assert s.electricitymaps_token.get_secret_value() == "em-secret"
    assert s.electricitymaps_url == "https://em.example/v3"
    assert s.live_grid is True and s.live_grid_timeout_s == 2.5
    assert s.grid_cache_dir == Path("grid-cache")
    assert s.grid_zones == {"US-WA": "US-NW-BPAT", "aws:us-west-2": "US-NW-PACW"}
    assert "em-secret" not in repr(s) and s.to_json()["electricitymaps_token"]["value"] == "**********"
    assert s.providers == ("openai", "google")
    assert s.capture_prompts is True and s.request_usage is True and s.disabled is False
    assert s.tags == {"team": "ml", "env": "prod"}
    assert s.output_dir == Path("runs/here")
    assert s.data_file == data
    assert s.log_level == "WARNING"
    for name, value in s.sources.items():
        if name != "region":
            assert value == f"env:OTM_{name.upper()}"
    assert s.source("region") == "default"


def test_empty_env_var_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTM_LOG_LEVEL", "")
    monkeypatch.setenv("OTM_DISABLED", "  ")
    s = resolve()
    assert s.log_level is None and s.disabled is False
    assert s.source("log_level") == "default"


def test_pyproject_tool_table_found_from_a_subdirectory(
    monkeypatch: pytest.MonkeyPatch, clean_config: Path
) -> None:
    project = clean_config / "project"
    write(
        project / "pyproject.toml",
        """
        [project]
        name = "app"

        [tool.otm]
        capture-prompts = true
        output_dir = "reports"
        tags = { team = "search", tier = 2 }
        providers = ["anthropic"]
        """,
    )
    deep = project / "src" / "app"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    s = otm.settings()
    assert s.config_file == project / "pyproject.toml"
    assert s.capture_prompts is True
    # paths in a config file are relative to that file
    assert s.output_dir == project / "reports"
    assert s.tags == {"team": "search", "tier": "2"}
    assert s.providers == ("anthropic",)
    assert s.source("capture_prompts") == f"file:{project / 'pyproject.toml'}"


def test_pyproject_without_tool_otm_is_passed_over(clean_config: Path) -> None:
    write(clean_config / "otm.toml", 'region = "FRA"\n')
    inner = clean_config / "pkg"
    write(inner / "pyproject.toml", '[project]\nname = "pkg"\n\n[tool.ruff]\nline-length = 99\n')
    assert find_config_file(inner) == clean_config / "otm.toml"


def test_nearest_file_wins_and_otm_toml_beats_pyproject_in_one_folder(clean_config: Path) -> None:
    write(clean_config / "otm.toml", 'log_level = "ERROR"\n')
    inner = clean_config / "inner"
    write(inner / "pyproject.toml", '[tool.otm]\nlog_level = "INFO"\n')
    assert find_config_file(inner) == inner / "pyproject.toml"
    write(inner / "otm.toml", 'log_level = "DEBUG"\n')
    assert find_config_file(inner) == inner / "otm.toml"
    assert resolve(cwd=inner).log_level == "DEBUG"


def test_explicit_config_file_and_none(monkeypatch: pytest.MonkeyPatch, clean_config: Path) -> None:
    write(clean_config / "otm.toml", 'log_level = "ERROR"\n')
    other = write(clean_config / "elsewhere" / "prod.toml", 'log_level = "CRITICAL"\n')
    assert resolve(config_file=other).log_level == "CRITICAL"
    monkeypatch.setenv("OTM_CONFIG_FILE", str(other))
    assert resolve().log_level == "CRITICAL"
    monkeypatch.setenv("OTM_CONFIG_FILE", "none")
    assert resolve().log_level is None
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(config_file=clean_config / "missing.toml")


def test_configure_remembers_arguments_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTM_LOG_LEVEL", "ERROR")
    configure(log_level="DEBUG", capture_prompts=True)
    s = configure(request_usage=True)
    assert (s.log_level, s.capture_prompts, s.request_usage) == ("DEBUG", True, True)
    assert otm.settings() is s
    # an explicit None overrides the environment
    assert configure(log_level=None).log_level is None
    assert otm.settings().source("log_level") == "argument"
    config.reset()
    assert otm.settings().log_level == "ERROR"
    assert otm.settings().capture_prompts is False


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("var", "value", "needles"),
    [
        ("OTM_DISABLED", "maybe", ["'disabled'", "env:OTM_DISABLED", "true/false"]),
        ("OTM_CAPTURE_PROMPTS", "2", ["'capture_prompts'", "true/false"]),
        (
            "OTM_PROVIDERS",
            "openai,mistral",
            ["'providers'", "mistral", "openai, anthropic, google"],
        ),
        ("OTM_LOG_LEVEL", "LOUD", ["'log_level'", "DEBUG, INFO, WARNING, ERROR, CRITICAL"]),
        ("OTM_TAGS", "team", ["'tags'", "k=v"]),
        ("OTM_DATA_FILE", "nowhere.json", ["'data_file'", "does not exist"]),
        ("OTM_DATA_FILE", "data.yaml", ["'data_file'", ".toml or .json"]),
        ("OTM_REGION", " ", []),  # blank means unset: no error
        ("OTM_LIVE_GRID", "sometimes", ["'live_grid'", "true/false"]),
        ("OTM_LIVE_GRID_TIMEOUT_S", "0", ["'live_grid_timeout_s'", "> 0"]),
        ("OTM_LIVE_GRID_TIMEOUT_S", "soon", ["'live_grid_timeout_s'", "number of seconds"]),
        ("OTM_ELECTRICITYMAPS_URL", "api.example", ["'electricitymaps_url'", "http(s) URL"]),
        ("OTM_GRID_ZONES", "US-WA", ["'grid_zones'", "region=zone"]),
        ("OTM_ELECTRICITYMAPS_TOKEN", "  ", []),  # blank: no token, no error
    ],
)
def test_bad_env_values_fail_open_everywhere_but_the_strict_check(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    var: str,
    value: str,
    needles: list[str],
) -> None:
    monkeypatch.setenv(var, value)
    key = var.removeprefix("OTM_").lower()
    if not needles:
        assert config.check().source(key) == "default"
        return
    # the strict checker (``otm settings``) raises, naming key, source and choices
    with pytest.raises(ConfigError) as info:
        config.check()
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, msg
    assert isinstance(info.value, ValueError)
    # everything else logs one error saying the same, ignores the value and goes on
    caplog.set_level(logging.DEBUG, logger="otm")
    for s in (otm.settings(), configure(), configure()):
        assert s.source(key) == "default", s.sources
    assert otm.instrument() is not None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not per call
    text = errors[0].getMessage()
    assert text.startswith(msg) and "ignored" in text
    otm.uninstrument()


def test_output_dir_that_is_a_file_is_rejected(clean_config: Path) -> None:
    write(clean_config / "taken", "x")
    with pytest.raises(ConfigError, match="'output_dir'.*not a directory"):
        configure(output_dir="taken")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"providers": ["cohere"]}, "choose from openai, anthropic, google"),
        ({"providers": 3}, "list of providers"),
        ({"log_level": 7}, "choose from"),
        ({"tags": {"a": {"nested": 1}}}, "plain value"),
        ({"tags": ["a", "b"]}, "table of tags"),
        ({"region": ""}, "region code"),
        ({"capture_prompts": "sometimes"}, "not a boolean"),
    ],
)
def test_bad_arguments_fail_and_keep_previous_settings(
    kwargs: dict[str, object], needle: str
) -> None:
    before = configure(capture_prompts=True)
    with pytest.raises(ConfigError, match=needle):
        configure(**kwargs)  # type: ignore[arg-type]
    assert otm.settings() is before
    assert snapshot().capture_prompts is True


def test_unknown_key_in_file_names_the_key_file_and_allowed_keys(
    clean_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(clean_config / "otm.toml", 'regoin = "FRA"\ncapture_prompts = true\n')
    with pytest.raises(ConfigError) as info:
        config.check()
    msg = str(info.value)
    assert "'regoin'" in msg and str(path) in msg and "region" in msg
    # fail open: that key is ignored, the rest of the file applies
    s = configure()
    assert s.capture_prompts is True and s.region is None
    assert [r.getMessage().split(";")[0] for r in caplog.records if r.levelno >= logging.ERROR] == [
        msg.split(";")[0]
    ]


def test_bad_value_in_file_names_the_file(
    clean_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(clean_config / "pyproject.toml", '[tool.otm]\nproviders = ["openai", "vertex"]\n')
    with pytest.raises(ConfigError) as info:
        config.check()
    assert f"file:{path}" in str(info.value) and "'vertex'" in str(info.value)
    assert otm.settings().providers is None
    assert any(f"file:{path}" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "content",
    [b"region = \n", b'region = "caf\xe9"\n'],  # not TOML; not UTF-8
    ids=["not-toml", "not-utf8"],
)
def test_unreadable_config_file_is_ignored_with_an_error(
    clean_config: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    (clean_config / "otm.toml").write_bytes(content)
    with pytest.raises(ConfigError, match="cannot read"):
        config.check()
    s = otm.settings()
    assert s.config_file is None and s.region is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot read" in errors[0] and "otm.toml" in errors[0]


def test_non_utf8_ancestor_pyproject_without_tool_otm_is_passed_over(
    clean_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone else's pyproject in Latin-1 above the project: not ours, never an error."""
    (clean_config / "pyproject.toml").write_bytes(b'[project]\nname = "caf\xe9"\n')
    inner = clean_config / "pkg" / "sub"
    write(inner.parent / "otm.toml", 'region = "FRA"\n')
    inner.mkdir(parents=True)
    assert config.resolve(cwd=inner).region == "FRA"
    assert find_config_file(clean_config) is None
    assert config.check().config_file is None  # from clean_config: nothing found, no error
    assert otm.instrument() is not None
    otm.uninstrument()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_ignored_env_value_falls_back_to_the_file(
    monkeypatch: pytest.MonkeyPatch, clean_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(clean_config / "otm.toml", 'region = "FRA"\ntags = { team = "a" }\n')
    monkeypatch.setenv("OTM_REGION", "NOWHERE-LAND")  # parses, but is no known region
    monkeypatch.setenv("OTM_TAGS", "team")  # does not parse
    s = otm.settings()
    assert (s.region, s.source("region")) == ("FRA", f"file:{path}")
    assert (s.tags, s.source("tags")) == ({"team": "a"}, f"file:{path}")
    assert config.default_region() == "FRA"
    logged = " | ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "'region' (from env:OTM_REGION)" in logged and "'tags' (from env:OTM_TAGS)" in logged


def test_missing_named_config_file_is_ignored_unless_an_argument(
    monkeypatch: pytest.MonkeyPatch, clean_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(clean_config / "otm.toml", "capture_prompts = true\n")
    monkeypatch.setenv("OTM_CONFIG_FILE", str(clean_config / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        config.check()
    assert otm.settings().capture_prompts is True  # as if OTM_CONFIG_FILE were unset
    assert any("OTM_CONFIG_FILE" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match="does not exist"):
        configure(config_file=clean_config / "missing.toml")  # the user's own code: raises


def test_invalid_data_file_from_env_is_ignored(
    monkeypatch: pytest.MonkeyPatch, clean_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = write(clean_config / "mine.toml", "[[models]]\nid = 'x'\ntotal_params_b = 'lots'\n")
    monkeypatch.setenv("OTM_DATA_FILE", str(bad))
    monkeypatch.setenv("OTM_CAPTURE_PROMPTS", "1")
    with pytest.raises(ConfigError, match="'data_file'"):
        config.check()
    s = configure()
    assert s.data_file is None and s.capture_prompts is True
    assert any("'data_file' (from env:OTM_DATA_FILE)" in r.getMessage() for r in caplog.records)


def test_unknown_region_lists_close_matches() -> None:
    data = pytest.importorskip("otm.data")
    if data.find_region("FRA") is None:
        pytest.skip("packaged region data not built yet")
    with pytest.raises(ConfigError) as info:
        configure(region="FRAA")
    msg = str(info.value)
    assert "'region'" in msg and "FRAA" in msg and "FRA" in msg.split("FRAA", 1)[1]
    assert configure(region="fr").region == "fr"


# --------------------------------------------------------------------------- applying


def test_configure_applies_capture_switches_and_log_level() -> None:
    configure(
        capture_prompts=True,
        request_usage=True,
        tags={"team": "ml"},
        log_level="ERROR",
    )
    s = snapshot()  # what capture reads when a call starts
    assert (s.disabled, s.capture_prompts, s.request_usage) == (False, True, True)
    assert s.tags == {"team": "ml"}
    assert logging.getLogger("otm").level == logging.ERROR
    configure(capture_prompts=False, tags=None)
    assert snapshot().capture_prompts is False
    assert snapshot().tags == {}


def test_configure_sets_default_region() -> None:
    data = pytest.importorskip("otm.data")
    if data.find_region("DEU") is None:
        pytest.skip("packaged region data not built yet")
    configure(region="DEU")
    assert snapshot().region == config.default_region() == "DEU"


def test_capture_reads_the_environment_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTM_CAPTURE_PROMPTS", "1")
    assert snapshot().capture_prompts is True and otm.settings().capture_prompts is True
    assert snapshot() is otm.settings()  # one snapshot, no copy kept by capture
    configure(capture_prompts=False)
    assert snapshot().capture_prompts is False


def test_import_otm_reads_no_settings_and_stays_light(clean_config: Path) -> None:
    # A broken config file beside the program must not break `import otm`.
    write(clean_config / "otm.toml", "this is = = not toml\n")
    code = "import sys, otm; print(sorted(m for m in sys.modules if m.startswith(('otm', 'pydantic'))))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTM_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OTM_LOG_LEVEL"] = "nonsense"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=clean_config,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "otm.config" not in out.stdout and "pydantic" not in out.stdout
    assert "'otm'" in out.stdout


# --------------------------------------------------------------------------- the CLI


def test_cli_settings_json(
    monkeypatch: pytest.MonkeyPatch, clean_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from otm.cli import main

    write(clean_config / "otm.toml", 'output-dir = "out"\n')
    monkeypatch.setenv("OTM_TAGS", "team=ml")
    assert main(["settings", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config_file"] == str(clean_config / "otm.toml")
    got = out["settings"]
    assert got["tags"] == {"value": {"team": "ml"}, "source": "env:OTM_TAGS"}
    assert got["output_dir"] == {
        "value": str(clean_config / "out"),
        "source": f"file:{clean_config / 'otm.toml'}",
    }
    assert got["disabled"] == {"value": False, "source": "default"}
    assert set(got) == set(config.FIELDS)


def test_cli_settings_table_and_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from otm.cli import main

    monkeypatch.setenv("OTM_CAPTURE_PROMPTS", "yes")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "capture_prompts" in out and "env:OTM_CAPTURE_PROMPTS" in out
    config.reset()
    monkeypatch.setenv("OTM_LOG_LEVEL", "chatty")
    assert main(["settings"]) == 2
    err = capsys.readouterr().err
    assert "'log_level'" in err and "env:OTM_LOG_LEVEL" in err and "CRITICAL" in err


def test_cli_settings_config_file_option(
    clean_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from otm.cli import main

    other = write(clean_config / "ci.toml", "capture_prompts = true\n")
    assert main(["settings", "--json", "--config-file", str(other)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["settings"]["capture_prompts"]["value"] is True
    assert got["config_file"] == str(other)


def test_provider_names_match_capture_adapters() -> None:
    import otm.capture

    assert set(config.PROVIDERS) == set(otm.capture.ADAPTERS)


# --------------------------------------------------------------------------- what other layers read


def test_default_region_and_effective_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pytest.importorskip("otm.data")
    if data.find_region("FRA") is None:
        pytest.skip("packaged region data not built yet")
    assert config.default_region() is None and config.effective().region is None
    monkeypatch.setenv("OTM_REGION", "FRA")
    monkeypatch.setenv("OTM_TAGS", "team=ml,env=prod")
    config.reset()
    assert config.default_region() == "FRA"
    eff = config.effective()
    assert eff.region == "FRA" and eff.tags == {"team": "ml", "env": "prod"}
    eff = config.effective(region="US-VA", tags=[{"env": "run"}, None, {"team": "client"}])
    assert eff.region == "US-VA" and eff.tags == {"team": "client", "env": "run"}
    # The merged tags are a new dict: editing them never changes the settings.
    config.effective().tags["x"] = "y"
    assert "x" not in otm.settings().tags


def test_a_failing_subscriber_never_breaks_configure() -> None:
    seen: list[object] = []

    def broken(s: object) -> None:
        raise RuntimeError("subscriber bug")

    config.on_change(broken)
    config.on_change(seen.append)
    try:
        s = configure(capture_prompts=True)
        assert seen[-1] is s
    finally:
        config._subscribers.remove(broken)
        config._subscribers.remove(seen.append)

"""Settings: one object, resolved from arguments, environment, a config file and defaults.

    otm.configure(region="FRA", capture_prompts=False)   # explicit arguments
    otm.settings().region                                 # -> "FRA"
    otm.settings().source("region")                       # -> "argument"

Each setting is resolved in this order, first found wins:

1. an argument of :func:`configure` (kept across calls until :func:`reset`);
2. an environment variable ``OTM_<NAME>`` (``OTM_REGION``, ``OTM_DISABLED``, ...);
3. the nearest config file above the working directory: ``otm.toml`` (top-level
   keys) or ``pyproject.toml`` with a ``[tool.otm]`` table (``OTM_CONFIG_FILE``
   or ``configure(config_file=...)`` names one instead);
4. the default.

Nothing is read on ``import otm``: the first :func:`settings` call (or the first
``otm.instrument()``) resolves and applies the settings once; :func:`configure`
resolves and applies them again. Both fail open on what the environment and
config files hold: an invalid value (or an unreadable file) is logged once as
an error naming the key, its source and what is allowed, and ignored, as if it
were not set. Only invalid *arguments* of :func:`configure` raise
:class:`ConfigError` (the user's own code). :func:`check` (what
``otm settings`` runs) is the strict checker: any invalid value raises.
See docs/configuration.md.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

__all__ = [
    "ENV_PREFIX",
    "ConfigError",
    "Settings",
    "Effective",
    "check",
    "configure",
    "current",
    "default_region",
    "effective",
    "ensure_configured",
    "find_config_file",
    "on_change",
    "reset",
    "resolve",
    "settings",
]

ENV_PREFIX: Final = "OTM_"
CONFIG_FILE_ENV: Final = "OTM_CONFIG_FILE"
"""Names the config file to use instead of searching for one ("none" disables files)."""

PROVIDERS: Final = ("openai", "anthropic", "google", "litellm")
_PROVIDER_ALIASES: Final = {"google-genai": "google", "genai": "google", "gemini": "google"}
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE: Final = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE: Final = frozenset({"0", "false", "no", "off", "n", "f"})
_BOOL_WORDS: Final = "1/0, true/false, yes/no, on/off"
DEFAULT_OUTPUT_DIR: Final = "otm-runs"


class ConfigError(ValueError):
    """An invalid setting; the message names the key, its source and the allowed values."""

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        where = f" (from {source})" if source and source != "default" else ""
        super().__init__(f"otm setting {key!r}{where}: {message}")
        self.key = key
        self.source = source


# --------------------------------------------------------------------------- the model


def _parse_bool(value: Any) -> Any:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean; use {_BOOL_WORDS}")
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{value!r} is not a boolean; use {_BOOL_WORDS}")


def _split(value: str) -> list[str]:
    return [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p.strip()]


class Settings(BaseModel):
    """The resolved settings of otm. Read them with :func:`otm.settings`; change them with
    :func:`otm.configure`. ``source(name)`` tells where a value came from."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    disabled: bool = False
    """Kill switch: no patch is installed and every wrapper passes calls through."""
    providers: tuple[str, ...] | None = None
    """SDKs that ``otm.instrument()`` patches when called without arguments (None: all installed)."""
    auto_instrument: bool = False
    """``otm.configure()`` also calls ``otm.instrument()`` for ``providers``."""
    region: str | None = None
    """Default serving region for calls whose client does not fix one (e.g. ``FRA``, ``aws:us-east-1``)."""
    capture_prompts: bool = False
    """Keep prompt and completion text on the telemetry (off: privacy by default)."""
    request_usage: bool = False
    """Ask openai chat streams for usage (``stream_options.include_usage``)."""
    tags: dict[str, str] = {}
    """Tags added to every record (per-client and per-run tags win)."""
    output_dir: Path = Path(DEFAULT_OUTPUT_DIR)
    """Where experiments and reports write."""
    data_file: Path | None = None
    """A user data file (TOML or JSON) of models, accelerators, providers and regions."""
    log_level: str | None = None
    """Level of the ``otm`` logger; None leaves it to the application's logging config."""
    # -- live grid intensity (otm.grid; docs/reporting.md "Live grid intensity") --
    electricitymaps_token: SecretStr | None = None
    """Electricity Maps API token for live hourly grid intensity (never printed)."""
    electricitymaps_url: str | None = None
    """Base URL of the Electricity Maps API (None: the public v3 API)."""
    live_grid: bool = False
    """``otm report`` uses live hourly grid intensity without ``--live-grid``."""
    live_grid_timeout_s: float = 10.0
    """Hard limit, seconds, on fetching live grid intensity (retries included)."""
    grid_cache_dir: Path | None = None
    """Where fetched grid intensities are cached (None: the user cache directory)."""
    grid_zones: dict[str, str] = {}
    """Electricity Maps zone per otm region, overriding otm's mapping (``US-WA=US-NW-BPAT``)."""

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _config_file: Path | None = PrivateAttr(default=None)

    # -- validation: every message names the allowed values ---------------------

    @field_validator(
        "disabled", "auto_instrument", "capture_prompts", "request_usage", "live_grid", mode="before"
    )
    @classmethod
    def _bool(cls, v: Any) -> Any:
        return _parse_bool(v)

    @field_validator("providers", mode="before")
    @classmethod
    def _providers(cls, v: Any) -> Any:
        if v is None:
            return None
        items = _split(v) if isinstance(v, str) else v
        if not isinstance(items, Iterable) or isinstance(items, Mapping):
            # ValueError, not TypeError: pydantic reports only ValueErrors as validation errors
            raise ValueError(f"expected a list of providers from {', '.join(PROVIDERS)}")  # noqa: TRY004
        out: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise ValueError(  # noqa: TRY004
                    f"{item!r} is not a provider name; choose from {', '.join(PROVIDERS)}"
                )
            name = item.strip().lower()
            if name in ("all", "*"):
                return None
            name = _PROVIDER_ALIASES.get(name, name)
            if name not in PROVIDERS:
                raise ValueError(
                    f"unknown provider {item!r}; choose from {', '.join(PROVIDERS)} (or 'all')"
                )
            if name not in out:
                out.append(name)
        return tuple(out)

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            raise ValueError(
                "expected a region code such as 'FRA', 'FR', 'US-VA', 'aws:us-east-1' or 'gcp:europe-west9'"
            )
        return v.strip()

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, str):
            out: dict[str, str] = {}
            for pair in (p for p in v.split(",") if p.strip()):
                key, sep, value = pair.partition("=")
                if not sep or not key.strip():
                    raise ValueError(
                        f"{pair.strip()!r} is not key=value; write tags as 'k=v,k2=v2'"
                    )
                out[key.strip()] = value.strip()
            return out
        if not isinstance(v, Mapping):
            raise ValueError("expected a table of tags (key = value), or 'k=v,k2=v2' as text")  # noqa: TRY004
        out = {}
        for key, value in v.items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"tag names must be non-empty text, got {key!r}")
            if isinstance(value, (dict, list, tuple, set)) or value is None:
                raise ValueError(
                    f"tag {key!r} must be a plain value (text or number), got {value!r}"
                )
            out[key.strip()] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_dir(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            raise ValueError("expected a directory path")
        path = Path(v).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{str(path)!r} exists and is not a directory")
        return path

    @field_validator("data_file", mode="before")
    @classmethod
    def _data_file(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str) and not v.strip():
            return None
        path = Path(v).expanduser()
        if path.suffix.lower() not in (".toml", ".json"):
            raise ValueError(f"{str(path)!r}: a user data file is .toml or .json")
        if not path.is_file():
            raise ValueError(f"{str(path)!r} does not exist or is not a file")
        return path

    @field_validator("electricitymaps_token", mode="before")
    @classmethod
    def _token(cls, v: Any) -> Any:
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, str):
            raise ValueError("expected the API token as text")  # noqa: TRY004
        return v.strip()

    @field_validator("electricitymaps_url", mode="before")
    @classmethod
    def _url(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, str) or not v.strip().lower().startswith(("https://", "http://")):
            raise ValueError("expected an http(s) URL such as the API's base URL ending in /v3")
        return v.strip().rstrip("/")

    @field_validator("live_grid_timeout_s", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> Any:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{v!r} is not a number of seconds") from None
        if not (0 < f <= 600):
            raise ValueError("expected seconds > 0 and <= 600")
        return f

    @field_validator("grid_cache_dir", mode="before")
    @classmethod
    def _cache_dir(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        path = Path(v).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{str(path)!r} exists and is not a directory")
        return path

    @field_validator("grid_zones", mode="before")
    @classmethod
    def _zones(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, str):
            out: dict[str, str] = {}
            for pair in (p for p in v.split(",") if p.strip()):
                key, sep, value = pair.partition("=")
                if not sep or not key.strip() or not value.strip():
                    raise ValueError(
                        f"{pair.strip()!r} is not region=zone; write 'US-WA=US-NW-BPAT,FRA=FR'"
                    )
                out[key.strip()] = value.strip()
            return out
        if not isinstance(v, Mapping):
            raise ValueError("expected a table of region = zone, or 'US-WA=US-NW-BPAT' as text")  # noqa: TRY004
        bad = [k for k, z in v.items() if not isinstance(k, str) or not isinstance(z, str)]
        if bad:
            raise ValueError(f"zones must be text, got {bad[0]!r}")
        return {str(k).strip(): str(z).strip() for k, z in v.items()}

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, int) and not isinstance(v, bool):
            name = logging.getLevelName(v)
            if name in LOG_LEVELS:
                return name
        if isinstance(v, str) and v.strip().upper() in LOG_LEVELS:
            return v.strip().upper()
        if isinstance(v, str) and v.strip().upper() == "WARN":
            return "WARNING"
        raise ValueError(f"{v!r} is not a log level; choose from {', '.join(LOG_LEVELS)}")

    # -- provenance -------------------------------------------------------------

    def source(self, name: str) -> str:
        """Where ``name`` came from: ``argument``, ``env:OTM_...``, ``file:<path>`` or ``default``."""
        if name not in type(self).model_fields:
            raise KeyError(name)
        return self._sources.get(name, "default")

    @property
    def sources(self) -> dict[str, str]:
        """Every setting's source, in field order."""
        return {name: self.source(name) for name in type(self).model_fields}

    @property
    def config_file(self) -> Path | None:
        """The config file that was read (None when none was found)."""
        return self._config_file

    def explain(self) -> list[tuple[str, Any, str]]:
        """``(name, value, source)`` for every setting, in field order (what ``otm settings`` prints)."""
        return [(name, getattr(self, name), self.source(name)) for name in type(self).model_fields]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able values with their sources."""
        out: dict[str, Any] = {}
        for name, value, source in self.explain():
            if isinstance(value, SecretStr):
                value = "**********"  # a secret is never printed
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = {"value": value, "source": source}
        return out


FIELDS: Final = tuple(Settings.model_fields)


def env_var(name: str) -> str:
    """The environment variable of a setting: ``region`` -> ``OTM_REGION``."""
    return ENV_PREFIX + name.upper()


# --------------------------------------------------------------------------- config files


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, ValueError) as exc:  # TOMLDecodeError, UnicodeDecodeError (not UTF-8)
        raise ConfigError("config_file", f"cannot read {str(path)!r}: {exc}") from exc


def _table_of(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """The otm settings in a parsed file: ``[tool.otm]`` of a pyproject, else the top level."""
    if path.name == "pyproject.toml":
        tool = data.get("tool")
        table = tool.get("otm") if isinstance(tool, dict) else None
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError("config_file", f"[tool.otm] in {str(path)!r} must be a table")
        return table
    return data


def find_config_file(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest ``otm.toml``, or ``pyproject.toml`` holding ``[tool.otm]``, from ``start`` upward.

    In one directory ``otm.toml`` wins over ``pyproject.toml``; a pyproject
    without ``[tool.otm]`` is passed over and the search goes on upward.
    """
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "otm.toml"
        if _is_file(candidate):
            return candidate
        candidate = folder / "pyproject.toml"
        if _is_file(candidate):
            try:
                if _table_of(candidate, _read_toml(candidate)) is not None:
                    return candidate
            except ConfigError:
                # someone else's broken (or non-UTF-8) pyproject is not ours to report
                logging.getLogger("otm").debug("otm: passed over unreadable %s", candidate)
                continue
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a folder we may not look into
        return False


def _load_file(path: Path, on_invalid: Callable[[ConfigError], None]) -> dict[str, Any]:
    table = _table_of(path, _read_toml(path)) or {}
    out: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = str(raw_key).replace("-", "_").lower()
        if key not in FIELDS:
            on_invalid(
                ConfigError(
                    str(raw_key),
                    f"unknown key; allowed keys are {', '.join(FIELDS)}",
                    f"file:{path}",
                )
            )
            continue
        # Paths in a file are relative to that file's directory.
        if (
            key in ("output_dir", "data_file", "grid_cache_dir")
            and isinstance(value, str)
            and value.strip()
        ):
            p = Path(value).expanduser()
            value = p if p.is_absolute() else path.parent / p
        out[key] = value
    return out


# --------------------------------------------------------------------------- resolution


def _raise(err: ConfigError) -> None:
    raise err


def resolve(
    arguments: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    on_invalid: Callable[[ConfigError], None] | None = None,
    ignore: Iterable[tuple[str, str]] = (),
) -> Settings:
    """Resolve settings without applying them: arguments > environment > config file > defaults.

    ``config_file`` (or ``OTM_CONFIG_FILE``) names the file instead of the
    search; ``"none"`` skips config files altogether.

    Strict by default: an invalid value raises :class:`ConfigError`. With
    ``on_invalid``, what the environment or a file got wrong is passed to it
    instead and left out, as if unset (the next source, or the default,
    applies); an unreadable file is left out whole. Invalid arguments always
    raise. ``ignore`` lists ``(key, source)`` pairs to leave out as well.
    """
    report = on_invalid or _raise
    arguments = dict(arguments or {})
    env = os.environ if environ is None else environ
    skipped = set(ignore)
    for key in arguments:
        if key not in FIELDS:
            raise ConfigError(
                key, f"unknown setting; allowed keys are {', '.join(FIELDS)}", "argument"
            )

    file_source = "argument" if config_file is not None else None
    if config_file is None and env.get(CONFIG_FILE_ENV, "").strip():
        config_file = env[CONFIG_FILE_ENV].strip()
        file_source = f"env:{CONFIG_FILE_ENV}"
    path: Path | None = None
    if config_file is not None and str(config_file).strip().lower() != "none":
        path = Path(config_file).expanduser()
        if not path.is_absolute() and cwd is not None:
            path = Path(cwd) / path
        if not _is_file(path):
            err = ConfigError(
                "config_file", f"{str(path)!r} does not exist or is not a file", file_source
            )
            if file_source == "argument":
                raise err
            report(err)
            path, config_file = None, None  # as if OTM_CONFIG_FILE were not set: search
    if config_file is None:
        try:
            path = find_config_file(cwd)
        except OSError as exc:  # the working directory is gone, or unreadable
            report(ConfigError("config_file", f"cannot search for a config file: {exc}"))
            path = None
    from_file: dict[str, Any] = {}
    if path is not None:
        try:
            from_file = _load_file(path, report)
        except ConfigError as exc:
            if file_source == "argument":
                raise
            report(exc)
            path = None

    # every source's value of each key, in priority order
    candidates: dict[str, list[tuple[Any, str]]] = {}
    for key in FIELDS:
        var = env_var(key)
        found: list[tuple[Any, str]] = []
        if key in arguments:
            found.append((arguments[key], "argument"))
        if env.get(var, "").strip():
            found.append((env[var].strip(), f"env:{var}"))
        if key in from_file:
            found.append((from_file[key], f"file:{path}"))
        found = [(v, src) for v, src in found if (key, src) not in skipped]
        if cwd is not None and key in ("output_dir", "data_file", "grid_cache_dir"):
            # relative paths from the environment or arguments follow cwd
            found = [(_under(cwd, v) if not src.startswith("file:") else v, src) for v, src in found]
        if found:
            candidates[key] = found

    while True:
        values = {key: found[0][0] for key, found in candidates.items()}
        sources = {key: found[0][1] for key, found in candidates.items()}
        try:
            resolved = Settings.model_validate(values)
            break
        except ValidationError as exc:
            failed: set[str] = set()
            for detail in exc.errors():
                key = str(detail["loc"][0]) if detail.get("loc") else "?"
                if key in failed:  # one value, several complaints: drop it once
                    continue
                failed.add(key)
                msg = str(detail.get("msg", exc)).removeprefix("Value error, ")
                problem = ConfigError(key, msg, sources.get(key, "default"))
                if on_invalid is None or sources.get(key) in (None, "argument"):
                    raise problem from None
                report(problem)
                candidates[key].pop(0)
                if not candidates[key]:
                    del candidates[key]
    resolved._sources.update(sources)
    resolved._config_file = path
    return resolved


def _under(cwd: str | os.PathLike[str], v: Any) -> Any:
    if isinstance(v, (str, os.PathLike)) and str(v).strip():
        p = Path(v).expanduser()
        return p if p.is_absolute() else Path(cwd) / p
    return v


# --------------------------------------------------------------------------- the process state


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.arguments: dict[str, Any] = {}
        self.config_file: str | os.PathLike[str] | None = None
        self.current: Settings | None = None
        self.loaded_data: tuple[Path, float] | None = None
        self.reported: set[str] = set()


_state = _State()
_UNSET: Any = object()


def _load_data_file(s: Settings) -> None:
    """Load and validate the user data file once (again only if it changed)."""
    path = s.data_file
    if path is None:
        return
    try:
        key = (path.resolve(), path.stat().st_mtime)
    except OSError as exc:
        raise ConfigError(
            "data_file", f"cannot read {str(path)!r}: {exc}", s.source("data_file")
        ) from exc
    if _state.loaded_data == key:
        return
    from otm import data

    try:
        data.load_user_data(path)
    except ConfigError:
        raise
    except Exception as exc:  # validation errors of the rows, parse errors
        raise ConfigError(
            "data_file", f"{str(path)!r} is not valid: {exc}", s.source("data_file")
        ) from exc
    _state.loaded_data = key


def _check_region(s: Settings) -> None:
    """Reject a region the data layer does not know (when the data layer can tell)."""
    if s.region is None:
        return
    try:
        from otm import data
    except ImportError:
        return
    finder = getattr(data, "find_region", None)
    if finder is None:
        return
    try:
        found = finder(s.region)
    except (KeyError, LookupError, ValueError) as exc:
        raise ConfigError("region", str(exc).strip("'\""), s.source("region")) from None
    if found is None:
        hint = ""
        suggest = getattr(data, "suggest", None)
        if suggest is not None:
            try:
                close = list(suggest("region", s.region))[:5]
            except Exception:  # noqa: BLE001 - suggestions are a courtesy
                close = []
            if close:
                hint = f"; close matches: {', '.join(map(str, close))}"
        raise ConfigError("region", f"unknown region {s.region!r}{hint}", s.source("region"))


def _apply(s: Settings) -> None:
    """Make ``s`` effective: the user data file, the otm logger; then tell subscribers.

    Settings flow one way: this module never writes into other layers. Capture
    reads the snapshot (:func:`current`) on every call and subscribes with
    :func:`on_change` to act on the kill switch.
    """
    if not s.disabled:
        # The kill switch is what an operator reaches for when otm's own
        # configuration is broken: honour it before checking anything else.
        _load_data_file(s)
        _check_region(s)
        if s.log_level is not None:
            logging.getLogger("otm").setLevel(s.log_level)
    _notify(s)


def configure(
    *,
    disabled: bool | str = _UNSET,
    providers: str | Iterable[str] | None = _UNSET,
    auto_instrument: bool | str = _UNSET,
    region: str | None = _UNSET,
    capture_prompts: bool | str = _UNSET,
    request_usage: bool | str = _UNSET,
    tags: Mapping[str, str] | str | None = _UNSET,
    output_dir: str | os.PathLike[str] = _UNSET,
    data_file: str | os.PathLike[str] | None = _UNSET,
    log_level: str | int | None = _UNSET,
    electricitymaps_token: str | None = _UNSET,
    electricitymaps_url: str | None = _UNSET,
    live_grid: bool | str = _UNSET,
    live_grid_timeout_s: float | str = _UNSET,
    grid_cache_dir: str | os.PathLike[str] | None = _UNSET,
    grid_zones: Mapping[str, str] | str | None = _UNSET,
    config_file: str | os.PathLike[str] | None = _UNSET,
) -> Settings:
    """Set otm's settings and apply them now; returns the resolved :class:`Settings`.

    Arguments win over environment variables, which win over the config file,
    which wins over defaults. Arguments are remembered: a later call changes
    only what it names (``reset()`` forgets them). An argument set to ``None``
    explicitly overrides the environment and file with "none". Raises
    :class:`ConfigError` for an invalid value, leaving the previous settings in
    force. Invalid values from the environment or a config file do not raise:
    each is logged once as an error and ignored (see :func:`check`).
    """
    given: dict[str, Any] = {
        k: v
        for k, v in {
            "disabled": disabled,
            "providers": providers,
            "auto_instrument": auto_instrument,
            "region": region,
            "capture_prompts": capture_prompts,
            "request_usage": request_usage,
            "tags": tags,
            "output_dir": output_dir,
            "data_file": data_file,
            "log_level": log_level,
            "electricitymaps_token": electricitymaps_token,
            "electricitymaps_url": electricitymaps_url,
            "live_grid": live_grid,
            "live_grid_timeout_s": live_grid_timeout_s,
            "grid_cache_dir": grid_cache_dir,
            "grid_zones": grid_zones,
        }.items()
        if v is not _UNSET
    }
    chosen = given.get("providers")
    if isinstance(chosen, Iterable) and not isinstance(chosen, str):
        given["providers"] = list(chosen)
    with _state.lock:
        arguments = {**_state.arguments, **given}
        cfg_file = _state.config_file if config_file is _UNSET else config_file
        resolved = _resolve_or_kill(arguments, cfg_file)
        _apply(resolved)
        _state.arguments = arguments
        _state.config_file = cfg_file
        _state.current = resolved
    if resolved.auto_instrument and not resolved.disabled:
        from otm.capture import instrument  # the public entry point, nothing below it

        instrument(list(resolved.providers) if resolved.providers is not None else None)
    return resolved


def _report(problem: ConfigError) -> None:
    """Log an ignored setting, once per message (configure() may resolve the same again)."""
    text = str(problem)
    with _state.lock:
        if text in _state.reported:
            return
        _state.reported.add(text)
    logging.getLogger("otm").error(
        "%s; ignored it (otm goes on without it; `otm settings` checks the configuration)", text
    )


def _settle(
    arguments: Mapping[str, Any], config_file: Any, *, strict: bool = False
) -> Settings:
    """Resolve, load the data file and check the region: all that can be invalid.

    Strict: any invalid value raises. Otherwise (the default) invalid values
    from the environment or a file are reported and left out (the next source
    applies), and only invalid arguments raise.
    """
    ignore: set[tuple[str, str]] = set()
    while True:
        s = resolve(
            arguments, config_file=config_file, on_invalid=None if strict else _report, ignore=ignore
        )
        if s.disabled:
            return s  # the kill switch is honoured before checking anything else
        try:
            _load_data_file(s)
            _check_region(s)
            return s
        except ConfigError as problem:
            source = s.source(problem.key)
            if strict or source in ("argument", "default"):
                raise
            _report(problem)
            ignore.add((problem.key, source))


def check(*, config_file: str | os.PathLike[str] | None = None) -> Settings:
    """Resolve the settings strictly, as ``otm settings`` does; raise :class:`ConfigError` if any is invalid.

    Loads the user data file (like :func:`configure`) but applies nothing else.
    """
    return _settle({}, config_file, strict=True)


def _resolve_or_kill(arguments: Mapping[str, Any], config_file: Any) -> Settings:
    """Resolve (failing open on the environment and files); but if invalid arguments
    make that fail while the kill switch is on, honour the switch anyway."""
    try:
        return _settle(arguments, config_file)
    except ConfigError:
        killed = arguments.get("disabled")
        if killed is None:
            killed = os.environ.get(env_var("disabled"), "")
        try:
            if _parse_bool(killed) is True:
                from otm._log import logger

                logger.warning(
                    "otm: disabled by the kill switch; other settings are invalid and were ignored"
                )
                fallback = Settings(disabled=True)
                fallback._sources["disabled"] = (
                    "argument" if "disabled" in arguments else "env:OTM_DISABLED"
                )
                return fallback
        except ValueError:
            pass
        raise


def ensure_configured() -> Settings:
    """The settings in force, resolving and applying them on first use (cheap afterwards).

    ``otm.instrument()`` calls this, so ``OTM_DISABLED=1`` and the other
    environment settings hold even when ``configure()`` is never called.
    """
    current = _state.current
    if current is not None:
        return current
    with _state.lock:
        if _state.current is None:
            resolved = _resolve_or_kill(_state.arguments, _state.config_file)
            _apply(resolved)
            _state.current = resolved
        return _state.current


def settings() -> Settings:
    """The resolved settings (each value with ``.source(name)``); resolved on first call."""
    return ensure_configured()


def reset() -> None:
    """Forget configure() arguments and the resolved settings (tests, notebooks).

    The next :func:`settings` (or :func:`current`) call resolves from the
    environment and files again.
    """
    with _state.lock:
        _state.arguments = {}
        _state.config_file = None
        _state.current = None
        _state.loaded_data = None
        _state.reported = set()


# --------------------------------------------------------------------------- what other layers read
#
# One snapshot, read (never written) by capture on every call and by whoever
# needs a configured default; one function for the precedence of region and
# tags, so capture and the estimator cannot disagree.

_subscribers: list[Callable[[Settings], None]] = []


def on_change(callback: Callable[[Settings], None]) -> None:
    """Call ``callback(settings)`` whenever settings are applied (first use, ``configure``).

    How a layer that reads the snapshot learns of a change it must act on at
    once (capture: the kill switch removes its patches), without this module
    importing it.
    """
    if callback not in _subscribers:
        _subscribers.append(callback)


def _notify(s: Settings) -> None:
    for callback in tuple(_subscribers):
        try:
            callback(s)
        except Exception as exc:  # a subscriber's failure is its own, never configure()'s
            from otm._log import log_once

            log_once(f"config subscriber {getattr(callback, '__qualname__', callback)!s}", exc)


def current() -> Settings:
    """The settings snapshot in force: one attribute read once resolved (resolves on first use)."""
    s = _state.current
    return s if s is not None else ensure_configured()


def default_region() -> str | None:
    """The configured default region (``OTM_REGION``, ``configure(region=...)``, a config file)."""
    return current().region


class Effective(NamedTuple):
    region: str | None
    tags: dict[str, str]


def effective(
    *,
    region: str | None = None,
    tags: Iterable[Mapping[str, str] | None] = (),
    settings: Settings | None = None,
) -> Effective:
    """The region and tags a record (or an estimate) is made under: the one precedence rule.

    Region: the one given (by the call or its client) wins over the configured
    default. Tags: the configured defaults, then each mapping of ``tags`` in
    order, later ones winning (capture passes the runs a call was made in,
    outer to inner, then the client's). ``settings`` is the snapshot to use
    (capture passes the one its call started under); default :func:`current`.
    """
    s = current() if settings is None else settings
    merged: dict[str, str] | None = None
    for layer in tags:
        if layer:
            merged = {**(s.tags if merged is None else merged), **layer}
    return Effective(region or s.region, dict(s.tags) if merged is None else merged)

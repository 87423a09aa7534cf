"""The ``otm`` command line: ``otm demo | estimate | report | models | whatif | settings``.

Each subcommand lives in its own module exposing ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int``. Modules are imported
only when the CLI runs, never on ``import otm``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

_COMMANDS = (
    "otm.cli.demo_cmd",
    "otm.cli.estimate_cmd",
    "otm.cli.report_cmd",
    "otm.cli.whatif_cmd",
    "otm.cli.models_cmd",
    "otm.cli.settings_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    from otm import __version__

    parser = argparse.ArgumentParser(
        prog="otm",
        description="Energy, carbon and water of LLM calls, with uncertainty ranges.",
    )
    parser.add_argument("--version", action="version", version=f"otm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subcommand not built yet
                continue
            raise
        module.register(sub)
    return parser


class UsageError(Exception):
    """A mistake in what the user asked for: printed as ``otm COMMAND: message``, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    handler = _plain_logging()
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise  # a bug in otm: the traceback is what a report needs
        print(f"otm {args.command}: {message}", file=sys.stderr)
        return 2
    finally:
        if handler is not None:
            import logging

            logging.getLogger("otm").removeHandler(handler)


def user_error(exc: BaseException) -> str | None:
    """What to tell the user about ``exc`` if it is their mistake (a bad value, a missing
    file, an unknown name), else None."""
    from pydantic import ValidationError

    from otm.data import UnknownIdError

    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()))
            got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
            parts.append(f"{where}: {str(err.get('msg', '')).removeprefix('Value error, ')}{got}")
        return "invalid value: " + "; ".join(parts)
    if isinstance(exc, UnknownIdError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


def _plain_logging() -> Any:
    """Show otm's log lines on stderr one line each, without tracebacks, while a command
    runs (the CLI's user reads them; a traceback there reads as a crash). With
    OTM_LOG_LEVEL=DEBUG, or when the application configured the otm logger, nothing changes."""
    import logging
    import os

    log = logging.getLogger("otm")
    if log.handlers or os.environ.get("OTM_LOG_LEVEL", "").strip().upper() == "DEBUG":
        return None

    class _OneLine(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            exc = record.exc_info[1] if record.exc_info else None
            if exc is None:
                return super().format(record)
            text = super().format(logging.makeLogRecord({**record.__dict__, "exc_info": None}))
            return text if str(exc) in text else f"{text} ({type(exc).__name__}: {exc})"

    class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
        @property  # type: ignore[override]
        def stream(self) -> Any:  # whatever sys.stderr is now (tests swap it)
            return sys.stderr

        @stream.setter
        def stream(self, value: Any) -> None:
            pass

    handler = _Stderr()
    handler.setFormatter(_OneLine("%(message)s"))
    log.addHandler(handler)
    return handler

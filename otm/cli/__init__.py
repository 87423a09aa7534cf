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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

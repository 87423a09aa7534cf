"""``otm settings``: the resolved settings and where each value came from.

Exit status 0 when the settings are valid, 2 (with the message on stderr) when
one is not, so ``otm settings`` doubles as a check in CI or a container start.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("settings", help="print the resolved settings and where each came from")
    p.add_argument("--json", action="store_true", help="print {name: {value, source}} as JSON")
    p.add_argument(
        "--config-file",
        default=None,
        metavar="PATH",
        help="read this config file instead of searching for otm.toml / pyproject.toml ('none': no file)",
    )
    p.set_defaults(func=run)


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from otm.config import ConfigError, check

    try:
        # strict, unlike the rest of otm (which logs and ignores an invalid
        # value): loads and validates the user data file and the region too
        resolved = check(config_file=args.config_file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        out = {
            "config_file": None if resolved.config_file is None else str(resolved.config_file),
            "settings": resolved.to_json(),
        }
        print(json.dumps(out, indent=2))
        return 0
    from otm.cli._table import print_table

    where = resolved.config_file if resolved.config_file is not None else "none found"
    rows = [
        (name, "all installed" if name == "providers" and value is None else _show(value), source)
        for name, value, source in resolved.explain()
    ]
    print_table(f"otm settings (config file: {where})", ("setting", "value", "source"), rows)
    return 0

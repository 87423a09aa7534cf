"""Terminal tables for the CLI: rich when installed, aligned plain text otherwise."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        _print_plain(title, headers, rows)
        return
    width = max(shutil.get_terminal_size((160, 24)).columns, 120)
    # Text, not markup: a served model name like "[link=...]" is shown as it is
    table = Table(title=Text(title), title_justify="left", header_style="bold")
    for h in headers:
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(c)) for c in row))
    Console(width=width, file=sys.stdout).print(table)


def _print_plain(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(title)
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))

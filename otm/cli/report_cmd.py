"""``otm report LOG.jsonl``: reports from a log, streamed (any size, bounded memory)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

PROGRESS_MIN_BYTES = 8 * 1024 * 1024
"""Logs smaller than this read in well under a second: no progress bar."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="summarise a JSONL log and write HTML, CSV, Markdown, LaTeX or JSON reports",
        description=(
            "Read an otm log (or an experiment directory, or a file of OTM-style telemetry lines) "
            "one line at a time and write the reports asked for. With no output option, print a "
            "summary to the terminal."
        ),
    )
    p.add_argument(
        "log", help="records.jsonl, an experiment directory, or a .jsonl(.gz) of telemetry"
    )
    p.add_argument("--html", metavar="FILE", help="self-contained HTML report with charts")
    p.add_argument("--csv", metavar="FILE", help="one row per request")
    p.add_argument("--md", metavar="FILE", help="Markdown summary")
    p.add_argument(
        "--latex", metavar="FILE", help="LaTeX (booktabs) table of the per-model figures"
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        nargs="?",
        const="-",
        help="JSON summary (to FILE, or to standard output without one)",
    )
    p.add_argument(
        "--figures",
        metavar="DIR",
        help="publication figures (PNG and PDF) in DIR; needs matplotlib (extra 'plot')",
    )
    p.add_argument("--name", help="title of the report (default: the experiment named in the log)")
    p.add_argument(
        "--region", help="default region for lines without one; they are re-estimated with it"
    )
    p.add_argument(
        "--no-prompts", action="store_true", help="leave captured prompts out of the CSV"
    )
    p.add_argument(
        "--live-grid",
        dest="live_grid",
        action="store_true",
        default=None,
        help=(
            "re-estimate carbon with the hourly grid intensity of each call's zone from "
            "Electricity Maps (needs OTM_ELECTRICITYMAPS_TOKEN and the 'grid' extra); "
            "calls it cannot cover keep the static yearly figure, with the reason"
        ),
    )
    p.add_argument(
        "--no-live-grid",
        dest="live_grid",
        action="store_false",
        help="static yearly grid figures even when the live_grid setting is on",
    )
    p.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show progress (default: on large logs when stderr is a terminal)",
    )
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from otm.report.formats import render_json, write_reports
    from otm.report.reader import LogReader, resolve_log

    path = resolve_log(args.log)
    if not path.is_file():
        print(f"otm report: no such log: {path}", file=sys.stderr)
        return 2

    live = args.live_grid if args.live_grid is not None else _live_grid_setting()
    reader: LogReader
    if live:
        try:
            import tenacity  # noqa: F401
        except ImportError:
            print(
                "otm report: --live-grid needs tenacity: pip install 'otm[grid]'", file=sys.stderr
            )
            return 2
        from otm.report.live_grid import LiveGridReader

        reader = LiveGridReader(path, region=args.region)
    else:
        reader = LogReader(path, region=args.region)
    show = (
        args.progress
        if args.progress is not None
        else (sys.stderr.isatty() and reader.size >= PROGRESS_MIN_BYTES)
    )
    json_to_stdout = args.json == "-"
    with _progress(reader.size, enabled=bool(show)) as update:
        reader.on_progress = update
        summary = write_reports(
            reader,
            html=args.html,
            csv=args.csv,
            md=args.md,
            latex=args.latex,
            json=None if json_to_stdout else args.json,
            name=args.name,
            include_prompts=not args.no_prompts,
        )
    if reader.truncated:
        print(
            f"otm report: the last line of {path} was partial (an interrupted write) and was skipped",
            file=sys.stderr,
        )
    if reader.skipped:
        print(f"otm report: skipped {reader.skipped} unreadable lines", file=sys.stderr)
    result = getattr(reader, "result", None)
    if result is not None:
        _print_live_grid(result)

    if json_to_stdout:
        sys.stdout.write(render_json(summary))
    if args.figures:
        try:
            from otm.report.figures import save_figures
        except ImportError as exc:
            print(f"otm report: {exc}", file=sys.stderr)
            return 2
        for path in save_figures(summary, args.figures):
            print(f"figure written to {path}", file=sys.stderr)
    wrote = [
        (k, v)
        for k, v in (
            ("HTML", args.html),
            ("CSV", args.csv),
            ("Markdown", args.md),
            ("LaTeX", args.latex),
            ("JSON", None if json_to_stdout else args.json),
        )
        if v
    ]
    if not wrote and not json_to_stdout and not args.figures:
        _print_summary(summary)
    for kind, dest in wrote:
        print(f"{kind} report written to {dest}", file=sys.stderr)
    return 0


def _live_grid_setting() -> bool:
    try:
        from otm.config import settings

        return bool(settings().live_grid)
    except Exception:  # an invalid setting is `otm settings`' to report, not the report's
        return False


def _print_live_grid(result: Any) -> None:
    zones = ", ".join(f"{z} {n}" for z, n in result.zones.most_common())
    print(
        f"otm report: live grid intensity (Electricity Maps, lifecycle, hourly) for "
        f"{result.live} of {result.total} requests" + (f" ({zones})" if zones else ""),
        file=sys.stderr,
    )
    for reason, n in result.fallbacks.most_common():
        print(f"  {n} kept the static yearly figure: {reason}", file=sys.stderr)


# ---------------------------------------------------------------------- terminal output


def _print_summary(summary: Any) -> None:
    try:
        import rich  # noqa: F401
    except ImportError:
        from otm.report.formats import render_text

        sys.stdout.write(render_text(summary))
        return
    _print_rich(summary)


def _print_rich(s: Any) -> None:
    import shutil

    from rich.console import Console

    from otm.report.display import summary_rich

    # Not a terminal (CI logs, pipes): rich would fall back to 80 columns and
    # cut model names; use the real width, at least 120.
    console = Console(width=max(shutil.get_terminal_size((120, 24)).columns, 120))
    console.print(summary_rich(s))


# ---------------------------------------------------------------------- progress


class _progress:
    """Context manager yielding ``update(bytes_read)``: rich bar, plain counter, or nothing."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda done: None
        try:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("reading log"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                transient=True,
                console=_stderr_console(),
            )
            self._bar.start()
            self._task = self._bar.add_task("read", total=self.total)
            return lambda done: self._bar.update(self._task, completed=done)
        except ImportError:
            total = max(self.total, 1)

            def update(done: int) -> None:
                sys.stderr.write(f"\rreading log: {100 * done / total:5.1f}%")
                sys.stderr.flush()

            return update

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.stop()
        else:
            sys.stderr.write("\n")


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)

"""``otm report LOG.jsonl``: reports from a log, streamed (any size, bounded memory)."""

from __future__ import annotations

import argparse
import gc
import sys
import time
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
    p.add_argument(
        "--html", metavar="FILE", help="self-contained HTML report with charts ('-': stdout)"
    )
    p.add_argument("--csv", metavar="FILE", help="one row per request ('-': stdout)")
    p.add_argument("--md", metavar="FILE", help="Markdown summary ('-': stdout)")
    p.add_argument(
        "--latex",
        metavar="FILE",
        help="LaTeX (booktabs) table of the per-model figures ('-': stdout)",
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
        help=(
            "always show progress (default: on logs over 8 MiB; a bar on a terminal, "
            "a line every 10%% otherwise)"
        ),
    )
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from otm.cli import UsageError
    from otm.cli._args import check_output, check_region, note_unknown_models
    from otm.report.formats import write_reports
    from otm.report.reader import LogReader, resolve_log

    path = resolve_log(args.log)
    if not path.is_file():
        raise UsageError(f"no such log: {path}")
    check_region(args.region)
    outputs = {"--html": args.html, "--csv": args.csv, "--md": args.md, "--latex": args.latex}
    outputs["--json"] = args.json
    for flag, dest in outputs.items():
        check_output(dest, flag)
    if sum(1 for dest in outputs.values() if dest == "-") > 1:
        raise UsageError("only one report can go to standard output ('-')")

    live = args.live_grid if args.live_grid is not None else _live_grid_setting()
    reader: LogReader
    if live:
        try:
            import tenacity  # noqa: F401
        except ImportError:
            raise UsageError("--live-grid needs tenacity: pip install 'otm[grid]'") from None
        from otm.report.live_grid import LiveGridReader

        reader = LiveGridReader(path, region=args.region)
    else:
        reader = LogReader(path, region=args.region)
    # A report is a short-lived process that allocates a few objects per line:
    # keep the garbage collector off everything imported so far (~10 % faster).
    gc.collect()
    gc.freeze()
    show = args.progress if args.progress is not None else reader.size >= PROGRESS_MIN_BYTES
    with _progress(reader.size, enabled=bool(show), name=path.name, lines=lambda: reader.lines) as update:
        reader.on_progress = update
        summary = write_reports(
            reader,
            html=args.html,
            csv=args.csv,
            md=args.md,
            latex=args.latex,
            json=args.json,
            name=args.name,
            include_prompts=not args.no_prompts,
        )
    if reader.ended_early:
        print(
            f"otm report: {path} ends early ({reader.ended_early}); "
            f"reported the {reader.lines} lines before the damage",
            file=sys.stderr,
        )
    elif reader.truncated:
        print(
            f"otm report: the last line of {path} was partial (an interrupted write) and was skipped",
            file=sys.stderr,
        )
    if reader.skipped:
        print(f"otm report: skipped {reader.skipped} unreadable lines", file=sys.stderr)
    result = getattr(reader, "result", None)
    if result is not None:
        _print_live_grid(result)

    note_unknown_models("report", [m.model for m in summary.by_model if m.model != "(other)"])
    if args.figures:
        try:
            from otm.report.figures import save_figures
        except ImportError as exc:
            print(f"otm report: {exc}", file=sys.stderr)
            return 2
        for path in save_figures(summary, args.figures):
            print(f"figure written to {path}", file=sys.stderr)
    asked = [
        (k, v)
        for k, v in (
            ("HTML", args.html),
            ("CSV", args.csv),
            ("Markdown", args.md),
            ("LaTeX", args.latex),
            ("JSON", args.json),
        )
        if v
    ]
    if not asked and not args.figures:
        _print_summary(summary)
    for kind, dest in asked:
        if dest != "-":
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
    """Context manager yielding ``update(bytes_read)``: a rich bar on a terminal; otherwise
    (CI logs, pipes, no rich) one plain line per 10 % read, or per 10 s, whichever comes first."""

    EVERY_S = 10.0

    def __init__(
        self, total: int, *, enabled: bool, name: str = "log", lines: Callable[[], int] = lambda: 0
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.name = name
        self.lines = lines
        self._bar: Any = None
        self._task: Any = None
        self._next_pct = 10
        self._last = 0.0

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda done: None
        if sys.stderr.isatty():
            try:
                return self._rich()
            except ImportError:
                pass
        self._last = time.monotonic()
        return self._plain

    def _rich(self) -> Callable[[int], None]:
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

    def _plain(self, done: int) -> None:
        pct = 100.0 * done / max(self.total, 1)
        now = time.monotonic()
        if pct < self._next_pct and now - self._last < self.EVERY_S:
            return
        while self._next_pct <= pct:
            self._next_pct += 10
        self._last = now
        print(
            f"otm report: read {pct:.0f}% of {self.name} ({done / 1e6:.1f} of "
            f"{self.total / 1e6:.1f} MB, {self.lines():,} lines)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)

"""Checks of command-line values shared by the commands: one message per mistake, exit 2.

Numbers are checked by argparse types (a bad one is argparse's own exit 2);
names of regions and accelerators must resolve, else the user is told the
close matches the data layer knows; an unknown *model* is a note, not an
error, because otm estimates models it has no row for (from a size class).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def count(s: str) -> int:
    """A whole number >= 0 (token counts)."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def positive_int(s: str) -> int:
    """A whole number >= 1 (accelerators, record limits)."""
    v = count(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def seconds(s: str) -> float:
    """A finite number of seconds >= 0."""
    v = _float(s)
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {s}")
    return v


def positive(s: str) -> float:
    """A finite number > 0 (speeds)."""
    v = _float(s)
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {s}")
    return v


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None


def check_request(args: argparse.Namespace) -> None:
    """The token counts and timings describing one request fit together (``estimate``, ``whatif``)."""
    from otm.cli import UsageError

    if args.cached_tokens > args.input_tokens:
        raise UsageError("--cached-tokens cannot exceed --input-tokens")
    if getattr(args, "reasoning_tokens", 0) > args.output_tokens:
        raise UsageError("--reasoning-tokens cannot exceed --output-tokens")
    if args.ttft is not None and args.duration is not None and args.ttft > args.duration:
        raise UsageError(
            f"--ttft ({args.ttft:g} s) is longer than --duration ({args.duration:g} s): "
            "the first token cannot come after the last"
        )


def _unknown(kind: str, name: str, flag: str) -> str:
    from otm.data import suggest

    close = suggest(kind, name)  # type: ignore[arg-type]
    hint = f"; close matches: {', '.join(close)}" if close else ""
    return f"{flag}: unknown {kind} {name!r}{hint}"


def check_region(code: str | None, flag: str = "--region") -> None:
    """Raise :class:`~otm.cli.UsageError` unless ``code`` is a region otm knows (None passes)."""
    from otm.cli import UsageError
    from otm.data import find_region

    if code is not None and find_region(code) is None:
        raise UsageError(_unknown("region", code, flag))


def check_accelerator(name: str | None, flag: str = "--accelerator") -> None:
    from otm.cli import UsageError
    from otm.data import find_accelerator

    if name is not None and find_accelerator(name) is None:
        raise UsageError(_unknown("accelerator", name, flag))


def note_unknown_models(command: str, names: list[str], provider: str | None = None) -> None:
    """Say on stderr which models otm has no row for (they are estimated from a size class)."""
    from otm.data import find_model, suggest

    unknown = [n for n in dict.fromkeys(names) if n and find_model(n, provider) is None]
    for name in unknown[:10]:
        close = suggest("model", name)
        hint = f" (close matches: {', '.join(close)})" if close else ""
        print(
            f"otm {command}: model {name!r} is not in otm's data{hint}; "
            "estimated from a size class guessed from its name (widest range)",
            file=sys.stderr,
        )
    if len(unknown) > 10:
        print(f"otm {command}: ... and {len(unknown) - 10} more unknown models", file=sys.stderr)


def check_output(path: str | None, flag: str) -> None:
    """Fail before any work when an output file cannot be created (``-`` is standard output)."""
    from otm.cli import UsageError

    if path is None or path == "-":
        return
    parent = Path(path).expanduser().parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: the directory {str(parent)!r} does not exist")
    if Path(path).is_dir():
        raise UsageError(f"{flag} {path}: is a directory")

"""What a server sent, made valid before it becomes Telemetry: counts and text.

OpenAI-compatible servers are not all careful: usage may arrive as text
(``"12"``), negative, fractional, ``null`` or absurd, and a served model name
or a streamed text may hold lone UTF-16 surrogates (a split emoji). None of
that may cost the record: a usable value is coerced, an unusable one is
treated as missing (the count is then estimated from text, and flagged), and
either way a note says what was repaired (``Telemetry.capture_notes``).
"""

from __future__ import annotations

import math
from typing import Any

MAX_TOKENS = 1_000_000_000
"""More tokens than any context holds: a larger count is garbage, not a measurement."""


def count(value: Any, name: str, notes: list[str]) -> int | None:
    """A token count as a non-negative int, or None (missing or unusable; noted)."""
    if type(value) is int and 0 <= value < MAX_TOKENS:  # the usual case, first
        return value
    if value is None:
        return None
    raw = value
    if isinstance(value, bool):
        value = None
    elif isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            value = None
    elif isinstance(value, int):
        value = float(value) if abs(value) < 10 * MAX_TOKENS else math.inf
    elif not isinstance(value, float):
        try:
            value = float(value)
        except (TypeError, ValueError, OverflowError):
            value = None
    if value is None or not math.isfinite(value) or value < 0 or value >= MAX_TOKENS:
        notes.append(f"{name}={_show(raw)} is not a token count: ignored")
        return None
    n = round(value)
    if n != value or not isinstance(raw, (int, float)):
        notes.append(f"{name}={_show(raw)} read as {n}")
    return n


def text(value: Any, name: str, notes: list[str]) -> str | None:
    """Text that can be written as UTF-8: surrogate pairs joined, lone ones replaced (noted)."""
    if value is None:
        return None
    if not isinstance(value, str):
        notes.append(f"{name} was {type(value).__name__}, not text")
        value = str(value)
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    # A pair split across chunks becomes one character again; a lone half becomes U+FFFD.
    fixed = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if fixed != value:
        try:
            fixed.encode("utf-8")
        except UnicodeEncodeError:  # pragma: no cover - decode("utf-16") yields valid text
            fixed = fixed.encode("utf-8", "replace").decode("utf-8")
        notes.append(f"{name} held invalid Unicode: repaired")
    return fixed


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."

"""Reporting: tracked runs, experiments, their durable logs and the reports made from them.

    @otm.track
    def answer(q): ...

    with otm.experiment("ablation") as exp:
        answer("...")
    exp.summary().sentence

``otm.track`` and ``otm.experiment`` live in the submodules of the same names
(``otm.report.track``, ``otm.report.experiment``). Reports can also be made
later from any log: ``otm report LOG.jsonl --html r.html`` or
:func:`write_reports`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "last_run": "otm.report.track",
    "Run": "otm.report.track",
    "Experiment": "otm.report.experiment",
    "Summary": "otm.report.summary",
    "Totals": "otm.report.summary",
    "summarize": "otm.report.summary",
    "read_log": "otm.report.reader",
    "LogReader": "otm.report.reader",
    "write_reports": "otm.report.formats",
    "render_html": "otm.report.html",
}

__all__ = [
    "Experiment",
    "LogReader",
    "Run",
    "Summary",
    "Totals",
    "last_run",
    "read_log",
    "render_html",
    "summarize",
    "write_reports",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otm.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

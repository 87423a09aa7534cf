"""``otm models``: the models otm knows, their sizes (published or estimated) and prices.

otm models --search llama
otm models --json
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="list the models otm knows (size, architecture, price)")
    p.add_argument(
        "--search", "-s", default=None, help="substring of id, name, developer or provider"
    )
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def _params(span: Any) -> str:
    from otm.units import fmt_span, sig

    if span.low == span.high:
        return sig(span.value, 4, trim=True)
    return f"{sig(span.value, 4, trim=True)} ({fmt_span(span.low, span.high, 4, trim=True)})"


def _price(x: float) -> str:
    from otm.units import sig

    return "$" + sig(x, 4, trim=True)


def _matches(m: Any, q: str) -> bool:
    q = q.lower()
    hay = [m.id, m.name, m.developer, m.provider, *m.aliases]
    return any(q in str(h).lower() for h in hay)


def run(args: argparse.Namespace) -> int:
    from otm.data import all_models

    models = sorted(all_models(), key=lambda m: (m.developer.lower(), m.id))
    if args.search:
        models = [m for m in models if _matches(m, args.search)]
    if args.json:
        out = [
            {
                "id": m.id,
                "name": m.name,
                "developer": m.developer,
                "provider": m.provider,
                "architecture": m.architecture,
                "total_params_b": m.total_params_b.model_dump(),
                "active_params_b": m.active_params_b.model_dump(),
                "size_estimated": m.estimated,
                "precision": m.precision,
                "open_weights": m.open_weights,
                "price": None if m.price is None else m.price.model_dump(),
            }
            for m in models
        ]
        print(json.dumps(out, indent=2))
        return 0
    from otm.cli._table import print_table

    rows = []
    for m in models:
        est = " est." if m.estimated else ""
        price = "" if m.price is None else f"{_price(m.price.input_per_m)} / {_price(m.price.output_per_m)}"
        rows.append(
            (
                m.id,
                m.developer,
                _params(m.total_params_b) + est,
                _params(m.active_params_b) + est,
                m.architecture,
                price,
            )
        )
    title = f"{len(rows)} models" + (f" matching {args.search!r}" if args.search else "")
    print_table(
        title,
        ("id", "developer", "total params (B)", "active params (B)", "arch", "price in/out per 1M"),
        rows,
    )
    return 0

"""Estimating the rows of a log in vectorised chunks.

A log line without figures (what experiments write, what collectors emit)
needs an estimate. One :func:`otm.estimate` per line costs about half a
millisecond; :func:`otm.estimate_many` does the same work on numpy arrays,
so the reader hands it whole chunks of lines, one call per (deployment,
region) among them, and copies the figures back into the rows. Only the
estimator's public surface is used: ``estimate_many``, the batch's arrays
and, once per distinct kind of record, ``batch[i]`` for the assumptions
(warnings, resolved region).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from otm._log import log_once
from otm.report.rows import Row, _estimate, region_from_assumptions

Pending = tuple[Row, Any, "Mapping[str, Any] | None"]
"""A row still without figures, its validated Telemetry and its deployment dict."""


def estimate_rows(pending: Sequence[Pending]) -> None:
    """Fill the figures of ``pending`` rows in place; a row that cannot be estimated keeps none."""
    groups: dict[tuple[str, str | None], list[Pending]] = {}
    for item in pending:
        row = item[0]
        groups.setdefault((row.deployment_key, row.region), []).append(item)
    for (_, region), members in groups.items():
        try:
            _estimate_group(members, region)
        except Exception as exc:  # one bad record must not cost the others their figures
            log_once("report.estimate_rows", exc)
            for row, telemetry, dep in members:
                est = _estimate(telemetry, dep, row.region)
                if est is not None:
                    row._set_impact(est)


def _estimate_group(members: list[Pending], region: str | None) -> None:
    from otm.deployment import Deployment
    from otm.estimate import estimate_many

    dep = members[0][2]
    deployment = Deployment.model_validate(dep) if dep else None
    batch = estimate_many([t for _, t, _ in members], deployment=deployment, region=region)

    ev, el, eh = (a.tolist() for a in (batch.energy_wh_value, batch.energy_wh_low, batch.energy_wh_high))
    cv, cl, ch = (a.tolist() for a in (batch.carbon_g_value, batch.carbon_g_low, batch.carbon_g_high))
    wv, wl, wh = (a.tolist() for a in (batch.water_ml_value, batch.water_ml_low, batch.water_ml_high))
    parts = [
        {k: v.tolist() for k, v in split.items()}
        for split in (batch.breakdown_wh, batch.carbon_breakdown_g, batch.water_breakdown_ml)
    ]
    cost = batch.cost_usd.tolist()
    kinds = list(zip(batch.group.tolist(), batch.method.tolist(), batch.flags.tolist(), batch.status))
    # Assumptions (warnings, the resolved region) are shared by the records of
    # one kind: read them once per kind. A flagged record's warning names its
    # own observed speed, so it is read for that record.
    seen: dict[Any, tuple[tuple[str, ...], str | None]] = {}
    for i, (row, _, _) in enumerate(members):
        row.energy = (ev[i], el[i], eh[i])
        row.carbon = (cv[i], cl[i], ch[i])
        row.water = (wv[i], wl[i], wh[i])
        row.breakdown_wh = {k: v[i] for k, v in parts[0].items()}
        row.carbon_breakdown_g = {k: v[i] for k, v in parts[1].items()}
        row.water_breakdown_ml = {k: v[i] for k, v in parts[2].items()}
        row.cost_usd = cost[i] if math.isfinite(cost[i]) else None
        kind = kinds[i]
        known = seen.get(kind) if not kind[2] else None
        if known is None:
            assumptions = batch[i].assumptions
            known = (
                tuple(str(w) for w in assumptions.get("warnings", ()) or ()),
                region_from_assumptions(assumptions),
            )
            if not kind[2]:
                seen[kind] = known
        row.warnings = known[0]
        if row.region is None:
            row.region = known[1]

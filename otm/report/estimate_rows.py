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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from otm._log import log_once
from otm.report.rows import Row, _estimate, region_from_assumptions

if TYPE_CHECKING:
    from otm.deployment import Deployment

Pending = tuple[Row, Any, "Deployment | None"]
"""A row still without figures, its validated Telemetry and its deployment."""


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
    from otm.estimate import estimate_many

    deployment = members[0][2]
    batch = estimate_many([t for _, t, _ in members], deployment=deployment, region=region)

    # per-record tuples and dicts built from whole columns (this runs for every line of a log)
    energy = list(
        zip(
            *(
                a.tolist()
                for a in (batch.energy_wh_value, batch.energy_wh_low, batch.energy_wh_high)
            )
        )
    )
    carbon = list(
        zip(*(a.tolist() for a in (batch.carbon_g_value, batch.carbon_g_low, batch.carbon_g_high)))
    )
    water = list(
        zip(*(a.tolist() for a in (batch.water_ml_value, batch.water_ml_low, batch.water_ml_high)))
    )
    splits = [
        [dict(zip(split, values)) for values in zip(*(v.tolist() for v in split.values()))]
        for split in (batch.breakdown_wh, batch.carbon_breakdown_g, batch.water_breakdown_ml)
    ]
    cost = batch.cost_usd.tolist()
    flags = batch.flags.tolist()
    # A flagged record's warning names its own speed, in whole tokens/s: part of its kind.
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(
            batch.flags != 0, np.round(np.nan_to_num(1.0 / batch.itl_s, posinf=0.0)), 0.0
        ).tolist()
    kinds = list(zip(batch.group.tolist(), batch.method.tolist(), flags, batch.status, speed))
    # Assumptions (warnings, the resolved region) are shared by the records of
    # one kind: read them once per kind (batch[i] builds a whole Impact).
    seen: dict[Any, tuple[tuple[str, ...], str | None]] = {}
    for i, (row, _, _) in enumerate(members):
        row.energy = energy[i]
        row.carbon = carbon[i]
        row.water = water[i]
        row.breakdown_wh = splits[0][i]
        row.carbon_breakdown_g = splits[1][i]
        row.water_breakdown_ml = splits[2][i]
        row.cost_usd = cost[i] if math.isfinite(cost[i]) else None
        kind = kinds[i]
        known = seen.get(kind)
        if known is None:
            assumptions = batch[i].assumptions
            known = seen[kind] = (
                tuple(str(w) for w in assumptions.get("warnings", ()) or ()),
                region_from_assumptions(assumptions),
            )
        row.warnings = known[0]
        if row.region is None:
            row.region = known[1]

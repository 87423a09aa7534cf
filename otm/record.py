"""Record: the object that rides on the user's response as ``response.otm``.

It joins what capture saw (telemetry) with the per-client settings it was made
under (deployment, region, tags), and computes the impact lazily on first
access, so the call itself pays only for the telemetry.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

from otm._log import log_once

if TYPE_CHECKING:
    from otm.deployment import Deployment
    from otm.events import Collector
    from otm.impact import Impact, Range
    from otm.telemetry import Telemetry

_ids = itertools.count(1)


class Record:
    """One measured request: ``.telemetry``, ``.impact`` and the figures' shortcuts."""

    __slots__ = ("telemetry", "deployment", "region", "tags", "scope", "seq", "_impact", "_lock", "__weakref__")

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        deployment: Deployment | None = None,
        region: str | None = None,
        tags: dict[str, str] | None = None,
        scope: tuple[Collector, ...] = (),
    ) -> None:
        self.telemetry = telemetry
        self.deployment = deployment
        self.region = region
        self.tags: dict[str, str] = dict(tags) if tags else {}
        self.scope = scope
        self.seq = next(_ids)
        self._impact: Impact | None = None
        self._lock = threading.Lock()

    @property
    def impact(self) -> Impact | None:
        """The estimate, computed on first access; None only if the estimator failed (logged)."""
        if self._impact is None:
            with self._lock:
                if self._impact is None:
                    try:
                        from otm.estimate import estimate

                        self._impact = estimate(self.telemetry, deployment=self.deployment, region=self.region)
                    except Exception as exc:
                        log_once("estimate", exc)
                        return None
        return self._impact

    def _figure(self, name: str) -> Range | None:
        impact = self.impact
        return None if impact is None else getattr(impact, name)

    @property
    def energy_wh(self) -> Range | None:
        return self._figure("energy_wh")

    @property
    def carbon_g(self) -> Range | None:
        return self._figure("carbon_g")

    @property
    def water_ml(self) -> Range | None:
        return self._figure("water_ml")

    @property
    def cost_usd(self) -> float | None:
        impact = self.impact
        return None if impact is None else impact.cost_usd

    def to_dict(self, *, with_impact: bool = True) -> dict[str, Any]:
        """A JSON-ready dict: telemetry, settings, tags and (optionally) the impact."""
        out: dict[str, Any] = {
            "telemetry": self.telemetry.model_dump(mode="json", exclude_none=True),
            "region": self.region,
            "deployment": None if self.deployment is None else self.deployment.model_dump(exclude_none=True),
            "tags": self.tags,
        }
        if with_impact:
            impact = self.impact
            out["impact"] = None if impact is None else impact.model_dump(mode="json")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Rebuild a record from :meth:`to_dict` output (the impact is restored if present)."""
        from otm.deployment import Deployment
        from otm.impact import Impact
        from otm.telemetry import Telemetry

        dep = data.get("deployment")
        rec = cls(
            Telemetry.model_validate(data["telemetry"]),
            deployment=Deployment.model_validate(dep) if dep else None,
            region=data.get("region"),
            tags=data.get("tags") or {},
        )
        if data.get("impact"):
            rec._impact = Impact.model_validate(data["impact"])
        return rec

    # Responses carrying ``.otm`` must stay picklable and deep-copyable (users
    # cache them): drop the lock and the live collectors, keep the figures.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "telemetry": self.telemetry,
            "deployment": self.deployment,
            "region": self.region,
            "tags": self.tags,
            "seq": self.seq,
            "_impact": self._impact,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.scope = ()
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> Record:
        import copy

        new = Record.__new__(Record)
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new

    # How it shows itself (otm.display): these compute the impact if not done yet.
    def __repr__(self) -> str:
        from otm.display import record_repr

        return record_repr(self)

    def __str__(self) -> str:
        from otm.display import record_text

        return record_text(self)

    def _repr_html_(self) -> str:
        from otm.display import record_html

        return record_html(self)

    def __rich__(self) -> Any:
        from otm.display import record_rich

        return record_rich(self)

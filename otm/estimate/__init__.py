"""The three-layer estimator: telemetry -> energy, carbon and water with ranges.

    from otm.estimate import estimate, estimate_many
    impact = estimate(telemetry, deployment=None, region="FRA")
    batch = estimate_many(list_of_telemetry)       # numpy over all records
    batch.energy_wh_value, batch.totals()

Layers (data flows top to bottom): :mod:`.user` (telemetry -> phases),
:mod:`.provider` (model -> work), :mod:`.hardware` (deployment -> power and
site factors), :mod:`.combine` (the three -> per-sample physics),
:mod:`.batch` (grouping, ranges, the :class:`ImpactBatch`). The physics and
every constant are documented in docs/methodology.md.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .batch import ImpactBatch, estimate, estimate_many
from .calibration import DEFAULT, Calibration
from .user import FLOORS, METHODS

__all__ = [
    "DEFAULT",
    "METHODS",
    "Calibration",
    "ImpactBatch",
    "estimate",
    "estimate_many",
    "reset_floors",
]


class _CallableModule(types.ModuleType):
    """``otm.estimate`` is both this package and the function ``estimate``.

    Importing the subpackage makes Python set ``otm.estimate`` to the module,
    which would shadow the public function of the same name; calling the
    module therefore calls the function.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return estimate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


def reset_floors() -> None:
    """Forget the per-deployment floors learned from fast streams (tests, new sessions)."""
    FLOORS.reset()

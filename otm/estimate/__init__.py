"""The three-layer estimator: telemetry -> energy, carbon and water with ranges.

    from otm.estimate import estimate, estimate_many
    impact = estimate(telemetry, deployment=None, region="FRA")
    batch = estimate_many(list_of_telemetry)       # numpy over all records
    batch.energy_wh_value, batch.totals()

One module per physical question (docs/architecture.md): :mod:`.user`
(telemetry -> phases), :mod:`.provider` and :mod:`.precision` (model ->
work), :mod:`.engine` (the serving software), :mod:`.hardware` (deployment
-> power and site factors), :mod:`.decode` (step time, batch inversion),
:mod:`.group` (a group's sampled inputs), :mod:`.floor` (what each
deployment has shown), :mod:`.combine` (the layers together ->
per-sample energy, carbon, water), :mod:`.results` (:class:`ImpactBatch`)
and :mod:`.driver` (:func:`estimate_many`). The physics and every constant
are documented in docs/methodology.md.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .calibration import DEFAULT, Calibration
from .driver import estimate, estimate_many
from .engine import engine_names
from .floor import FLOORS, set_persistence
from .results import ImpactBatch
from .user import METHODS

__all__ = [
    "DEFAULT",
    "METHODS",
    "Calibration",
    "ImpactBatch",
    "estimate",
    "engine_names",
    "estimate_many",
    "reset_floors",
    "set_persistence",
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
    """Forget the deployment histories learned in this process (the profile file stays)."""
    FLOORS.reset()

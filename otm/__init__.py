"""otm: what each LLM call physically cost — energy, carbon and water, with ranges.

    import otm
    otm.instrument()                      # patch every installed SDK
    r = client.chat.completions.create(...)
    r.otm.energy_wh, r.otm.carbon_g, r.otm.water_ml

Public names are imported lazily so ``import otm`` stays fast and never
imports an LLM SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Telemetry": "otm.telemetry",
    "Deployment": "otm.deployment",
    "Impact": "otm.impact",
    "Range": "otm.impact",
    "Record": "otm.record",
    "on_record": "otm.events",
    "estimate": "otm.estimate",
    "estimate_many": "otm.estimate",
    "instrument": "otm.capture",
    "uninstrument": "otm.capture",
    "wrap": "otm.capture",
    "track": "otm.report.track",
    "last_run": "otm.report.track",
    "experiment": "otm.report.experiment",
    "configure": "otm.config",
    "settings": "otm.config",
    "register_model": "otm.data",
    "register_accelerator": "otm.data",
    "register_provider": "otm.data",
    "register_region": "otm.data",
}

__all__ = [
    "Deployment",
    "Impact",
    "Range",
    "Record",
    "Telemetry",
    "__version__",
    "configure",
    "estimate",
    "estimate_many",
    "experiment",
    "instrument",
    "last_run",
    "on_record",
    "register_accelerator",
    "register_model",
    "register_provider",
    "register_region",
    "settings",
    "track",
    "uninstrument",
    "wrap",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from otm.capture import instrument, uninstrument, wrap
    from otm.config import configure, settings
    from otm.data import register_accelerator, register_model, register_provider, register_region
    from otm.deployment import Deployment
    from otm.estimate import estimate, estimate_many
    from otm.events import on_record
    from otm.impact import Impact, Range
    from otm.record import Record
    from otm.report.experiment import experiment
    from otm.report.track import last_run, track
    from otm.telemetry import Telemetry

"""Test helpers shipped with otm: an offline fake of the providers' HTTP APIs."""

from .server import (
    SCENARIO_HEADER,
    FakeProviderServer,
    RecordedRequest,
    Scenario,
    running_server,
    scenario_headers,
)

__all__ = [
    "SCENARIO_HEADER",
    "FakeProviderServer",
    "RecordedRequest",
    "Scenario",
    "running_server",
    "scenario_headers",
]

"""Direct measurement of local inference on NVIDIA GPUs, and reconciliation with the estimate.

    from otm.measure import GpuMeter, reconcile, metered

    with metered() as run:                 # meter every GPU, collect local calls
        ...                                # calls through otm.wrap(client, deployment=...)
    print(run.summary())                   # measured vs accelerator-only estimate

NVML (``pip install 'otm[nvml]'``) is imported only when a meter starts.
See docs/measurement.md.
"""

from __future__ import annotations

from otm.measure.meter import DeviceEnergy, GpuMeasurement, GpuMeter
from otm.measure.nvml import GpuInfo, MeasurementUnavailable, is_available, list_devices
from otm.measure.reconcile import MeteredRun, Reconciliation, RequestShare, metered, reconcile

__all__ = [
    "DeviceEnergy",
    "GpuInfo",
    "GpuMeasurement",
    "GpuMeter",
    "MeasurementUnavailable",
    "MeteredRun",
    "Reconciliation",
    "RequestShare",
    "is_available",
    "list_devices",
    "metered",
    "reconcile",
]

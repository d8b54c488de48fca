"""capacity.fit: scaling models fitted to a sweep's measurements, every figure with its evidence.

Entry point: ``fit_sweep(tiers, available_cores=..., memory_bytes=..., safety_buffer=0.2) -> CapacityModel``.
Input: one ``TierMeasurement`` per tier (see ``capacity.fit.tiers``). Output figures are ``Estimate`` values
(value, unit, 95 % interval, basis, note); ``CapacityModel.to_dict()`` is JSON-ready and ``formulas()`` states
the fitted formulas in plain English. ``CapacityModel.project(cores=..., memory_bytes=...)`` carries the model
to another machine as a separate ``Projection``.
"""

from capacity.fit.breaking_points import BreakingPoints
from capacity.fit.estimate import Basis, Estimate
from capacity.fit.latency import LatencyFit, SloCrossing
from capacity.fit.memory import MemoryFit
from capacity.fit.model import CapacityModel, fit_sweep
from capacity.fit.projection import Projection, project
from capacity.fit.service_demand import ServiceDemandFit
from capacity.fit.summary import TierSummary
from capacity.fit.throughput import ThroughputFit
from capacity.fit.tiers import TierMeasurement
from capacity.fit.usl import UslFit

__all__ = [
    "Basis",
    "BreakingPoints",
    "CapacityModel",
    "Estimate",
    "LatencyFit",
    "MemoryFit",
    "Projection",
    "ServiceDemandFit",
    "SloCrossing",
    "ThroughputFit",
    "TierMeasurement",
    "TierSummary",
    "UslFit",
    "fit_sweep",
    "project",
]

"""``fit_sweep``: every fit of a sweep in one ``CapacityModel``, the object the report renders from.

Generator-bound tiers are set aside first (listed, with the reason, never fitted); the other tiers feed the
service-demand, memory, latency, throughput and USL fits, whose limits combine into breaking points and the
recommended maximum. Seeds are fixed, so the same input gives the same numbers, intervals included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from capacity.fit.breaking_points import DEFAULT_SAFETY_BUFFER, BreakingPoints, breaking_points
from capacity.fit.estimate import CONFIDENCE, TIMES, Estimate, ToDict, fmt
from capacity.fit.latency import LatencyFit, fit_latency
from capacity.fit.memory import MemoryFit, fit_memory
from capacity.fit.projection import Projection, project
from capacity.fit.service_demand import RATE, ServiceDemandFit, fit_service_demand
from capacity.fit.summary import TierSummary, summarise
from capacity.fit.throughput import ThroughputFit, fit_throughput
from capacity.fit.tiers import TierMeasurement, split_left_out
from capacity.fit.usl import UslFit, fit_usl
from capacity.results.verdicts import KEPT_UP_TOLERANCE, SATURATION_ERROR_SHARE

FORMAT = "capacity-fit/1"

GENERATOR_BOUND = "generator-bound: the load generator saturated, so the tier says nothing about the server"
DISTURBED = (
    "disturbed: other processes on the machine took CPU during the tier, so its figures are not the server's"
)


@dataclass(frozen=True)
class CapacityModel(ToDict):
    """The fitted capacity of one sweep. Rates in requests/s; see each part for its units."""

    available_cores: float
    memory_bytes: int | None
    safety_buffer: float
    tiers: tuple[TierSummary, ...]
    excluded: dict[str, str]
    service_demand: ServiceDemandFit
    memory: MemoryFit
    latency: LatencyFit
    throughput: ThroughputFit
    usl: UslFit
    breaking_points: BreakingPoints
    confidence: float = CONFIDENCE
    format: str = FORMAT

    @property
    def recommended_max(self) -> Estimate:
        """Recommended maximum sustained rate (requests/s) on the measured machine."""
        return self.breaking_points.recommended_max

    def cores_needed(self, rate: float, target_utilisation: float = 0.7) -> Estimate:
        """Cores to serve ``rate`` requests/s at ``target_utilisation`` CPU (from the service demand)."""
        return self.service_demand.cores_needed(rate, target_utilisation)

    def project(self, *, cores: float, memory_bytes: int | None = None) -> Projection:
        """This model carried to another machine (basis "projection", assumptions listed)."""
        return project(self, cores=cores, memory_bytes=memory_bytes)

    def formulas(self) -> list[str]:
        """Plain-English formulas and statements with the fitted numbers, in report order."""
        lines = [f"Excluded tier '{name}': {why}" for name, why in self.excluded.items()]
        for part in (self.service_demand, self.memory, self.latency, self.throughput, self.usl):
            lines += part.formulas()
        lines += self.breaking_points.formulas()
        if self.service_demand.requests_per_core.known:
            per_core = self.service_demand.requests_per_core
            lines.append(
                f"Max throughput ≈ {fmt(per_core.value)} {RATE} per core {TIMES} cores "
                "(projection: linear per core; see project() for the assumptions)"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every number finite or None; ``formulas`` included for renderers."""
        return {**super().to_dict(), "formulas": self.formulas()}


def fit_sweep(
    tiers: Sequence[TierMeasurement],
    *,
    available_cores: float,
    memory_bytes: int | None = None,
    safety_buffer: float = DEFAULT_SAFETY_BUFFER,
    slo_p99_ms: Sequence[float] = (),
    latency_limit_ms: float | None = None,
    tolerance: float = KEPT_UP_TOLERANCE,
    error_threshold: float = SATURATION_ERROR_SHARE,
    seed: int = 0,
) -> CapacityModel:
    """Fit a sweep's tiers into a ``CapacityModel``.

    ``available_cores``: the server's CPU budget (1.0 when pinned to one core). ``memory_bytes``: RAM for the
    memory-exhaustion projection (e.g. 32 GiB); None skips it. ``safety_buffer``: fraction taken off the
    lowest breaking point (0.2 = 20 %). ``slo_p99_ms``: P99 thresholds (ms) to locate besides the tiers' own;
    ``latency_limit_ms``: the one that defines the latency breaking point (default: the loosest SLO, else
    the knee). ``tolerance``/``error_threshold``: saturation rules, as fractions. ``seed``: bootstrap seed.
    """
    if not available_cores > 0:
        raise ValueError(f"available_cores must be positive, got {available_cores}")
    server, left_out = split_left_out(tiers)
    summaries = tuple(
        summarise(t, seed=seed + i) for i, t in enumerate(sorted(tiers, key=lambda t: t.offered_rate))
    )
    server_summaries = [s for s in summaries if not (s.generator_bound or s.disturbed)]

    service_demand = fit_service_demand(server, available_cores=available_cores, seed=seed)
    memory = fit_memory(server, memory_bytes=memory_bytes, seed=seed)
    latency = fit_latency(server_summaries, slo_p99_ms=slo_p99_ms, limit_ms=latency_limit_ms)
    throughput = fit_throughput(server_summaries, tolerance=tolerance, error_threshold=error_threshold)
    return CapacityModel(
        available_cores=available_cores,
        memory_bytes=memory_bytes,
        safety_buffer=safety_buffer,
        tiers=summaries,
        excluded={t.name: GENERATOR_BOUND if t.generator_bound else DISTURBED for t in left_out},
        service_demand=service_demand,
        memory=memory,
        latency=latency,
        throughput=throughput,
        usl=fit_usl(server, tolerance=tolerance, seed=seed),
        breaking_points=breaking_points(
            cpu=service_demand.saturation_rate,
            memory=memory.exhaustion_rate,
            latency=latency.limit,
            throughput=throughput.saturation,
            sustained=throughput.last_sustained,
            safety_buffer=safety_buffer,
        ),
    )

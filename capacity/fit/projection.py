"""Projections: carrying a fitted model to a machine that was not measured (more cores, more RAM).

Kept apart from the measured model on purpose: every figure here has basis "projection", and the assumptions
it rests on travel with it. The seed's "Max_Throughput = 750 * Cores * 0.85" is this, with the 750 measured
and the 0.85 either replaced by a fitted Universal Scalability Law or stated as an assumption of 100 %.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from capacity.fit.estimate import TIMES, Estimate, ToDict, fmt
from capacity.fit.service_demand import RATE, cores_text

if TYPE_CHECKING:
    from capacity.fit.model import CapacityModel


@dataclass(frozen=True)
class Projection(ToDict):
    """What the model implies for a machine with ``cores`` and ``memory_bytes``; never a measurement."""

    cores: float
    memory_bytes: int | None
    safety_buffer: float
    cpu_bound_rate: Estimate
    usl_bound_rate: Estimate
    memory_bound_rate: Estimate
    max_throughput: Estimate
    recommended_max: Estimate
    assumptions: tuple[str, ...]
    basis: str = "projection"

    def formulas(self) -> list[str]:
        """Plain-English statements, each marked as a projection."""
        lines = [
            f"Max throughput at {cores_text(self.cores)} ≈ {self.max_throughput.text()}: "
            f"{self.max_throughput.note}",
            f"Recommended maximum at {cores_text(self.cores)} ≈ {self.recommended_max.text()}",
        ]
        return lines + [f"Assumes: {a}" for a in self.assumptions]


def _projected(estimate: Estimate, note: str | None = None) -> Estimate:
    """The same figure relabelled as a projection (unknown figures keep their basis)."""
    if not estimate.known:
        return estimate
    return dataclasses.replace(estimate, basis="projection", note=estimate.note if note is None else note)


def project(
    model: CapacityModel, *, cores: float, memory_bytes: int | None = None, safety_buffer: float | None = None
) -> Projection:
    """Project ``model`` to a machine with ``cores`` CPU cores and ``memory_bytes`` of RAM.

    CPU: linear per core, ``cores`` times the rate at which one server process fills one core (its idle
    cost included), derated by the USL when the sweep fitted one. Memory: the rate at which RSS would reach
    ``memory_bytes``. Latency is not projected.
    """
    buffer = model.safety_buffer if safety_buffer is None else safety_buffer
    demand, usl = model.service_demand, model.usl
    per_core = demand.requests_per_core
    linear = _projected(
        Estimate.of(demand.rate_at_cores(cores), RATE, no_interval=per_core.no_interval),
        f"{fmt(per_core.value)} {RATE} per core {TIMES} {cores_text(cores)}",
    )
    assumptions = [
        "same CPU model, clock and software as the measured machine; CPU per request independent of core "
        "count",
        "one server process per core, each with its own idle cost; a single Python process uses one core",
        "latency is not projected: queueing on another machine differs, measure it there",
    ]

    sigma, kappa = usl.sigma.value, usl.kappa.value
    if usl.fitted and per_core.known and sigma is not None and kappa is not None:
        efficiency = 1 / (1 + sigma * (cores - 1) + kappa * cores * (cores - 1))
        note = (
            f"{fmt(per_core.value)} {RATE} per core {TIMES} {cores_text(cores)} {TIMES} USL efficiency "
            f"{efficiency:.0%} (interval from service demand only)"
        )
        usl_rate = _projected(per_core.scaled(cores * efficiency, unit=RATE), note)
        assumptions.append("contention and coherency fitted across concurrent users apply across cores (USL)")
    else:
        usl_rate = Estimate.insufficient(RATE, "no USL fit: the sweep did not vary concurrency enough")
        assumptions.append(
            "throughput scales linearly with cores: no lock contention (the seed assumed 85 %)"
        )

    if memory_bytes is None:
        memory = Estimate.insufficient(RATE, "no memory size given")
    else:
        memory = model.memory.exhaustion_for(memory_bytes)
        assumptions.append("RSS grows with rate as in this sweep; all of the memory is the server's")

    cpu = usl_rate if usl_rate.known else linear
    limit = min((e for e in (cpu, memory) if e.value is not None), key=lambda e: e.value or 0.0, default=None)
    if limit is None:
        max_rate = recommended = Estimate.insufficient(
            RATE, "neither a CPU nor a memory model could be fitted"
        )
    else:
        max_rate = _projected(limit)
        recommended = _projected(
            limit.scaled(1 - buffer), f"max throughput less a {buffer:.0%} safety buffer"
        )
    return Projection(
        cores=cores,
        memory_bytes=memory_bytes,
        safety_buffer=buffer,
        cpu_bound_rate=linear,
        usl_bound_rate=usl_rate,
        memory_bound_rate=memory,
        max_throughput=max_rate,
        recommended_max=recommended,
        assumptions=tuple(assumptions),
    )

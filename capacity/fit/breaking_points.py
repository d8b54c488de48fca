"""Breaking points and the recommended maximum: the seed's Breaking Point Analysis, from fitted numbers.

Four limits, each an ``Estimate`` in requests/s: CPU saturation (service demand reaches the available cores),
memory exhaustion (a projection for the given RAM), latency (P99 crosses its limit, or the knee), and
throughput saturation (measured: the first tier that fell behind). The recommended maximum is the lowest
of those with a value, times ``1 - safety_buffer``; it inherits that limit's basis and interval. A limit
past the measured range (extrapolated, or a projection such as memory exhaustion) never becomes the
recommendation by itself: the recommendation is then also capped at the highest rate the server was measured
to sustain, and says so. A limit known only as an upper bound
(breached at the lowest tier) still binds: then no recommendation can be made from this sweep, and the
result says why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from capacity.fit.estimate import TIMES, Estimate, ToDict, fmt
from capacity.fit.service_demand import RATE

DEFAULT_SAFETY_BUFFER = 0.2
#: Bases of a limit that no tier measured: such a limit is capped at the highest rate measured healthy.
BEYOND_THE_DATA = ("extrapolated", "projection")


@dataclass(frozen=True)
class BreakingPoints(ToDict):
    """The four limits (requests/s), which one binds, and the recommended maximum rate."""

    cpu: Estimate
    memory: Estimate
    latency: Estimate
    throughput: Estimate
    recommended_max: Estimate
    binding: str | None
    safety_buffer: float
    #: The binding limit lay beyond the data, so the recommendation is the highest rate measured healthy.
    capped_at_sustained: bool = False

    def limits(self) -> dict[str, Estimate]:
        """The limits by name."""
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "latency": self.latency,
            "throughput": self.throughput,
        }

    def formulas(self) -> list[str]:
        """Plain-English statements with the numbers."""
        lines = [f"Breaking point ({name}): {est.text()}: {est.note}" for name, est in self.limits().items()]
        known = ", ".join(f"{name} {fmt(est.value)}" for name, est in self.limits().items() if est.known)
        lines.append(
            f"Recommended maximum = {1 - self.safety_buffer:g} {TIMES} min({known or 'none'})"
            + (", capped at the highest rate measured healthy" if self.capped_at_sustained else "")
            + f" ≈ {self.recommended_max.text()}"
        )
        return lines


def breaking_points(
    *,
    cpu: Estimate,
    memory: Estimate,
    latency: Estimate,
    throughput: Estimate,
    sustained: Estimate,
    safety_buffer: float,
) -> BreakingPoints:
    """Combine the four limits into the recommended maximum (see the module docstring); ``sustained`` is the
    highest rate the server was measured to keep up with (the cap on an extrapolated limit)."""
    if not 0 <= safety_buffer < 1:
        raise ValueError(f"safety_buffer must be in [0, 1), got {safety_buffer}")
    limits = {"cpu": cpu, "memory": memory, "latency": latency, "throughput": throughput}
    keep = 1 - safety_buffer
    buffer = f"{safety_buffer:.0%} safety buffer"

    # Upper bounds only (a limit already breached at the lowest tier) and values both cap the rate.
    caps = {
        name: cap for name, est in limits.items() if (cap := est.value if est.known else est.high) is not None
    }
    if not caps:
        floors = [est.low for est in limits.values() if est.basis == "not_reached" and est.low is not None]
        note = f"no limit reached in or near the measured range; {buffer}"
        at_least = keep * max(floors) if floors else None
        recommended = Estimate.not_reached(RATE, note, at_least=at_least)
        return BreakingPoints(cpu, memory, latency, throughput, recommended, None, safety_buffer)

    binding = min(caps, key=caps.__getitem__)
    limit = limits[binding]
    capped = False
    if limit.known:
        note = f"{binding} limit {fmt(limit.value)} {RATE} less a {buffer} ({limit.basis})"
        recommended = limit.scaled(keep, note=note)
        if limit.basis in BEYOND_THE_DATA:
            uncapped, recommended = recommended, _measured_cap(recommended, sustained)
            capped = recommended.known and recommended is not uncapped
    else:
        note = f"{binding} limit breached below the measured range ({limit.note}); {buffer}"
        recommended = Estimate(None, RATE, None, keep * caps[binding], "insufficient_data", note)
    return BreakingPoints(cpu, memory, latency, throughput, recommended, binding, safety_buffer, capped)


def _measured_cap(recommended: Estimate, sustained: Estimate) -> Estimate:
    """A recommendation from a limit beyond the data, capped at the highest rate measured healthy: past that
    rate only a fitted curve speaks for the server. With no such rate the recommendation has no value."""
    if not sustained.known:
        note = f"{recommended.note}, but no tier was measured healthy to vouch for it"
        return Estimate(None, RATE, None, recommended.value, "insufficient_data", note)
    assert recommended.value is not None and sustained.value is not None
    if sustained.value >= recommended.value:
        return recommended
    note = (
        f"{recommended.note}: capped at {fmt(sustained.value)} {RATE}, the highest rate measured healthy, "
        "since a limit beyond the measured range is not evidence by itself"
    )
    return dataclasses.replace(sustained, note=note)

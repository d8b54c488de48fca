"""What a sweep says about each kind of claim: a measured or projected figure, or why it cannot say.

Figures are in the base unit of the claim's dimension (``capacity.audit.units``); a rate is converted to
what the claim counts: the sweep measures requests/s of its scenario's mix, of which orders are a share
(limit + market), so ``orders/s`` = requests/s x that share, and a condition ``at.rate`` in orders/s is
that rate / the share in requests. On hardware the sweep did not measure (more cores, other memory) a
figure is the fit's projection (``CapacityModel.project``: linear per core, assumptions stated), and
latency is never projected. A claim about a machine with more cores than the measured server is judged
on fewer cores only where a pass carries over (``Figure.fewer_cores``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from capacity.audit.claims import Claim
from capacity.fit import CapacityModel, Estimate, Projection
from capacity.fit.summary import TierSummary
from capacity.scenario import Mix
from capacity.sweep.sweep_file import SweepResult
from capacity.text import MB

TIER_MATCH = 0.25  # a tier "at" a claimed rate is within 25 % of it


@dataclass(frozen=True)
class Figure:
    """A number to compare with a claim, in the claim's base unit, with how it was obtained."""

    value: float
    basis: Literal["measured", "projection"]
    how: str
    at_least: bool = False  # a lower bound (the event was not reached in the measured range)
    fewer_cores: bool = False  # measured on fewer cores than the claim's machine: only a pass carries over


@dataclass(frozen=True)
class NotHere:
    """Why this sweep cannot test a claim."""

    reason: str


Evidence = Figure | NotHere


class SweepEvidence:
    """The measurements of one sweep and its fitted model, asked claim by claim."""

    def __init__(self, result: SweepResult, model: CapacityModel) -> None:
        self.model = model
        self.cores = model.available_cores
        self.order_share, self.mix_text = _order_share(result)
        self.tiers = sorted(
            (t for t in model.tiers if not t.generator_bound and not t.disturbed and t.offered_rate > 0),
            key=lambda t: t.offered_rate,
        )
        runs = {entry.name: run for entry, run in result.tier_runs("done")}
        self.trades = {
            name: run.summary.exchange_trades_per_sec_mean
            for name, run in runs.items()
            if run.summary.exchange_trades_per_sec_mean is not None
        }
        self._projections: dict[tuple[float, int], Projection] = {}

    # -- conversions --

    def rate_out(self, requests_per_s: float, claim: Claim) -> float:
        """A measured rate (requests/s) in what the claim counts."""
        return requests_per_s * (self.order_share if claim.unit.rate_of == "orders" else 1.0)

    def requests_at(self, claim: Claim) -> float | None:
        """The claim's ``at.rate`` (orders/s) in requests/s of the sweep's mix."""
        return None if claim.at.rate is None else claim.at.rate / self.order_share

    def projection(self, claim: Claim) -> Projection:
        key = (claim.at.cores, claim.at.memory_bytes)
        if key not in self._projections:
            self._projections[key] = self.model.project(cores=key[0], memory_bytes=key[1])
        return self._projections[key]

    def other_machine(self, claim: Claim) -> bool:
        return not math.isclose(claim.at.cores, self.cores, rel_tol=0.01)

    # -- one figure per metric --

    def figure(self, claim: Claim) -> Evidence:
        ask: Callable[[Claim], Evidence] = getattr(self, f"_{claim.metric}")
        return ask(claim)

    def _held_rate(self, claim: Claim) -> tuple[Estimate, str]:
        """The highest rate held under the claim's conditions, in requests/s, and how it was found."""
        if self.other_machine(claim):
            bound = "" if claim.at.p99_ms is None else f"; its P99 < {claim.at.p99_ms:g} ms is not projected"
            projected = self.projection(claim).max_throughput
            return projected, f"the fit's maximum on {claim.at.cores:g} cores{bound}"
        limit = self.model.throughput.last_sustained
        if claim.at.p99_ms is not None:
            crossing = self.model.latency.crossing(claim.at.p99_ms)
            reached = crossing.value if crossing is not None else None
            if crossing is not None and reached is not None and reached < (limit.value or math.inf):
                return crossing, f"the rate at which P99 reached {claim.at.p99_ms:g} ms"
        return limit, "the highest rate the server kept up with"

    def _rate(self, claim: Claim) -> Evidence:
        estimate, how = self._held_rate(claim)
        return self._estimate(estimate, claim, how)

    _burst_rate = _rate

    def _recommended_max(self, claim: Claim) -> Evidence:
        if self.other_machine(claim):
            return self._estimate(
                self.projection(claim).recommended_max, claim, "the fit's recommended maximum"
            )
        return self._estimate(self.model.recommended_max, claim, "the fit's recommended maximum")

    def _cpu_saturation_rate(self, claim: Claim) -> Evidence:
        if self.other_machine(claim):
            return self._estimate(self.projection(claim).cpu_bound_rate, claim, "the CPU-bound rate")
        return self._estimate(self.model.breaking_points.cpu, claim, "the CPU breaking point")

    def _memory_exhaustion_rate(self, claim: Claim) -> Evidence:
        estimate = self.model.memory.exhaustion_for(claim.at.memory_bytes)
        return self._estimate(estimate, claim, f"where RSS would reach {claim.at.memory_bytes / 1e9:g} GB")

    def _latency_degradation_rate(self, claim: Claim) -> Evidence:
        if claim.at.p99_ms is None:
            return NotHere("the claim gives no P99 bound (at.p99_ms)")
        if self.other_machine(claim):
            return NotHere(self._latency_elsewhere(claim))
        crossing = self.model.latency.crossing(claim.at.p99_ms)
        if crossing is None:
            return NotHere(f"the fit has no crossing of {claim.at.p99_ms:g} ms")
        return self._estimate(crossing, claim, f"the rate at which P99 reached {claim.at.p99_ms:g} ms")

    def _per_core_rate(self, claim: Claim) -> Evidence:
        return self._estimate(self.model.service_demand.requests_per_core, claim, "the service demand")

    def _scaling_efficiency(self, claim: Claim) -> Evidence:
        return NotHere(
            f"the sweep ran on one core count ({self.cores:g}); scaling efficiency needs sweeps on several"
        )

    def _daily_orders(self, claim: Claim) -> Evidence:
        estimate, how = self._held_rate(claim)
        share = self.order_share if claim.unit.text == "orders" else 1.0
        return self._estimate(estimate, claim, f"{how}, for all 86,400 s of a day", scale=share * 86_400)

    def _p99_latency(self, claim: Claim) -> Evidence:
        requests = self.requests_at(claim)
        if requests is None:
            return NotHere("the claim gives no rate (at.rate)")
        p99 = self._interpolated(requests, lambda t: t.p99_ms)
        if isinstance(p99, NotHere):
            return p99
        value, how = p99
        return Figure(value / 1000, "measured", how, fewer_cores=claim.at.cores > self.cores * 1.01)

    def _trades_rate(self, claim: Claim) -> Evidence:
        requests = self.requests_at(claim)
        if requests is None:
            return NotHere("the claim gives no rate (at.rate)")
        ratios = [
            self.trades[t.name] / t.achieved for t in self.tiers if t.name in self.trades and t.achieved > 0
        ]
        if not ratios:
            return NotHere("the exchange reported no trades per second")
        per_request = float(np.median(ratios))
        top = self.tiers[-1].offered_rate
        basis: Literal["measured", "projection"] = (
            "measured" if requests <= top * (1 + TIER_MATCH) else "projection"
        )
        how = f"{per_request:.3f} trades per request of this mix (median over {len(ratios)} tiers) x the rate"
        return Figure(per_request * requests, basis, how)

    def _concurrent_users(self, claim: Claim) -> Evidence:
        served = [t.concurrency for t in self.tiers if t.meets_slo]
        if not served:
            return NotHere("no tier met its SLO")
        return Figure(
            float(max(served)),
            "measured",
            "the most users of a tier that met its SLO",
            fewer_cores=claim.at.cores > self.cores * 1.01,
        )

    def _cpu_cores(self, claim: Claim) -> Evidence:
        requests = self.requests_at(claim)
        if requests is None:
            return NotHere("the claim gives no rate (at.rate)")
        busy = self.model.cores_needed(requests, 1.0)
        return self._estimate(busy, claim, f"cores busy at {requests:,.0f} requests/s")

    def _cpu_utilization(self, claim: Claim) -> Evidence:
        busy = self._cpu_cores(claim)
        if isinstance(busy, NotHere):
            return busy
        basis = "projection" if self.other_machine(claim) else busy.basis
        how = f"{busy.how} ({busy.value:.2f}) of {claim.at.cores:g} cores"
        return Figure(busy.value / claim.at.cores, basis, how, busy.at_least)

    def _memory(self, claim: Claim) -> Evidence:
        requests = self.requests_at(claim)
        if requests is None:
            return NotHere("the claim gives no rate (at.rate)")
        rss = self._interpolated(requests, lambda t: t.rss_mb)
        if not isinstance(rss, NotHere):
            return Figure(rss[0] * MB, "measured", rss[1])
        return self._estimate(self.model.memory.rss_at(requests), claim, "the memory fit", scale=MB)

    def _memory_per_1k_rate(self, claim: Claim) -> Evidence:
        # per 1,000 orders/s = per 1,000 / share requests/s
        per_1k = self.model.memory.mb_per_1k_requests_per_s
        share = self.order_share if claim.unit.rate_of != "requests" else 1.0
        return self._estimate(per_1k, claim, "the memory fit's growth per 1,000 orders/s", scale=MB / share)

    def _memory_per_10k_resting(self, claim: Claim) -> Evidence:
        per = self.model.memory.mb_per_10k_resting_orders
        return self._estimate(per, claim, "the memory fit", scale=MB)

    def _memory_baseline(self, claim: Claim) -> Evidence:
        return self._estimate(self.model.memory.base_mb, claim, "the memory fit at zero load", scale=MB)

    def _error_rate(self, claim: Claim) -> Evidence:
        requests = self.requests_at(claim)
        if requests is None:
            return NotHere("the claim gives no rate (at.rate)")
        found = self._interpolated(requests, lambda t: t.error_rate)
        if isinstance(found, NotHere):
            return found
        return Figure(found[0], "measured", found[1], fewer_cores=claim.at.cores > self.cores * 1.01)

    def _other(self, claim: Claim) -> Evidence:
        return NotHere(f"capacity measures rates, latency, CPU and memory, not {claim.what}")

    # -- helpers --

    def _estimate(self, estimate: Estimate, claim: Claim, how: str, *, scale: float = 1.0) -> Evidence:
        """An Estimate as a figure in the claim's base unit: a rate (requests/s) in what the claim counts,
        anything else times ``scale``."""
        factor = self.rate_out(1.0, claim) if claim.unit.dimension == "rate" else scale
        basis: Literal["measured", "projection"] = (
            "measured" if estimate.basis in ("measured", "interpolated") else "projection"
        )
        if estimate.known:
            assert estimate.value is not None
            return Figure(estimate.value * factor, basis, f"{how}: {estimate.text()}")
        if estimate.basis == "not_reached" and estimate.low is not None:
            return Figure(
                estimate.low * factor, basis, f"{how}: not reached; at least {estimate.low:,.0f}", True
            )
        return NotHere(f"{how}: {estimate.note or estimate.basis.replace('_', ' ')}")

    def _interpolated(
        self, requests: float, value: Callable[[TierSummary], float | None]
    ) -> tuple[float, str] | NotHere:
        """A tier figure at ``requests``/s: linear between the two tiers around it, the lowest tier's below
        them; past the highest tier the sweep cannot say."""
        points = [
            (t.offered_rate, v, t.name)
            for t in self.tiers
            if (v := value(t)) is not None and math.isfinite(v)
        ]
        if not points:
            return NotHere("no tier measured it")
        rates = [p[0] for p in points]
        if requests > rates[-1] * (1 + TIER_MATCH):
            return NotHere(
                f"{requests:,.0f} requests/s is past the highest tier the server was measured at "
                f"({points[-1][2]}, {rates[-1]:,.0f}/s)"
            )
        if requests <= rates[0]:
            return points[0][1], f"tier {points[0][2]} ({rates[0]:,.0f}/s), the lowest measured"
        if requests >= rates[-1]:
            return points[-1][1], f"tier {points[-1][2]} ({rates[-1]:,.0f}/s)"
        upper = next(i for i, r in enumerate(rates) if r >= requests)
        (r0, v0, n0), (r1, v1, n1) = points[upper - 1], points[upper]
        share = (requests - r0) / (r1 - r0)
        return v0 + share * (v1 - v0), f"between tiers {n0} and {n1} ({requests:,.0f} requests/s)"

    def _latency_elsewhere(self, claim: Claim) -> str:
        return (
            f"latency on {claim.at.cores:g} cores is not projected from {self.cores:g} "
            "(queueing changes with the cores); measure on that machine"
        )


def _order_share(result: SweepResult) -> tuple[float, str]:
    """The share of the sweep's requests that are orders (limit + market), from its first tier's mix."""
    for _, run in result.tier_runs("done"):
        raw = run.scenario.get("mix") or {}
        mix = Mix(**{k: v for k, v in raw.items() if k in ("limit", "market", "cancel", "book")})
        share = (mix.limit + mix.market) / 100
        text = f"limit {mix.limit:g} + market {mix.market:g} of every 100 requests"
        return (share if share > 0 else 1.0), text
    return 1.0, "no tier ran"

"""Throughput saturation: the first tier at which the server stopped keeping up — measured, not modelled.

A tier is *saturated* when its mean achieved rate falls short of the offered rate by more than ``tolerance``,
or its error or shed rate exceeds ``error_threshold`` (defaults: ``capacity.results.verdicts``, the thresholds
a run's own verdict uses). Tiers are walked in order of offered rate; generator-bound tiers were removed
before this point, since a generator that cannot send is not a server that cannot serve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from capacity.fit.estimate import Estimate, ToDict, fmt
from capacity.fit.service_demand import RATE
from capacity.fit.summary import TierSummary
from capacity.results.verdicts import KEPT_UP_TOLERANCE, SATURATION_ERROR_SHARE, kept_up


@dataclass(frozen=True)
class ThroughputFit(ToDict):
    """Where the server saturated; ``saturation`` is the throughput breaking point."""

    saturation: Estimate
    last_sustained: Estimate
    peak: Estimate
    saturated_tier: str | None
    reasons: dict[str, str]
    tolerance: float
    error_threshold: float

    def formulas(self) -> list[str]:
        """Plain-English statements with the measured numbers."""
        return [
            f"Throughput saturation ≈ {self.saturation.text()}: {self.saturation.note}",
            f"Highest rate sustained ≈ {self.last_sustained.text()}; peak achieved {self.peak.text()}",
        ]


def saturation_reason(tier: TierSummary, tolerance: float, error_threshold: float) -> str | None:
    """Why ``tier`` counts as saturated, in words, or None if the server kept up."""
    if not kept_up(tier.offered_rate, tier.achieved, tolerance):
        return (
            f"achieved {tier.achieved / tier.offered_rate:.0%} of the offered {fmt(tier.offered_rate)} {RATE}"
        )
    if tier.error_rate > error_threshold:
        return f"error rate {tier.error_rate:.1%} > {error_threshold:.1%}"
    if tier.shed_rate > error_threshold:
        return f"shed rate {tier.shed_rate:.1%} > {error_threshold:.1%}"
    return None


def fit_throughput(
    tiers: Sequence[TierSummary],
    *,
    tolerance: float = KEPT_UP_TOLERANCE,
    error_threshold: float = SATURATION_ERROR_SHARE,
) -> ThroughputFit:
    """Find the first saturated tier among server tiers sorted by offered rate."""
    tiers = [t for t in tiers if t.achieved_rate.known]
    if not tiers:
        none = Estimate.insufficient(RATE, "no server tier with achieved-rate samples")
        return ThroughputFit(none, none, none, None, {}, tolerance, error_threshold)

    reasons = {
        t.name: r for t in tiers if (r := saturation_reason(t, tolerance, error_threshold)) is not None
    }
    first = next((i for i, t in enumerate(tiers) if t.name in reasons), None)
    peak_tier = max(tiers, key=lambda t: t.achieved)
    peak = _relabel(peak_tier, f"highest mean achieved rate, tier '{peak_tier.name}'")

    if first is None:
        note = f"the server kept up with every tier, up to {fmt(peak_tier.achieved)} {RATE}"
        saturation = Estimate.not_reached(RATE, note, at_least=peak_tier.achieved)
        return ThroughputFit(saturation, peak, peak, None, reasons, tolerance, error_threshold)

    broke = tiers[first]
    saturation = _relabel(broke, f"tier '{broke.name}' saturated: {reasons[broke.name]}")
    if first == 0:
        last = Estimate.insufficient(RATE, f"the lowest tier '{broke.name}' already saturated")
    else:
        kept = max(tiers[:first], key=lambda t: t.achieved)
        last = _relabel(kept, f"highest rate before saturation, tier '{kept.name}'")
    return ThroughputFit(saturation, last, peak, broke.name, reasons, tolerance, error_threshold)


def _relabel(tier: TierSummary, note: str) -> Estimate:
    """The tier's measured mean achieved rate (with its bootstrap interval) under a new note."""
    return dataclasses.replace(tier.achieved_rate, note=note)

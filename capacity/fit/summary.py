"""Per-tier summaries: the measured row of the Scalability Matrix for each tier, before any model.

Means are over the tier's per-second samples; the achieved rate carries a block-bootstrap interval over its
seconds (``regression.mean_fit``: blocks as long as the seconds' own autocorrelation asks, and no interval
from too few independent blocks), and its note says so. Percentiles are the tier totals from merged
histograms as given (never averaged from per-second percentiles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from capacity.fit.estimate import Estimate, ToDict, finite_or_none
from capacity.fit.regression import mean_fit
from capacity.fit.tiers import TierMeasurement
from capacity.text import megabytes


def _mean(values: NDArray[np.float64]) -> float | None:
    finite = values[np.isfinite(values)]
    return finite_or_none(finite.mean()) if finite.size else None


@dataclass(frozen=True)
class TierSummary(ToDict):
    """What one tier measured. Rates in requests/s, CPU in cores, RSS in MB (10^6 bytes), latency in ms."""

    name: str
    offered_rate: float
    achieved_rate: Estimate
    cpu_cores: float | None
    rss_mb: float | None
    resting_orders: float | None
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    error_rate: float
    shed_rate: float
    concurrency: int
    generator_bound: bool
    slo_p99_ms: float | None
    meets_slo: bool | None
    disturbed: bool = False

    @property
    def achieved(self) -> float:
        """Mean achieved rate (requests/s), NaN when the tier had no samples."""
        return np.nan if self.achieved_rate.value is None else self.achieved_rate.value


def summarise(tier: TierMeasurement, *, seed: int) -> TierSummary:
    """Summarise one tier; ``seed`` makes the bootstrap interval of the achieved rate reproducible."""
    achieved = mean_fit(tier.achieved_rate, seed=seed)
    seconds = int(np.isfinite(tier.achieved_rate).sum())
    note = "; ".join(filter(None, (f"mean of {seconds} per-second samples", achieved.interval_note())))
    if tier.generator_bound:
        note += "; generator-bound: the load generator saturated, not the server"
    if tier.disturbed:
        note += "; disturbed: other processes took CPU during the tier"
    p99 = finite_or_none(tier.p99_ms)
    cpu = _mean(tier.server_cpu_percent)
    rss = _mean(tier.rss_bytes)
    return TierSummary(
        name=tier.name,
        offered_rate=float(tier.offered_rate),
        achieved_rate=Estimate(
            achieved.mean,
            "requests/s",
            achieved.low,
            achieved.high,
            "measured",
            note,
            no_interval=achieved.no_interval,
        ),
        cpu_cores=None if cpu is None else cpu / 100.0,
        rss_mb=megabytes(rss),
        resting_orders=_mean(tier.resting_orders),
        p50_ms=finite_or_none(tier.p50_ms),
        p99_ms=p99,
        p999_ms=finite_or_none(tier.p999_ms),
        error_rate=float(tier.error_rate),
        shed_rate=float(tier.shed_rate),
        concurrency=int(tier.concurrency),
        generator_bound=bool(tier.generator_bound),
        slo_p99_ms=finite_or_none(tier.slo_p99_ms),
        meets_slo=None if tier.slo_p99_ms is None or p99 is None else p99 <= tier.slo_p99_ms,
        disturbed=tier.disturbed,
    )

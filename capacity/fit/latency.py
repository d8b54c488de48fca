"""Latency against load: the knee of P99, and the rate at which P99 crosses each SLO threshold.

Points are the server tiers in order of *offered* rate (the experiment's control), plotted at their mean
*achieved* rate; past saturation the achieved rate can stall or fall while latency climbs, and walking the
tiers in offered order keeps that honest.

Knee: the Kneedle method (Satopaa et al., 2011, offline form). Both axes are scaled to [0, 1]; for a curve
that rises ever faster, the chord from the first to the last point lies above it, and the knee is the measured
tier where the gap ``x_scaled - y_scaled`` is largest. It is a *measured* tier, so its resolution is the tier
spacing: ``low``/``high`` give the neighbouring tiers (``interval="tiers"``). A gap below
``MIN_PROMINENCE`` means P99 grows roughly linearly (or not at all): no knee.

SLO crossing: the first tier whose P99 exceeds the threshold, linearly interpolated with the tier before it
(for a convex curve this errs low, i.e. on the safe side). Never exceeded: the last two tiers' trend is
extrapolated, but no further than ``MAX_EXTRAPOLATION`` beyond the highest measured rate; past that, or if P99
is not rising, the crossing is "not_reached".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from capacity.fit.estimate import DASH, Estimate, ToDict, fmt
from capacity.fit.service_demand import RATE
from capacity.fit.summary import TierSummary

#: A knee needs a flat stretch and a steep one: at least this many tiers.
MIN_KNEE_TIERS = 4

#: Smallest Kneedle gap (in scaled units) that counts as a knee rather than noise on a straight line.
MIN_PROMINENCE = 0.1

#: Extrapolate an SLO crossing at most this fraction beyond the highest measured rate (0.5 = 50 %).
MAX_EXTRAPOLATION = 0.5


@dataclass(frozen=True)
class SloCrossing(ToDict):
    """The order rate at which tier P99 crosses ``slo_p99_ms``."""

    slo_p99_ms: float
    rate: Estimate


@dataclass(frozen=True)
class LatencyFit(ToDict):
    """Knee and SLO crossings of P99 against achieved rate; ``limit`` is the latency breaking point."""

    knee: Estimate
    knee_tier: str | None
    slo_crossings: tuple[SloCrossing, ...]
    limit: Estimate
    n_tiers: int

    def crossing(self, slo_p99_ms: float) -> Estimate | None:
        """The crossing for one threshold, if it was asked for."""
        return next((c.rate for c in self.slo_crossings if c.slo_p99_ms == slo_p99_ms), None)

    def formulas(self) -> list[str]:
        """Plain-English statements with the fitted numbers."""
        lines = [f"P99 knee ≈ {self.knee.text()}: {self.knee.note}"]
        lines += [
            f"P99 > {fmt(c.slo_p99_ms)} ms from ≈ {c.rate.text()}: {c.rate.note}" for c in self.slo_crossings
        ]
        return lines


def fit_latency(
    tiers: Sequence[TierSummary], *, slo_p99_ms: Sequence[float] = (), limit_ms: float | None = None
) -> LatencyFit:
    """Knee and SLO crossings over server tiers sorted by offered rate.

    Thresholds are ``slo_p99_ms`` plus every tier's own SLO. The latency breaking point (``limit``) is the
    crossing of ``limit_ms`` if given, else of the loosest SLO (the seed's "P99 > 150 ms" reading: stricter
    SLOs belong to lighter tiers), else the knee.
    """
    points = [t for t in tiers if t.p99_ms is not None and np.isfinite(t.achieved)]
    x = np.array([t.achieved for t in points])
    y = np.array([t.p99_ms for t in points])
    names = [t.name for t in points]

    knee, knee_tier = _knee(x, y, names)
    thresholds = sorted({*slo_p99_ms, *(t.slo_p99_ms for t in points if t.slo_p99_ms is not None)})
    if limit_ms is not None:
        thresholds = sorted({*thresholds, limit_ms})
    crossings = tuple(SloCrossing(s, _crossing(x, y, names, s)) for s in thresholds)

    target = limit_ms if limit_ms is not None else (thresholds[-1] if thresholds else None)
    limit = knee if target is None else next(c.rate for c in crossings if c.slo_p99_ms == target)
    return LatencyFit(knee, knee_tier, crossings, limit, len(points))


def _knee(x: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[Estimate, str | None]:
    """Kneedle on (achieved rate, P99); see the module docstring."""
    if x.size < MIN_KNEE_TIERS:
        return Estimate.insufficient(
            RATE, f"needs ≥ {MIN_KNEE_TIERS} server tiers with P99, got {x.size}"
        ), None
    span_x, span_y = np.ptp(x), np.ptp(y)
    if span_x <= 0 or span_y <= 0:
        return Estimate.not_reached(RATE, "P99 did not change across the tiers", at_least=x.max()), None
    gap = (x - x.min()) / span_x - (y - y.min()) / span_y
    i = int(np.argmax(gap))
    if gap[i] < MIN_PROMINENCE:
        note = (
            f"P99 rises roughly linearly with rate up to {fmt(x.max())} {RATE}: no knee in the measured range"
        )
        return Estimate.not_reached(RATE, note, at_least=x.max()), None
    low, high = x[max(i - 1, 0)], x[min(i + 1, x.size - 1)]
    note = (
        f"Kneedle knee at tier '{names[i]}' (P99 {fmt(y[i])} ms); the bend lies between the neighbouring "
        f"tiers, {fmt(low)}{DASH}{fmt(high)} {RATE}"
    )
    return Estimate(x[i], RATE, min(low, high), max(low, high), "measured", note, "tiers"), names[i]


def _crossing(x: np.ndarray, y: np.ndarray, names: list[str], slo: float) -> Estimate:
    """Rate at which P99 first exceeds ``slo`` ms: interpolated, extrapolated, or not_reached."""
    if x.size == 0:
        return Estimate.insufficient(RATE, "no server tier with a P99")
    above = np.flatnonzero(y > slo)
    if above.size and above[0] == 0:
        # Breached at the lowest load measured: we only know an upper bound.
        note = f"P99 already {fmt(y[0])} ms at the lowest tier '{names[0]}'; measure lower rates to locate it"
        return Estimate(None, RATE, None, x[0], "insufficient_data", note)
    if above.size:
        i = above[0]
        rate = x[i - 1] + (slo - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1])
        lo, hi = sorted((x[i - 1], x[i]))
        note = f"linear between tiers '{names[i - 1]}' and '{names[i]}'"
        return Estimate(rate, RATE, lo, hi, "interpolated", note, "tiers")
    return _extrapolated_crossing(x, y, slo)


def _extrapolated_crossing(x: np.ndarray, y: np.ndarray, slo: float) -> Estimate:
    """P99 stayed under ``slo``: follow the last two tiers' trend, but not far."""
    top = float(x.max())
    stays = f"P99 ≤ {fmt(slo)} ms at every tier, up to {fmt(top)} {RATE}"
    if x.size < 2 or x[-1] <= x[-2] or y[-1] <= y[-2]:
        return Estimate.not_reached(RATE, f"{stays}; P99 is not rising at the top", at_least=top)
    rate = x[-1] + (slo - y[-1]) * (x[-1] - x[-2]) / (y[-1] - y[-2])
    if rate > top * (1 + MAX_EXTRAPOLATION):
        note = f"{stays}; the trend would cross near {fmt(rate)} {RATE}, too far beyond the data to trust"
        return Estimate.not_reached(RATE, note, at_least=top)
    return Estimate(rate, RATE, None, None, "extrapolated", f"{stays}; linear trend of the last two tiers")

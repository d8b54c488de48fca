"""Latency against load: the knee of P99, and the rate at which P99 crosses each SLO threshold.

Points are the server tiers in order of *offered* rate (the experiment's control), plotted at their mean
*achieved* rate; past saturation the achieved rate can stall or fall while latency climbs, and walking the
tiers in offered order keeps that honest.

Monotone fit: P99 does not fall when more load is offered, so tier P99s are first fitted with an isotonic
(non-decreasing) regression in offered order (``scipy.optimize.isotonic_regression``, pool adjacent
violators): a tier whose P99 came out above a later tier's is pooled with it at their mean. Noise in one
low tier (a GC pause during a 15-second tier) then no longer makes latency look as if it rose early. Knee
and crossings are located on this fit (``LatencyFit.fitted_p99_ms``), never on the raw tier P99s.

Knee: the Kneedle method (Satopaa et al., 2011, offline form) on the monotone fit. Both axes are scaled to
[0, 1]; for a curve that rises ever faster, the chord from the first to the last point lies above it, and the
knee is the measured tier where the gap ``x_scaled - y_scaled`` is largest: on a monotone fit, the last
tier of the flat stretch before P99 rises. Guarantee: the knee is never placed below a tier whose *measured*
P99 is at or under the fitted P99 at the knee (latency had not yet risen there), so it moves up to the last
such tier. It is a *measured* tier, so its resolution is the tier spacing: ``low``/``high`` give the
neighbouring tiers (``interval="tiers"``). A gap below ``MIN_PROMINENCE`` means P99 grows roughly linearly
(or not at all): no knee.

SLO crossing: the first tier whose fitted P99 exceeds the threshold, linearly interpolated on the fit with
the tier before it (for a convex curve this errs low, i.e. on the safe side). Guarantee: a crossing is never
placed below a tier that *measured* P99 within the threshold; that tier is direct evidence the SLO held
there, so the crossing moves up to lie above the last such tier. Every tier measured over it: only an upper
bound (the lowest tier). Never exceeded: the trend of the fit's last two tiers is extrapolated, but no
further than ``estimate.MAX_EXTRAPOLATION`` beyond the highest measured rate; past that, if P99 is not
rising, or if the top tier measured within the SLO but the fit (pooling a lower tier) is over it there,
the crossing is "not_reached".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from capacity.fit.estimate import DASH, MAX_EXTRAPOLATION, Estimate, ToDict, fmt
from capacity.fit.service_demand import RATE
from capacity.fit.summary import TierSummary

#: A knee needs a flat stretch and a steep one: at least this many tiers.
MIN_KNEE_TIERS = 4

#: Smallest Kneedle gap (in scaled units) that counts as a knee rather than noise on a straight line.
MIN_PROMINENCE = 0.1


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
    fitted_p99_ms: tuple[float, ...] = ()  # the monotone fit, one value per tier in offered order

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
    fitted = monotone_fit(y)

    knee, knee_tier = _knee(x, y, fitted, names)
    thresholds = sorted({*slo_p99_ms, *(t.slo_p99_ms for t in points if t.slo_p99_ms is not None)})
    if limit_ms is not None:
        thresholds = sorted({*thresholds, limit_ms})
    crossings = tuple(SloCrossing(s, _crossing(x, y, fitted, names, s)) for s in thresholds)

    target = limit_ms if limit_ms is not None else (thresholds[-1] if thresholds else None)
    limit = knee if target is None else next(c.rate for c in crossings if c.slo_p99_ms == target)
    return LatencyFit(knee, knee_tier, crossings, limit, len(points), tuple(float(v) for v in fitted))


def monotone_fit(p99_ms: np.ndarray) -> np.ndarray:
    """Non-decreasing least-squares fit of tier P99s in offered order (see the module docstring)."""
    if p99_ms.size == 0:
        return p99_ms
    import scipy.optimize  # ~1 s of import: only when a fit runs

    return np.asarray(scipy.optimize.isotonic_regression(p99_ms, increasing=True).x, dtype=float)


def _knee(x: np.ndarray, y: np.ndarray, fitted: np.ndarray, names: list[str]) -> tuple[Estimate, str | None]:
    """Kneedle on (achieved rate, monotone P99), never below a tier measured at or under the knee's fitted
    P99; see the module docstring."""
    if x.size < MIN_KNEE_TIERS:
        return Estimate.insufficient(
            RATE, f"needs ≥ {MIN_KNEE_TIERS} server tiers with P99, got {x.size}"
        ), None
    span_x, span_y = np.ptp(x), np.ptp(fitted)
    if span_x <= 0 or span_y <= 0:
        return Estimate.not_reached(RATE, "P99 did not rise across the tiers", at_least=x.max()), None
    gap = (x - x.min()) / span_x - (fitted - fitted.min()) / span_y
    i = int(np.argmax(gap))
    if gap[i] < MIN_PROMINENCE:
        note = (
            f"P99 rises roughly linearly with rate up to {fmt(x.max())} {RATE}: no knee in the measured range"
        )
        return Estimate.not_reached(RATE, note, at_least=x.max()), None
    i = _not_below_flat_tiers(y, fitted, i)
    low, high = x[max(i - 1, 0)], x[min(i + 1, x.size - 1)]
    note = (
        f"Kneedle knee on the monotone (isotonic) fit of P99 at tier '{names[i]}' (P99 {fmt(y[i])} ms "
        f"measured, {fmt(fitted[i])} ms fitted); the bend lies between the neighbouring tiers, "
        f"{fmt(low)}{DASH}{fmt(high)} {RATE}"
    )
    return Estimate(x[i], RATE, min(low, high), max(low, high), "measured", note, "tiers"), names[i]


def _not_below_flat_tiers(y: np.ndarray, fitted: np.ndarray, i: int) -> int:
    """The knee tier moved up past every later tier whose measured P99 is at or under the fit at the knee."""
    while True:
        later = np.flatnonzero(y[i + 1 :] <= fitted[i])
        if later.size == 0:
            return i
        i += int(later[-1]) + 1


def _crossing(x: np.ndarray, y: np.ndarray, fitted: np.ndarray, names: list[str], slo: float) -> Estimate:
    """Rate at which the monotone P99 first exceeds ``slo`` ms, above every tier measured within it:
    interpolated, extrapolated, or not_reached."""
    if x.size == 0:
        return Estimate.insufficient(RATE, "no server tier with a P99")
    within = np.flatnonzero(y <= slo)
    if within.size == 0:
        # Breached at the lowest load measured: we only know an upper bound.
        note = f"P99 already {fmt(y[0])} ms at the lowest tier '{names[0]}'; measure lower rates to locate it"
        return Estimate(None, RATE, None, x[0], "insufficient_data", note)
    above = np.flatnonzero(fitted > slo)
    last_within = int(within[-1])
    i = max(int(above[0]), last_within + 1) if above.size else x.size
    if i >= x.size:
        return _extrapolated_crossing(x, y, fitted, names, slo)
    # Monotone: fitted[i] > slo. Below it the fit, or (where the fit pooled a higher tier in) the tier's own
    # measurement, which is within the SLO.
    start = fitted[i - 1] if fitted[i - 1] <= slo else y[i - 1]
    rate = x[i - 1] + (slo - start) * (x[i] - x[i - 1]) / (fitted[i] - start)
    lo, hi = sorted((x[i - 1], x[i]))
    below = f"'{names[i - 1]}'"
    if i == last_within + 1 and above.size and above[0] < i:
        below += f" (measured {fmt(y[i - 1])} ms, within the SLO; lower tiers that measured more are noise)"
    note = f"linear on the monotone fit of P99 between tiers {below} and '{names[i]}'"
    return Estimate(rate, RATE, lo, hi, "interpolated", note, "tiers")


def _extrapolated_crossing(
    x: np.ndarray, y: np.ndarray, fitted: np.ndarray, names: list[str], slo: float
) -> Estimate:
    """The top tier measured P99 within ``slo``: follow the fit's last two tiers' trend, but not far."""
    top = float(x.max())
    stays = (
        f"P99 ≤ {fmt(slo)} ms at every tier, up to {fmt(top)} {RATE}"
        if np.all(y <= slo)
        else f"P99 ≤ {fmt(slo)} ms at the top tier '{names[-1]}' ({fmt(y[-1])} ms), up to {fmt(top)} {RATE}"
    )
    if fitted[-1] > slo:
        # The fit pooled the top tier with a lower one that measured over the SLO: no trend to follow.
        note = f"{stays}, although the monotone fit of P99 is above it there"
        return Estimate.not_reached(RATE, note, at_least=top)
    if x.size < 2 or x[-1] <= x[-2] or fitted[-1] <= fitted[-2]:
        return Estimate.not_reached(RATE, f"{stays}; P99 is not rising at the top", at_least=top)
    rate = x[-1] + (slo - fitted[-1]) * (x[-1] - x[-2]) / (fitted[-1] - fitted[-2])
    if rate > top * (1 + MAX_EXTRAPOLATION):
        note = f"{stays}; the trend would cross near {fmt(rate)} {RATE}, too far beyond the data to trust"
        return Estimate.not_reached(RATE, note, at_least=top)
    note = f"{stays}; linear trend of the last two tiers of the monotone fit"
    return Estimate(rate, RATE, None, None, "extrapolated", note)

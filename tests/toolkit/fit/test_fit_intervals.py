"""Intervals that cover what a rerun would show: the block bootstrap on autocorrelated seconds and the CPU
curve's wild bootstrap over tiers on drifting tiers (known answers from simulated data), and the monotone
latency fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from capacity.fit.cpu_curve import fit_cpu_curves
from capacity.fit.estimate import Estimate
from capacity.fit.latency import fit_latency, monotone_fit
from capacity.fit.regression import (
    Resampling,
    block_length,
    fit_linear,
    interval_shortfall,
    mean_fit,
    mean_interval,
    percentile_interval,
    resample_indices,
    resampling_for,
)
from capacity.fit.summary import TierSummary, summarise
from capacity.fit.tiers import TierMeasurement
from capacity.fit.usl import fit_usl, usl

PHI = 0.7  # lag-1 autocorrelation of CPU per order within a demo run measured 0.6-0.7
RATES = np.array([100.0, 200.0, 300.0, 400.0, 500.0])
SLOPE = 0.001  # CPU-seconds per order
SIMULATIONS = 150
RESAMPLES = 300


def ar1(rng: np.random.Generator, n: int, phi: float) -> NDArray[np.float64]:
    """``n`` seconds of a stationary AR(1) with unit innovations (started from its stationary law)."""
    x = np.empty(n)
    x[0] = rng.normal(0, 1 / np.sqrt(1 - phi**2))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.normal()
    return x


def simulated_tiers(
    rng: np.random.Generator, phi: float, seconds: int = 60
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int_]]:
    """(rate, cores, tier) per second: cores = 0.02 + SLOPE * rate plus AR(1) noise within every tier."""
    rate = np.repeat(RATES, seconds) + rng.normal(0, 2, RATES.size * seconds)
    noise = np.concatenate([ar1(rng, seconds, phi) for _ in RATES])
    return rate, 0.02 + SLOPE * rate + 0.01 * noise, np.repeat(np.arange(RATES.size), seconds)


def iid(groups: NDArray[np.int_]) -> Resampling:
    """The old resampling: single seconds within each tier, nothing widened."""
    seconds = tuple(int(n) for n in np.unique(groups, return_counts=True)[1])
    return Resampling(seconds, (1,) * len(seconds), 0.0)


def iid_slope_interval(
    rate: NDArray[np.float64], cores: NDArray[np.float64], groups: NDArray[np.int_], seed: int
) -> tuple[float, float]:
    rows = resample_indices(groups, iid(groups), n_resamples=RESAMPLES, seed=seed)
    x, y = rate[rows], cores[rows]
    xc = x - x.mean(axis=1, keepdims=True)
    return percentile_interval(np.sum(xc * y, axis=1) / np.sum(xc * xc, axis=1))


# ------------------------------------------------------------------------------------------ block bootstrap


def test_slope_interval_covers_the_truth_on_autocorrelated_seconds_where_the_iid_one_does_not() -> None:
    """AR(1) seconds with phi = 0.7: the block bootstrap's 95 % interval of the slope covers the true slope
    about 90 % of the time; resampling single seconds (the old method) covers it far less often."""
    block, single = [], []
    for seed in range(SIMULATIONS):
        rate, cores, groups = simulated_tiers(np.random.default_rng(seed), PHI)
        fit = fit_linear(rate[:, None], cores, groups, seed=seed, n_resamples=RESAMPLES)
        _, low, high = fit.coefficient(1)
        block.append(low <= SLOPE <= high)
        low, high = iid_slope_interval(rate, cores, groups, seed)
        single.append(low <= SLOPE <= high)
    assert np.mean(block) >= 0.87, np.mean(block)
    assert np.mean(single) <= 0.7, np.mean(single)


def test_the_cpu_curves_interval_covers_drift_between_tiers_where_the_seconds_bootstrap_does_not() -> None:
    """Each tier of a rerun sits off the curve by its own amount (here 0.03 cores, as tiers of the demo
    sweep moved between reruns), on top of AR(1) seconds. Moving each tier's residuals together (the CPU
    curve's wild bootstrap over tiers) covers the true slope in most sweeps; resampling seconds within
    tiers keeps each tier's offset and covers it in few."""
    rates = np.array([100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0])
    tiers, wild, seconds_only = np.repeat(np.arange(rates.size), 20), [], []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        rate = rates[tiers] + rng.normal(0, 2, tiers.size)
        noise = np.concatenate([ar1(rng, 20, PHI) for _ in rates])
        cores = 0.02 + SLOPE * rate + 0.01 * noise + rng.normal(0, 0.03, rates.size)[tiers]
        line = fit_cpu_curves(rate, cores, tiers, seed=seed, n_resamples=RESAMPLES).linear
        _, low, high = line.derive(lambda c: c[..., 1])
        wild.append(low <= SLOPE <= high)
        _, low, high = fit_linear(rate[:, None], cores, tiers, seed=seed, n_resamples=RESAMPLES).coefficient(
            1
        )
        seconds_only.append(low <= SLOPE <= high)
    assert np.mean(wild) >= 0.82, np.mean(wild)
    assert np.mean(seconds_only) <= 0.4, np.mean(seconds_only)


def test_mean_interval_covers_the_truth_on_autocorrelated_seconds_where_the_iid_one_does_not() -> None:
    block, single = [], []
    for seed in range(SIMULATIONS):
        samples = 5.0 + ar1(np.random.default_rng(1000 + seed), 120, PHI)
        _, low, high = mean_interval(samples, seed=seed, n_resamples=RESAMPLES)
        block.append(low <= 5.0 <= high)
        groups = np.zeros(samples.size, dtype=int)
        rows = resample_indices(groups, iid(groups), n_resamples=RESAMPLES, seed=seed)
        low, high = percentile_interval(samples[rows].mean(axis=1))
        single.append(low <= 5.0 <= high)
    assert np.mean(block) >= 0.87, np.mean(block)
    assert np.mean(single) <= 0.7, np.mean(single)


def test_independent_seconds_keep_the_plain_stratified_bootstrap() -> None:
    """With no autocorrelation the blocks are one second and nothing is widened: the old method."""
    rng = np.random.default_rng(7)
    rate, cores, groups = simulated_tiers(rng, 0.0)
    fit = fit_linear(rate[:, None], cores, groups, seed=0, n_resamples=RESAMPLES)
    assert fit.resampling is not None
    assert fit.resampling.block_seconds == (1,) * RATES.size
    assert fit.resampling.widening == pytest.approx(1.0, abs=0.1)
    assert "blocks of 1 s" in fit.interval_note()
    means = [mean_fit(rng.normal(size=60), seed=s, n_resamples=RESAMPLES) for s in range(20)]
    assert np.median([m.resampling.block_seconds[0] for m in means]) == 1


def test_block_length_follows_the_measured_autocorrelation() -> None:
    rng = np.random.default_rng(3)
    rate, cores, groups = simulated_tiers(rng, PHI, seconds=120)
    fit = fit_linear(rate[:, None], cores, groups, seed=0, n_resamples=RESAMPLES)
    assert fit.resampling is not None
    assert fit.resampling.autocorrelation == pytest.approx(PHI, abs=0.1)
    assert fit.resampling.seconds_per_tier == (120,) * RATES.size
    # Politis-White for an AR(1) at rho = 0.7 and 120 s: (180)^(1/3) * (1.4 / 0.51)^(2/3), about 11 s.
    assert block_length(120, 0.7) == 11
    assert all(8 <= b <= 14 for b in fit.resampling.block_seconds)
    assert 1.1 < fit.resampling.widening < 1.3
    assert block_length(10, 0.95) == 5  # never longer than half the tier
    assert block_length(60, 0.0) == 1


def test_autocorrelation_is_measured_within_tiers_not_across_them() -> None:
    """Residuals that jump between tiers (a line that misses each tier's level) but are independent within
    each are not autocorrelated seconds."""
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(5), 40)
    residuals = np.repeat(rng.normal(0, 10, 5), 40) + rng.normal(size=200)
    assert resampling_for(residuals, groups).block_seconds == (1,) * 5


def test_every_figure_states_its_interval_method() -> None:
    rate, cores, groups = simulated_tiers(np.random.default_rng(5), PHI)
    fit = fit_linear(rate[:, None], cores, groups, seed=0, n_resamples=RESAMPLES)
    estimate = fit.estimate(lambda c: 1 / c[..., 1], "orders/s per core", note="1 / CPU-seconds per order")
    assert estimate.note.startswith("1 / CPU-seconds per order; 95 % CI: block bootstrap over seconds")
    blocks = fit.resampling.block_seconds if fit.resampling else ()
    assert f"blocks of {min(blocks)}" in estimate.note and "autocorrelation" in estimate.note
    mean = mean_fit(5.0 + ar1(np.random.default_rng(6), 120, PHI), seed=0, n_resamples=RESAMPLES)
    assert "block bootstrap" in mean.interval_note()


def test_too_few_seconds_counts_blocks_when_seconds_are_autocorrelated() -> None:
    assert interval_shortfall([20, 20], 2) is None  # 40 independent seconds
    shortfall = interval_shortfall([20, 20], 2, block_seconds=[5, 5])  # 8 blocks: fewer than 10
    assert shortfall is not None and "≥ 10 blocks in all" in shortfall and "8 independent blocks" in shortfall
    assert interval_shortfall([20, 20, 20], 2, block_seconds=[5, 5, 5]) is None
    # The same rule for a mean: 12 seconds in blocks of 4 are 3 pieces of evidence, not 12.
    assert interval_shortfall([12], 1) is None and interval_shortfall([12], 1, block_seconds=[4]) is not None


def test_a_tiers_achieved_rate_states_its_block_bootstrap_or_why_it_has_no_interval() -> None:
    def measured(seconds: int) -> TierMeasurement:
        rate = 1000 + 20 * ar1(np.random.default_rng(seconds), seconds, 0.8)
        nan = np.full(seconds, np.nan)
        return TierMeasurement("r1000", 1000, rate, nan, nan, nan, 1.0, 5.0, 9.0)

    long = summarise(measured(180), seed=0).achieved_rate
    assert long.low is not None and long.high is not None and long.low < 1000 < long.high
    assert "mean of 180 per-second samples; 95 % CI: block bootstrap over seconds, blocks of" in long.note
    # 15 seconds this autocorrelated are about two independent blocks: no interval, and the reason says so.
    short = summarise(measured(15), seed=0).achieved_rate
    assert short.low is None and short.no_interval is not None
    assert "independent blocks" in short.no_interval and "≥ 5 blocks in all" in short.no_interval


def test_usl_intervals_cover_the_truth_on_autocorrelated_seconds() -> None:
    """Closed-loop tiers at eight concurrency levels, 30 s each, 2 % AR(1) noise with phi = 0.7: the old
    covariance intervals covered the peak throughput in about half of the sweeps; the block bootstrap of
    the linearised fit covers every parameter and the peak in most of them."""
    sigma, kappa, lam, levels = 0.05, 0.001, 1000.0, (1, 2, 4, 8, 16, 32, 64, 128)
    peak = float(usl(np.float64(math.sqrt((1 - sigma) / kappa)), lam, sigma, kappa))
    covered: dict[str, list[bool]] = {"lam": [], "sigma": [], "kappa": [], "peak": []}
    for seed in range(80):
        rng = np.random.default_rng(seed)
        tiers = []
        for n in levels:
            noise = 0.02 * math.sqrt(1 - PHI**2) * ar1(rng, 30, PHI)  # 2 % innovations
            rate = float(usl(np.float64(n), lam, sigma, kappa)) * (1 + noise)
            nan = np.full(30, np.nan)
            tiers.append(TierMeasurement(f"n{n}", math.inf, rate, nan, nan, nan, 1, 5, 9, concurrency=n))
        fit = fit_usl(tiers, seed=seed)
        for name, estimate, truth in (
            ("lam", fit.lam, lam),
            ("sigma", fit.sigma, sigma),
            ("kappa", fit.kappa, kappa),
            ("peak", fit.peak_throughput, peak),
        ):
            covered[name].append(estimate.low is not None and estimate.low <= truth <= (estimate.high or 0))
    assert all(np.mean(v) >= 0.8 for v in covered.values()), {k: np.mean(v) for k, v in covered.items()}
    assert "block bootstrap over seconds within each tier" in fit.peak_throughput.note
    recorded = fit.to_dict()["resampling"]  # structured, in fit.json: seconds and block length per tier, rho
    assert recorded["seconds_per_tier"] == [30] * len(levels) and max(recorded["block_seconds"]) > 1


# ---------------------------------------------------------------------------------------- monotone latency


def tier(rate: float, p99_ms: float, slo_p99_ms: float | None = None) -> TierSummary:
    """A tier that kept up with ``rate`` and measured ``p99_ms``."""
    return TierSummary(
        name=f"r{rate:g}",
        offered_rate=rate,
        achieved_rate=Estimate(rate, "orders/s"),
        cpu_cores=None,
        rss_mb=None,
        resting_orders=None,
        p50_ms=p99_ms / 3,
        p99_ms=p99_ms,
        p999_ms=2 * p99_ms,
        error_rate=0.0,
        shed_rate=0.0,
        concurrency=10,
        generator_bound=False,
        slo_p99_ms=slo_p99_ms,
        meets_slo=None if slo_p99_ms is None else p99_ms <= slo_p99_ms,
    )


def test_noise_in_a_low_tier_no_longer_places_the_crossing_below_a_tier_within_the_slo() -> None:
    """The demo that read "P99 > 5 ms from ≈ 102 orders/s" although 500/s measured 4.0 ms: a noisy 250/s
    tier used to place the crossing between 100 and 250/s."""
    tiers = [tier(10, 2.0), tier(100, 3.0), tier(250, 6.5), tier(500, 4.0), tier(1500, 9.0), tier(3000, 40.0)]
    crossing = fit_latency(tiers, slo_p99_ms=[5.0]).crossing(5.0)
    assert crossing is not None and crossing.value is not None
    assert 500 <= crossing.value <= 1500
    assert (crossing.low, crossing.high) == (500, 1500)
    assert crossing.value == pytest.approx(700)  # from 4 ms measured at 500/s to 9 ms at 1,500/s
    assert "'r500' (measured 4 ms, within the SLO" in crossing.note


def test_the_latency_fit_is_monotone_and_pools_a_noisy_tier() -> None:
    fit = fit_latency([tier(100, 3.0), tier(250, 6.5), tier(500, 4.0), tier(1500, 9.0)])
    assert fit.fitted_p99_ms == pytest.approx((3.0, 5.25, 5.25, 9.0))
    assert list(monotone_fit(np.array([1.0, 2.0, 3.0]))) == [1.0, 2.0, 3.0]  # already monotone: unchanged


def test_knee_and_crossings_never_sit_below_a_tier_that_measured_under_them() -> None:
    """Noisy hockey sticks (flat, then rising from a random corner): on every one the fit is monotone, the
    knee is not below a tier whose P99 measured at or under the fit at the knee, and no SLO crossing is below
    a tier that measured within that SLO."""
    rates = np.array([50.0, 100, 200, 400, 700, 1000, 1500, 2000, 3000])
    for seed in range(200):
        rng = np.random.default_rng(seed)
        corner = rng.choice(rates[2:-2])
        p99 = (4 + np.maximum(rates - corner, 0) / 50) * rng.lognormal(0, 0.3, rates.size)
        slos = (5.0, 10.0, 30.0)
        fit = fit_latency([tier(r, p) for r, p in zip(rates, p99, strict=True)], slo_p99_ms=slos)
        fitted = np.array(fit.fitted_p99_ms)
        assert np.all(np.diff(fitted) >= 0)
        if fit.knee_tier is not None:
            k = int(np.flatnonzero(rates == fit.knee.value)[0])
            assert np.all(p99[k + 1 :] > fitted[k]), (seed, fit.knee)
        for slo in slos:
            crossing = fit.crossing(slo)
            assert crossing is not None
            within = rates[p99 <= slo]
            bound = crossing.value if crossing.value is not None else crossing.low
            if within.size and crossing.basis != "insufficient_data":
                assert bound is not None and bound >= within.max(), (seed, slo, crossing)


def test_an_extrapolated_crossing_keeps_its_limit() -> None:
    rising = [tier(100, 2.0), tier(200, 3.0), tier(300, 4.0), tier(400, 5.0)]
    near = fit_latency(rising, slo_p99_ms=[5.5]).crossing(5.5)
    assert near is not None and near.basis == "extrapolated" and near.value == pytest.approx(450)
    far = fit_latency(rising, slo_p99_ms=[50.0]).crossing(50.0)
    assert far is not None and far.basis == "not_reached" and far.low == 400  # 4,900/s: past 1.5x the data
    # The top tier measured within the SLO although a lower one did not: the crossing is at least the top.
    dipped = [tier(100, 2.0), tier(200, 6.0), tier(300, 3.0), tier(400, 4.5)]
    top = fit_latency(dipped, slo_p99_ms=[5.0]).crossing(5.0)
    assert top is not None and top.value is None and top.low == 400 and "not rising" in top.note
    pooled = [tier(100, 2.0), tier(200, 8.0), tier(300, 3.0), tier(400, 4.5)]  # fit: 2, 5.17, 5.17, 5.17
    over = fit_latency(pooled, slo_p99_ms=[5.0]).crossing(5.0)
    assert over is not None and over.value is None and over.low == 400
    assert "although the monotone fit of P99 is above it there" in over.note

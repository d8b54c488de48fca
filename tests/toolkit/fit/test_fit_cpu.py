"""The CPU model (capacity.fit.cpu_curve, service_demand, breaking_points) on servers with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from capacity.fit import Estimate, TierMeasurement, fit_sweep
from capacity.fit.breaking_points import BreakingPoints, breaking_points
from capacity.fit.estimate import TIMES
from capacity.fit.service_demand import fit_service_demand
from capacity.measure.sampler import ProcessSample
from capacity.results.run_file import Counts, Latency
from capacity.run.loadgen_reader import LoadgenSecond
from capacity.run.series import build_series

LAT = Latency(count=1, p50_ms=1.0, p99_ms=2.0, p999_ms=3.0, max_ms=3.0)


def concave_tier(rate: float, rng: np.random.Generator, seconds: int = 60) -> TierMeasurement:
    """A server that amortises fixed costs: cores = 0.05 + 0.0008 * rate^0.75 (CPU per request falls)."""
    achieved = rate + rng.normal(0, 0.02 * rate, seconds)
    cores = 0.05 + 0.0008 * achieved**0.75 + rng.normal(0, 0.01, seconds)
    return TierMeasurement(
        name=f"r{rate:g}",
        offered_rate=rate,
        achieved_rate=achieved,
        server_cpu_percent=100 * cores,
        rss_bytes=np.full(seconds, 50e6),
        resting_orders=np.zeros(seconds),
        p50_ms=1.0,
        p99_ms=5.0,
        p999_ms=9.0,
    )


CONCAVE_LIMIT = ((1.0 - 0.05) / 0.0008) ** (1 / 0.75)  # ~12,575 orders/s on one core


def test_a_concave_cpu_curve_is_not_extrapolated_as_a_straight_line() -> None:
    rng = np.random.default_rng(3)
    fit = fit_service_demand(
        [concave_tier(r, rng) for r in (2000, 4000, 6000, 8000, 9000)], available_cores=1
    )
    assert fit.shape == "power" and fit.exponent is not None
    assert fit.exponent.low is not None and fit.exponent.high is not None and fit.exponent.high < 1
    assert fit.saturation_rate.basis == "extrapolated"  # 1.4 x the 9,000/s tier: within reach
    assert fit.saturation_rate.value == pytest.approx(CONCAVE_LIMIT, rel=0.05)
    assert fit.saturation_rate.low <= CONCAVE_LIMIT <= fit.saturation_rate.high
    # the straight line through the same seconds would have said about 20 % less
    assert fit.linear_r_squared is not None and fit.power_r_squared is not None
    assert fit.power_r_squared > fit.linear_r_squared
    text = " ".join(fit.formulas())
    assert "power law" in text and "CPU per request falls as the rate rises" in text
    assert "wild bootstrap over the 5 tiers" in fit.saturation_rate.note


def test_a_cpu_limit_far_past_the_data_is_not_reached_with_the_highest_tier_as_floor() -> None:
    rng = np.random.default_rng(4)
    fit = fit_service_demand([concave_tier(r, rng) for r in (500, 1000, 2000, 3000, 4000)], available_cores=1)
    assert fit.shape == "power"
    assert fit.saturation_rate.basis == "not_reached" and fit.saturation_rate.value is None
    assert fit.saturation_rate.low == pytest.approx(4000, rel=0.02)
    assert "too far past the data" in fit.saturation_rate.note


def second(t: int, offered: float, ok_by_schedule: int, completed: int) -> LoadgenSecond:
    counts = Counts(scheduled=int(offered), sent=int(offered), ok=ok_by_schedule)
    return LoadgenSecond(t, offered, counts, LAT, LAT, completed=completed)


def one_ms_tier(
    offered: int, rng: np.random.Generator, *, by_completion: bool, seconds: int = 30
) -> TierMeasurement:
    """A server that completes at most 1,000 orders/s and spends 1 ms of CPU on each, offered ``offered``/s
    for ``seconds``, through ``build_series`` as a run would be: CPU sampled each wall-clock second."""
    capacity_per_s = 1000
    served = np.minimum(rng.poisson(offered, seconds), capacity_per_s)
    # By the second each request was scheduled: an overloaded server answers the early seconds' requests
    # (late), and the later seconds' never within the tier.
    answered_total = int(served.sum())
    by_schedule = []
    for _ in range(seconds):
        n = min(offered, answered_total)
        by_schedule.append(n)
        answered_total -= n
    started_at = 1_000.0
    loadgen = [
        second(t, offered, by_schedule[t], int(served[t]) if by_completion else None)  # type: ignore[arg-type]
        for t in range(seconds)
    ]
    cpu = served * 0.1 + rng.normal(0, 1.0, seconds)  # 1 ms per order = 0.1 % of a core per order/s
    samples = [
        ProcessSample(started_at + t + 1, 1.0, float(cpu[t]), 50_000_000, 20.0) for t in range(seconds)
    ]
    series = build_series(loadgen, started_at, samples)
    return TierMeasurement(
        name=f"r{offered}",
        offered_rate=offered,
        achieved_rate=[s.achieved_rate for s in series],
        server_cpu_percent=[s.server_cpu_percent for s in series],
        rss_bytes=[s.server_rss_bytes for s in series],
        resting_orders=np.zeros(seconds),
        p50_ms=1.0,
        p99_ms=2.0,
        p999_ms=3.0,
    )


@pytest.mark.parametrize("overload", [1.2, 2.0])
def test_one_ms_per_order_gives_a_thousand_per_core_with_saturated_tiers_included(overload: float) -> None:
    """Issue 14: from tiers at 300-900/s and one at 1.2x or 2x the server's 1,000/s, the old grouping by
    scheduled second gave 1,419 and 3,069 orders/s per core; work done per wall-clock second gives 1,000."""
    rates = (300, 600, 900, int(1000 * overload))
    rng = np.random.default_rng(5)
    fit = fit_service_demand([one_ms_tier(r, rng, by_completion=True) for r in rates], available_cores=1)
    assert fit.requests_per_core.value == pytest.approx(1000, rel=0.05)
    assert fit.cpu_seconds_per_request.value == pytest.approx(0.001, rel=0.05)
    # the same seconds grouped by schedule: the fit would be far off (what this test guards against)
    rng = np.random.default_rng(5)
    old = fit_service_demand([one_ms_tier(r, rng, by_completion=False) for r in rates], available_cores=1)
    assert old.requests_per_core.value is None or abs(old.requests_per_core.value - 1000) > 100


def only_limit(name: str, limit: Estimate, sustained: Estimate) -> BreakingPoints:
    """Breaking points where ``name`` is the only limit reached (the others kept up to ``sustained``)."""
    assert sustained.value is not None
    not_reached = Estimate.not_reached(sustained.unit, "kept up", at_least=sustained.value)
    limits = {other: not_reached for other in ("cpu", "memory", "latency", "throughput")}
    return breaking_points(**{**limits, name: limit}, sustained=sustained, safety_buffer=0.2)


def test_an_extrapolated_limit_is_not_the_recommended_maximum_by_itself() -> None:
    sustained = Estimate(800.0, "orders/s", 790, 810, "measured", "highest rate before saturation")
    cpu = Estimate(
        1400.0, "orders/s", 1300, 1500, "extrapolated", "rate at which the fitted CPU reaches 1 core"
    )
    points = only_limit("cpu", cpu, sustained)
    assert points.binding == "cpu"
    assert points.recommended_max.value == 800  # not 0.8 x 1,400 = 1,120, which nothing measured
    assert points.recommended_max.basis == "measured"
    assert "capped at 800" in points.recommended_max.note
    # within what was measured healthy, the buffered limit stands
    near = only_limit("cpu", cpu.scaled(0.6), sustained)
    assert near.recommended_max.value == pytest.approx(0.8 * 840)
    assert near.recommended_max.basis == "extrapolated"
    assert points.capped_at_sustained and not near.capped_at_sustained
    assert "capped" not in near.formulas()[-1]


def test_a_memory_projection_is_not_the_recommended_maximum_by_itself() -> None:
    """The demo's quick sweep measured up to 6,000/s, and its memory grew so slowly that RAM would run out
    near 3.9 million/s: 0.8 x that, 3.1 million/s, was printed as the recommended maximum."""
    sustained = Estimate(6000.0, "requests/s", 5990, 6010, "measured", "highest rate measured healthy")
    memory = Estimate(3.9e6, "requests/s", 2.65e6, 7.46e6, "projection", "rate at which RSS reaches 23.5 GiB")
    points = only_limit("memory", memory, sustained)
    assert points.binding == "memory" and points.memory.value == 3.9e6  # the limit itself is still shown
    assert points.recommended_max.value == 6000 and points.recommended_max.basis == "measured"
    assert "capped at 6,000" in points.recommended_max.note
    assert points.formulas()[-1].startswith(
        f"Recommended maximum = 0.8 {TIMES} min(memory 3,900,000), capped at the highest rate measured "
        "healthy ≈ 6,000"
    )


def test_a_concave_server_sweep_recommends_within_what_it_measured() -> None:
    rng = np.random.default_rng(6)
    model = fit_sweep([concave_tier(r, rng) for r in (2000, 4000, 6000, 8000, 9000)], available_cores=1.0)
    recommended = model.recommended_max
    assert recommended.known and recommended.value is not None
    assert recommended.value <= 9000 * 1.01

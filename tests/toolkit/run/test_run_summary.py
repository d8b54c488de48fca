"""Summary arithmetic on synthetic series, series alignment, and the run's pure checks (target, CPUs)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from capacity.measure.sampler import ExchangeSample, ProcessSample
from capacity.results.run_file import Counts, Latency, Overrides, Second
from capacity.results.verdict_text import advice
from capacity.run.loadgen_reader import LoadgenSecond
from capacity.run.orchestrator import (
    RunOptions,
    RunSetupError,
    check_target,
    default_cpus,
    locust_command,
    parse_cpus,
    plan_placement,
    run_dir_for,
)
from capacity.run.series import build_series
from capacity.run.summary import steady_window, summarize
from capacity.scenario import Scenario, load_scenario_text

# 1000 users at 5000/s: one user sends every 200 ms.
RAMPED = """\
name: ramped
load:
  orders_per_second: 5000
  concurrent_users: 1000
  symbols: [BTCUSD]
  duration: 20s
  ramp_up: {duration: 5s, start_percent: 20, end_percent: 100}
slo: {p99_ms: 50, error_rate: 0.01}
"""
FLAT = RAMPED.replace("  ramp_up: {duration: 5s, start_percent: 20, end_percent: 100}\n", "").replace(
    "name: ramped", "name: flat"
)


@pytest.fixture
def ramped() -> Scenario:
    return load_scenario_text(RAMPED)


@pytest.fixture
def flat() -> Scenario:
    return load_scenario_text(FLAT)


def sec(
    t: int, offered: float, achieved: float, gen_cpu: float | None = 20.0, cpu: float | None = 50.0
) -> Second:
    return Second(
        t=t,
        offered_rate=offered,
        sent_rate=offered,
        achieved_rate=achieved,
        errors_per_s=0.0,
        shed_per_s=0.0,
        late_per_s=0.0,
        corrected_p50_ms=1.0,
        corrected_p99_ms=5.0,
        corrected_p999_ms=8.0,
        raw_p50_ms=1.0,
        raw_p99_ms=4.0,
        raw_p999_ms=7.0,
        server_cpu_percent=cpu,
        server_rss_bytes=1000 + t,
        generator_cpu_percent=gen_cpu,
        exchange_orders_per_sec=offered * 0.8,
        exchange_resting_orders=10 * t,
        exchange_trades_per_sec=offered * 0.3,
    )


def ramp_series(scenario: Scenario, gen_cpu: float = 20.0) -> list[Second]:
    """The schedule's offered rate per second; achieved is 90 % of it in the ramp and exact afterwards."""
    out = []
    for t in range(20):
        offered = scenario.expected_orders(t, t + 1)
        out.append(sec(t, offered, offered * (0.9 if t < 5 else 1.0), gen_cpu, cpu=40.0 + t))
    return out


LAT = Latency(100_000, 1.0, 2.0, 5.0, 9.0, 20.0, 1.2)
RAW = Latency(100_000, 0.8, 1.5, 4.0, 8.0, 19.0, 1.0)
TOTALS = Counts(scheduled=100_000, sent=100_000, ok=100_000)


def test_steady_window_leaves_out_ramp_and_edges(ramped: Scenario, flat: Scenario) -> None:
    assert steady_window(ramped, range(20)) == (5, 19)
    assert steady_window(flat, range(20)) == (1, 19)
    assert steady_window(flat, range(21)) == (1, 19)  # a drain second beyond the schedule is not steady
    assert steady_window(flat, range(8)) == (1, 7)  # interrupted at 8 s
    assert steady_window(flat, range(2)) == (0, 2)  # too short: everything
    assert steady_window(flat, []) == (0, 0)


def test_rates_are_over_the_steady_window_only(ramped: Scenario) -> None:
    summary = summarize(ramped, ramp_series(ramped), TOTALS, LAT, RAW, generator_cores=1.0)
    assert (summary.steady_start_s, summary.steady_end_s) == (5, 19)
    assert summary.offered_rate == pytest.approx(5000)
    assert summary.achieved_rate == pytest.approx(5000)  # the ramp's shortfall is not counted
    assert summary.achieved_ratio == pytest.approx(1.0)
    assert summary.server_cpu_percent_mean == pytest.approx(40 + (5 + 18) / 2)
    assert summary.server_cpu_percent_max == pytest.approx(58)
    assert summary.server_cores_used_max == pytest.approx(0.58)
    assert summary.server_rss_max_bytes == 1019  # over the whole run
    assert summary.exchange_orders_per_sec_mean == pytest.approx(4000)
    assert summary.exchange_trades_per_sec_mean == pytest.approx(1500)
    assert summary.exchange_resting_orders_max == 190
    assert summary.corrected == LAT and summary.raw == RAW  # whole-run merged figures, untouched
    assert not summary.generator_bound and summary.limits == () and summary.advice is None
    assert summary.limit is not None and summary.limit.kind == "none"


def test_generator_bound_on_sustained_cpu(flat: Scenario) -> None:
    busy = [sec(t, 5000, 5000, gen_cpu=95.0 if t % 2 else 60.0) for t in range(20)]
    summary = summarize(flat, busy, TOTALS, LAT, RAW, generator_cores=1.0)
    assert summary.generator_bound
    assert summary.generator_saturated_seconds == 9
    assert summary.limit is not None and summary.limit.kind == "generator"
    assert [(r.code, r.measured, r.of) for r in summary.limit.reasons] == [("generator_cpu", 9, 18)]
    assert "CPU was at or above 90% of the cores it could use for 9 of 18" in summary.limits[0]
    assert summary.advice == advice(summary.limit) and "--processes" in summary.advice
    # The same CPU with two cores to use is not saturated.
    assert not summarize(flat, busy, TOTALS, LAT, RAW, generator_cores=2.0).generator_bound


def test_a_cpu_spike_is_not_sustained(flat: Scenario) -> None:
    spiky = [sec(t, 5000, 5000, gen_cpu=99.0 if t in (3, 4) else 50.0) for t in range(20)]
    summary = summarize(flat, spiky, TOTALS, LAT, RAW, generator_cores=1.0)
    assert summary.generator_saturated_seconds == 2
    assert not summary.generator_bound  # 2 of 18 steady seconds, a quarter would be 5
    # ...while the ramp and edge seconds are never counted
    edges = [sec(t, 5000, 5000, gen_cpu=99.0 if t in (0, 19) else 50.0) for t in range(20)]
    assert summarize(flat, edges, TOTALS, LAT, RAW, generator_cores=1.0).generator_saturated_seconds == 0


def test_generator_bound_on_its_own_late_share(flat: Scenario) -> None:
    series = [sec(t, 5000, 5000) for t in range(20)]
    totals = Counts(scheduled=100_000, sent=100_000, ok=100_000, late=1_500, generator_late=1_500)
    summary = summarize(flat, series, totals, LAT, RAW, generator_cores=1.0)
    assert summary.generator_bound
    assert summary.late_share == pytest.approx(0.015)
    assert summary.limits == (
        "1.5% of the scheduled requests went out late, or never, through the generator's own delay",
    )
    assert summary.advice is not None and "--processes" in summary.advice
    # 1 % exactly is within bounds
    ok = Counts(scheduled=100_000, sent=100_000, ok=100_000, late=1_000, generator_late=1_000)
    assert not summarize(flat, series, ok, LAT, RAW, generator_cores=1.0).generator_bound


def test_lateness_the_server_caused_is_never_a_generator_limit(flat: Scenario) -> None:
    series = [sec(t, 5000, 5000) for t in range(20)]
    # a stall: most requests went out late and some never, all because their users waited for answers
    totals = Counts(scheduled=100_000, sent=97_000, ok=97_000, late=40_000, generator_late=200)
    summary = summarize(flat, series, totals, LAT, RAW, generator_cores=1.0)
    assert not summary.generator_bound and summary.limits == () and summary.advice is None
    assert len(summary.notes) == 2
    assert summary.notes[0].startswith(
        "41.2% of the requests went out late because the server's answers held their users back"
    )
    assert summary.notes[1].startswith("3,000 of 100,000 scheduled requests were never sent")
    # ...unless the generator's CPU was saturated too: then it is generator-bound anyway
    hot = [sec(t, 5000, 5000, gen_cpu=97.0) for t in range(20)]
    assert summarize(flat, hot, totals, LAT, RAW, generator_cores=1.0).generator_bound


def test_slots_the_generator_never_sent_count_as_its_own_lateness(flat: Scenario) -> None:
    series = [sec(t, 5000, 5000) for t in range(20)]
    totals = Counts(scheduled=100_000, sent=97_000, ok=97_000, generator_late=3_000)
    summary = summarize(flat, series, totals, LAT, RAW, generator_cores=1.0)
    assert summary.generator_bound and "3.0% of the scheduled requests" in summary.limits[0]


def test_a_disturbed_machine_makes_a_disturbed_tier(flat: Scenario) -> None:
    quiet = [replace(sec(t, 5000, 5000), other_cpu_percent=2.0) for t in range(20)]
    summary = summarize(flat, quiet, TOTALS, LAT, RAW, 1.0)
    assert summary.other_cpu_percent_mean == pytest.approx(2.0) and summary.notes == ()
    assert summary.limit is not None and summary.limit.kind == "none"
    busy = [replace(sec(t, 5000, 5000), other_cpu_percent=60.0) for t in range(20)]
    summary = summarize(flat, busy, TOTALS, LAT, RAW, 1.0)
    assert summary.limit is not None and summary.limit.kind == "disturbed"
    assert [(r.code, r.measured) for r in summary.limit.reasons] == [("other_cpu", 60.0)]
    assert not summary.generator_bound
    # A generator that fell behind on a disturbed machine was starved: the tier is disturbed, not
    # generator-bound, and the advice is to measure again on a quiet machine.
    late = Counts(scheduled=100_000, sent=100_000, ok=100_000, late=1_400, generator_late=1_400)
    starved = summarize(flat, busy, late, LAT, RAW, 1.0)
    assert starved.limit is not None and starved.limit.kind == "disturbed"
    assert starved.advice is not None and "quiet machine" in starved.advice


def test_slo_verdict(flat: Scenario) -> None:
    series = [sec(t, 5000, 5000) for t in range(20)]
    passed = summarize(flat, series, TOTALS, LAT, RAW, 1.0).slo
    assert passed.passed and passed.verdict == "PASS" and passed.reasons == ()
    assert (passed.p99_ms, passed.p99_limit_ms, passed.error_rate_limit) == (5.0, 50.0, 0.01)

    slow = Latency(100_000, 10.0, 40.0, 60.0, 90.0, 100.0, 12.0)
    failed = summarize(flat, series, TOTALS, slow, RAW, 1.0).slo
    assert not failed.passed and failed.verdict == "FAIL"
    assert failed.reasons == ("corrected p99 60 ms is above the SLO's 50 ms",)

    # held to all outcomes where the generator measured them: fast successes, failures that waited
    everything = Latency(100_000, 10.0, 40.0, 900.0, 2000.0, 3000.0, 30.0)
    held = summarize(flat, series, TOTALS, LAT, RAW, 1.0, all_outcomes=everything)
    assert held.all_outcomes == everything and not held.slo.passed and held.slo.p99_ms == 900.0
    assert held.slo.reasons == ("p99 of all outcomes 900 ms is above the SLO's 50 ms",)

    errors = Counts(scheduled=1000, sent=1000, ok=980, errors=15, shed=15)
    verdict = summarize(flat, series, errors, LAT, RAW, 1.0)
    assert verdict.error_rate == pytest.approx(0.02)  # 15 errors + 5 never answered
    assert verdict.shed_rate == pytest.approx(0.015)
    assert verdict.slo.reasons == ("error rate 2.00% is above the SLO's 1.00%",)
    # interrupted: the 5 cut off in flight are not failures
    interrupted = summarize(flat, series, errors, LAT, RAW, 1.0, completed=False)
    assert interrupted.error_rate == pytest.approx(15 / 995)

    nothing = summarize(flat, [], Counts(), Latency(0), Latency(0), 1.0)
    assert not nothing.slo.passed
    assert nothing.slo.p99_ms is None and nothing.error_rate is None
    assert nothing.offered_rate == 0.0 and nothing.achieved_ratio is None


# ---------------------------------------------------------------------------------------------- series


def test_series_joins_samples_by_time() -> None:
    started = 1000.0
    seconds = [LoadgenSecond(t, 100.0, Counts(100, 100, 98, 2, 1, 3), LAT, RAW) for t in range(3)]
    # Samples every second, 0.5 s out of phase with the schedule's seconds.
    process = [ProcessSample(started + 0.5 + i, 1.0, 10.0 * (i + 1), 100 + i, 50.0) for i in range(4)]
    exchange = [
        ExchangeSample(started + 1.2, 80.0, 2.0, 7, 500, trades_per_sec=30.0),
        ExchangeSample(started + 2.1, 81.0, 2.5, 8, 600),
    ]
    series = build_series(seconds, started, process, exchange)
    assert [s.t for s in series] == [0, 1, 2]
    first = series[0]
    assert (first.achieved_rate, first.errors_per_s, first.shed_per_s, first.late_per_s) == (98, 2, 1, 3)
    assert first.corrected_p99_ms == LAT.p99_ms and first.raw_p99_ms == RAW.p99_ms
    # [1000, 1001) overlaps sample 0 ([999.5, 1000.5], 10 %) and sample 1 ([1000.5, 1001.5], 20 %) half each
    assert first.server_cpu_percent == pytest.approx(15.0)
    assert series[1].server_cpu_percent == pytest.approx(25.0)
    assert first.server_rss_bytes == 101 and first.generator_cpu_percent == pytest.approx(50.0)
    assert (first.exchange_orders_per_sec, first.exchange_resting_orders) == (80.0, 7)
    assert (first.exchange_trades_per_sec, series[1].exchange_trades_per_sec) == (30.0, None)
    assert series[1].exchange_rss_bytes == 600
    assert series[2].exchange_orders_per_sec == 81.0  # nothing after its end: the last read inside it


def test_achieved_is_the_work_done_each_wall_clock_second() -> None:
    """A saturated tier: every second scheduled 100 and the server answered 60 per second, late. By
    schedule second the early seconds would show 100 answered and the last ones 0; by arrival, 60 each,
    which is what its CPU of that second paid for (issue 14)."""
    ok = [100, 100, 100, 0, 0]
    seconds = [
        LoadgenSecond(t, 100.0, Counts(100, 100, n, 0, 0, 0), LAT, RAW, completed=60)
        for t, n in enumerate(ok)
    ]
    assert [s.achieved_rate for s in build_series(seconds, 0.0)] == [60.0] * 5
    # a results file from before completions were counted: by schedule second, as it was
    older = [LoadgenSecond(t, 100.0, Counts(100, 100, n, 0, 0, 0), LAT, RAW) for t, n in enumerate(ok)]
    assert [s.achieved_rate for s in build_series(older, 0.0)] == [100.0, 100.0, 100.0, 0.0, 0.0]


def test_series_without_samples_has_nulls() -> None:
    series = build_series([LoadgenSecond(0, 10.0, Counts(), Latency(0), Latency(0))], 0.0)
    assert series[0].server_cpu_percent is None and series[0].exchange_orders_per_sec is None
    assert series[0].exchange_trades_per_sec is None
    assert series[0].corrected_p99_ms is None


# ---------------------------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/",
        "http://127.1.2.3:9000",
        "http://localhost:8080",
        "http://LOCALHOST",
        "http://[::1]:8080",
        "https://127.0.0.1",
        "http://[::ffff:127.0.0.1]:8080",
    ],
)
def test_loopback_targets_are_accepted(url: str) -> None:
    assert check_target(url) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1:8080", "non-loopback host"),
        ("http://example.com", "non-loopback host"),
        ("http://0.0.0.0:8080", "non-loopback host"),
        ("http://192.168.1.5", "non-loopback host"),
        ("http://127.0.0.1.nip.io", "non-loopback host"),
        ("http://127.0.0.1@example.com", "non-loopback host"),
        ("http://[2001:db8::1]:80", "non-loopback host"),
        ("ftp://127.0.0.1", "expected an http:// URL"),
        ("127.0.0.1:8080", "expected an http:// URL"),
        ("http://127.0.0.1:99999", "bad port"),
    ],
)
def test_other_targets_are_refused(url: str, message: str) -> None:
    with pytest.raises(RunSetupError, match=message):
        check_target(url)


def test_cpu_lists_and_defaults() -> None:
    assert parse_cpus("1") == (1,)
    assert parse_cpus("0,2") == (0, 2)
    assert parse_cpus("2-4,1") == (1, 2, 3, 4)
    for bad in ("", "a", "3-1", "1,,2", "-1"):
        with pytest.raises(ValueError):
            parse_cpus(bad)
    assert default_cpus([0, 1]) == ((1,), (0,))  # this machine: server on CPU 1, generator on CPU 0
    assert default_cpus([0, 1, 2]) == ((2,), (0, 1))
    assert default_cpus(range(8)) == ((4, 5, 6, 7), (0, 1, 2, 3))
    assert default_cpus([3]) is None


def test_placement() -> None:
    placement = plan_placement(RunOptions(), available=[0, 1])
    assert (placement.server_cpus, placement.generator_cpus, placement.pinned) == ((1,), (0,), True)
    assert not plan_placement(RunOptions(pin=False), available=[0, 1]).pinned
    single = plan_placement(RunOptions(), available=[0])
    assert not single.pinned and "only CPU 0" in single.notes[0]
    with pytest.raises(RunSetupError, match="--server-cpus: CPU 5 is not available"):
        plan_placement(RunOptions(server_cpus=(5,)), available=[0, 1])
    with pytest.raises(RunSetupError, match="embedded exchange only"):
        plan_placement(RunOptions(target="http://127.0.0.1:1", server_cpus=(1,)), available=[0, 1])
    shared = plan_placement(RunOptions(server_cpus=(0,), generator_cpus=(0,)), available=[0, 1])
    assert "share CPU 0" in shared.notes[0]
    external = plan_placement(RunOptions(target="http://127.0.0.1:1"), available=[0, 1])
    assert external.server_cpus is None and external.generator_cpus == (0,)


def test_locust_command(tmp_path: Path) -> None:
    command = locust_command(tmp_path / "s.yaml", "http://127.0.0.1:1", tmp_path / "lg")
    assert command[1:3] == ["-m", "locust"] and "--headless" in command
    assert command[command.index("--scenario") + 1] == str(tmp_path / "s.yaml")
    assert command[command.index("--exit-code-on-error") + 1] == "0"
    assert "--processes" not in command
    many = locust_command(
        tmp_path / "s.yaml",
        "http://127.0.0.1:1",
        tmp_path / "lg",
        workers=3,
        overrides=Overrides(duration_s=10.0, orders_per_second=250.5, concurrent_users=7),
        master_port=5999,
    )
    assert many[many.index("--processes") + 1] == "3"
    assert many[many.index("--master-bind-host") + 1] == "127.0.0.1"
    assert many[many.index("--master-port") + 1] == "5999"
    assert many[many.index("--duration-override") + 1] == "10"
    assert many[many.index("--rate-override") + 1] == "250.5"
    assert many[many.index("--users-override") + 1] == "7"


def test_run_directories_are_unique(tmp_path: Path) -> None:
    first = run_dir_for(tmp_path / "runs", "light")
    second = run_dir_for(tmp_path / "runs", "light", now=None)
    assert first.is_dir() and second.is_dir() and first != second
    assert first.name.endswith("-light") and len(first.name.split("-")[0]) == len("20261125T120552")

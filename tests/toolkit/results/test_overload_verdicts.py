"""Degraded mode (issue 21): the overload verdict and the time to recover, on structured inputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import second

from capacity.results.run_file import Recovery
from capacity.results.verdict_text import overload_sentence, recovery_sentence
from capacity.results.verdicts import (
    COLLAPSED_GOODPUT_SHARE,
    RECOVERED_FOR_S,
    REFUSING_SHARE,
    OverloadEvidence,
    overload_verdict,
    peak_goodput,
    time_to_recover,
)

#: 10,000/s offered to a server that serves 7,000/s and refuses the rest fast: 30 % refused.
SHEDDING = OverloadEvidence(
    offered_rate=10_000.0,
    goodput=7_000.0,
    goodput_per_second=[3_000.0, 6_500.0, 7_100.0, 7_000.0, 6_900.0, 7_050.0, 7_000.0],
    sent=100_000,
    refused=30_000,
    admitted_p99_ms=120.0,
    refused_p99_ms=2.5,
    p99_limit_ms=500.0,
    backlog_max=40,
    lag_max_ms=35.0,
)


def test_a_run_that_refuses_30_percent_within_its_slo_is_degraded() -> None:
    o = overload_verdict(SHEDDING)
    assert o is not None and o.kind == "degraded"
    assert o.refused_share == pytest.approx(0.30)
    assert (o.admitted_p99_ms, o.refused_p99_ms, o.goodput, o.offered_rate) == (120.0, 2.5, 7_000, 10_000)
    assert o.peak_goodput == pytest.approx((7_100 + 7_000 + 6_900) / 3)
    assert overload_sentence(o).startswith(
        "degraded: refuses 30 %, admitted P99 120 ms within the SLO's 500 ms"
    )


def test_goodput_below_the_threshold_is_a_collapse() -> None:
    # the server delivered 7,000/s at its best in the run, then fell to 2,000/s: under half of it
    collapsing = replace(
        SHEDDING,
        goodput=2_000.0,
        goodput_per_second=[6_900.0, 7_000.0, 7_100.0, 4_000.0, 2_100.0, 1_900.0, 2_000.0],
        admitted_p99_ms=3_000.0,
    )
    o = overload_verdict(collapsing)
    assert o is not None and o.kind == "collapsed"
    assert overload_sentence(o).startswith("collapsed: goodput fell to 2,000/s, 29 % of the best 7,000/s")
    # just above the threshold it is not a collapse (refusing within the SLO: degraded)
    held = replace(collapsing, goodput=COLLAPSED_GOODPUT_SHARE * 7_000 + 1, admitted_p99_ms=100.0)
    assert overload_verdict(held).kind == "degraded"  # type: ignore[union-attr]
    # the reference is the offered rate where that is lower than the best second
    light = replace(held, offered_rate=4_000.0, goodput=1_900.0)
    assert overload_verdict(light).kind == "collapsed"  # type: ignore[union-attr]


def test_admitted_requests_past_the_slo_or_falling_behind_without_refusing_is_overwhelmed() -> None:
    queueing = replace(SHEDDING, admitted_p99_ms=900.0)
    assert overload_verdict(queueing).kind == "overwhelmed"  # type: ignore[union-attr]
    behind = replace(SHEDDING, refused=0, goodput=6_000.0, admitted_p99_ms=50.0)
    o = overload_verdict(behind)
    assert o is not None and o.kind == "overwhelmed" and o.refused_share == 0
    assert overload_sentence(o).startswith(
        "overwhelmed: admitted P99 50 ms against the SLO's 500 ms, refuses 0 %"
    )


def test_a_run_neither_refusing_nor_behind_has_no_overload_unless_it_has_a_recovery_phase() -> None:
    fine = replace(
        SHEDDING, refused=int(REFUSING_SHARE * 100_000) - 1, goodput=10_000.0, goodput_per_second=[10_000.0]
    )
    assert overload_verdict(fine) is None
    recovery = Recovery(start_s=60, duration_s=20, offered_rate=500, time_to_recover_s=0.0)
    o = overload_verdict(replace(fine, recovery=recovery))
    assert o is not None and o.kind == "kept_up" and o.recovery == recovery
    assert overload_sentence(o).endswith(
        "; recovered within the first second after the load dropped to 500/s"
    )
    # the generator could not offer the load, or nothing was answered: nothing to say about overload
    for limit in ("generator", "unreachable"):
        assert overload_verdict(replace(SHEDDING, limit=limit)) is None
    assert overload_verdict(replace(SHEDDING, limit="disturbed")) is not None


def test_peak_goodput_is_the_best_few_seconds() -> None:
    assert peak_goodput([]) is None
    assert peak_goodput([5.0]) == 5.0
    assert peak_goodput([1.0, 9.0, 1.0, 1.0, 4.0, 4.0, 4.0]) == 4.0  # one burst second is not the peak


def test_time_to_recover_from_the_per_second_series() -> None:
    # load 0-9 s, recovery 10-19 s at 500/s, SLO P99 500 ms
    load = [second(t, 2_000.0, refused=3_000, sent=10_000) for t in range(10)]
    recovery = [
        second(10, 4_000.0, refused=100),  # still draining what it admitted
        second(11, 900.0),  # no refusals, still slow
        second(12, 300.0, refused=5),  # fast, but 1 % refused
        second(13, 200.0),
        second(14, 800.0),  # one slow second breaks the streak
        second(15, 90.0),  # recovered from here on: 15, 16, 17
        second(16, 40.0),
        second(17, 20.0),
        second(18, 10.0),
        second(19, 10.0),
    ]
    assert RECOVERED_FOR_S == 3
    assert time_to_recover(load + recovery, 10.0, 20.0, 500.0) == 5.0
    # a refusal share at or below the "about none" threshold counts as recovered (1 in 2,000)
    almost = [*recovery[:5], replace(recovery[5], shed_per_s=0.25), *recovery[6:]]
    assert time_to_recover(load + almost, 10.0, 20.0, 500.0) == 5.0
    # recovered at once; and a load that ends within a second: that second is the load's
    quick = [second(t, 10.0) for t in range(10, 20)]
    assert time_to_recover(load + quick, 10.0, 20.0, 500.0) == 0.0
    assert time_to_recover(load + quick, 9.5, 20.0, 500.0) == 0.5
    # never three good seconds in a row before the end, or a second with no answer at all
    assert time_to_recover(load + recovery[:7], 10.0, 20.0, 500.0) is None
    gap = [*recovery[:6], second(16, None), *recovery[7:8]]
    assert time_to_recover(load + gap, 10.0, 18.0, 500.0) is None
    r = Recovery(start_s=10, duration_s=10, offered_rate=500, time_to_recover_s=None)
    assert recovery_sentence(r) == "not recovered within the 10 s at 500/s after the load dropped"
    assert recovery_sentence(replace(r, time_to_recover_s=5.0)) == (
        "recovered 5 s after the load dropped to 500/s"
    )

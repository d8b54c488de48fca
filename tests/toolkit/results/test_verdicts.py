"""The tier classifier: exactly one limit per tier, from evidence, in the documented order."""

from __future__ import annotations

from dataclasses import replace

import pytest

from capacity.results.run_file import Stall
from capacity.results.verdict_text import LABELS, aside_lines, limit_sentence
from capacity.results.verdicts import (
    DISTURBED_OTHER_CPU_PERCENT,
    STALL_LIMIT_S,
    GeneratorEvidence,
    TierEvidence,
    classify,
    kept_up,
)

QUIET_GENERATOR = GeneratorEvidence(
    saturated_seconds=0, steady_seconds=18, cores=1.0, scheduled=18_000, late_own=0
)
HEALTHY = TierEvidence(
    offered_rate=1000.0,
    achieved_rate=1000.0,
    sent=18_000,
    ok=18_000,
    scheduled=18_000,
    late=0,
    slo_p99_ms=4.0,
    raw_p99_ms=3.0,
    p99_limit_ms=20.0,
    error_rate=0.0,
    error_rate_limit=0.01,
    server_cpu_percent=40.0,
    server_cores=1.0,
    other_cpu_percent=2.0,
    generator=QUIET_GENERATOR,
)
SATURATED_GENERATOR = replace(QUIET_GENERATOR, saturated_seconds=10)


def test_a_healthy_tier_has_no_limit() -> None:
    limit = classify(HEALTHY)
    assert limit.kind == "none" and limit.reasons == () and limit.server_figures


def test_a_hung_server_is_unreachable_whatever_else_happened() -> None:
    hung = replace(HEALTHY, ok=0, achieved_rate=0.0, error_rate=1.0, generator=SATURATED_GENERATOR)
    limit = classify(hung)
    assert limit.kind == "unreachable" and not limit.server_figures
    assert "did not answer" in limit_sentence(limit)


def test_other_processes_disturb_a_tier() -> None:
    busy = replace(HEALTHY, other_cpu_percent=DISTURBED_OTHER_CPU_PERCENT)
    assert classify(busy).kind == "disturbed" and classify(busy).asides == ()
    starved = classify(replace(busy, generator=SATURATED_GENERATOR))  # the generator's evidence rides along
    assert starved.kind == "disturbed" and [r.code for r in starved.asides] == ["generator_cpu"]
    assert classify(replace(busy, other_cpu_percent=DISTURBED_OTHER_CPU_PERCENT - 1)).kind == "none"


def test_the_generator_limits_only_on_its_own_evidence() -> None:
    assert classify(replace(HEALTHY, generator=SATURATED_GENERATOR)).kind == "generator"
    late = replace(QUIET_GENERATOR, late_own=200)  # 1.1 % of the schedule
    assert classify(replace(HEALTHY, generator=late)).kind == "generator"
    # Lateness the server's answers caused is a note on the server, never the generator's limit.
    held = classify(replace(HEALTHY, late=5_000))
    assert held.kind == "none" and [r.code for r in held.asides] == ["held_late"]


def test_a_saturated_slow_server_is_the_limit_even_with_a_busy_generator() -> None:
    both = replace(
        HEALTHY,
        achieved_rate=800.0,
        slo_p99_ms=900.0,
        raw_p99_ms=400.0,
        server_cpu_percent=97.0,
        generator=SATURATED_GENERATOR,
    )
    limit = classify(both)
    assert limit.kind == "server"
    assert [r.code for r in limit.reasons] == ["fell_behind", "slo_p99"]
    assert aside_lines(limit)[0].startswith("the generator was near its limit too")
    # The same generator against a server with spare CPU is the generator's limit.
    assert classify(replace(both, server_cpu_percent=50.0)).kind == "generator"


def test_server_limits_each_say_what_and_how_much() -> None:
    behind = classify(replace(HEALTHY, achieved_rate=900.0))
    assert behind.kind == "server" and behind.reasons[0].measured == pytest.approx(0.9)
    errors = classify(replace(HEALTHY, error_rate=0.02))
    assert [r.code for r in errors.reasons] == ["slo_errors"]
    slow = classify(replace(HEALTHY, slo_p99_ms=25.0))
    assert "P99 25 ms is above the SLO's 20 ms" in limit_sentence(slow)


def test_a_stall_is_the_server_s_with_its_duration() -> None:
    stalled = classify(replace(HEALTHY, stalls=(Stall(3.2, 0.3), Stall(4.1, 2.04))))
    assert stalled.kind == "server"
    (reason,) = stalled.reasons  # the 0.3 s one is below the limit: in the latency, not a verdict
    assert (reason.code, reason.measured, reason.at) == ("stall", 2.04, 4.1)
    assert "answered nothing for 2.0 s from t = 4.1 s" in limit_sentence(stalled)
    assert classify(replace(HEALTHY, stalls=(Stall(1.0, STALL_LIMIT_S - 0.01),))).kind == "none"


def test_kept_up_edges() -> None:
    assert kept_up(1000, 950) and not kept_up(1000, 949)
    assert kept_up(0, 0)  # idle
    assert not kept_up(float("inf"), 5000)  # closed loop: the server sets the pace


def test_every_kind_has_a_label_and_one_sentence() -> None:
    for kind in LABELS:
        assert limit_sentence(replace(classify(HEALTHY), kind=kind))  # type: ignore[arg-type]

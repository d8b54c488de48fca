"""Per-user open-model schedules: intended times follow rate(t)/users(t); stalls make requests late,
never skipped."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from capacity.generator.pacing import UserPacer, advance, rate_breakpoints, user_rate_at
from capacity.measure.latency import LatencyRecorder
from capacity.scenario import Scenario, load_scenario_text

NS = 1_000_000_000


def scenario(text: str) -> Scenario:
    return load_scenario_text("name: t\nslo: {p99_ms: 50, error_rate: 0.01}\n" + text)


CONSTANT = scenario(
    "load: {orders_per_second: 100, concurrent_users: 10, symbols: [BTCUSD], duration: 10s}\n"
)
STAGED = scenario(
    "load: {concurrent_users: 10, symbols: [BTCUSD]}\n"
    "stages:\n"
    "  - {duration: 5s, orders_per_second: 50, concurrent_users: 5}\n"
    "  - {duration: 5s, orders_per_second: 400, concurrent_users: 10}\n"
)
RAMPED = scenario(
    "load: {orders_per_second: 1000, concurrent_users: 100, symbols: [BTCUSD], duration: 60s,"
    " ramp_up: {duration: 30s, start_percent: 20, end_percent: 100}}\n"
)


def all_slots(pacer: UserPacer) -> list[float]:
    slots = []
    while not pacer.finished:
        slots.append(pacer.take())
    return slots


def test_constant_rate_user_sends_at_rate_over_users() -> None:
    pacer = UserPacer.for_scenario(CONSTANT, 0.0, random.Random(1))
    slots = all_slots(pacer)
    assert user_rate_at(CONSTANT, 3.0) == 10.0
    assert 0 <= slots[0] < 0.1  # a random phase within the first interval
    gaps = [b - a for a, b in pairwise(slots)]
    assert all(gap == pytest.approx(0.1) for gap in gaps)
    assert len(slots) in (99, 100) and slots[-1] < 10.0


def test_all_users_together_offer_the_scenario_rate() -> None:
    rng = random.Random(2)
    slots = sorted(s for _ in range(10) for s in all_slots(UserPacer.for_scenario(CONSTANT, 0.0, rng)))
    assert abs(len(slots) - CONSTANT.expected_orders()) <= 10
    for t in range(1, 10):
        in_second = sum(1 for s in slots if t <= s < t + 1)
        assert in_second == pytest.approx(100, abs=10)


def test_stage_change_takes_effect_at_the_boundary() -> None:
    assert rate_breakpoints(STAGED) == (0.0, 5.0, 10.0)
    pacer = UserPacer.for_scenario(STAGED, 0.0, random.Random(3))
    slots = all_slots(pacer)
    first = [s for s in slots if s < 5]
    second = [s for s in slots if s >= 5]
    assert len(first) == pytest.approx(5 * 10, abs=1)  # 50/s over 5 users = 10/s each
    assert len(second) == pytest.approx(5 * 40, abs=1)  # 400/s over 10 users = 40/s each
    assert second[1] - second[0] == pytest.approx(1 / 40)
    # the slot straddling the boundary accrues its interval partly at each rate
    assert 5.0 <= second[0] <= first[-1] + 0.1


def test_ramp_keeps_each_users_pace_and_advance_integrates_the_rate() -> None:
    for t in (0.0, 7.5, 15.0, 29.9, 45.0):
        assert user_rate_at(RAMPED, t) == pytest.approx(10.0, rel=0.03)
    assert advance(0.0, 10.0, lambda t: 10.0, 5.0) == pytest.approx(1.0)
    assert advance(4.5, 10.0, lambda t: 10.0, 5.0) is None  # the schedule ends first
    assert advance(0.0, 1.0, lambda t: 0.0 if t < 1 else 4.0, 5.0) == pytest.approx(1.25)


def simulate(
    pacer: UserPacer, stall: tuple[float, float], service_s: float, recorder: LatencyRecorder
) -> int:
    """One user against a server that answers in ``service_s`` except during ``stall`` (start, end),
    when nothing completes until the stall ends. Returns the number of requests sent."""
    now = 0.0
    sent_count = 0
    while not pacer.finished:
        now = max(now, pacer.next_s or 0.0)  # sleep until due; never earlier
        intended = pacer.take()
        sent = now
        done = sent + service_s
        if stall[0] <= done and sent < stall[1]:
            done = stall[1] + service_s
        recorder.sent(round(intended * NS), round(sent * NS), "limit")
        recorder.record(round(intended * NS), round(sent * NS), round(done * NS))
        sent_count += 1
        now = done  # a slow response delays this user's next send
    return sent_count


def test_a_stall_makes_later_requests_late_and_nothing_is_skipped() -> None:
    rng = random.Random(4)
    recorder = LatencyRecorder(late_threshold_ms=10)
    sent = sum(
        simulate(UserPacer.for_scenario(CONSTANT, 0.0, rng), (4.0, 4.5), 0.001, recorder) for _ in range(10)
    )
    total = recorder.combined()
    assert sent == total.sent == total.scheduled == total.ok
    assert sent == pytest.approx(CONSTANT.expected_orders(), abs=10)
    # every user has ~5 slots inside the stall: one in flight, the others sent late afterwards
    assert 30 <= total.late <= 50
    assert recorder.seconds[4].late == total.late and recorder.seconds[3].late == 0
    assert total.lag_max_us >= 350_000
    assert total.corrected is not None and total.raw is not None
    assert total.corrected.get_max_value() >= 450_000  # the slot nearest the stall start waited ~0.5 s
    # raw latency hides the stall (one request per user saw it); corrected shows it
    for percentile in (50, 90, 99, 99.9, 100):
        assert total.corrected.get_value_at_percentile(percentile) >= total.raw.get_value_at_percentile(
            percentile
        )
    assert total.raw.get_value_at_percentile(99) < 5_000
    assert total.corrected.get_value_at_percentile(99) > 300_000


def test_slots_due_but_never_sent_are_owed_not_dropped() -> None:
    pacer = UserPacer.for_scenario(CONSTANT, 0.0, random.Random(5))
    pacer.take()
    owed = pacer.owed(2.0)  # stopped at t = 2 s while stuck since the first send
    assert len(owed) == pytest.approx(19, abs=1)
    assert all(s <= 2.0 for s in owed) and pacer.next_s is not None and pacer.next_s > 2.0
    assert pacer.wait_s(1.0) == pytest.approx(pacer.next_s - 1.0) and pacer.wait_s(3.0) == 0.0
    finished = UserPacer.for_scenario(CONSTANT, 10.5, random.Random(6))
    assert finished.finished and finished.wait_s(11.0, idle_s=1.0) == 1.0


@pytest.mark.parametrize("scn", [CONSTANT, STAGED, RAMPED], ids=["constant", "staged", "ramped"])
def test_constant_piece_shortcut_gives_exactly_the_integrated_slots(scn: Scenario) -> None:
    fast = UserPacer.for_scenario(scn, 0.0, random.Random(7))
    integrated = UserPacer(fast.rate_at, fast.end_s, fast.next_s, fast.breakpoints)  # no shortcut
    assert fast.constant_from_s is not None and integrated.constant_from_s is None
    slots = all_slots(fast)
    assert slots == all_slots(integrated)  # the very same floats, not merely close
    assert len(slots) > 50

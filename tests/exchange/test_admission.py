"""CoDel admission on a fake clock (issue 21): when the queue stands, how much is refused, Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from reference_exchange.admission import CoDelAdmission, TurnClock


def run_turn(admission: CoDelAdmission, start: float, length: float, orders: int) -> list[bool]:
    """A turn of ``length`` seconds from ``start`` reading ``orders`` new orders evenly spread over it."""
    admission.turn_began(start)
    decisions = [admission.admit(start + length * i / orders) for i in range(orders)]
    admission.turn_ended(start + length)
    return decisions


def test_short_turns_admit_everything() -> None:
    admission = CoDelAdmission(target_s=0.01, interval_s=0.1, share=0.9)
    now = 0.0
    for _ in range(100):
        assert all(run_turn(admission, now, 0.009, 50))
        now += 0.009
    assert not admission.standing and admission.refused == 0


def test_a_burst_shorter_than_the_interval_refuses_nothing() -> None:
    admission = CoDelAdmission(target_s=0.01, interval_s=0.1, share=0.9)
    now = 0.0
    for length in (
        0.03,
        0.05,
        0.04,
        0.002,
    ):  # 120 ms above target would stand; these are 3 turns then one short
        assert all(run_turn(admission, now, length, 100))
        now += length
    assert not admission.standing and admission.refused == 0


def test_a_standing_queue_refuses_the_part_of_each_turn_past_its_share() -> None:
    admission = CoDelAdmission(target_s=0.01, interval_s=0.1, share=0.9)
    now = 0.0
    while not admission.standing:
        assert all(run_turn(admission, now, 0.06, 1000))
        now += 0.06
    assert now >= 0.1  # only after a whole interval above target
    decisions = run_turn(admission, now, 0.06, 1000)
    admitted = sum(decisions)
    assert admitted == pytest.approx(900, abs=2)  # the first 90 % of the turn's length
    assert decisions[:admitted] == [True] * admitted and not any(decisions[admitted:])
    assert admission.refused == 1000 - admitted


def test_the_first_short_turn_ends_the_standing_queue() -> None:
    admission = CoDelAdmission(target_s=0.01, interval_s=0.1, share=0.9)
    now = 0.0
    for _ in range(5):
        run_turn(admission, now, 0.05, 100)
        now += 0.05
    assert admission.standing
    run_turn(admission, now, 0.005, 10)
    assert not admission.standing
    assert all(run_turn(admission, now + 0.005, 0.05, 100))  # standing again only after a new interval


def test_retry_after_is_the_measured_drain_time_in_whole_seconds() -> None:
    admission = CoDelAdmission(target_s=0.01, interval_s=0.1, share=0.5)
    assert admission.retry_after_s() == 1  # nothing measured yet
    now = 0.0
    for _ in range(3):
        run_turn(admission, now, 2.0, 100)  # stalls of 2 s
        now += 2.0
    assert admission.standing
    run_turn(admission, now, 2.0, 100)  # 50 admitted, 50 refused: 50 more at 40 ms each = 2 s
    assert admission.retry_after_s() == 2
    run_turn(admission, now + 2.0, 0.06, 100)
    assert admission.retry_after_s() == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_s": 0.0, "interval_s": 0.1, "share": 0.9},
        {"target_s": float("nan"), "interval_s": 0.1, "share": 0.9},
        {"target_s": 0.01, "interval_s": -1.0, "share": 0.9},
        {"target_s": 0.01, "interval_s": 0.1, "share": 1.0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CoDelAdmission(**kwargs)


def test_retune_checks_every_setting_before_changing_any():
    admission = CoDelAdmission(target_s=0.01, interval_s=0.1, share=0.9)
    with pytest.raises(ValueError, match="share"):
        admission.retune(target_s=0.02, share=1.5)
    assert (admission.target_s, admission.share) == (0.01, 0.9)
    admission.retune(share=0.7)
    assert (admission.target_s, admission.interval_s, admission.share) == (0.01, 0.1, 0.7)


async def test_the_turn_clock_numbers_turns_and_runs_what_was_deferred_once_the_turn_is_judged() -> None:
    """On a fake clock in a running loop: a turn ends two loop hops after its first read; what was deferred
    in it runs after the admission has judged the turn, in order, once."""
    now = [0.0]
    admission = CoDelAdmission(target_s=0.01, interval_s=0.1, share=0.8)
    clock = TurnClock(admission, lambda: now[0])
    ran: list[tuple[str, int, float]] = []
    clock.touch()
    clock.touch()  # a second read in the same turn
    assert clock.turn == 1
    for name in ("a", "b"):
        clock.defer(lambda name=name: ran.append((name, clock.turn, admission.last_turn_s)))
    now[0] = 0.05
    await asyncio.sleep(0)
    assert ran == []  # one hop: the turn's tasks have not all run yet
    await asyncio.sleep(0)
    assert ran == [("a", 1, 0.05), ("b", 1, 0.05)]
    clock.touch()
    assert clock.turn == 2
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(ran) == 2

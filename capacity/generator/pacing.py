"""Per-user arrival schedules for an open-model load: wrk2's pacing, as pure arithmetic.

Each user owns a schedule of *intended* send times at ``rate(t) / users(t)`` requests per second, so all
users together offer the scenario's rate. A user never "waits for the response, then waits the interval":
its next intended time follows from the previous intended time alone. When a response is slow (or the
generator stalls) the next send happens late, but its intended time stays on the schedule; the latency
measured from it then includes the delay (coordinated-omission correction), the request is counted as
late, and the user catches up by sending its due requests back to back. Nothing is skipped.

Times are seconds since t = 0 of the schedule (floats); rates are requests per second.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Sequence

from capacity.scenario import Scenario

RateAt = Callable[[float], float]

# Rates are re-read at least this often (seconds of schedule time) while integrating, so a ramp's changing
# per-user rate is followed closely and a rate of zero at one instant (a ramp from 0 %) is not taken as
# zero for a whole stage.
MAX_STEP_S = 0.25


def user_rate_at(scenario: Scenario, t_s: float) -> float:
    """Requests per second one user sends at ``t_s``: the scenario's rate over its user count (0 outside)."""
    users = scenario.users_at(t_s)
    return scenario.offered_rate_at(t_s) / users if users else 0.0


def rate_breakpoints(scenario: Scenario) -> tuple[float, ...]:
    """Times where the schedule steps (stage boundaries, end of the ramp), sorted, end of the run last."""
    points = {0.0}
    end = 0.0
    for step in scenario.steps:
        end += step.duration_s
        points.add(end)
    ramp = scenario.load.ramp_up
    if ramp is not None and ramp.duration_s < end:
        points.add(ramp.duration_s)
    return tuple(sorted(points))


def advance(
    start_s: float,
    arrivals: float,
    rate_at: RateAt,
    end_s: float,
    breakpoints: Sequence[float] = (),
) -> float | None:
    """The time at which ``arrivals`` (may be fractional) more arrivals have accrued after ``start_s``.

    The rate is integrated piecewise: it is read at the start of each piece and held until the next
    breakpoint or for at most MAX_STEP_S, so a step change of rate takes effect exactly at the step.
    Returns None when the schedule ends (``end_s``) first.
    """
    remaining = arrivals
    now = start_s
    while now < end_s:
        index = bisect_right(breakpoints, now)
        piece_end = min(end_s, now + MAX_STEP_S, breakpoints[index] if index < len(breakpoints) else end_s)
        rate = rate_at(now)
        if rate > 0:
            needed_s = remaining / rate
            if now + needed_s <= piece_end:
                return now + needed_s
            remaining -= (piece_end - now) * rate
        now = piece_end
    return None


class UserPacer:
    """One user's schedule of intended send times.

    Use: ``wait_s(now)`` says how long to sleep before the next slot is due (0 when it is due or overdue);
    ``take()`` hands out the due slot's intended time and moves to the next one; ``owed(until)`` hands out
    every slot that came due but was not taken (when the user is stopped while behind), so it can be
    counted as scheduled-but-not-sent rather than silently dropped.

    ``constant_from_s``: from this time on the rate is known to be constant between breakpoints (after a
    ramp). There ``take()`` reuses the piece's interval instead of integrating again; the slots are the
    very floats ``advance`` gives (it would return ``intended + 1 / rate`` for the same piece), only
    cheaper, as a generator pays this once per request.
    """

    def __init__(
        self,
        rate_at: RateAt,
        end_s: float,
        first_s: float | None,
        breakpoints: Sequence[float] = (),
        constant_from_s: float | None = None,
    ) -> None:
        self.rate_at = rate_at
        self.end_s = end_s
        self.breakpoints = tuple(breakpoints)
        self.constant_from_s = constant_from_s
        self.next_s: float | None = first_s if first_s is not None and first_s < end_s else None
        # (start, end, interval) of the constant-rate piece the last slot fell in; end = next breakpoint
        self._piece: tuple[float, float, float] | None = None

    @classmethod
    def for_scenario(cls, scenario: Scenario, join_s: float, rng: random.Random) -> UserPacer:
        """A user joining at ``join_s``: its first slot is a random fraction of one interval later, so
        users that join together do not send in lockstep."""
        end_s = scenario.total_duration_s
        breakpoints = rate_breakpoints(scenario)

        def rate_at(t: float) -> float:
            return user_rate_at(scenario, t)

        first_s = advance(max(join_s, 0.0), rng.random(), rate_at, end_s, breakpoints)
        ramp = scenario.load.ramp_up
        return cls(rate_at, end_s, first_s, breakpoints, 0.0 if ramp is None else ramp.duration_s)

    @property
    def finished(self) -> bool:
        """True once the schedule has no more slots for this user."""
        return self.next_s is None

    def wait_s(self, now_s: float, idle_s: float = 1.0) -> float:
        """Seconds until the next slot is due: 0 if due or overdue, ``idle_s`` once the schedule is over."""
        if self.next_s is None:
            return idle_s
        return max(self.next_s - now_s, 0.0)

    def take(self) -> float:
        """The intended time of the due slot; the schedule moves on one interval from it (not from now)."""
        if self.next_s is None:
            raise LookupError("the schedule has ended: no more slots")
        intended = self.next_s
        piece = self._piece
        if piece is not None and piece[0] <= intended and intended + piece[2] <= piece[1]:
            self.next_s = intended + piece[2]
        else:
            self.next_s = advance(intended, 1.0, self.rate_at, self.end_s, self.breakpoints)
            self._piece = self._constant_piece(intended)
        return intended

    def _constant_piece(self, t_s: float) -> tuple[float, float, float] | None:
        """The piece holding ``t_s`` if its rate is constant and one interval fits ``advance``'s first step
        (at most MAX_STEP_S), else None."""
        if self.constant_from_s is None or t_s < self.constant_from_s:
            return None
        index = bisect_right(self.breakpoints, t_s)
        if index == 0:
            return None
        end = min(self.end_s, self.breakpoints[index] if index < len(self.breakpoints) else self.end_s)
        rate = self.rate_at(t_s)
        if rate <= 0 or 1.0 / rate > MAX_STEP_S:
            return None
        return (max(self.breakpoints[index - 1], self.constant_from_s), end, 1.0 / rate)

    def owed(self, until_s: float) -> list[float]:
        """Every slot due up to ``until_s`` that was not taken; they are consumed."""
        slots: list[float] = []
        while self.next_s is not None and self.next_s <= until_s:
            slots.append(self.take())
        return slots

"""Admission of new orders by measured queueing delay: CoDel over the event loop's turns.

Under overload with a fixed pool of keep-alive connections, every connection always has a request waiting,
and each turn of the event loop reads and answers all of them. How long a turn takes is then how long a
request waits before the loop gets to it: the queue is the turn. ``TurnClock`` measures each busy turn
(its first read until the work that turn started has run: two ``call_soon`` hops, nothing at idle) and
``CoDelAdmission`` decides from those measurements, as CoDel does for packets and Facebook's and Envoy's
request queues do for requests:

- **When to refuse.** A turn shorter than ``target_s`` is a good queue: it drains within a turn. Turns that
  stay longer than ``target_s`` for a whole ``interval_s`` are a *standing* queue, and only then are new
  orders refused. The first turn shorter than ``target_s`` ends it. A burst, or one slow turn (a full garbage
  collection), never refuses anything.
- **How much.** While the queue stands, each turn admits new orders until it has run ``share`` of the
  previous turn's length, and refuses the rest with a pre-encoded 503 that costs a small fraction of an
  order (the body is never decoded; for a plain order, not even its head: ``order_framing``). Refusals
  take a bounded part of the loop, so goodput stays near capacity at any number of connections, while
  every request is answered: the excess is refused, not left to time out. The share is of the time
  elapsed in the turn when an order is *read*, not of the CPU: an admitted order's work runs as a task
  after the turn's reads, so fewer are refused than a share of the CPU would refuse, the fewer the more
  connections a turn reads. The default, 0.8, was chosen by ``benchmarks/admission_shares.py``, which
  alternates two shares within one overload run (``retune``, through ``PUT /demo/admission``):
  docs/benchmarks.md, "Overload", gives what it gains over 0.9 and why not lower. The turn, and so
  every admitted order's wait, grows with the connection count (docs/benchmarks.md, "Clients that retry
  at once"), never without bound.
- **Retry-After** is the measured drain time: the refused requests of the last turn, at the rate that turn
  admitted them (its length per admitted order), in whole seconds and at least 1.

Cancels and reads are never refused here: a cancel reduces work and risk, and a read costs about as much as
a refusal. The journal's pending bound (``MAX_PENDING_ORDERS``, by default the connection cap) still refuses
while the journal is slow, when set below the cap. The loop-lag bound protects only ``LEAN_HTTP=off``,
which has no turn clock: here it would refuse every order whenever many connections make a turn long.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

#: ``share`` lies strictly between these: 0 would admit no order while the queue stands, 1 would refuse none.
SHARE_BOUNDS = (0.0, 1.0)


@dataclass
class CoDelAdmission:
    """The decision, on whatever clock the caller reads (tests use a fake one). See the module docstring."""

    target_s: float
    interval_s: float
    share: float
    standing: bool = False
    refused: int = 0
    # The turn in progress and the last one measured.
    turn_started: float = 0.0
    last_turn_s: float = 0.0
    _above_since: float | None = None
    _admitted_in_turn: int = 0
    _refused_in_turn: int = 0
    _drain_s: float = 0.0

    def __post_init__(self) -> None:
        _check_settings(self.target_s, self.interval_s, self.share)

    def retune(
        self, target_s: float | None = None, interval_s: float | None = None, share: float | None = None
    ) -> None:
        """Change settings while running (``PUT /demo/admission``): all checked before any is changed. The
        next turn decides with them; a queue already standing stays standing until a turn is short."""
        target_s = self.target_s if target_s is None else target_s
        interval_s = self.interval_s if interval_s is None else interval_s
        share = self.share if share is None else share
        _check_settings(target_s, interval_s, share)
        self.target_s, self.interval_s, self.share = target_s, interval_s, share

    def turn_began(self, now: float) -> None:
        self.turn_started = now
        self._admitted_in_turn = self._refused_in_turn = 0

    def turn_ended(self, now: float) -> None:
        """A turn's work is done: its length decides whether the queue stands."""
        length = self.last_turn_s = now - self.turn_started
        self._drain_s = self._refused_in_turn * length / max(1, self._admitted_in_turn)
        if length < self.target_s:
            self._above_since, self.standing = None, False
        elif self._above_since is None:
            self._above_since = now
        elif now - self._above_since >= self.interval_s:
            self.standing = True

    def refuses(self, now: float) -> bool:
        """Whether a new order read at ``now`` is to be refused (nothing counted: ``refuse`` or ``admit``)."""
        return self.standing and now - self.turn_started > self.share * self.last_turn_s

    def refuse(self) -> None:
        """Count an order refused."""
        self._refused_in_turn += 1
        self.refused += 1

    def admit(self, now: float) -> bool:
        """Whether a new order read at ``now`` is admitted (False: refuse it, counted)."""
        if self.refuses(now):
            self.refuse()
            return False
        self._admitted_in_turn += 1
        return True

    def retry_after_s(self) -> int:
        """Whole seconds for Retry-After: the last measured drain time, at least 1."""
        return max(1, math.ceil(self._drain_s))


def _check_settings(target_s: float, interval_s: float, share: float) -> None:
    for name, value in (("target_s", target_s), ("interval_s", interval_s)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    low, high = SHARE_BOUNDS
    if not low < share < high:
        raise ValueError(f"share must be between {low:g} and {high:g}, got {share!r}")


class TurnClock:
    """Tells ``admission`` when each busy turn of the running loop begins and ends; ``touch()`` on every
    read. A turn ends two ``call_soon`` hops after its first read, once the tasks it started (orders being
    matched) have run their first step. ``turn`` numbers the turns; what is ``defer``red runs once the
    current turn has ended and been judged, and is the first read of the next."""

    def __init__(self, admission: CoDelAdmission, clock: Callable[[], float] = time.perf_counter) -> None:
        self.admission = admission
        self._clock = clock
        self._in_turn = False
        self.turn = 0
        self._deferred: list[Callable[[], None]] = []

    def touch(self) -> None:
        if not self._in_turn:
            self._in_turn = True
            self.turn += 1
            self.admission.turn_began(self._clock())
            asyncio.get_running_loop().call_soon(self._hop)

    def now(self) -> float:
        return self._clock()

    def defer(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the current turn ends."""
        self._deferred.append(callback)

    def _hop(self) -> None:
        asyncio.get_running_loop().call_soon(self._end)

    def _end(self) -> None:
        self._in_turn = False
        self.admission.turn_ended(self._clock())
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for callback in deferred:
                callback()

"""The exchange's garbage-collector policy (reference_exchange/gc_policy.py): the start-up heap and what
survives each collection are tenured, a thorough collection reclaims a cycle among tenured objects and
runs in a quiet moment once resident memory has grown (at once if it grows much more), and the engine's
finished orders stay tracked so that no collection walks them again."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import pytest

from reference_exchange.engine import MatchingEngine, OrderType, Side
from reference_exchange.gc_policy import (
    GC_THRESHOLDS,
    MEMORY_CHECK_EVERY,
    QUIET_CPU_SHARE,
    QUIET_WINDOW_S,
    THOROUGH_GROWTH,
    URGENT_GROWTH,
    Tenuring,
    settle_gc,
)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The collector as the test found it: thresholds, callbacks, nothing left tenured."""
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.callbacks[:] = callbacks
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def a_cycle() -> Node:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return first


def test_settle_gc_tenures_the_start_up_heap_and_installs_one_policy(restored_gc: None) -> None:
    settle_gc()
    tenuring = settle_gc()  # settled again (a second app in one process): still one policy
    assert gc.get_threshold() == GC_THRESHOLDS
    assert [c for c in gc.callbacks if isinstance(c, Tenuring)] == [tenuring]
    assert gc.get_freeze_count() > 0


@pytest.mark.parametrize("generation", [0, 1, 2])
def test_survivors_of_every_collection_are_tenured(restored_gc: None, generation: int) -> None:
    tenuring = settle_gc()
    kept = a_cycle()
    frozen = gc.get_freeze_count()
    gc.collect(generation)  # the cycle is still referenced, so it survives, and is tenured at once
    assert gc.get_freeze_count() > frozen and tenuring.tenurings >= 1
    del kept


def test_survivors_are_tenured_and_a_thorough_collection_reclaims_their_cycles(restored_gc: None) -> None:
    tenuring = settle_gc()
    kept = a_cycle()
    alive = weakref.ref(kept)
    frozen = gc.get_freeze_count()
    gc.collect(0)  # a young collection: the cycle is still referenced, so it survives and is tenured
    assert gc.get_freeze_count() > frozen and tenuring.tenurings >= 1
    del kept
    gc.collect()  # garbage now, but tenured: a full collection no longer walks it
    assert alive() is not None
    tenuring.collect_thoroughly()
    assert alive() is None and tenuring.thorough_collections == 1
    assert gc.get_freeze_count() > 0  # what survived the thorough one is tenured again


def collections(tenuring: Tenuring, count: int = MEMORY_CHECK_EVERY) -> None:
    """``count`` collections as the collector reports them: by default, enough for one memory check."""
    for _ in range(count):
        tenuring("stop", {"generation": 0, "collected": 0, "uncollectable": 0})


class FakeLoop:
    """The two calls Tenuring makes of the event loop, recorded; ``run`` runs what is pending."""

    def __init__(self, closed: bool = False) -> None:
        self.closed = closed
        self.pending: list[Callable[[], None]] = []
        self.delays: list[float] = []

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        if self.closed:
            raise RuntimeError("Event loop is closed")
        self.pending.append(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.delays.append(delay)
        self.pending.append(callback)

    def run(self) -> None:
        pending, self.pending = self.pending, []
        for callback in pending:
            callback()


class FakeProcess:
    """Resident memory, CPU seconds and the clock, set by the test."""

    def __init__(self) -> None:
        self.resident: int | None = 100_000_000
        self.cpu = 0.0
        self.now = 0.0

    def tenuring(self, loop: FakeLoop | None) -> Tenuring:
        return Tenuring(
            loop,  # type: ignore[arg-type]
            resident=lambda: self.resident,
            cpu_seconds=lambda: self.cpu,
            clock=lambda: self.now,
        )

    def window(self, cpu_share: float) -> None:
        """A window of QUIET_WINDOW_S passes with the process using ``cpu_share`` of a core."""
        self.now += QUIET_WINDOW_S
        self.cpu += cpu_share * QUIET_WINDOW_S


def test_a_due_thorough_collection_waits_for_a_quiet_window(restored_gc: None) -> None:
    process, loop = FakeProcess(), FakeLoop()
    tenuring = process.tenuring(loop)
    collections(tenuring)
    assert process.resident is not None
    process.resident = int(THOROUGH_GROWTH * 100_000_000) - 1
    collections(tenuring)
    assert loop.pending == []  # grown, but not yet THOROUGH_GROWTH times
    process.resident += 1
    collections(tenuring)
    collections(tenuring)
    assert len(loop.pending) == 1  # due once, until it has run
    loop.run()  # on the loop: the first window opens
    for _ in range(3):  # busy windows: it waits, looking once a window
        process.window(0.5)
        loop.run()
        assert tenuring.thorough_collections == 0 and len(loop.pending) == 1
    assert loop.delays == [QUIET_WINDOW_S] * 4
    process.window(QUIET_CPU_SHARE / 2)
    loop.run()
    assert tenuring.thorough_collections == 1 and loop.pending == []
    # measured from here on: due again at THOROUGH_GROWTH times this
    collections(tenuring)
    assert loop.pending == []


def test_memory_past_urgent_growth_collects_at_once_busy_or_not(restored_gc: None) -> None:
    process, loop = FakeProcess(), FakeLoop()
    tenuring = process.tenuring(loop)
    process.resident = int(THOROUGH_GROWTH * 100_000_000)
    collections(tenuring)
    loop.run()
    process.window(1.0)
    loop.run()
    assert tenuring.thorough_collections == 0  # due, busy: waiting
    process.resident = int(URGENT_GROWTH * 100_000_000)
    process.window(1.0)
    loop.run()
    assert tenuring.thorough_collections == 1 and loop.pending == []


def test_without_a_loop_or_a_resident_figure_no_thorough_collection_is_asked_for(restored_gc: None) -> None:
    process = FakeProcess()
    closed = process.tenuring(FakeLoop(closed=True))  # the loop has closed (shutting down)
    no_loop = process.tenuring(None)  # the engine benchmark
    loop = FakeLoop()
    process.resident = None  # no /proc
    unknown = process.tenuring(loop)
    process.resident = 100 * 100_000_000
    for tenuring in (closed, no_loop, unknown):
        collections(tenuring)
    assert closed.loop is None  # it stops asking, without an error
    assert loop.pending == [] and unknown.thorough_collections == 0


def test_memory_is_read_once_per_memory_check_every_collections(restored_gc: None) -> None:
    reads: list[int] = []

    def resident() -> int:
        reads.append(1)
        return 100_000_000

    tenuring = Tenuring(FakeLoop(), resident=resident)  # type: ignore[arg-type]
    reads.clear()  # the read that sets the first threshold
    collections(tenuring, MEMORY_CHECK_EVERY - 1)
    assert reads == []
    collections(tenuring, 1)
    assert len(reads) == 1
    collections(tenuring, 2 * MEMORY_CHECK_EVERY)
    assert len(reads) == 3


def test_the_engines_finished_orders_stay_tracked_so_no_collection_walks_them_again() -> None:
    """CPython stops tracking an exact dict of untracked records in a full collection, then tracks it
    again as a young object on the next insert: a million finished orders were walked by every
    generation after each full collection (pauses of 10-80 ms that grew with the dict)."""
    engine = MatchingEngine(["BTCUSD"])
    for _ in range(3):
        order = engine.place("BTCUSD", Side.BUY, OrderType.LIMIT, 1, 59_000).order
        engine.cancel(order.order_id)
    gc.collect()
    assert all(gc.is_tracked(part) for part in engine._finished._parts)
    plain = dict(engine._finished.items())
    gc.collect()
    assert not gc.is_tracked(plain)  # what the exact dict did

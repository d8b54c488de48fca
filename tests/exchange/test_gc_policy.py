"""The exchange's garbage-collector policy (reference_exchange/gc_policy.py): the start-up heap and what
survives each collection are tenured, a thorough collection reclaims a cycle among tenured objects and
is asked for when resident memory has grown, and the engine's finished orders stay tracked so that no
collection walks them again."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import pytest

from reference_exchange.engine import MatchingEngine, OrderType, Side
from reference_exchange.gc_policy import (
    GC_THRESHOLDS,
    MEMORY_CHECK_EVERY,
    THOROUGH_GROWTH,
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


def test_a_thorough_collection_is_asked_for_once_memory_has_grown(restored_gc: None) -> None:
    resident = [100_000_000]
    asked: list[Callable[[], None]] = []
    tenuring = Tenuring(asked.append, resident=lambda: resident[0])
    collections(tenuring)
    resident[0] = int(THOROUGH_GROWTH * 100_000_000) - 1
    collections(tenuring)
    assert asked == []  # grown, but not yet THOROUGH_GROWTH times
    resident[0] += 1
    collections(tenuring)
    collections(tenuring)
    assert asked == [tenuring.collect_thoroughly]  # once, until it has run
    tenuring.collect_thoroughly()  # measured from here on: the next one at THOROUGH_GROWTH times this
    collections(tenuring)
    assert len(asked) == 1
    # A loop that has closed (shutting down) refuses: the policy stops asking, without an error.
    closed = Tenuring(_refuse, resident=lambda: resident[0])
    resident[0] *= 100
    collections(closed)
    assert closed.schedule is None
    # No loop to run it (the engine benchmark), or no resident figure (no /proc): never asked.
    quiet = Tenuring(None, resident=lambda: resident[0])
    unknown = Tenuring(asked.append, resident=lambda: None)
    resident[0] *= 100
    collections(quiet)
    collections(unknown)
    assert len(asked) == 1


def test_memory_is_read_once_per_memory_check_every_collections(restored_gc: None) -> None:
    reads: list[int] = []

    def resident() -> int:
        reads.append(1)
        return 100_000_000

    tenuring = Tenuring(lambda callback: None, resident=resident)
    reads.clear()  # the read that sets the first threshold
    collections(tenuring, MEMORY_CHECK_EVERY - 1)
    assert reads == []
    collections(tenuring, 1)
    assert len(reads) == 1
    collections(tenuring, 2 * MEMORY_CHECK_EVERY)
    assert len(reads) == 3


def _refuse(callback: Callable[[], None]) -> None:
    raise RuntimeError("Event loop is closed")


def test_the_engines_finished_orders_stay_tracked_so_no_collection_walks_them_again() -> None:
    """CPython stops tracking an exact dict of untracked records in a full collection, then tracks it
    again as a young object on the next insert: a million finished orders were walked by every
    generation after each full collection (pauses of 10-80 ms that grew with the dict)."""
    engine = MatchingEngine(["BTCUSD"])
    for _ in range(3):
        order = engine.place("BTCUSD", Side.BUY, OrderType.LIMIT, 1, 59_000).order
        engine.cancel(order.order_id)
    gc.collect()
    assert gc.is_tracked(engine._finished)
    plain = dict(engine._finished)
    gc.collect()
    assert not gc.is_tracked(plain)  # what the exact dict did

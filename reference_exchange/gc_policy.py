"""How the exchange runs CPython's garbage collector: one policy for the server and the engine benchmark,
so the benchmark measures the engine as the exchange runs it.

Generations 0 and 1 keep CPython's thresholds: a young collection's pause grows with its threshold, and
the tail is what matters here.

A full collection walks every tracked object in the old generation, and a resting order is one: left to
CPython, its pause grows with the book until it is a stall that refuses orders by itself (the figures are
in docs/benchmarks.md, "Micro-costs behind code choices", and ``benchmarks/gc_pauses.py``). So what
survives a full collection is *tenured* (``gc.freeze``): the next one walks only what was promoted since,
whatever the size of the book. A tenured object is still freed the moment its last reference goes (a
filled or cancelled order); only a reference cycle among tenured objects would wait. For those, once
resident memory has grown ``THOROUGH_GROWTH`` times since the last thorough collection, the event loop
runs one that walks everything (``Tenuring.collect_thoroughly``), as Go paces its collector by heap
growth: a book that turns over at a steady size never needs one, one that grows needs one per quadrupling.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

#: Generations 0 and 1 as CPython's; a full collection whenever CPython allows one (threshold 0: once a
#: quarter as much as the last one left has been promoted), which walks only what is not tenured yet.
GC_THRESHOLDS = (700, 10, 0)
#: A thorough collection once resident memory is this many times what it was after the last one.
THOROUGH_GROWTH = 4.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int | None:
    """This process's resident memory (one read of /proc/self/statm), or None where there is none."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class Tenuring:
    """A ``gc.callbacks`` entry that tenures what each full collection leaves and, given ``schedule`` (the
    loop's ``call_soon_threadsafe``: a collection cannot start another from its callback, which may run
    on any thread), asks for a thorough collection once resident memory has grown ``growth`` times. It
    looks at memory after generation-1 collections only (a file read each, about 20 a second at load)."""

    def __init__(
        self,
        schedule: Callable[[Callable[[], None]], object] | None = None,
        growth: float = THOROUGH_GROWTH,
        resident: Callable[[], int | None] = resident_bytes,
    ) -> None:
        self.schedule = schedule
        self.growth = growth
        self.resident = resident
        self.full_collections = 0
        self.thorough_collections = 0
        self._due = False
        self._thorough_at = self._next_threshold()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop":
            return
        if info["generation"] == 2:
            self.full_collections += 1
            gc.freeze()
        elif info["generation"] == 1 and self.schedule is not None and not self._due:
            resident = self.resident()
            if resident is not None and resident >= self._thorough_at:
                self._due = True
                try:
                    self.schedule(self.collect_thoroughly)
                except RuntimeError:  # the loop has closed (shutting down): nothing left to collect for
                    self.schedule = None

    def collect_thoroughly(self) -> None:
        """Walk everything, the tenured objects too, and tenure what survives."""
        gc.unfreeze()
        tenure_everything()
        self.thorough_collections += 1
        self._thorough_at = self._next_threshold()
        self._due = False

    def _next_threshold(self) -> float:
        resident = self.resident()
        return self.growth * resident if resident is not None else float("inf")


def tenure_everything() -> None:
    """Collect everything and tenure what survives. The second collection walks only what the first left
    young: CPython takes its survivors, not the whole heap, as the old generation's size, which decides
    when the next full collection may start (not before a quarter as much again has been promoted)."""
    gc.collect()
    gc.freeze()
    gc.collect()


def settle_gc(schedule: Callable[[Callable[[], None]], object] | None = None) -> Tenuring:
    """Once start-up is done: collect, tenure everything alive (modules, the replayed books), and from then
    on tenure what each full collection leaves (``schedule``: see ``Tenuring``).

    Left in the collector's sight, the start-up heap alone made full collections longer than the P99 goal
    within seconds of load (docs/benchmarks.md)."""
    for callback in [c for c in gc.callbacks if isinstance(c, Tenuring)]:
        gc.callbacks.remove(callback)  # settled again (tests, benchmarks): one policy
    tenure_everything()
    gc.set_threshold(*GC_THRESHOLDS)
    tenuring = Tenuring(schedule)
    gc.callbacks.append(tenuring)
    return tenuring

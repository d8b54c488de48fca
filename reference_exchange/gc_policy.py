"""How the exchange runs CPython's garbage collector: one policy for the server and the engine benchmark,
so the benchmark measures the engine as the exchange runs it.

Generation 0 keeps CPython's threshold: a young collection's pause grows with it, and the tail is what
matters here. The older generations never fill (see below), so only generation 0 is ever collected, apart
from the thorough collections.

A full collection walks every tracked object in the old generation, and a resting order is one: left to
CPython, its pause grows with the book until it is a stall that refuses orders by itself (the figures are
in docs/benchmarks.md, "Micro-costs behind code choices", and ``benchmarks/gc_pauses.py``). So what
survives any collection is *tenured* (``gc.freeze``, which moves the survivors in one step): every
collection walks only what was allocated since the last one, whatever the size of the book. Tenuring
only what survived full collections left the middle and old generations to fill up between them, and near
saturation each of their pauses left a queue that took far longer to drain than the pause itself
(docs/benchmarks.md, "Tenuring after every collection"). A tenured object is still freed the moment its
last reference goes (a filled or cancelled order, a request's objects once it is answered); only a
reference cycle among tenured objects waits. For those, once resident memory has grown
``THOROUGH_GROWTH`` times since the last thorough collection, the event loop runs one that walks
everything (``Tenuring.collect_thoroughly``), as Go paces its collector by heap growth: a book that turns
over at a steady size never needs one, one that grows needs one per quadrupling.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

#: Generation 0 as CPython's. The others never reach theirs: each collection tenures its survivors, and
#: ``gc.freeze`` zeroes the counts that would start a middle or full collection.
GC_THRESHOLDS = (700, 10, 0)
#: A thorough collection once resident memory is this many times what it was after the last one.
THOROUGH_GROWTH = 4.0
#: Resident memory is read once per this many collections (a file read inside the collector's pause), the
#: rate at which the generation-1 collections that used to trigger the read came.
MEMORY_CHECK_EVERY = GC_THRESHOLDS[1]
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int | None:
    """This process's resident memory (one read of /proc/self/statm), or None where there is none."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class Tenuring:
    """A ``gc.callbacks`` entry that tenures what each collection leaves and, given ``schedule`` (the
    loop's ``call_soon_threadsafe``: a collection cannot start another from its callback, which may run
    on any thread), asks for a thorough collection once resident memory has grown ``growth`` times. It
    looks at memory after every ``MEMORY_CHECK_EVERY``-th collection."""

    def __init__(
        self,
        schedule: Callable[[Callable[[], None]], object] | None = None,
        growth: float = THOROUGH_GROWTH,
        resident: Callable[[], int | None] = resident_bytes,
    ) -> None:
        self.schedule = schedule
        self.growth = growth
        self.resident = resident
        self.tenurings = 0
        self.thorough_collections = 0
        self._due = False
        self._thorough_at = self._next_threshold()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop":
            return
        self.tenurings += 1
        gc.freeze()  # also zeroes the generations' counts: no middle or full collection follows
        if self.tenurings % MEMORY_CHECK_EVERY == 0 and self.schedule is not None and not self._due:
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
    on tenure what each collection leaves (``schedule``: see ``Tenuring``).

    Left in the collector's sight, the start-up heap alone made full collections longer than the P99 goal
    within seconds of load (docs/benchmarks.md)."""
    for callback in [c for c in gc.callbacks if isinstance(c, Tenuring)]:
        gc.callbacks.remove(callback)  # settled again (tests, benchmarks): one policy
    tenure_everything()
    gc.set_threshold(*GC_THRESHOLDS)
    tenuring = Tenuring(schedule)
    gc.callbacks.append(tenuring)
    return tenuring

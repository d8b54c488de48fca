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

A thorough collection is a stall as long as the book is large (over 100 ms at 200,000 resting orders), and
one that lands while orders arrive puts them all in the tail. So a due one waits for a quiet moment, as
V8's idle-time collection and Go's idle workers do: a window in which the process used little CPU. Only if
memory keeps growing to ``URGENT_GROWTH`` times does it run at once, busy or not: memory stays bounded.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from typing import Any

#: Generation 0 as CPython's. The others never reach theirs: each collection tenures its survivors, and
#: ``gc.freeze`` zeroes the counts that would start a middle or full collection.
GC_THRESHOLDS = (700, 10, 0)
#: A thorough collection is due once resident memory is this many times what it was after the last one...
THOROUGH_GROWTH = 4.0
#: ... and runs in the first window of this length in which the process used under this share of a core
#: (an idle exchange uses well under 1 %; one serving 1,000 orders/s, several percent) ...
QUIET_WINDOW_S = 0.5
QUIET_CPU_SHARE = 0.02
#: ... or at once, busy or not, if memory reaches this many times what it was after the last one. Most
#: growth is the book and the finished orders kept (ORDER_RETENTION), which no collection frees: 60 s at
#: twice capacity grow the exchange eight-fold, and a collection then walked 300,000 orders for 318 ms to
#: free nothing.
URGENT_GROWTH = 4 * THOROUGH_GROWTH
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
    """A ``gc.callbacks`` entry that tenures what each collection leaves and, given the event ``loop``,
    has a thorough collection run there once resident memory has grown ``growth`` times: in the first
    quiet window, or at once past ``urgent`` times (a collection cannot start another from its callback,
    which may run on any thread, so the loop runs it). It looks at memory after every
    ``MEMORY_CHECK_EVERY``-th collection, and once every ``QUIET_WINDOW_S`` while one is due."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        growth: float = THOROUGH_GROWTH,
        urgent: float = URGENT_GROWTH,
        resident: Callable[[], int | None] = resident_bytes,
        cpu_seconds: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loop = loop
        self.growth = growth
        self.urgent = urgent
        self.resident = resident
        self.cpu_seconds = cpu_seconds
        self.clock = clock
        self.tenurings = 0
        self.thorough_collections = 0
        self._due = False
        self._baseline = self._resident_or_inf()
        self._window = (0.0, 0.0)  # (CPU seconds, clock) when the current quiet window opened

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop":
            return
        self.tenurings += 1
        gc.freeze()  # also zeroes the generations' counts: no middle or full collection follows
        if self.tenurings % MEMORY_CHECK_EVERY or self.loop is None or self._due:
            return
        if self._resident_or_inf() >= self.growth * self._baseline:
            self._due = True
            try:
                self.loop.call_soon_threadsafe(self._open_window)
            except RuntimeError:  # the loop has closed (shutting down): nothing left to collect for
                self.loop = None

    def _open_window(self) -> None:
        assert self.loop is not None
        self._window = (self.cpu_seconds(), self.clock())
        self.loop.call_later(QUIET_WINDOW_S, self.collect_when_quiet)

    def collect_when_quiet(self) -> None:
        """On the loop, at the end of a window: collect if it was quiet or memory has reached ``urgent``
        times its baseline, else open the next window."""
        cpu_then, then = self._window
        quiet = self.cpu_seconds() - cpu_then < QUIET_CPU_SHARE * (self.clock() - then)
        if quiet or self._resident_or_inf() >= self.urgent * self._baseline:
            self.collect_thoroughly()
        else:
            self._open_window()

    def collect_thoroughly(self) -> None:
        """Walk everything, the tenured objects too, and tenure what survives."""
        gc.unfreeze()
        tenure_everything()
        self.thorough_collections += 1
        self._baseline = self._resident_or_inf()
        self._due = False

    def _resident_or_inf(self) -> float:
        resident = self.resident()
        return float(resident) if resident is not None else float("inf")


def tenure_everything() -> None:
    """Collect everything and tenure what survives. The second collection walks only what the first left
    young: CPython takes its survivors, not the whole heap, as the old generation's size, which decides
    when the next full collection may start (not before a quarter as much again has been promoted)."""
    gc.collect()
    gc.freeze()
    gc.collect()


def settle_gc(loop: asyncio.AbstractEventLoop | None = None) -> Tenuring:
    """Once start-up is done: collect, tenure everything alive (modules, the replayed books), and from then
    on tenure what each collection leaves (``loop``: see ``Tenuring``).

    Left in the collector's sight, the start-up heap alone made full collections longer than the P99 goal
    within seconds of load (docs/benchmarks.md)."""
    for callback in [c for c in gc.callbacks if isinstance(c, Tenuring)]:
        gc.callbacks.remove(callback)  # settled again (tests, benchmarks): one policy
    tenure_everything()
    gc.set_threshold(*GC_THRESHOLDS)
    tenuring = Tenuring(loop)
    gc.callbacks.append(tenuring)
    return tenuring

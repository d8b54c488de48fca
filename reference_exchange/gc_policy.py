"""How the exchange runs CPython's garbage collector: one policy for the server and the engine benchmark,
so the benchmark measures the engine as the exchange runs it.

Generation 0 stays at CPython's 700: a young collection's pause grows with its threshold, and the tail is
what matters here. A full collection waits for 100 gen-1 runs instead of 10 (CPython also waits until a
quarter of the heap is new): it walks every resting order. The pauses measured are in docs/benchmarks.md,
"Micro-costs behind code choices".
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (700, 10, 100)


def settle_gc() -> None:
    """Once start-up is done: move everything alive (modules, the replayed books) out of the collector's
    sight, so a full collection walks only what was allocated since, and make full collections rarer.

    A full collection in 3.11 walks every tracked object: with the start-up heap in it, one took 15-28 ms
    within seconds at 5,000 orders/s, longer than the P99 goal, with ~100 requests queued behind it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

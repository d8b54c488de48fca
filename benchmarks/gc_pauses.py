"""Garbage-collector pauses as the book grows: the exchange's policy against the one it replaced.

    python benchmarks/gc_pauses.py [--orders 1500000] [--quick] [--json PATH]

The compiled engine runs ``engine_throughput``'s seeded stream (limit orders resting and trading, market
orders, IOC/FOK, cancels: the book and the finished orders grow together) once under each policy, in
this process, and every collection's pause is timed from ``gc.callbacks``:

- **before**: the start-up heap frozen and full collections after 100 generation-1 runs (the policy until
  now), the finished orders in an exact dict (which CPython untracks and re-tracks as a young object);
- **exchange**: ``reference_exchange.gc_policy.settle_gc`` as the server runs it (what survives a full
  collection is tenured) with the engine as shipped (its finished orders in a ``TrackedDict``). No event
  loop runs here, so the thorough collection is never asked for.

Figures: the longest pause of any collection, and of a full one, under each; the goal is the exchange's
longest pause at most a quarter of before's. Wall-clock pauses: other work on the machine lengthens them.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, MachineLoad, emit, parser
from engine_throughput import mixed_stream, run_engine

from reference_exchange.engine import MatchingEngine, SplitDict
from reference_exchange.gc_policy import GC_THRESHOLDS, Tenuring, settle_gc

BEFORE_THRESHOLDS = (700, 10, 100)
GOAL_RATIO = 0.25


@dataclass
class Pauses:
    """Every collection's pause in seconds, by generation, from a ``gc.callbacks`` entry."""

    by_generation: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].append(time.perf_counter() - self._started)

    def longest_ms(self, generations: tuple[int, ...] = (0, 1, 2)) -> float:
        return 1000 * max((p for g in generations for p in self.by_generation[g]), default=0.0)


def exact_dict_engine(symbols: Any) -> MatchingEngine:
    """The engine with its finished orders in exact dicts, as before ``TrackedDict``."""
    engine = MatchingEngine(symbols)
    engine._finished = SplitDict()
    return engine


def measure(stream: list[tuple], policy: str) -> tuple[Pauses, float, int]:
    """Run the stream under ``policy``; its pauses, the run's seconds and the orders resting at the end."""
    for callback in [c for c in gc.callbacks if isinstance(c, (Tenuring, Pauses))]:
        gc.callbacks.remove(callback)
    gc.unfreeze()
    if policy == "before":
        gc.collect()
        gc.freeze()
        gc.set_threshold(*BEFORE_THRESHOLDS)
        make: Callable[[Any], MatchingEngine] = exact_dict_engine
    else:
        settle_gc()
        make = MatchingEngine
    pauses = Pauses()
    gc.callbacks.insert(0, pauses)
    seconds, engine = run_engine(stream, make)  # type: ignore[arg-type]  # a factory will do
    gc.callbacks.remove(pauses)
    return pauses, seconds, engine.resting_order_count


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=1_500_000, help="commands in the stream (default 1,500,000)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.orders = 300_000
    stream = mixed_stream(args.orders, args.seed)
    figures: list[Figure] = []
    with MachineLoad() as load:
        runs = {policy: measure(stream, policy) for policy in ("before", "exchange")}
    gc.unfreeze()
    gc.set_threshold(*GC_THRESHOLDS)
    for policy, (pauses, seconds, resting) in runs.items():
        full = pauses.by_generation[2]
        print(
            f"{policy}: {args.orders:,} commands in {seconds:.1f} s, {resting:,} resting at the end; "
            f"collections by generation {[len(v) for v in pauses.by_generation.values()]}; full ones (ms) "
            f"{', '.join(f'{1000 * x:.0f}' for x in full[:12])}{' ...' if len(full) > 12 else ''}",
            flush=True,
        )
    before, exchange = runs["before"][0], runs["exchange"][0]
    figures.append(Figure("longest GC pause, before", before.longest_ms(), "ms", None))
    figures.append(Figure("  of a full collection", before.longest_ms((2,)), "ms", None))
    figures.append(Figure("longest GC pause, exchange policy", exchange.longest_ms(), "ms", None))
    figures.append(Figure("  of a full collection", exchange.longest_ms((2,)), "ms", None))
    figures.append(
        Figure(
            "longest pause, exchange / before",
            exchange.longest_ms() / before.longest_ms() if before.longest_ms() else float("nan"),
            "x",
            GOAL_RATIO,
            op="<=",
        )
    )
    emit("gc_pauses", figures, args, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())

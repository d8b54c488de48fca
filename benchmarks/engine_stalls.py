"""The matching engine's longest single command as its order maps grow: split maps against one dict each.

    python benchmarks/engine_stalls.py [--orders 2500000] [--repeat 2] [--quick] [--json PATH]

A dict grows, and sheds what its deletions left, by copying every entry into a new table in one step. The
engine keeps its resting orders, its finished orders (a million, ``ORDER_RETENTION``) and its client order
ids in maps; as one dict each, the step at a million entries held the exchange's only thread longer than
its latency objective, the new table's pages faulted in from the kernel (a stall the overload benchmark's
recovery phase hit; figures in docs/benchmarks.md). ``SplitDict`` spreads each map over 256 dicts.

``engine_throughput``'s seeded stream runs through the engine, every ``place`` and ``cancel`` timed, in a
fresh process per run (so no run reuses memory a previous one freed), with the collector off (its pauses
are ``gc_pauses``'s subject):

- **one dict** and **split**: the interpreted engine, with its maps as one dict each (as before) and as
  shipped, alternating ``--repeat`` times. Figure: split's longest command over one dict's (the medians),
  goal at most 0.1;
- **compiled**: the installed build as shipped. Figure: its longest command, goal under 20 ms (the
  exchange's P99 objective: one command longer breaks it for every request waiting behind it).

Wall-clock times: other work on the machine lengthens them (the load is printed).
"""

from __future__ import annotations

import gc
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, MachineLoad, emit, parser
from engine_throughput import mixed_stream, run_engine

from reference_exchange.engine import IMPLEMENTATION, MatchingEngine, interpreted_matching

GOAL_RATIO = 0.1
GOAL_LONGEST_MS = 20.0
SLOW_MS = 5.0  # commands at least this long are counted


class OneDict(dict):  # type: ignore[type-arg]
    """An order map as it was before ``SplitDict``: one dict (``pop`` answering as SplitDict's does)."""

    def pop(self, key: Any, default: Any = None) -> Any:
        return super().pop(key, default)


class TimedEngine:
    """An engine whose every ``place`` and ``cancel`` is timed: the longest, when, and how many were slow."""

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine
        self.commands = 0
        self.longest_ns = 0
        self.longest_at = 0
        self.slow = 0

    def _record(self, started_ns: int) -> None:
        took = time.perf_counter_ns() - started_ns
        self.commands += 1
        if took > self.longest_ns:
            self.longest_ns, self.longest_at = took, self.commands
        if took >= SLOW_MS * 1e6:
            self.slow += 1

    def place(self, *args: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return self.engine.place(*args)
        finally:
            self._record(started)

    def cancel(self, order_id: int) -> Any:
        started = time.perf_counter_ns()
        try:
            return self.engine.cancel(order_id)
        finally:
            self._record(started)


def _engine(variant: str) -> Callable[[Any], MatchingEngine]:
    if variant == "compiled":
        return MatchingEngine
    interpreted = interpreted_matching().MatchingEngine
    if variant == "split":
        return cast(Callable[[Any], MatchingEngine], interpreted)

    def one_dict(symbols: Any) -> MatchingEngine:
        engine = interpreted(symbols)
        engine._open, engine._finished, engine._by_client_id = OneDict(), OneDict(), OneDict()
        return cast(MatchingEngine, engine)

    return one_dict


@dataclass
class Run:
    variant: str
    longest_ms: float
    longest_at: int
    slow: int
    commands: int


def run(variant: str, count: int, seed: int) -> Run:
    """One run in this (fresh) process: the stream through the variant's engine, the collector off."""
    stream = mixed_stream(count, seed)
    make = _engine(variant)
    gc.collect()
    gc.disable()
    _, timed = run_engine(stream, cast(Any, lambda symbols: TimedEngine(make(symbols))))
    engine = cast(TimedEngine, timed)
    return Run(variant, engine.longest_ns / 1e6, engine.longest_at, engine.slow, engine.commands)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--orders", type=int, default=None, help="commands in the stream (default 2500000, quick 1000000)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=2, help="runs of each interpreted variant, alternating")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    count = args.orders or (1_000_000 if args.quick else 2_500_000)
    variants = ["one dict", "split"] * args.repeat
    if IMPLEMENTATION != "interpreted":
        variants.append("compiled")
    spawn = multiprocessing.get_context("spawn")
    runs: list[Run] = []
    with MachineLoad() as load:
        for variant in variants:
            with spawn.Pool(1) as pool:
                runs.append(pool.apply(run, (variant, count, args.seed)))
            last = runs[-1]
            print(
                f"{variant}: longest command {last.longest_ms:.1f} ms (command {last.longest_at:,} of "
                f"{last.commands:,}), {last.slow:,} of at least {SLOW_MS:g} ms",
                flush=True,
            )

    def longest(variant: str) -> float | None:
        values = [r.longest_ms for r in runs if r.variant == variant]
        return statistics.median(values) if values else None

    before, split, compiled = longest("one dict"), longest("split"), longest("compiled")
    assert before is not None and split is not None
    figures = [
        Figure("longest command, maps as one dict (interpreted)", before, "ms", None),
        Figure("longest command, split maps (interpreted)", split, "ms", None),
        Figure("split over one dict (same run)", split / before, "x", GOAL_RATIO, "<="),
        Figure(f"longest command ({IMPLEMENTATION}, as shipped)", compiled, "ms", GOAL_LONGEST_MS, "<"),
    ]
    emit("engine_stalls", figures, args, load, {"commands": count, "runs": [vars(r) for r in runs]})
    return 0


if __name__ == "__main__":
    sys.exit(main())

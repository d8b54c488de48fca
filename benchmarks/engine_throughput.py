"""In-process matching engine throughput on a seeded mixed order stream (no I/O, no HTTP), one core.

The stream: 60 % GTC limits around a mid of 10,000 ticks (a quarter marketable), 10 % market, 10 % IOC
and 5 % FOK limits through the mid, 15 % cancels of a random open order. Prints commands/s (every command
of the stream, cancels included) and trades/s against the goal of >= 1,000,000 orders/s, for the engine
build that is installed (compiled with mypyc where it could be, see setup.py) and, in the same run, for
the same source interpreted; the goal is judged on the installed build. Each is measured ``--repeat``
times, alternating, and the median is the figure (the spread is printed). A baseline loop doing only the
stream's bookkeeping (a dict insert per command) runs beside them, so the cost can be compared across
machines as a ratio. The collector runs with the exchange's policy (``reference_exchange.gc_policy``): it
keeps full collections from walking every resting order, a third of the time with CPython's defaults.
``--profile`` prints the interpreted engine's cProfile top functions (cProfile cannot
see inside the compiled one).

Usage: python benchmarks/engine_throughput.py [--orders 500000] [--seed 1] [--repeat 3] [--quick]
       [--json PATH] [--profile]
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, MachineLoad, emit, parser

from reference_exchange.engine import (
    IMPLEMENTATION,
    MatchingEngine,
    OrderNotFound,
    OrderNotOpen,
    OrderType,
    Side,
    TimeInForce,
    interpreted_matching,
)
from reference_exchange.gc_policy import settle_gc

SYMBOLS = ("BTCUSD", "ETHUSD", "ADAUSD", "DOTUSD", "SOLUSD")
GOAL_ORDERS_PER_S = 1_000_000
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


def mixed_stream(count: int, seed: int) -> list[tuple]:
    """Seeded commands: ("limit", symbol, side, qty, price, tif), ("market", symbol, side, qty), ("cancel", r)
    where r in [0, 1) picks which open order to cancel."""
    rng = random.Random(seed)
    stream: list[tuple] = []
    for _ in range(count):
        roll = rng.random()
        symbol = rng.choice(SYMBOLS)
        side = rng.choice((Side.BUY, Side.SELL))
        sign = 1 if side is Side.BUY else -1
        if roll < 0.6:
            offset = rng.randint(-3, 2) if rng.random() < 0.25 else rng.randint(1, 20)
            stream.append(("limit", symbol, side, rng.randint(1, 10), 10_000 - sign * offset, GTC))
        elif roll < 0.7:
            stream.append(("market", symbol, side, rng.randint(1, 10)))
        elif roll < 0.85:
            tif = IOC if roll < 0.8 else FOK
            stream.append(("limit", symbol, side, rng.randint(1, 20), 10_000 + sign * rng.randint(0, 3), tif))
        else:
            stream.append(("cancel", rng.random()))
    return stream


def run_engine(
    stream: list[tuple], engine_class: type[MatchingEngine] = MatchingEngine
) -> tuple[float, MatchingEngine]:
    engine = engine_class(SYMBOLS)
    place, cancel = engine.place, engine.cancel
    limit, market = OrderType.LIMIT, OrderType.MARKET
    open_ids: list[int] = []
    started = time.perf_counter()
    for item in stream:
        kind = item[0]
        if kind == "limit":
            _, symbol, side, quantity, price, tif = item
            result = place(symbol, side, limit, quantity, price, tif)
            if tif is GTC and result.order.remaining:
                open_ids.append(result.order.order_id)
        elif kind == "market":
            place(item[1], item[2], market, item[3], None, IOC)
        elif open_ids:
            # Swap-remove: O(1), where list.pop(i) moved half the list (~3 µs a cancel at 100k ids).
            index = int(item[1] * len(open_ids))
            order_id = open_ids[index]
            open_ids[index] = open_ids[-1]
            open_ids.pop()
            try:  # noqa: SIM105 - contextlib.suppress costs ~0.5 µs a cancel, in the measured loop
                cancel(order_id)
            except (OrderNotFound, OrderNotOpen):
                pass  # already filled: a real client's cancel races the same way
    return time.perf_counter() - started, engine


def run_baseline(stream: list[tuple]) -> float:
    seen: dict[int, tuple] = {}
    started = time.perf_counter()
    for index, item in enumerate(stream):
        seen[index] = item
    return time.perf_counter() - started


def profile(stream: list[tuple], top: int = 15) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    run_engine(stream, interpreted_matching().MatchingEngine)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


@dataclass
class Runs:
    """One engine build's repeated runs over the stream: seconds each (wall clock, and this thread's CPU
    time, which other processes on the core do not inflate), and the trades of the last."""

    name: str
    engine_class: type[MatchingEngine]
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    trades: int = 0

    def measure(self, stream: list[tuple]) -> MatchingEngine:
        gc.collect()  # start each run from the same heap, not with the previous engine's garbage
        cpu_started = time.thread_time()
        elapsed, engine = run_engine(stream, self.engine_class)
        self.cpu_seconds.append(time.thread_time() - cpu_started)
        problems = engine.audit()
        assert problems == [], problems[:5]
        self.seconds.append(elapsed)
        self.trades = engine.trades_executed
        return engine

    def rate(self, count: int) -> float:
        return count / statistics.median(self.seconds)

    def trade_rate(self, count: int) -> float:
        return self.trades * self.rate(count) / count

    def spread(self, count: int) -> str:
        return f"{count / max(self.seconds):,.0f}-{count / min(self.seconds):,.0f}/s"


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--orders", type=int, default=None, help="commands in the stream (default 500000, quick 50000)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3, help="runs of each engine build, alternating (median)")
    p.add_argument("--profile", action="store_true", help="also print the engine's cProfile top functions")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    count = args.orders or (50_000 if args.quick else 500_000)
    stream = mixed_stream(count, args.seed)
    # The exchange's collector policy (the server applies it once started). The stream's tuples are the
    # harness's, not the engine's: frozen with the rest of the start-up heap, as a server's would be.
    settle_gc()
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, [sorted(os.sched_getaffinity(0))[-1]])  # one core
    installed = Runs(IMPLEMENTATION, MatchingEngine)
    builds = [installed]
    if IMPLEMENTATION != "interpreted":
        builds.append(Runs("interpreted", interpreted_matching().MatchingEngine))
    baseline: list[float] = []
    with MachineLoad() as load:
        for _ in range(args.repeat):
            for build in builds:
                engine = build.measure(stream)
            baseline.append(run_baseline(stream))
    loop = statistics.median(baseline)
    for build in builds:
        print(
            f"{build.name}: {statistics.median(build.seconds) * 1e6 / count:.2f} µs a command "
            f"(runs {build.spread(count)}), {statistics.median(build.seconds) / loop:.1f}x the dict loop; "
            f"per CPU-second {count / statistics.median(build.cpu_seconds):,.0f}/s"
        )
    print(
        f"commands {count:,}, trades {engine.trades_executed:,}, resting {engine.resting_order_count:,}; "
        f"baseline dict loop {count / loop:,.0f}/s"
    )
    figures = [
        Figure(
            f"engine orders/s ({installed.name}, one core)",
            installed.rate(count),
            "orders/s",
            GOAL_ORDERS_PER_S,
        ),
        Figure("engine trades/s (same runs)", installed.trade_rate(count), "trades/s", None),
    ]
    for build in builds[1:]:
        figures.append(
            Figure(f"engine orders/s ({build.name}, same run)", build.rate(count), "orders/s", None)
        )
        figures.append(Figure(f"engine trades/s ({build.name})", build.trade_rate(count), "trades/s", None))
    details = {
        "implementation": IMPLEMENTATION,
        "commands": count,
        "trades": installed.trades,
        "resting": engine.resting_order_count,
        "seconds": {build.name: build.seconds for build in builds},
        "cpu_seconds": {build.name: build.cpu_seconds for build in builds},
        "dict_loop_seconds": baseline,
        "engine_over_dict_loop": {build.name: statistics.median(build.seconds) / loop for build in builds},
    }
    emit("engine_throughput", figures, args, load, details)
    if args.profile:
        print(profile(stream[: min(len(stream), 200_000)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

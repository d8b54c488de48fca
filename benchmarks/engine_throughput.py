"""In-process matching engine throughput on a seeded mixed order stream (no I/O, no HTTP), one core.

The stream: 60 % GTC limits around a mid of 10,000 ticks (a quarter marketable), 10 % market, 10 % IOC
and 5 % FOK limits through the mid, 15 % cancels of a random open order. Prints commands/s (every command
of the stream, cancels included) and trades/s against the goal of >= 1,000,000 orders/s, and, measured in
the same run, a baseline loop doing only the stream's bookkeeping (a dict insert per command) so the cost
can be compared across machines as a ratio. ``--profile`` prints the engine's cProfile top functions.

Usage: python benchmarks/engine_throughput.py [--orders 500000] [--seed 1] [--quick] [--json PATH] [--profile]
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, MachineLoad, emit, parser

from reference_exchange.engine import (
    MatchingEngine,
    OrderNotFound,
    OrderNotOpen,
    OrderType,
    Side,
    TimeInForce,
)

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


def run_engine(stream: list[tuple]) -> tuple[float, MatchingEngine]:
    engine = MatchingEngine(SYMBOLS)
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
            order_id = open_ids.pop(int(item[1] * len(open_ids)))
            # Already filled: a real client's cancel races the same way.
            with contextlib.suppress(OrderNotFound, OrderNotOpen):
                cancel(order_id)
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
    run_engine(stream)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--orders", type=int, default=None, help="commands in the stream (default 500000, quick 50000)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="also print the engine's cProfile top functions")
    args = p.parse_args(argv)
    count = args.orders or (50_000 if args.quick else 500_000)
    stream = mixed_stream(count, args.seed)
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, [sorted(os.sched_getaffinity(0))[-1]])  # one core
    with MachineLoad() as load:
        elapsed, engine = run_engine(stream)
        baseline = run_baseline(stream)
    problems = engine.audit()
    assert problems == [], problems[:5]
    rate = len(stream) / elapsed
    print(
        f"commands {len(stream):,}: engine {elapsed * 1e6 / len(stream):.2f} µs each; "
        f"baseline dict loop {len(stream) / baseline:,.0f}/s; "
        f"engine costs {elapsed / baseline:.1f}x the loop; "
        f"trades {engine.trades_executed:,}, resting {engine.resting_order_count:,}"
    )
    figures = [
        Figure("engine orders/s (mixed stream, one core)", rate, "orders/s", GOAL_ORDERS_PER_S),
        Figure("engine trades/s (same run)", engine.trades_executed / elapsed, "trades/s", None),
    ]
    details = {
        "commands": len(stream),
        "seconds": elapsed,
        "trades": engine.trades_executed,
        "resting": engine.resting_order_count,
        "engine_over_dict_loop": elapsed / baseline,
    }
    emit("engine_throughput", figures, args, load, details)
    if args.profile:
        print(profile(stream[: min(len(stream), 200_000)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
